//! Keys made by the real programs, in a test's directory.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs a program, panicking with its stderr when it fails.
pub fn run(program: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} (Debian package for it missing?): {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// An age identity file from `age-keygen`, and its recipient (`age1...`).
pub fn age_key(dir: &Path, name: &str) -> (PathBuf, String) {
    let path = dir.join(name);
    run("age-keygen", &["-o", path.to_str().unwrap()]);
    let recipient = String::from_utf8(run("age-keygen", &["-y", path.to_str().unwrap()])).unwrap();
    (path, recipient.trim().to_owned())
}

/// An OpenSSH key pair from `ssh-keygen -t KIND -N PASSPHRASE`: the private key's path and the
/// public key's line (with its comment).
pub fn ssh_key(dir: &Path, name: &str, kind: &str, passphrase: &str) -> (PathBuf, String) {
    let path = dir.join(name);
    let mut args = vec!["-q", "-t", kind, "-N", passphrase, "-C", "op@laptop", "-f"];
    args.push(path.to_str().unwrap());
    if kind == "rsa" {
        args.extend(["-b", "2048"]);
    }
    run("ssh-keygen", &args);
    let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
    (path, public.trim().to_owned())
}
