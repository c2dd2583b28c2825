//! The real `age` program (Debian's `age` package) opens what `seal` wrote, and `open` reads
//! what `age -r`/`age -R` encrypted: the format is age's, not a private one.

use std::path::Path;

use vault::{Identities, Recipients, open, seal};

use crate::keys::{age_key, run, ssh_key};

const SECRET: &[u8] = b"-----BEGIN RSA PRIVATE KEY-----\nthe service-account key\n";

fn age_decrypts(identity: &Path, sealed: &[u8], dir: &Path) -> Vec<u8> {
    let input = dir.join("sealed.age");
    std::fs::write(&input, sealed).unwrap();
    run(
        "age",
        &[
            "--decrypt",
            "-i",
            identity.to_str().unwrap(),
            input.to_str().unwrap(),
        ],
    )
}

#[test]
fn age_decrypts_what_seal_wrote_with_either_kind_of_identity() {
    let dir = tempfile::tempdir().unwrap();
    let (age_identity, age_recipient) = age_key(dir.path(), "identity.txt");
    let (ssh_identity, ssh_recipient) = ssh_key(dir.path(), "id_ed25519", "ed25519", "");
    let (rsa_identity, rsa_recipient) = ssh_key(dir.path(), "id_rsa", "rsa", "");
    let team = Recipients::parse(&[age_recipient, ssh_recipient, rsa_recipient]).unwrap();

    let sealed = seal(&team, SECRET).unwrap();

    for identity in [age_identity, ssh_identity, rsa_identity] {
        assert_eq!(
            age_decrypts(&identity, &sealed, dir.path()),
            SECRET,
            "{}",
            identity.display()
        );
    }
}

#[test]
fn open_reads_what_age_encrypted_with_r_and_with_a_recipients_file() {
    let dir = tempfile::tempdir().unwrap();
    let (age_identity, age_recipient) = age_key(dir.path(), "identity.txt");
    let (ssh_identity, ssh_recipient) = ssh_key(dir.path(), "id_ed25519", "ed25519", "");
    let plain = dir.path().join("plain");
    std::fs::write(&plain, SECRET).unwrap();

    let by_r = run("age", &["-r", &age_recipient, plain.to_str().unwrap()]);
    let mine = Identities::load(&[age_identity]).unwrap();
    assert_eq!(&open(&mine, &by_r).unwrap()[..], SECRET);

    let recipients_file = dir.path().join("recipients.txt");
    std::fs::write(&recipients_file, format!("# the team\n{ssh_recipient}\n")).unwrap();
    let by_big_r = run(
        "age",
        &[
            "-R",
            recipients_file.to_str().unwrap(),
            plain.to_str().unwrap(),
        ],
    );
    let mine = Identities::load(&[ssh_identity]).unwrap();
    assert_eq!(&open(&mine, &by_big_r).unwrap()[..], SECRET);
}
