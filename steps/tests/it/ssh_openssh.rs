//! loko's SSH client against the real OpenSSH server and ssh-agent (peers nobody here wrote).
//! One test function, because the agent is found through the process-wide `SSH_AUTH_SOCK`.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use loko_tests::{SshAgent, Sshd, current_user, free_port, run, ssh_keygen};
use steps::ssh::{Ssh, SshError, SshTarget, fingerprint, public_key_blob, tar_archive};

#[test]
fn commands_run_with_agent_keys_and_pinned_host_keys() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let host_pub = ssh_keygen(&d.join("host"));
    let user_pub = ssh_keygen(&d.join("user"));
    let other_host_pub = ssh_keygen(&d.join("other-host"));
    ssh_keygen(&d.join("stranger"));
    std::fs::write(d.join("authorized_keys"), format!("{user_pub}\n")).unwrap();

    // The fingerprint loko prints is the one OpenSSH prints.
    let keygen_fp = run(Command::new("ssh-keygen")
        .args(["-l", "-E", "sha256", "-f"])
        .arg(d.join("host.pub")));
    assert!(
        keygen_fp.contains(&fingerprint(&public_key_blob(&host_pub).unwrap())),
        "{keygen_fp}"
    );

    let sshd = Sshd::start(d, &d.join("host"), &d.join("authorized_keys"));
    let port = sshd.port;
    let agent = SshAgent::start(d);
    // SAFETY: this test is the only code of this process reading the environment now.
    unsafe { std::env::set_var("SSH_AUTH_SOCK", &agent.socket) };

    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let target = SshTarget {
        node: "supernova-controller-0".into(),
        addr,
        user: current_user(),
        host_key: host_pub.clone(),
    };
    let ssh = Ssh {
        connect_timeout: Duration::from_secs(10),
        io_timeout: Duration::from_secs(60),
        agent: None,
        ..Ssh::default()
    };

    // An agent without the user's key: rejected, not retried.
    let err = ssh.run_blocking(&target, "true", b"").unwrap_err();
    assert!(
        matches!(err, SshError::AuthRejected { tried: 0, .. }),
        "{err}"
    );
    assert!(!err.is_retryable());
    agent.add(&d.join("stranger"));
    let err = ssh.run_blocking(&target, "true", b"").unwrap_err();
    assert!(
        matches!(err, SshError::AuthRejected { tried: 1, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("ssh-add"), "{err}");

    agent.add(&d.join("user"));
    let out = ssh
        .run_blocking(&target, "echo hi; echo oops >&2; exit 3", b"")
        .unwrap();
    assert_eq!(
        (out.status, out.stdout.as_str(), out.stderr.as_str()),
        (3, "hi\n", "oops\n")
    );

    // Files travel as a tar stream on stdin.
    let dest = d.join("unpacked");
    let archive = tar_archive(&[("tls/etcd-client.key".into(), b"k".to_vec(), 0o600)]).unwrap();
    let out = ssh
        .run_blocking(
            &target,
            &format!("mkdir -p {0} && tar -x -C {0}", dest.display()),
            &archive,
        )
        .unwrap();
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert_eq!(
        std::fs::read(dest.join("tls/etcd-client.key")).unwrap(),
        b"k"
    );

    // Another host key than the pinned one: refused, never retried.
    let wrong = SshTarget {
        host_key: other_host_pub,
        ..target.clone()
    };
    let err = ssh.run_blocking(&wrong, "true", b"").unwrap_err();
    assert!(matches!(err, SshError::HostKeyMismatch { .. }), "{err}");
    assert!(!err.is_retryable());
    assert!(
        err.to_string()
            .contains(&fingerprint(&public_key_blob(&host_pub).unwrap())),
        "{err}"
    );

    // Nobody listening: retryable.
    let closed = SshTarget {
        addr: format!("127.0.0.1:{}", free_port()).parse().unwrap(),
        ..target.clone()
    };
    let err = ssh.run_blocking(&closed, "true", b"").unwrap_err();
    assert!(
        matches!(err, SshError::Unreachable { .. }) && err.is_retryable(),
        "{err}"
    );

    // No agent at all.
    unsafe { std::env::remove_var("SSH_AUTH_SOCK") };
    let err = ssh.run_blocking(&target, "true", b"").unwrap_err();
    assert!(matches!(err, SshError::NoAgent { .. }), "{err}");
    assert!(err.to_string().contains("ssh-agent"), "{err}");

    // An agent named explicitly (the demo's own) needs no SSH_AUTH_SOCK.
    let explicit = Ssh {
        agent: Some(agent.socket.clone()),
        ..ssh.clone()
    };
    let out = explicit
        .run_blocking(&target, "echo explicit", b"")
        .unwrap();
    assert_eq!(out.stdout.trim(), "explicit");
    assert_eq!(
        steps::ssh::agent_keys(Some(&agent.socket)).unwrap().len(),
        2
    );
}
