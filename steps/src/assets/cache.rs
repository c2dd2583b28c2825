//! The asset directory as a cache of the journal's store: what a store that keeps the assets
//! (etcd, shared by a team) is told of each file, so that the file travels with the journal
//! record of the step that wrote it.

use std::path::Path;

/// Told of every file written or removed through an [`super::AssetDir`] that has one. A write
/// is reported before it reaches the disk, so that the record of the step that wrote it (which
/// the step appends after) never goes to the store without it; the sink decides, by the
/// file's digest, whether the store already has it.
pub trait AssetSink: Send + Sync {
    /// `rel` (relative to the asset directory) now holds `contents`. An error fails the write.
    fn written(&self, rel: &Path, contents: &[u8]) -> Result<(), String>;

    /// `rel` is being removed.
    fn removed(&self, rel: &Path) -> Result<(), String>;
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::assets::{AssetDir, Sensitivity};

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

    /// A sink that refuses fails the write, before the file reaches the disk.
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
        assert!(!dir.path("a").exists());
    }
}
