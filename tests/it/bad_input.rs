//! Bad input and security, end to end: each bad input is one clear error with the documented
//! exit code and no API call that changes anything; after a run, no secret in the journal,
//! the output or the logs, private keys 0600 and asset directories 0700.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use loko_tests::world::{World, assert_no_secret, pool, stderr, stdout};

const LOKO: &str = env!("CARGO_BIN_EXE_loko");

async fn world() -> World {
    World::quick(LOKO).await
}

/// Calls that change the cloud: creating, updating or deleting devices, writing DNS.
fn changing_calls(w: &World) -> u64 {
    let requests = w.sim.state().requests;
    [
        "packet.devices.create",
        "packet.devices.update",
        "packet.devices.delete",
        "route53.ChangeResourceRecordSets",
    ]
    .iter()
    .map(|op| requests.get(*op).copied().unwrap_or(0))
    .sum()
}

/// Runs `loko run SPEC`, which must exit 2 (refused before any step); its stderr.
fn run_exits_2(w: &World, spec: &Path) -> String {
    let out = w
        .command(&["run", spec.to_str().unwrap()])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    err
}

/// Runs `loko run` prepared by `adjust` and expects `code` with `words` in the error.
fn refused(
    w: &World,
    spec: &Path,
    code: i32,
    words: &str,
    adjust: impl FnOnce(&mut std::process::Command),
) {
    let before = changing_calls(w);
    let mut command = w.command(&["run", spec.to_str().unwrap()]);
    adjust(&mut command);
    let out = command.output().unwrap();
    let err = stderr(&out);
    eprintln!("{err}");
    assert_eq!(out.status.code(), Some(code), "{err}");
    assert!(
        err.contains(words),
        "the error does not say {words:?}: {err}"
    );
    assert!(err.contains("hint:") || code == 1, "no hint: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(changing_calls(w), before, "an API call changed something");
    assert_no_secret("stderr", &err, w.sim.token());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_are_refused_before_anything_changes() {
    let w = world().await;
    let spec = w.spec(&pool("helium", 1, "t1.small.x86"));

    refused(&w, &spec, 2, "PACKET_AUTH_TOKEN", |c| {
        c.env_remove("PACKET_AUTH_TOKEN")
            .env_remove("METAL_AUTH_TOKEN");
    });
    refused(&w, &spec, 2, "ssh-agent", |c| {
        c.env_remove("SSH_AUTH_SOCK");
    });
    // An agent that holds a key, but not one of ssh_keys.
    let stranger = w.root.join("stranger");
    loko_tests::ssh_keygen(&stranger);
    std::fs::create_dir_all(w.root.join("other-agent")).unwrap();
    let other = loko_tests::SshAgent::start(&w.root.join("other-agent"));
    other.add(&stranger);
    refused(&w, &spec, 2, "ssh_keys", |c| {
        c.env("SSH_AUTH_SOCK", &other.socket);
    });

    // A spec with an error: its field, line and column.
    let text = std::fs::read_to_string(&spec).unwrap();
    std::fs::write(
        &spec,
        text.replace("controller_count: 1", "controller_count: 0"),
    )
    .unwrap();
    refused(&w, &spec, 2, "controller_count", |_| {});

    // An asset_dir that cannot be a directory (a file is in the way).
    std::fs::write(w.root.join("blocked"), b"a file").unwrap();
    std::fs::write(
        &spec,
        text.replace("asset_dir: ./assets", "asset_dir: ./blocked/assets"),
    )
    .unwrap();
    refused(&w, &spec, 2, "blocked", |_| {});
    std::fs::write(&spec, text).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_journal_record_stops_the_next_run_naming_it() {
    let w = world().await;
    let spec = w.spec(&pool("helium", 1, "t1.small.x86"));
    assert!(w.loko(&["run", spec.to_str().unwrap()]).status.success());
    {
        let journal = journal::Journal::open(&w.state_dir().join("journal")).unwrap();
        journal
            .damage_record_for_tests(journal::RunId(1), journal::Seq(3), b"{not json")
            .unwrap();
    }
    let text = std::fs::read_to_string(&spec).unwrap();
    std::fs::write(&spec, text.replace("count: 1", "count: 2")).unwrap();
    let before = changing_calls(&w);
    let out = w.loko(&["run", spec.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("run 1") && err.contains('3'), "{err}");
    assert_eq!(changing_calls(&w), before);
}

/// A device someone made with a node's tags, which loko adopted (and then found answering with
/// another host key than the one loko put into its Ignition), is refused before any change:
/// the journal neither recorded it nor set out to create it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_with_the_cluster_s_tags_that_loko_did_not_make_is_refused() {
    let w = world().await;
    let spec = w.spec(&pool("helium", 1, "t1.small.x86"));
    let client = steps::packet::PacketClient::new(
        &w.sim.packet_url(),
        loko_tests::world::PROJECT,
        &steps::packet::Token::new(w.sim.token(), &journal::Redactor::new()),
        &steps::packet::Timeouts::default(),
    )
    .unwrap();
    let impostor = steps::packet::CreateDevice {
        hostname: "supernova-controller-0".into(),
        plan: "t1.small.x86".into(),
        facility: Some(vec!["ams1".into()]),
        metro: None,
        operating_system: "flatcar_stable".into(),
        ipxe_script_url: None,
        always_pxe: false,
        billing_cycle: "hourly".into(),
        tags: vec![
            "loko:cluster=supernova".into(),
            "loko:node=supernova-controller-0".into(),
        ],
        // The agent's key may log in; the host key is the node's own, not loko's.
        userdata: format!(
            r#"{{"ignition":{{"version":"3.3.0"}},"passwd":{{"users":[{{"name":"core","sshAuthorizedKeys":["{}"]}}]}}}}"#,
            w.public_key
        ),
        hardware_reservation_id: None,
    };
    let made = client.create_device(&impostor).await.unwrap();
    let out = w.loko(&["run", spec.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("not made by this cluster's journal"), "{err}");
    assert!(
        err.contains(&format!("device {} (supernova-controller-0", made.id)),
        "{err}"
    );
    assert_eq!(w.sim.state().devices.len(), 1, "nothing was created");
    assert_eq!(
        w.static_control_planes(),
        0,
        "the control plane went to a node that is not ours"
    );
}

/// After a verbose run: no secret in the journal, the output or the logs; private keys 0600,
/// directories 0700.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_stay_in_0600_files() {
    let w = world().await;
    let spec = w.spec(&pool("helium", 1, "t1.small.x86"));
    let out = w.loko(&["-vv", "run", spec.to_str().unwrap()]);
    assert!(out.status.success());
    let token = w.sim.token();
    assert_no_secret("stdout", &stdout(&out), token);
    assert_no_secret("the -vv logs", &stderr(&out), token);
    let json = w.loko(&["run", spec.to_str().unwrap(), "--json"]);
    assert_no_secret("--json", &stdout(&json), token);
    assert_no_secret("the journal", &w.journal_json(), token);
    let raw = std::fs::read_dir(w.state_dir().join("journal"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_file())
        .map(|e| String::from_utf8_lossy(&std::fs::read(e.path()).unwrap()).into_owned())
        .collect::<String>();
    assert_no_secret("the journal's files", &raw, token);

    let assets = w.root.join("assets");
    let mut keys = 0;
    let mut stack = vec![assets.clone()];
    while let Some(dir) = stack.pop() {
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{} is {mode:o}", dir.display());
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                if !path.ends_with(".loko") {
                    stack.push(path);
                }
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if text.contains("PRIVATE KEY") {
                keys += 1;
                let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, 0o600, "{} is {mode:o}", path.display());
            }
        }
    }
    assert!(keys >= 10, "only {keys} private keys found");
}

/// `RUST_LOG=trace` shows the AWS SDK's signed requests: the access key id (in `Credential=`)
/// and the signatures are redacted, as is the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_logs_show_no_aws_key_id_and_no_signature() {
    let w = world().await;
    let spec = w.spec(&pool("helium", 1, "t1.small.x86"));
    let key_id = "AKIALOKOTRACETEST123";
    let out = w
        .command(&["status", spec.to_str().unwrap()])
        .env("RUST_LOG", "trace")
        .env("AWS_ACCESS_KEY_ID", key_id)
        .env("AWS_SECRET_ACCESS_KEY", "loko-trace-test-secret-key")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(
        err.contains("route53") || err.contains("Route53"),
        "no SDK trace: {err}"
    );
    assert!(!err.contains(key_id), "the access key id is in the logs");
    assert!(
        !err.contains("loko-trace-test-secret-key"),
        "the secret key is in the logs"
    );
    for marker in ["Signature=", "Credential="] {
        for (at, _) in err.match_indices(marker) {
            let value = &err[at + marker.len()..];
            assert!(
                value.starts_with(journal::REDACTED),
                "{marker} not redacted: {}",
                &value[..value.len().min(80)]
            );
        }
    }
    assert_no_secret("trace logs", &err, w.sim.token());
}

/// Everything wrong with the setup is said at once, before any step, in seconds: a wrong token
/// (printed nowhere), no agent, no AWS credentials (one line, no SDK warnings), exit 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_setup_problem_is_reported_at_once_before_any_step() {
    let w = world().await;
    let spec = w.spec(&pool("helium", 1, "t1.small.x86"));
    let wrong_token = "a-wrong-token-4f1d9c2b7e";
    let empty = w.root.join("no-aws");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(empty.join("config"), "").unwrap();
    std::fs::write(empty.join("credentials"), "").unwrap();
    let before = changing_calls(&w);
    let start = std::time::Instant::now();
    let out = w
        .command(&["run", spec.to_str().unwrap()])
        .env("PACKET_AUTH_TOKEN", wrong_token)
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_PROFILE")
        .env("AWS_CONFIG_FILE", empty.join("config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", empty.join("credentials"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    let (out_text, err) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("3 problem(s) with the setup"), "{err}");
    assert!(err.contains("refuses the token (401)"), "{err}");
    assert!(err.contains("no usable ssh-agent"), "{err}");
    assert!(err.contains("no AWS credentials"), "{err}");
    assert!(!err.contains("WARN"), "{err}");
    assert!(
        !out_text.contains(wrong_token) && !err.contains(wrong_token),
        "{err}"
    );
    assert!(
        !out_text.contains("Plan:"),
        "a step was planned: {out_text}"
    );
    assert!(start.elapsed() < std::time::Duration::from_secs(30));
    assert_eq!(changing_calls(&w), before);
    assert!(
        !w.state_dir().join("journal").exists() || {
            let journal = journal::Journal::open(&w.state_dir().join("journal")).unwrap();
            journal.state().runs.is_empty()
        }
    );

    // A project_id that does not exist, a hosted zone that does not, an endpoint that does not
    // answer: each said in one line, in seconds.
    let text = std::fs::read_to_string(&spec).unwrap();
    std::fs::write(
        &spec,
        text.replace(
            loko_tests::world::PROJECT,
            "93fa1e81-0f3c-4b2e-9d8a-2c6e5f0a1b2d",
        )
        .replace("dns_zone_id: ZLOKOE2E", "dns_zone_id: ZNOSUCHZONE"),
    )
    .unwrap();
    let err = run_exits_2(&w, &spec);
    assert!(
        err.contains("project_id 93fa1e81-0f3c-4b2e-9d8a-2c6e5f0a1b2d: no such project"),
        "{err}"
    );
    assert!(
        err.contains("dns_zone_id ZNOSUCHZONE: no such hosted zone"),
        "{err}"
    );
    let closed = loko_tests::free_port();
    std::fs::write(
        &spec,
        text.replace(
            &w.sim.packet_url(),
            &format!("http://127.0.0.1:{closed}/metal/v1"),
        ),
    )
    .unwrap();
    let start = std::time::Instant::now();
    let err = run_exits_2(&w, &spec);
    assert!(err.contains("does not answer"), "{err}");
    assert!(
        start.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(changing_calls(&w), before);
}
