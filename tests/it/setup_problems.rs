//! Setup mistakes a new user makes against a running simulator (issue 31): each is said once,
//! with its fix, and ends the command with exit 2 instead of retrying for minutes.

use std::io::Read as _;
use std::process::Stdio;
use std::time::{Duration, Instant};

use loko_tests::world::{World, pool};
use loko_tests::{Killed, free_port};

const LOKO: &str = env!("CARGO_BIN_EXE_loko");

/// `loko run` told a port nothing listens on (the README's run without `--ssh-port 2222`):
/// every node refuses, and the run stops on it within the refusal limit's floor (10 s) and a
/// retry interval, where it used to retry for 30 minutes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_ssh_port_on_every_node_stops_the_run_with_the_fix() {
    let mut w = World::quick(LOKO).await;
    let port = free_port();
    w.set_ssh_port(port);
    let spec = w.spec(&pool("helium", 1, "t1.small.x86"));
    let started = Instant::now();
    let mut child = Killed(
        w.command(&["run", spec.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "loko run still retrying port {port} after 90 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut stderr = String::new();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("no node accepts SSH on port {port}")),
        "{stderr}"
    );
    assert_eq!(stderr.matches("hint:").count(), 1, "{stderr}");
    assert!(stderr.contains("--ssh-port"), "{stderr}");
}

/// `packet_api_url` without `/metal/v1` reaches a server that is not the Packet API: the
/// preflight says what it answered and asks about the prefix, rather than "no such project for
/// this token".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_packet_api_url_without_its_prefix_is_named_as_such() {
    let w = World::quick(LOKO).await;
    let spec = w.spec(&pool("helium", 1, "t1.small.x86"));
    let url = w.sim.packet_url();
    let bare = url.trim_end_matches('/').trim_end_matches("/metal/v1");
    assert_ne!(bare, url, "the simulator's URL ends in /metal/v1");
    let text = std::fs::read_to_string(&spec).unwrap();
    std::fs::write(&spec, text.replace(&url, bare)).unwrap();
    let out = w.loko(&["run", spec.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("{bare} answered 404 with no Packet error")),
        "{stderr}"
    );
    assert!(stderr.contains("end in /metal/v1"), "{stderr}");
    assert!(!stderr.contains("no such project"), "{stderr}");
    assert!(w.devices().ever.is_empty(), "nothing may be created");
}
