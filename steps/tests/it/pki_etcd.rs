//! The etcd certificates work in a real etcd: a 3-member cluster on 127.0.0.1 with client and
//! peer certificate authentication, as the controllers run it, accepts etcdctl with the etcd
//! client certificate and refuses a client certificate of another PKI.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use crate::pki_support::{Pki, full_cluster, output, text};
use loko_tests::{Killed, free_port, wait_for_port};

/// One etcd member, killed with the test.
struct Member {
    _child: Killed,
    client_port: u16,
}

fn start_cluster(pki: &Pki, work: &Path) -> Vec<Member> {
    let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
    let initial_cluster = ports
        .iter()
        .enumerate()
        .map(|(i, (_, peer))| format!("etcd{i}=https://127.0.0.1:{peer}"))
        .collect::<Vec<_>>()
        .join(",");
    let tls = |rel: &str| pki.path(rel).display().to_string();
    ports
        .iter()
        .enumerate()
        .map(|(i, (client, peer))| {
            let log = std::fs::File::create(work.join(format!("etcd{i}.log"))).expect("log file");
            let child = Command::new("etcd")
                .args(["--name", &format!("etcd{i}")])
                .arg("--data-dir")
                .arg(work.join(format!("etcd{i}")))
                .args([
                    "--listen-client-urls",
                    &format!("https://127.0.0.1:{client}"),
                ])
                .args([
                    "--advertise-client-urls",
                    &format!("https://127.0.0.1:{client}"),
                ])
                .args(["--listen-peer-urls", &format!("https://127.0.0.1:{peer}")])
                .args([
                    "--initial-advertise-peer-urls",
                    &format!("https://127.0.0.1:{peer}"),
                ])
                .args(["--initial-cluster", &initial_cluster])
                .args(["--initial-cluster-state", "new"])
                .args(["--initial-cluster-token", "loko-pki-test"])
                .args(["--cert-file", &tls("tls/etcd/server.crt")])
                .args(["--key-file", &tls("tls/etcd/server.key")])
                .args(["--trusted-ca-file", &tls("tls/etcd/server-ca.crt")])
                .arg("--client-cert-auth")
                .args(["--peer-cert-file", &tls("tls/etcd/peer.crt")])
                .args(["--peer-key-file", &tls("tls/etcd/peer.key")])
                .args(["--peer-trusted-ca-file", &tls("tls/etcd/peer-ca.crt")])
                .arg("--peer-client-cert-auth")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("etcd: {e}; scripts/test installs it (the etcd-server package)")
                });
            Member {
                _child: Killed(child),
                client_port: *client,
            }
        })
        .collect()
}

/// etcdctl (v3 API) against `endpoints` with a CA file, a client certificate and its key.
fn etcdctl(
    endpoints: &str,
    cacert: &Path,
    cert: &Path,
    key: &Path,
    args: &[&str],
) -> std::process::Output {
    output(
        Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            // Refusals surface as timeouts in etcdctl: keep them short.
            .args([
                "--endpoints",
                endpoints,
                "--dial-timeout=2s",
                "--command-timeout=2s",
            ])
            .arg("--cacert")
            .arg(cacert)
            .arg("--cert")
            .arg(cert)
            .arg("--key")
            .arg(key)
            .args(args),
    )
}

fn log(work: &Path, member: usize) -> String {
    std::fs::read_to_string(work.join(format!("etcd{member}.log"))).unwrap_or_default()
}

fn logs(work: &Path) -> String {
    (0..3)
        .map(|i| {
            let log = log(work, i);
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            format!(
                "--- etcd{i} ---\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_three_member_etcd_runs_on_the_certificates_and_refuses_strangers() {
    let pki = Pki::issue(&full_cluster(), SystemTime::now());
    let stranger = Pki::issue(&full_cluster(), SystemTime::now());
    let work = tempfile::tempdir().expect("tempdir");
    let members = start_cluster(&pki, work.path());
    for member in &members {
        wait_for_port("127.0.0.1", member.client_port, Duration::from_secs(30));
    }
    let endpoints = members
        .iter()
        .map(|m| format!("https://127.0.0.1:{}", m.client_port))
        .collect::<Vec<_>>()
        .join(",");
    let ca = pki.path("tls/etcd-client-ca.crt");
    let (cert, key) = (
        pki.path("tls/etcd-client.crt"),
        pki.path("tls/etcd-client.key"),
    );

    // Healthy only once the members have talked to each other over peer TLS.
    let start = Instant::now();
    loop {
        let out = etcdctl(&endpoints, &ca, &cert, &key, &["endpoint", "health"]);
        if out.status.success() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "etcd is not healthy: {}\n{}",
            text(&out),
            logs(work.path())
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let out = etcdctl(&endpoints, &ca, &cert, &key, &["member", "list"]);
    assert_eq!(
        text(&out).lines().filter(|l| l.contains("started")).count(),
        3,
        "{}",
        text(&out)
    );

    let out = etcdctl(&endpoints, &ca, &cert, &key, &["put", "/loko/pki", "works"]);
    assert!(out.status.success(), "put: {}", text(&out));
    let out = etcdctl(
        &endpoints,
        &ca,
        &cert,
        &key,
        &["get", "/loko/pki", "--print-value-only"],
    );
    assert!(out.status.success(), "get: {}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "works");

    // A client certificate of another PKI (trusting our CA for the server) is refused, by the
    // server's TLS (etcdctl itself only reports a timeout).
    let first = endpoints.split(',').next().unwrap_or_default();
    let out = etcdctl(
        first,
        &ca,
        &stranger.path("tls/etcd-client.crt"),
        &stranger.path("tls/etcd-client.key"),
        &["get", "/loko/pki"],
    );
    assert!(
        !out.status.success(),
        "a stranger's certificate was accepted: {}",
        text(&out)
    );
    let rejected = "certificate signed by unknown authority";
    let start = Instant::now();
    while !log(work.path(), 0).contains(rejected) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "etcd0 did not log a rejected client certificate:\n{}",
            logs(work.path())
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // And a client that trusts another CA refuses our servers.
    let out = etcdctl(
        first,
        &stranger.path("tls/etcd-client-ca.crt"),
        &cert,
        &key,
        &["get", "/loko/pki"],
    );
    assert!(
        !out.status.success(),
        "a server of another CA was trusted: {}",
        text(&out)
    );
    // The apiserver's certificate, from the Kubernetes CA, is no etcd client either.
    let out = etcdctl(
        first,
        &ca,
        &pki.path("tls/apiserver.crt"),
        &pki.path("tls/apiserver.key"),
        &["get", "/loko/pki"],
    );
    assert!(
        !out.status.success(),
        "the apiserver certificate was accepted: {}",
        text(&out)
    );
}
