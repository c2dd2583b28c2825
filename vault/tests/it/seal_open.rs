//! Round trips with both kinds of recipient, a non-recipient's refusal, damaged input.

use vault::{Identities, Recipients, VaultError, is_sealed, open, seal};

use crate::keys::{age_key, ssh_key};

const SECRET: &[u8] = b"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI the CA key\n";

#[test]
fn sealed_to_an_age_recipient_and_an_ssh_key_each_opens_it() {
    let dir = tempfile::tempdir().unwrap();
    let (age_identity, age_recipient) = age_key(dir.path(), "identity.txt");
    let (ed25519, ed25519_pub) = ssh_key(dir.path(), "id_ed25519", "ed25519", "");
    let (rsa, rsa_pub) = ssh_key(dir.path(), "id_rsa", "rsa", "");
    let team = Recipients::parse(&[age_recipient, ed25519_pub, rsa_pub]).unwrap();

    let sealed = seal(&team, SECRET).unwrap();

    assert!(is_sealed(&sealed));
    assert!(
        !sealed.windows(11).any(|w| w == b"PRIVATE KEY"),
        "plaintext in the sealed file"
    );
    for identity in [age_identity, ed25519, rsa] {
        let mine = Identities::load(std::slice::from_ref(&identity)).unwrap();
        let opened = open(&mine, &sealed).unwrap_or_else(|e| panic!("{}: {e}", identity.display()));
        assert_eq!(&opened[..], SECRET, "{}", identity.display());
    }
}

#[test]
fn a_large_secret_round_trips() {
    // Past age's 64 KiB chunk, so the payload's chunking is exercised.
    let dir = tempfile::tempdir().unwrap();
    let (identity, recipient) = age_key(dir.path(), "identity.txt");
    let plaintext: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let sealed = seal(&Recipients::parse(&[recipient]).unwrap(), &plaintext).unwrap();
    let opened = open(&Identities::load(&[identity]).unwrap(), &sealed).unwrap();
    assert_eq!(&opened[..], &plaintext[..]);
}

#[test]
fn a_file_sealed_to_others_is_refused_naming_the_identities_tried() {
    let dir = tempfile::tempdir().unwrap();
    let (_, theirs) = age_key(dir.path(), "theirs.txt");
    let (mine, _) = age_key(dir.path(), "mine.txt");
    let (my_ssh, _) = ssh_key(dir.path(), "id_ed25519", "ed25519", "");
    let sealed = seal(&Recipients::parse(&[theirs]).unwrap(), SECRET).unwrap();

    let identities = Identities::load(&[mine.clone(), my_ssh.clone()]).unwrap();
    let err = open(&identities, &sealed).unwrap_err();

    assert!(matches!(err, VaultError::NotARecipient { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(mine.to_str().unwrap()), "{message}");
    assert!(message.contains(my_ssh.to_str().unwrap()), "{message}");
    assert!(
        message.contains("add your public key to the spec's `recipients`"),
        "{message}"
    );
    assert!(message.contains("run loko again"), "{message}");
    assert!(!message.contains("AGE-SECRET-KEY"), "{message}");
}

#[test]
fn damaged_input_is_damaged_not_a_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let (identity, recipient) = age_key(dir.path(), "identity.txt");
    let mine = Identities::load(&[identity]).unwrap();
    let sealed = seal(&Recipients::parse(&[recipient]).unwrap(), SECRET).unwrap();

    let mut payload_flipped = sealed.clone();
    *payload_flipped.last_mut().unwrap() ^= 1;
    let mut header_flipped = sealed.clone();
    // The header's MAC. (A damaged recipient stanza cannot be told from one sealed to someone
    // else: age tries each identity on it, and none fits.)
    let mac = sealed.windows(5).position(|w| w == b"\n--- ").unwrap() + 5;
    header_flipped[mac] = if sealed[mac] == b'A' { b'B' } else { b'A' };
    let truncated = sealed[..sealed.len() - 5].to_vec();
    let not_age = b"-----BEGIN PRIVATE KEY-----\n".to_vec();

    for (what, bytes) in [
        ("a flipped payload bit", payload_flipped),
        ("a flipped header bit", header_flipped),
        ("a truncated file", truncated),
        ("a plaintext file", not_age),
        ("an empty file", Vec::new()),
    ] {
        match open(&mine, &bytes) {
            Err(VaultError::Damaged { .. }) => {}
            other => panic!("{what}: expected Damaged, got {other:?}"),
        }
    }
}

#[test]
fn is_sealed_tells_age_files_from_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let (_, recipient) = age_key(dir.path(), "identity.txt");
    let sealed = seal(&Recipients::parse(&[recipient]).unwrap(), b"").unwrap();
    assert!(is_sealed(&sealed));
    assert!(!is_sealed(SECRET));
    assert!(!is_sealed(b""));
    assert!(
        !is_sealed(b"age-encryption.org/v1"),
        "a header line must end"
    );
}
