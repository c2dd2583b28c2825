//! The spec's recipients: what parses, what is refused and how, the fingerprint.

use vault::{Recipients, VaultError};

use crate::keys::{age_key, ssh_key};

#[test]
fn comments_order_and_duplicates_do_not_change_the_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let (_, age) = age_key(dir.path(), "a.txt");
    let (_, ssh) = ssh_key(dir.path(), "id_ed25519", "ed25519", "");
    let bare_ssh = ssh.rsplit_once(' ').unwrap().0.to_owned();

    let one = Recipients::parse(&[age.clone(), ssh.clone()]).unwrap();
    let same = Recipients::parse(&[bare_ssh.clone(), age.clone(), format!("  {ssh}  ")]).unwrap();

    assert_eq!(one.len(), 2);
    assert_eq!(same.len(), 2, "a duplicate counts once");
    assert_eq!(one.fingerprint(), same.fingerprint());
    assert_eq!(
        one.iter().collect::<Vec<_>>(),
        [age.as_str(), bare_ssh.as_str()],
        "comment dropped"
    );

    let (_, other) = age_key(dir.path(), "b.txt");
    let more = Recipients::parse(&[age, ssh, other]).unwrap();
    assert_ne!(
        one.fingerprint(),
        more.fingerprint(),
        "a new recipient must show"
    );
}

#[test]
fn an_unparsable_entry_is_named_by_index_and_first_20_characters() {
    let dir = tempfile::tempdir().unwrap();
    let (_, age) = age_key(dir.path(), "a.txt");
    let cases = [
        "age1notavalidrecipientatallreally",
        "ssh-ed25519 AAAAnotbase64!!",
        "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTY=",
        "alice@example.com",
    ];
    for bad in cases {
        let err = Recipients::parse(&[age.clone(), bad.to_owned()]).unwrap_err();
        let VaultError::InvalidRecipient { index, start, .. } = &err else {
            panic!("{bad}: {err:?}");
        };
        assert_eq!(*index, 1, "{bad}");
        assert_eq!(start, &bad.chars().take(20).collect::<String>());
        let message = err.to_string();
        assert!(message.starts_with("recipient 1 "), "{message}");
        if bad.len() > 20 {
            assert!(
                !message.contains(bad),
                "quotes more than 20 characters: {message}"
            );
        }
    }
}

#[test]
fn an_ecdsa_key_is_refused_as_a_type_age_does_not_take() {
    let dir = tempfile::tempdir().unwrap();
    let (_, ecdsa) = ssh_key(dir.path(), "id_ecdsa", "ecdsa", "");
    let err = Recipients::parse(&[ecdsa]).unwrap_err().to_string();
    assert!(err.contains("ssh-ed25519 and ssh-rsa"), "{err}");
}

#[test]
fn a_private_key_given_as_a_recipient_is_not_quoted() {
    let dir = tempfile::tempdir().unwrap();
    let (identity, _) = age_key(dir.path(), "a.txt");
    let secret_line = std::fs::read_to_string(&identity)
        .unwrap()
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
        .unwrap()
        .to_owned();
    for pasted in [
        secret_line.clone(),
        "-----BEGIN OPENSSH PRIVATE KEY----- b3BlbnNzaC1rZXk".to_owned(),
    ] {
        let err = Recipients::parse(std::slice::from_ref(&pasted)).unwrap_err();
        let message = format!("{err} {err:?}");
        assert!(!message.contains(&pasted[..16]), "{message}");
        assert!(message.contains("private key"), "{message}");
    }
}

#[test]
fn an_empty_list_is_refused() {
    assert!(matches!(
        Recipients::parse(&[]),
        Err(VaultError::NoRecipients)
    ));
}
