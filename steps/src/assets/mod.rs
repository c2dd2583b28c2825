//! The cluster's assets in `asset_dir`, laid out as Lokomotive's: `tls/` (the PKI), `auth/`
//! (kubeconfigs), `static-manifests/` (the static control plane) and `manifests/` (what the
//! bootstrap step applies).
//!
//! Everything here is written through [`AssetDir`], which is the one place that knows the
//! permission rules: directories 0700, private keys and anything embedding one 0600, written
//! atomically (temporary file, fsync, rename) so that a crash never leaves half a key behind.

pub mod bootstrap_token;
pub mod cache;
pub mod kubeconfig;
pub mod manifests;
pub mod pki;

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use cache::AssetSink;

/// Why an asset could not be read, written or rendered.
#[derive(Debug, thiserror::Error)]
pub enum AssetError {
    /// The file system refused: names the path.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file exists but is not what loko wrote there (bad PEM, a key of the wrong kind, ...).
    #[error("{}: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
    /// The asset could not be handed to the journal's store (see [`AssetSink`]).
    #[error("{}: cannot store it with the journal: {reason}", path.display())]
    Store { path: PathBuf, reason: String },
    /// Generating or signing failed; `what` names the certificate or key.
    #[error("cannot generate {what}: {reason}")]
    Generate { what: String, reason: String },
}

/// Whether a file may be read by others: decides its mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sensitivity {
    /// Certificates, public keys, manifests without secrets: 0644.
    Public,
    /// Private keys and every file that embeds one (kubeconfigs, Ignition, Secret manifests): 0600.
    Secret,
}

impl Sensitivity {
    fn mode(self) -> u32 {
        match self {
            Sensitivity::Public => 0o644,
            Sensitivity::Secret => 0o600,
        }
    }
}

/// The asset directory of one cluster.
#[derive(Clone)]
pub struct AssetDir {
    root: PathBuf,
    /// Told of the secrets the directory's readers learn that have no secret's shape (the
    /// bootstrap token), so that no error, event or log line of the run carries them.
    redactor: journal::Redactor,
    /// Told of every file written or removed, when the journal's store keeps the assets.
    sink: Option<Arc<dyn AssetSink>>,
}

impl std::fmt::Debug for AssetDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssetDir")
            .field("root", &self.root)
            .field("stored", &self.sink.is_some())
            .finish()
    }
}

impl AssetDir {
    /// Opens `root`, creating it (mode 0700) if needed; the secrets learned from it are told
    /// to a redactor of its own until [`AssetDir::redacting`] names the run's.
    pub fn create(root: impl Into<PathBuf>) -> Result<Self, AssetError> {
        let dir = AssetDir {
            root: root.into(),
            redactor: journal::Redactor::new(),
            sink: None,
        };
        dir.ensure_dir(Path::new(""))?;
        Ok(dir)
    }

    /// This directory, telling the secrets its readers learn to `redactor` (the run's).
    pub fn redacting(self, redactor: journal::Redactor) -> AssetDir {
        AssetDir { redactor, ..self }
    }

    /// The redactor the secrets learned from this directory are told to.
    pub fn redactor(&self) -> &journal::Redactor {
        &self.redactor
    }

    /// This directory, telling `sink` of every file written or removed through it (so that the
    /// journal's store keeps a copy, written with the record of the step that wrote it).
    pub fn with_sink(mut self, sink: Arc<dyn AssetSink>) -> Self {
        self.sink = Some(sink);
        self
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The absolute path of `rel` (a path relative to the asset directory).
    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.root.join(rel)
    }

    /// Reads `rel`; `Ok(None)` if it does not exist.
    pub fn read(&self, rel: impl AsRef<Path>) -> Result<Option<Vec<u8>>, AssetError> {
        let path = self.path(rel);
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(AssetError::Io { path, source }),
        }
    }

    /// Reads `rel` as UTF-8 text; `Ok(None)` if it does not exist.
    pub fn read_text(&self, rel: impl AsRef<Path>) -> Result<Option<String>, AssetError> {
        let rel = rel.as_ref();
        match self.read(rel)? {
            None => Ok(None),
            Some(bytes) => String::from_utf8(bytes)
                .map(Some)
                .map_err(|_| AssetError::Invalid {
                    path: self.path(rel),
                    reason: "not UTF-8 text".into(),
                }),
        }
    }

    /// Writes `rel` atomically with the mode of `sensitivity`, creating parent directories
    /// (0700). An existing file with the same content is left alone (its mtime too), so a rerun
    /// that renders the same assets changes nothing on disk.
    pub fn write(
        &self,
        rel: impl AsRef<Path>,
        contents: &[u8],
        sensitivity: Sensitivity,
    ) -> Result<(), AssetError> {
        let rel = rel.as_ref();
        let path = self.path(rel);
        self.write_here(rel, &path, contents, sensitivity)?;
        // Told after the file is in place here, and even of an unchanged file (the sink knows
        // whether the store has it): the store, which any step's next append fills, never holds
        // a file that a kill left unwritten here.
        if let Some(sink) = &self.sink {
            sink.written(rel, contents)
                .map_err(|reason| AssetError::Store { path, reason })?;
        }
        Ok(())
    }

    /// Writes `contents` to `path` (`rel` in the directory) atomically, unless it holds them.
    fn write_here(
        &self,
        rel: &Path,
        path: &Path,
        contents: &[u8],
        sensitivity: Sensitivity,
    ) -> Result<(), AssetError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| AssetError::Io { path, source }
        };
        if let Some(parent) = rel.parent() {
            self.ensure_dir(parent)?;
        }
        if let Some(existing) = self.read(rel)?
            && existing == contents
        {
            // Same bytes; still enforce the mode, a user may have loosened it.
            return fs::set_permissions(path, fs::Permissions::from_mode(sensitivity.mode()))
                .map_err(io(path));
        }
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = path.with_file_name(format!(".{file_name}.tmp"));
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(sensitivity.mode())
            .open(&tmp)
            .map_err(io(&tmp))?;
        // `mode` only applies when the file is created; a leftover temp file keeps its own.
        file.set_permissions(fs::Permissions::from_mode(sensitivity.mode()))
            .map_err(io(&tmp))?;
        file.write_all(contents).map_err(io(&tmp))?;
        file.sync_all().map_err(io(&tmp))?;
        fs::rename(&tmp, path).map_err(io(path))?;
        if let Some(parent) = path.parent() {
            fs::File::open(parent)
                .and_then(|d| d.sync_all())
                .map_err(io(parent))?;
        }
        Ok(())
    }

    /// Removes `rel` if it exists.
    pub fn remove(&self, rel: impl AsRef<Path>) -> Result<(), AssetError> {
        let rel = rel.as_ref();
        let path = self.path(rel);
        if let Some(sink) = &self.sink {
            sink.removed(rel).map_err(|reason| AssetError::Store {
                path: path.clone(),
                reason,
            })?;
        }
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(AssetError::Io { path, source: e })
            }
            _ => Ok(()),
        }
    }

    /// Creates `rel` and its parents with mode 0700 (and tightens an existing one to 0700).
    pub fn ensure_dir(&self, rel: impl AsRef<Path>) -> Result<(), AssetError> {
        let path = self.path(rel);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&path)
            .map_err(|source| AssetError::Io {
                path: path.clone(),
                source,
            })?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o700))
            .map_err(|source| AssetError::Io { path, source })
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::Mutex;

    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn secrets_are_0600_public_files_0644_directories_0700() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = AssetDir::create(tmp.path().join("assets")).unwrap();
        dir.write("tls/ca.key", b"key", Sensitivity::Secret)
            .unwrap();
        dir.write("tls/ca.crt", b"crt", Sensitivity::Public)
            .unwrap();
        assert_eq!(mode(&dir.path("tls/ca.key")), 0o600);
        assert_eq!(mode(&dir.path("tls/ca.crt")), 0o644);
        assert_eq!(mode(&dir.path("tls")), 0o700);
        assert_eq!(mode(dir.root()), 0o700);
        assert_eq!(
            dir.read("tls/ca.key").unwrap().as_deref(),
            Some(&b"key"[..])
        );
        assert_eq!(dir.read("tls/missing").unwrap(), None);
    }

    #[test]
    fn rewriting_tightens_a_loosened_mode() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = AssetDir::create(tmp.path()).unwrap();
        dir.write("k", b"secret", Sensitivity::Secret).unwrap();
        fs::set_permissions(dir.path("k"), fs::Permissions::from_mode(0o644)).unwrap();
        dir.write("k", b"secret", Sensitivity::Secret).unwrap();
        assert_eq!(mode(&dir.path("k")), 0o600);
        dir.write("k", b"other", Sensitivity::Secret).unwrap();
        assert_eq!(mode(&dir.path("k")), 0o600);
        assert_eq!(dir.read_text("k").unwrap().as_deref(), Some("other"));
    }

    // The sink's tests live with AssetDir, which calls it: cache.rs imports nothing of this file.
    #[derive(Default)]
    struct Told(Mutex<Vec<String>>);

    impl AssetSink for Told {
        fn written(&self, rel: &Path, contents: &[u8]) -> Result<(), String> {
            let text = String::from_utf8_lossy(contents);
            let mut told = self.0.lock().unwrap();
            told.push(format!("+{} {text}", rel.display()));
            Ok(())
        }
        fn removed(&self, rel: &Path) -> Result<(), String> {
            self.0.lock().unwrap().push(format!("-{}", rel.display()));
            Ok(())
        }
    }

    #[test]
    fn the_sink_is_told_of_every_write_even_unchanged_and_every_removal() {
        let tmp = tempfile::tempdir().unwrap();
        let told = Arc::new(Told::default());
        let dir = AssetDir::create(tmp.path())
            .unwrap()
            .with_sink(Arc::clone(&told) as _);
        dir.write("tls/ca.key", b"k", Sensitivity::Secret).unwrap();
        dir.write("tls/ca.key", b"k", Sensitivity::Secret).unwrap();
        dir.remove("tls/ca.key").unwrap();
        assert_eq!(
            *told.0.lock().unwrap(),
            ["+tls/ca.key k", "+tls/ca.key k", "-tls/ca.key"]
        );
        assert!(!dir.path("tls/ca.key").exists());
    }

    /// The sink is told once the file is in place here: the store it fills (with any step's
    /// next append) never holds a file that a kill left unwritten in this directory, which a
    /// resumed run would have to open from the store (with an identity it may not have).
    #[test]
    fn the_sink_is_told_once_the_file_is_in_place() {
        struct Checks(PathBuf);
        impl AssetSink for Checks {
            fn written(&self, rel: &Path, contents: &[u8]) -> Result<(), String> {
                match fs::read(self.0.join(rel)) {
                    Ok(here) if here == contents => Ok(()),
                    other => Err(format!("told before the file was written: {other:?}")),
                }
            }
            fn removed(&self, _: &Path) -> Result<(), String> {
                Ok(())
            }
        }
        let tmp = tempfile::tempdir().unwrap();
        let dir = AssetDir::create(tmp.path())
            .unwrap()
            .with_sink(Arc::new(Checks(tmp.path().to_owned())));
        dir.write("manifests/a.yaml", b"one", Sensitivity::Public)
            .unwrap();
        dir.write("manifests/a.yaml", b"two", Sensitivity::Public)
            .unwrap();
    }

    /// A sink that refuses fails the write (the file is here: the next run's sweep of the
    /// directory hands it to the store).
    #[test]
    fn a_refusing_sink_fails_the_write() {
        struct No;
        impl AssetSink for No {
            fn written(&self, _: &Path, _: &[u8]) -> Result<(), String> {
                Err("no recipients".into())
            }
            fn removed(&self, _: &Path) -> Result<(), String> {
                Ok(())
            }
        }
        let tmp = tempfile::tempdir().unwrap();
        let dir = AssetDir::create(tmp.path())
            .unwrap()
            .with_sink(Arc::new(No));
        let err = dir.write("a", b"x", Sensitivity::Secret).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("a: cannot store it with the journal: no recipients"),
            "{err}"
        );
    }
}
