//! The cluster's assets in a shared journal's store, sealed to the team: what each stored
//! value is, the sink and outbox that carry every file a step writes into the record that
//! depends on it, and the local asset directory as a cache filled from the store.
//!
//! A stored asset is one line of plain facts, then the file sealed with age to the spec's
//! recipients:
//! `loko-asset 1 sha256=<digest of the file> recipients=<fingerprint of the recipients>\n<age>`.
//! The digest (of a key or token: one-way, it opens nothing) lets any operator check a cached
//! file without opening it, and proves what was opened is what was stored; the fingerprint says
//! whom it was sealed to, so a change of recipients re-seals what was sealed to others.

use std::collections::BTreeMap;
use std::path::{Component, Path};
use std::sync::Mutex;

use journal::{AssetOutbox, AssetPut, StoredAssets};
use sha2::{Digest as _, Sha256};
use steps::assets::{AssetDir, AssetSink, Sensitivity};
use vault::{Identities, Recipients, VaultError};

/// The first word of every stored asset, and its format's version.
const MAGIC: &str = "loko-asset 1";

/// Why the assets could not be stored, read or cached.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TeamAssetError {
    /// A stored value is not an asset of this format (damaged, or of another program).
    #[error("stored asset {path}: {reason}")]
    Damaged { path: String, reason: String },
    /// Sealing or opening failed; the vault's message says why (never with a secret).
    #[error("stored asset {path}: {source}")]
    Vault {
        path: String,
        #[source]
        source: VaultError,
    },
    /// The asset directory refused a write.
    #[error(transparent)]
    Asset(#[from] steps::assets::AssetError),
}

/// One stored asset, parsed: the facts line and the sealed file.
pub(crate) struct Stored<'a> {
    /// SHA-256 of the file, hex.
    pub(crate) sha256: &'a str,
    /// [`Recipients::fingerprint`] of those it is sealed to.
    pub(crate) recipients: &'a str,
    /// The age file.
    pub(crate) sealed: &'a [u8],
}

impl<'a> Stored<'a> {
    /// Parses a stored value of asset `path`.
    pub(crate) fn parse(path: &str, bytes: &'a [u8]) -> Result<Stored<'a>, TeamAssetError> {
        let damaged = |reason: &str| TeamAssetError::Damaged {
            path: path.to_owned(),
            reason: reason.to_owned(),
        };
        let split = bytes
            .iter()
            .position(|b| *b == b'\n')
            .ok_or_else(|| damaged("no facts line"))?;
        let line = std::str::from_utf8(&bytes[..split]).map_err(|_| damaged("facts not text"))?;
        let rest = line
            .strip_prefix(MAGIC)
            .ok_or_else(|| damaged("not a loko asset of this version"))?;
        let field = |name: &str| {
            rest.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .ok_or_else(|| damaged(&format!("no {name}")))
        };
        let sealed = &bytes[split + 1..];
        if !vault::is_sealed(sealed) {
            return Err(damaged("not sealed"));
        }
        Ok(Stored {
            sha256: field("sha256=")?,
            recipients: field("recipients=")?,
            sealed,
        })
    }
}

/// Seals `contents` of asset `path` to `recipients`, as stored.
pub(crate) fn seal(
    path: &str,
    contents: &[u8],
    recipients: &Recipients,
) -> Result<Vec<u8>, TeamAssetError> {
    let sealed = vault::seal(recipients, contents).map_err(|source| TeamAssetError::Vault {
        path: path.to_owned(),
        source,
    })?;
    let mut out = format!(
        "{MAGIC} sha256={} recipients={}\n",
        sha256(contents),
        recipients.fingerprint()
    )
    .into_bytes();
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Opens stored asset `path` and checks it is the file its facts name.
pub(crate) fn open(
    path: &str,
    stored: &Stored<'_>,
    identities: &Identities,
) -> Result<zeroize::Zeroizing<Vec<u8>>, TeamAssetError> {
    let plain = vault::open(identities, stored.sealed).map_err(|source| TeamAssetError::Vault {
        path: path.to_owned(),
        source,
    })?;
    if sha256(&plain) != stored.sha256 {
        return Err(TeamAssetError::Damaged {
            path: path.to_owned(),
            reason: "opened, but not the file its digest names".to_owned(),
        });
    }
    Ok(plain)
}

/// The sink of the run's asset directory and the outbox of its journal: every file a step
/// writes that the store does not hold as it is is sealed and handed to the next append.
pub(crate) struct TeamAssets {
    recipients: Recipients,
    /// Path to the digest of the file the store holds (or will, with the next append).
    stored: Mutex<BTreeMap<String, String>>,
    pending: Mutex<Vec<AssetPut>>,
}

impl TeamAssets {
    /// For a store holding `stored` (path to digest), sealing to `recipients`.
    pub(crate) fn new(recipients: Recipients, stored: BTreeMap<String, String>) -> TeamAssets {
        TeamAssets {
            recipients,
            stored: Mutex::new(stored),
            pending: Mutex::new(Vec::new()),
        }
    }

    /// Hands over an asset already in its stored form (re-sealed), digest `sha256`.
    pub(crate) fn put_stored(&self, path: &str, sha256: &str, bytes: Vec<u8>) {
        lock(&self.stored).insert(path.to_owned(), sha256.to_owned());
        lock(&self.pending).push(AssetPut {
            path: path.to_owned(),
            value: Some(bytes),
        });
    }

    /// Hands over every file of the asset directory the store lacks or holds otherwise: the
    /// files of a run that stopped before its record, or of a directory that was never shared.
    pub(crate) fn upload_local(&self, dir: &AssetDir) -> Result<usize, TeamAssetError> {
        let mut n = 0;
        for rel in local_files(dir.root())? {
            if let Some(bytes) = dir.read(&rel)? {
                let before = lock(&self.pending).len();
                self.written(Path::new(&rel), &bytes).map_err(|reason| {
                    TeamAssetError::Damaged {
                        path: rel.clone(),
                        reason,
                    }
                })?;
                n += lock(&self.pending).len() - before;
            }
        }
        Ok(n)
    }
}

/// The plain SHA-256 of a file, hex: as the journal's records (manifests, Ignition) hold it.
pub(crate) fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl AssetSink for TeamAssets {
    fn written(&self, rel: &Path, contents: &[u8]) -> Result<(), String> {
        let path = rel_path(rel)?;
        let digest = sha256(contents);
        if lock(&self.stored).get(&path) == Some(&digest) {
            return Ok(());
        }
        let value = seal(&path, contents, &self.recipients).map_err(|e| e.to_string())?;
        self.put_stored(&path, &digest, value);
        Ok(())
    }

    fn removed(&self, rel: &Path) -> Result<(), String> {
        let path = rel_path(rel)?;
        if lock(&self.stored).remove(&path).is_some() {
            lock(&self.pending).push(AssetPut { path, value: None });
        }
        Ok(())
    }
}

impl AssetOutbox for TeamAssets {
    fn take(&self) -> Vec<AssetPut> {
        std::mem::take(&mut *lock(&self.pending))
    }
}

/// `rel` as a store key: relative, `/`-separated, without `.` or `..`.
fn rel_path(rel: &Path) -> Result<String, String> {
    let mut parts = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(p) => parts.push(
                p.to_str()
                    .ok_or_else(|| format!("{}: not UTF-8", rel.display()))?,
            ),
            _ => return Err(format!("{}: not a plain relative path", rel.display())),
        }
    }
    Ok(parts.join("/"))
}

/// The files of the asset directory that travel with the journal: all but the state directory
/// (`.loko`, the local journal and the simulator's cloud) and temporary files.
fn local_files(root: &Path) -> Result<Vec<String>, TeamAssetError> {
    fn walk(root: &Path, rel: &str, out: &mut Vec<String>) -> Result<(), TeamAssetError> {
        let path = root.join(rel);
        let io = |source| steps::assets::AssetError::Io {
            path: path.clone(),
            source,
        };
        let entries = match std::fs::read_dir(&path) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io(e).into()),
        };
        for entry in entries {
            let entry = entry.map_err(io)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let child = match rel {
                "" => name,
                _ => format!("{rel}/{name}"),
            };
            if entry.file_type().map_err(io)?.is_dir() {
                walk(root, &child, out)?;
            } else {
                out.push(child);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(root, "", &mut out)?;
    out.sort();
    Ok(out)
}

/// Seals the stored assets named in `paths` again, to the recipients of `team` (which hands
/// them to the next append), opening each with `identities`; returns the fingerprints of those
/// they were sealed to before.
pub(crate) fn reseal(
    stored: &StoredAssets,
    paths: &[String],
    team: &TeamAssets,
    identities: &Identities,
) -> Result<std::collections::BTreeSet<String>, TeamAssetError> {
    let mut from = std::collections::BTreeSet::new();
    for (path, bytes) in stored.iter().filter(|(p, _)| paths.contains(p)) {
        let facts = Stored::parse(path, bytes)?;
        let plain = open(path, &facts, identities)?;
        let value = seal(path, &plain, &team.recipients)?;
        team.put_stored(path, facts.sha256, value);
        from.insert(facts.recipients.to_owned());
    }
    Ok(from)
}

/// What filling the cache did.
#[derive(Debug, Default)]
pub(crate) struct Filled {
    /// Path to digest of every stored asset.
    pub(crate) index: BTreeMap<String, String>,
    /// The files written from the store (missing, damaged or stale here).
    pub(crate) replaced: Vec<String>,
    /// Stored assets sealed to other recipients than the spec's.
    pub(crate) sealed_to_others: Vec<String>,
}

/// Fills the asset directory `dir` from `stored`: every file missing here or different from
/// what the store holds (damaged, stale, or written by a run that stopped before its record) is
/// opened with the operator's identities (loaded only if one must be opened) and written, 0600
/// in 0700 directories. Nothing local is trusted over the store.
pub(crate) fn fill_cache(
    dir: &AssetDir,
    stored: &StoredAssets,
    fingerprint: &str,
    identities: impl FnOnce() -> Result<Identities, VaultError>,
) -> Result<Filled, TeamAssetError> {
    let mut filled = Filled::default();
    let mut identities = Some(identities);
    let mut loaded: Option<Identities> = None;
    for (path, bytes) in stored {
        let facts = Stored::parse(path, bytes)?;
        rel_path(Path::new(path)).map_err(|reason| TeamAssetError::Damaged {
            path: path.clone(),
            reason,
        })?;
        filled.index.insert(path.clone(), facts.sha256.to_owned());
        if facts.recipients != fingerprint {
            filled.sealed_to_others.push(path.clone());
        }
        let local = dir.read(path)?;
        if local.as_deref().map(sha256).as_deref() == Some(facts.sha256) {
            continue;
        }
        if loaded.is_none()
            && let Some(load) = identities.take()
        {
            loaded = Some(load().map_err(|source| TeamAssetError::Vault {
                path: path.clone(),
                source,
            })?);
        }
        let Some(ids) = &loaded else { continue };
        let plain = open(path, &facts, ids)?;
        dir.write(path, &plain, Sensitivity::Secret)?;
        filled.replaced.push(path.clone());
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;
    use std::path::PathBuf;

    use super::*;

    /// An OpenSSH ed25519 key made by ssh-keygen: (private key file, public line).
    fn keypair(dir: &Path, name: &str) -> (PathBuf, String) {
        let path = dir.join(name);
        let ok = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
            .arg(&path)
            .status()
            .unwrap()
            .success();
        assert!(ok, "ssh-keygen");
        let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
        (path, public.trim().to_owned())
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    /// A store written by one operator's run (through the sink and outbox), read into another's
    /// empty asset directory; then a damaged and a stale file replaced, not trusted.
    #[test]
    fn another_operators_cache_is_filled_verified_and_repaired_from_the_store() {
        let tmp = tempfile::tempdir().unwrap();
        let (key_a, pub_a) = keypair(tmp.path(), "a");
        let (key_b, pub_b) = keypair(tmp.path(), "b");
        let team = Recipients::parse(&[pub_a, pub_b]).unwrap();
        let fingerprint = team.fingerprint();
        let sink = std::sync::Arc::new(TeamAssets::new(team, BTreeMap::new()));
        let a_dir = AssetDir::create(tmp.path().join("a-assets"))
            .unwrap()
            .with_sink(std::sync::Arc::clone(&sink) as _);
        a_dir
            .write(
                "tls/ca.key",
                b"-----BEGIN PRIVATE KEY-----\nk\n",
                Sensitivity::Secret,
            )
            .unwrap();
        a_dir
            .write("tls/ca.crt", b"crt", Sensitivity::Public)
            .unwrap();
        // Unchanged: not handed over twice, nor by the sweep of the directory.
        a_dir
            .write("tls/ca.crt", b"crt", Sensitivity::Public)
            .unwrap();
        assert_eq!(sink.upload_local(&a_dir).unwrap(), 0);
        let mut stored: StoredAssets = sink
            .take()
            .into_iter()
            .map(|p| (p.path, p.value.unwrap()))
            .collect();
        // In path order, as a store hands them out.
        stored.sort();
        assert_eq!(stored.len(), 2);
        for (path, bytes) in &stored {
            assert!(
                !String::from_utf8_lossy(bytes).contains("BEGIN PRIVATE"),
                "{path} stored in plaintext"
            );
        }
        // A file written behind loko's back is swept up.
        std::fs::write(a_dir.path("tls/extra"), b"x").unwrap();
        assert_eq!(sink.upload_local(&a_dir).unwrap(), 1);

        let b_dir = AssetDir::create(tmp.path().join("b-assets")).unwrap();
        let b = || Identities::load(std::slice::from_ref(&key_b));
        let filled = fill_cache(&b_dir, &stored, &fingerprint, b).unwrap();
        assert_eq!(filled.replaced, ["tls/ca.crt", "tls/ca.key"]);
        assert!(filled.sealed_to_others.is_empty());
        assert_eq!(
            b_dir.read("tls/ca.key").unwrap().unwrap(),
            b"-----BEGIN PRIVATE KEY-----\nk\n"
        );
        assert_eq!(mode(&b_dir.path("tls/ca.key")), 0o600);
        assert_eq!(mode(&b_dir.path("tls/ca.crt")), 0o600);
        assert_eq!(mode(&b_dir.path("tls")), 0o700);

        // Up to date: nothing opened (no identity asked for), nothing written.
        let none = || -> Result<Identities, VaultError> { panic!("no identity is needed") };
        let filled = fill_cache(&b_dir, &stored, &fingerprint, none).unwrap();
        assert!(filled.replaced.is_empty());

        // A damaged file and a stale one are replaced from the store.
        std::fs::write(b_dir.path("tls/ca.key"), b"garbage").unwrap();
        std::fs::write(b_dir.path("tls/ca.crt"), b"an older certificate").unwrap();
        let a = || Identities::load(std::slice::from_ref(&key_a));
        let filled = fill_cache(&b_dir, &stored, &fingerprint, a).unwrap();
        assert_eq!(filled.replaced, ["tls/ca.crt", "tls/ca.key"]);
        assert_eq!(b_dir.read("tls/ca.crt").unwrap().unwrap(), b"crt");
    }

    /// Someone whose key is not a recipient gets the vault's refusal, and no file.
    #[test]
    fn a_stranger_gets_a_refusal_and_no_secret() {
        let tmp = tempfile::tempdir().unwrap();
        let (_, pub_a) = keypair(tmp.path(), "a");
        let (key_c, _) = keypair(tmp.path(), "c");
        let team = Recipients::parse(&[pub_a]).unwrap();
        let stored = vec![(
            "tls/ca.key".to_owned(),
            seal("tls/ca.key", b"secret", &team).unwrap(),
        )];
        let dir = AssetDir::create(tmp.path().join("c-assets")).unwrap();
        let c = || Identities::load(std::slice::from_ref(&key_c));
        let err = fill_cache(&dir, &stored, &team.fingerprint(), c).unwrap_err();
        assert!(
            matches!(
                &err,
                TeamAssetError::Vault {
                    source: VaultError::NotARecipient { .. },
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("not a recipient"), "{err}");
        assert_eq!(dir.read("tls/ca.key").unwrap(), None);
    }

    /// A recipient removed: what is sealed again opens for those who stay, not for the one
    /// removed.
    #[test]
    fn a_removed_recipient_opens_nothing_sealed_again() {
        let tmp = tempfile::tempdir().unwrap();
        let (key_a, pub_a) = keypair(tmp.path(), "a");
        let (key_b, pub_b) = keypair(tmp.path(), "b");
        let both = Recipients::parse(&[pub_a.clone(), pub_b]).unwrap();
        let old = vec![(
            "tls/ca.key".to_owned(),
            seal("tls/ca.key", b"k", &both).unwrap(),
        )];
        let only_a = Recipients::parse(&[pub_a]).unwrap();
        let dir = AssetDir::create(tmp.path().join("x")).unwrap();
        let a = || Identities::load(std::slice::from_ref(&key_a));
        let filled = fill_cache(&dir, &old, &only_a.fingerprint(), a).unwrap();
        assert_eq!(filled.sealed_to_others, ["tls/ca.key"]);
        let team = TeamAssets::new(only_a, filled.index);
        let ids = Identities::load(std::slice::from_ref(&key_a)).unwrap();
        let from = reseal(&old, &filled.sealed_to_others, &team, &ids).unwrap();
        assert_eq!(from.into_iter().collect::<Vec<_>>(), [both.fingerprint()]);
        let new: StoredAssets = team
            .take()
            .into_iter()
            .map(|p| (p.path, p.value.unwrap()))
            .collect();
        let facts = Stored::parse("tls/ca.key", &new[0].1).unwrap();
        let b = Identities::load(std::slice::from_ref(&key_b)).unwrap();
        let err = open("tls/ca.key", &facts, &b).unwrap_err();
        assert!(err.to_string().contains("not a recipient"), "{err}");
        assert_eq!(&open("tls/ca.key", &facts, &ids).unwrap()[..], b"k");
    }

    /// A stored value whose sealed file was swapped for another's is refused when opened: the
    /// digest in its facts no longer matches.
    #[test]
    fn a_stored_file_that_is_not_the_one_its_digest_names_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let (key_a, pub_a) = keypair(tmp.path(), "a");
        let team = Recipients::parse(&[pub_a]).unwrap();
        let good = seal("x", b"one", &team).unwrap();
        let other = seal("x", b"two", &team).unwrap();
        let split = |b: &[u8]| b.iter().position(|c| *c == b'\n').unwrap() + 1;
        let mut swapped = good[..split(&good)].to_vec();
        swapped.extend_from_slice(&other[split(&other)..]);
        let dir = AssetDir::create(tmp.path().join("d")).unwrap();
        let a = || Identities::load(std::slice::from_ref(&key_a));
        let err = fill_cache(
            &dir,
            &vec![("x".to_owned(), swapped)],
            &team.fingerprint(),
            a,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("not the file its digest names"),
            "{err}"
        );
        assert_eq!(dir.read("x").unwrap(), None);
    }
}
