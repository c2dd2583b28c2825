//! Identity files: what loads, what is refused, and where `discover` looks.

use std::ffi::OsStr;

use vault::{Identities, Recipients, VaultError, open, seal};

use crate::keys::{age_key, ssh_key};

#[test]
fn an_encrypted_ssh_key_is_refused_saying_what_to_use_instead() {
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = ssh_key(dir.path(), "id_ed25519", "ed25519", "a passphrase");

    let err = Identities::load(std::slice::from_ref(&key)).unwrap_err();

    assert!(matches!(err, VaultError::EncryptedSshKey { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(key.to_str().unwrap()), "{message}");
    assert!(message.contains("age identity"), "{message}");
    assert!(message.contains("unencrypted key file"), "{message}");
}

#[test]
fn a_file_of_something_else_is_refused_without_quoting_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("identity.txt");
    for (text, why) in [
        (
            "AGE-SECRET-KEY-1QQQQbrokenSECRETtail\n",
            "a broken age identity",
        ),
        ("# only a comment\n", "no identity"),
        ("", "an empty file"),
    ] {
        std::fs::write(&path, text).unwrap();
        let err = Identities::load(std::slice::from_ref(&path)).unwrap_err();
        assert!(
            matches!(err, VaultError::InvalidIdentity { .. }),
            "{why}: {err:?}"
        );
        assert!(
            !format!("{err} {err:?}").contains("SECRETtail"),
            "{why}: {err}"
        );
    }
    let missing = dir.path().join("missing.txt");
    let err = Identities::load(std::slice::from_ref(&missing)).unwrap_err();
    assert!(matches!(err, VaultError::ReadIdentity { .. }), "{err:?}");
    assert!(err.to_string().contains("missing.txt"), "{err}");
}

#[test]
fn loko_identity_names_one_file_or_several() {
    let dir = tempfile::tempdir().unwrap();
    let (first, first_pub) = age_key(dir.path(), "first.txt");
    let (second, second_pub) = ssh_key(dir.path(), "id_ed25519", "ed25519", "");
    let home = tempfile::tempdir().unwrap();
    let both = format!("{}:{}", first.display(), second.display());

    let found = Identities::discover_from(Some(OsStr::new(&both)), Some(home.path())).unwrap();

    assert_eq!(found.paths(), [first.clone(), second]);
    let sealed = seal(&Recipients::parse(&[second_pub]).unwrap(), b"x").unwrap();
    assert_eq!(&open(&found, &sealed).unwrap()[..], b"x");

    let one = Identities::discover_from(Some(first.as_os_str()), Some(home.path())).unwrap();
    let sealed = seal(&Recipients::parse(&[first_pub]).unwrap(), b"y").unwrap();
    assert_eq!(&open(&one, &sealed).unwrap()[..], b"y");
}

#[test]
fn without_loko_identity_the_age_file_comes_before_the_ssh_keys() {
    let home = tempfile::tempdir().unwrap();
    let ssh = home.path().join(".ssh");
    let config = home.path().join(".config/loko");
    std::fs::create_dir_all(&ssh).unwrap();
    std::fs::create_dir_all(&config).unwrap();
    ssh_key(&ssh, "id_ed25519", "ed25519", "");

    let found = Identities::discover_from(None, Some(home.path())).unwrap();
    assert_eq!(found.paths(), [ssh.join("id_ed25519")]);

    ssh_key(&ssh, "id_rsa", "rsa", "");
    let found = Identities::discover_from(Some(OsStr::new("")), Some(home.path())).unwrap();
    assert_eq!(found.paths(), [ssh.join("id_ed25519"), ssh.join("id_rsa")]);

    age_key(&config, "identity.txt");
    let found = Identities::discover_from(None, Some(home.path())).unwrap();
    assert_eq!(found.paths(), [config.join("identity.txt")]);
}

#[test]
fn a_passphrase_protected_ssh_key_is_passed_over_when_another_loads() {
    let home = tempfile::tempdir().unwrap();
    let ssh = home.path().join(".ssh");
    std::fs::create_dir_all(&ssh).unwrap();
    ssh_key(&ssh, "id_ed25519", "ed25519", "a passphrase");

    let err = Identities::discover_from(None, Some(home.path())).unwrap_err();
    assert!(matches!(err, VaultError::EncryptedSshKey { .. }), "{err:?}");

    ssh_key(&ssh, "id_rsa", "rsa", "");
    let found = Identities::discover_from(None, Some(home.path())).unwrap();
    assert_eq!(found.paths(), [ssh.join("id_rsa")]);
}

#[test]
fn no_identity_anywhere_names_every_place_looked_at() {
    let home = tempfile::tempdir().unwrap();
    let err = Identities::discover_from(None, Some(home.path())).unwrap_err();
    assert!(matches!(err, VaultError::NoIdentity { .. }), "{err:?}");
    let message = err.to_string();
    for place in [
        "$LOKO_IDENTITY".to_owned(),
        home.path()
            .join(".config/loko/identity.txt")
            .display()
            .to_string(),
        home.path().join(".ssh/id_ed25519").display().to_string(),
        home.path().join(".ssh/id_rsa").display().to_string(),
    ] {
        assert!(message.contains(&place), "{place} missing from: {message}");
    }
}
