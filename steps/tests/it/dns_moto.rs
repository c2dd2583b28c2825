//! The DNS step against moto's Route53 server (a real peer, not code of ours), through the real
//! engine and journal: records are written, read back, owned records are updated, and records
//! somebody else set are refused with a diff.

use std::sync::Arc;
use std::time::Duration;

use std::net::Ipv4Addr;

use engine::{
    ActionKind, Actions, CancellationToken, Dag, Engine, Outcome, RetryPolicy, RunReport,
    RunRequest, StepContext, StepDef, StepError, StepKind,
};
use journal::{Digest, Journal, RunKind, StepId};
use loko_tests::Moto;
use steps::dns::{ARecord, DnsStep, Route53};
use steps::kinds::{DeviceAddress, DeviceOutputs, DnsKind, RecordSource};

/// A device that publishes the address its params hold, as a device step publishes its own.
struct ToyDevice;

impl StepKind for ToyDevice {
    const KIND: ActionKind = ActionKind::new("toy-device");
    type Params = String;
    type Outputs = DeviceOutputs;
}

fn id(s: &str) -> StepId {
    StepId::new(s).unwrap()
}

async fn route53(url: &str) -> Route53 {
    route53_redacting(url, &journal::Redactor::new()).await
}

async fn route53_redacting(url: &str, redactor: &journal::Redactor) -> Route53 {
    // SAFETY: set before any other thread reads the environment in this test process's runtime.
    unsafe {
        std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing-secret-key-0001");
        std::env::set_var("AWS_REGION", "us-east-1");
    }
    Route53::from_env(Some(url), redactor).await
}

/// The credentials the client resolves are told to the redactor it was handed (the run's),
/// and to no other.
#[tokio::test]
async fn the_resolved_credentials_are_told_to_the_run_redactor() {
    let redactor = journal::Redactor::new();
    let r53 = route53_redacting("http://127.0.0.1:9", &redactor).await;
    assert_eq!(r53.credentials_missing(), None);
    assert_eq!(
        redactor.redact("sig testing-secret-key-0001 end"),
        "sig [redacted] end"
    );
    let other = journal::Redactor::new();
    assert_eq!(
        other.redact("testing-secret-key-0001"),
        "testing-secret-key-0001"
    );
}

fn device(name: &str, ip: &str) -> StepDef {
    StepDef::of::<ToyDevice>(id(name), &ip.to_owned(), Digest::of(ip.as_bytes())).unwrap()
}

/// Two controllers' devices (toys publishing an IP) and the DNS step under test.
fn dns_plan(r53: &Route53, zone: &str, ips: [&str; 2]) -> (Dag, Actions) {
    let step = DnsStep {
        route53: r53.clone(),
        zone_id: zone.to_owned(),
        records: vec![
            RecordSource {
                name: "supernova.example.com.".into(),
                ttl: 300,
                values_from: vec![
                    (id("device/c0"), DeviceAddress::PublicIpv4),
                    (id("device/c1"), DeviceAddress::PublicIpv4),
                ],
            },
            RecordSource {
                name: "supernova-etcd0.example.com.".into(),
                ttl: 300,
                values_from: vec![(id("device/c0"), DeviceAddress::PublicIpv4)],
            },
        ],
        take_over: false,
        poll_every: Duration::from_millis(50),
        in_sync_deadline: Duration::from_secs(30),
    };
    let step = Arc::new(step);
    let dag = Dag::new(vec![
        device("device/c0", ips[0]),
        device("device/c1", ips[1]),
        StepDef::new(id("dns"), DnsKind::KIND, Digest::of(b"dns"))
            .after([id("device/c0"), id("device/c1")])
            .retry(RetryPolicy {
                max_attempts: 2,
                initial: Duration::from_millis(10),
                ..RetryPolicy::default()
            }),
    ])
    .unwrap();
    let actions = Actions::new()
        .bind::<ToyDevice, _, _>(|ctx: StepContext, ip: String| async move {
            Ok(DeviceOutputs {
                device_id: format!("toy-{}", ctx.id()),
                hostname: ctx.id().to_string(),
                public_ipv4: Some(ip),
                private_ipv4: None,
                reservation_id: None,
                replaced_failed_devices: Vec::new(),
            })
        })
        .bind_action(DnsKind::KIND, move |ctx: StepContext| {
            let step = Arc::clone(&step);
            async move {
                engine::encode_outputs::<DnsKind>(&step.run(ctx).await?)
                    .map_err(StepError::permanent)
            }
        });
    (dag, actions)
}

fn request(spec: &str) -> RunRequest {
    RunRequest {
        kind: RunKind::Apply,
        spec_digest: Digest::of(spec.as_bytes()),
        spec: serde_json::json!({}),
    }
}

/// One zone of moto's Route53, and an engine on a fresh journal to run DNS plans against it.
/// (Fields drop in order: the engine and its journal before the directory, moto last.)
struct DnsWorld {
    engine: Engine,
    r53: Route53,
    zone: String,
    _dir: tempfile::TempDir,
    _moto: Moto,
}

impl DnsWorld {
    async fn start() -> DnsWorld {
        let moto = Moto::start();
        let zone = moto.create_zone("example.com.");
        let r53 = route53(&moto.url).await;
        let dir = tempfile::tempdir().unwrap();
        let journal = Arc::new(Journal::open(dir.path()).unwrap());
        DnsWorld {
            engine: Engine::new(journal),
            r53,
            zone,
            _dir: dir,
            _moto: moto,
        }
    }

    /// Runs the DNS plan of controllers at `ips` as a run of spec `spec`.
    async fn run(&self, ips: [&str; 2], spec: &str) -> RunReport {
        let (dag, actions) = dns_plan(&self.r53, &self.zone, ips);
        self.engine
            .run(&dag, &actions, request(spec), CancellationToken::new())
            .await
            .unwrap()
    }

    /// The A record `name` as Route53 has it.
    async fn a_record(&self, name: &str) -> ARecord {
        self.r53.a_record(&self.zone, name).await.unwrap().unwrap()
    }
}

fn ipv4s(ips: &[&str]) -> Vec<Ipv4Addr> {
    ips.iter().map(|ip| ip.parse().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_are_upserted_owned_records_updated_and_foreign_records_refused() {
    let world = DnsWorld::start().await;

    let report = world.run(["127.10.0.1", "127.10.0.2"], "v1").await;
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:?}");
    let rec = world.a_record("supernova.example.com.").await;
    assert_eq!(rec.values, ipv4s(&["127.10.0.1", "127.10.0.2"]));
    assert_eq!(rec.ttl, 300);

    // A controller got a new address: the records loko set are its own, so they are updated.
    let report = world.run(["127.10.0.9", "127.10.0.2"], "v2").await;
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:?}");
    let rec = world.a_record("supernova-etcd0.example.com.").await;
    assert_eq!(rec.values, ipv4s(&["127.10.0.9"]));

    // Somebody else changes a record; loko refuses to overwrite it and says what differs.
    world
        .r53
        .upsert(
            &world.zone,
            &[ARecord {
                name: "supernova-etcd0.example.com.".into(),
                values: vec!["192.0.2.7".parse().unwrap()],
                ttl: 60,
            }],
        )
        .await
        .unwrap();
    let report = world.run(["127.10.0.5", "127.10.0.2"], "v3").await;
    let Outcome::Failed { failed, .. } = &report.outcome else {
        panic!("{report:?}")
    };
    let message = &failed[0].1;
    assert!(
        message.contains("supernova-etcd0.example.com. has 192.0.2.7 (wanted 127.10.0.5)"),
        "{message}"
    );
    assert!(message.contains("--take-over-dns"), "{message}");
    assert!(!message.contains("testing-secret-key-0001"));
    let rec = world.a_record("supernova-etcd0.example.com.").await;
    assert_eq!(
        rec.values,
        ipv4s(&["192.0.2.7"]),
        "foreign record untouched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_zone_is_a_permanent_error_naming_it() {
    let moto = Moto::start();
    let r53 = route53(&moto.url).await;
    let err = r53
        .a_record("ZNOSUCHZONE", "x.example.com.")
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("ZNOSUCHZONE"), "{text}");
    assert!(
        matches!(StepError::from(err), StepError::Permanent { .. }),
        "a missing zone will not appear by retrying"
    );
}
