//! Running the built `loko` as a user does: the one way the tests start it (without the
//! caller's `RUST_LOG` and `LOKO_JOURNAL`), read what it printed, and copy an example to run.

use std::io::Read as _;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use loko_tests::Killed;

/// The binary under test.
pub(crate) const LOKO: &str = env!("CARGO_BIN_EXE_loko");

/// `loko ARGS`, as a command with none of the caller's settings that loko reads.
fn command(args: &[&str]) -> Command {
    let mut command = Command::new(LOKO);
    command
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("LOKO_JOURNAL");
    command
}

/// `loko ARGS` without any of the BMC credentials of the caller's environment either: a rack's
/// command that reads them only where the test sets them.
pub(crate) fn without_bmc(args: &[&str]) -> Command {
    let mut command = command(args);
    command
        .env_remove("LOKO_BMC_USERNAME")
        .env_remove("LOKO_BMC_PASSWORD")
        .env_remove("LOKO_BMC_CREDENTIALS_FILE");
    command
}

/// Runs `loko ARGS` to its end.
pub(crate) fn loko(args: &[&str]) -> Output {
    command(args).output().expect("run loko")
}

/// Runs `loko ARGS` and panics with its output unless it exits `code`; its stdout and stderr.
pub(crate) fn loko_expect(args: &[&str], code: i32) -> (String, String) {
    let out = loko(args);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(code),
        "loko {args:?}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    (stdout, stderr)
}

/// Starts `loko ARGS` in the background with its stdout and stderr piped; killed when dropped.
pub(crate) fn spawn(args: &[&str]) -> Killed {
    Killed(
        command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start loko"),
    )
}

/// Waits for a spawned loko and returns its exit code, stdout and stderr.
pub(crate) fn finish(mut child: Killed) -> (Option<i32>, String, String) {
    let mut stderr = child.0.stderr.take().unwrap();
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let mut out = String::new();
    let _ = child.0.stdout.take().unwrap().read_to_string(&mut out);
    let status = child.0.wait().unwrap();
    (status.code(), out, errors.join().unwrap())
}

/// [`finish`] for a loko that may not end by itself (a follower): killed after `within`.
pub(crate) fn finish_within(child: Killed, within: Duration) -> (Option<i32>, String, String) {
    let pid = child.0.id();
    // Killing a process that already exited (and was not yet waited for) is harmless.
    std::thread::spawn(move || {
        std::thread::sleep(within);
        let _ = Command::new("kill").arg(pid.to_string()).status();
    });
    finish(child)
}

/// Output as text (lossily: a test wants to see what was printed, whatever it was).
pub(crate) fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

/// The tutorial in a temporary directory: (the directory, the spec's path, the state dir).
pub(crate) fn tutorial() -> (tempfile::TempDir, String, std::path::PathBuf) {
    let (dir, spec) = loko_tests::example_copy("tutorial.yaml");
    let state = dir.path().join("assets/supernova/.loko");
    (dir, spec.to_str().unwrap().to_owned(), state)
}
