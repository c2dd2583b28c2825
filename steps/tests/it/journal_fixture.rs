//! A journal written by this version of loko, kept in `tests/fixtures/journal-v1/state`, that
//! every later version must open, resume and show (`tests/it/cli.rs` shows it with
//! `loko journal`).
//!
//! The fixture is the journal of `tests/fixtures/journal-v1/cluster.yaml` (one controller,
//! one worker) after a first run that stopped (interrupted) once the devices existed: assets,
//! Ignition and devices succeeded, the device steps journaled their create intents, the rest
//! never finished. It was written by the real engine running the real DAG of that spec, with
//! toy actions in place of the clouds (the DAG is data: any action can be bound to a kind).
//! Resuming it binds the same toys: the recorded steps are reused, the rest run, and the
//! run that is continued is the fixture's.
//!
//! Rewrite it only with a new journal format (then keep the old one too):
//! `LOKO_WRITE_JOURNAL_FIXTURE=1 cargo nextest run -p steps --test it journal_fixture --run-ignored only`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use engine::{
    Actions, CancellationToken, Engine, Outcome, RunRequest, StepContext, StepError, StepKind,
};
use journal::{Digest, Journal, Outputs, RunKind, RunOutcome};
use steps::cluster::apply_dag;
use steps::history::History;
use steps::kinds;
use steps::step_name::StepName;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/journal-v1")
}

fn desired() -> specs::DesiredCluster {
    let path = fixture().join("cluster.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    specs::parse(&text, "cluster.yaml").unwrap().desired()
}

fn request(desired: &specs::DesiredCluster) -> RunRequest {
    RunRequest {
        kind: RunKind::Apply,
        spec_digest: Digest::of_json(desired).unwrap(),
        spec: desired.to_record().unwrap(),
    }
}

/// Every kind bound to a toy publishing what the real action publishes; with `stop`, the DNS
/// step stops the run (as Ctrl-C would once the devices exist).
fn toys(stop: Option<CancellationToken>) -> Actions {
    fn host(ctx: &StepContext) -> String {
        ctx.id()
            .as_str()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned()
    }
    let out = |pairs: &[(&str, &str)]| -> Result<Outputs, StepError> {
        let mut outputs = Outputs::new();
        for (k, v) in pairs {
            outputs = outputs.with(k, *v)?;
        }
        Ok(outputs)
    };
    let actions = Actions::new()
        .bind_action(kinds::PkiKind::KIND, move |_ctx: StepContext| async move {
            out(&[("sha256", "{\"tls/ca.crt\": \"0a1b\"}")])
        })
        .bind_action(
            kinds::KubeconfigsKind::KIND,
            move |_ctx: StepContext| async move {
                out(&[("admin", "auth/kubeconfig"), ("kubelet_sha256", "2c3d")])
            },
        )
        .bind_action(
            kinds::ManifestsKind::KIND,
            move |_ctx: StepContext| async move { out(&[("files", "42")]) },
        )
        .bind_action(
            kinds::IgnitionKind::KIND,
            move |ctx: StepContext| async move {
                let host = host(&ctx);
                out(&[
                    (
                        "ssh_host_key",
                        &format!("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFixture {host}"),
                    ),
                    ("userdata_path", &format!("ignition/{host}.json")),
                    ("ignition_sha256", "4e5f"),
                ])
            },
        )
        .bind_action(
            kinds::DeviceKind::KIND,
            move |ctx: StepContext| async move {
                let host = host(&ctx);
                ctx.intent(
                    steps::packet::CREATE_INTENT,
                    Outputs::new().with("hostname", &host)?,
                )
                .await?;
                let last = if host.contains("controller") { 10 } else { 11 };
                out(&[
                    (
                        "device_id",
                        &format!("00000000-0000-4000-8000-0000000000{last}"),
                    ),
                    ("public_ipv4", &format!("127.0.0.{last}")),
                    ("private_ipv4", &format!("10.64.0.{last}")),
                ])
            },
        )
        .bind_action(kinds::DnsKind::KIND, move |_ctx: StepContext| {
            let stop = stop.clone();
            async move {
                if let Some(stop) = stop {
                    stop.cancel();
                    return Err(StepError::Interrupted);
                }
                out(&[("records", "3")])
            }
        });
    let done = move |_ctx: StepContext| async move { out(&[("done", "true")]) };
    actions
        .bind_action(kinds::EtcdSecretsKind::KIND, done)
        .bind_action(kinds::ControlPlaneKind::KIND, done)
        .bind_action(kinds::BootstrapKind::KIND, done)
        .bind_action(kinds::ReadyKind::KIND, done)
        .bind_action(kinds::DeleteDevicesKind::KIND, done)
        .bind_action(kinds::DeleteRecordsKind::KIND, done)
}

#[tokio::test]
async fn the_journal_of_this_version_opens_resumes_and_reads() {
    let copy = tempfile::tempdir().unwrap();
    loko_tests::copy_dir(&fixture().join("state/journal"), copy.path());
    let journal = Arc::new(Journal::open(copy.path()).unwrap());
    let desired = desired();

    // Open: one interrupted run of this spec, whose desired cluster this loko reads.
    let state = journal.state();
    let run = state.last_run().unwrap();
    assert_eq!(run.kind, RunKind::Apply);
    assert_eq!(
        run.ended.as_ref().map(|e| &e.1),
        Some(&RunOutcome::Interrupted)
    );
    assert_eq!(run.spec_digest, Digest::of_json(&desired).unwrap());
    let history = History::read(&state).unwrap();
    assert_eq!(history.previous.as_ref(), Some(&desired));
    assert_eq!(history.known_nodes.len(), 2);

    // Resume: the same run goes on; what it recorded is reused, nothing is done twice.
    let dag = apply_dag(&desired, &history, &[]).unwrap();
    let recorded = history.recorded.clone();
    let report = Engine::new(Arc::clone(&journal))
        .run(
            &dag,
            &toys(None),
            request(&desired),
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded);
    assert!(report.resumed);
    assert_eq!(report.run, Some(run.id));
    // Steps whose own inputs changed since the fixture was written, on purpose: the PKI's
    // inputs hold the renewal window of the current time; the kubeconfigs step's, while a node
    // has no device (this run stopped before any), the bootstrap token's window of the current
    // time; and the manifests' the version of their rendering (`assets::manifests::RENDERING`),
    // raised when a fix must reach every cluster. What they feed is reused when their outputs
    // are the same; nothing else recorded may run again.
    let changed = [
        StepName::Pki.id(),
        StepName::Kubeconfigs.id(),
        StepName::Manifests.id(),
    ];
    for step in &report.executed {
        assert!(
            !recorded.contains(step) || changed.contains(step),
            "{step} was recorded and ran again"
        );
    }
    assert!(
        report.reused >= recorded.len() - changed.len(),
        "{report:?}"
    );
}

#[tokio::test]
#[ignore = "writes the fixture; run only for a new journal format"]
async fn write_the_journal_fixture() {
    if std::env::var_os("LOKO_WRITE_JOURNAL_FIXTURE").is_none() {
        return;
    }
    let dir = fixture().join("state/journal");
    let _ = std::fs::remove_dir_all(&dir);
    let journal = Arc::new(Journal::open(&dir).unwrap());
    let desired = desired();
    let dag = apply_dag(&desired, &History::default(), &[]).unwrap();
    let stop = CancellationToken::new();
    let report = Engine::new(Arc::clone(&journal))
        .limit(engine::ResourceClass::LOCAL, 1)
        .run(&dag, &toys(Some(stop.clone())), request(&desired), stop)
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Interrupted);
}
