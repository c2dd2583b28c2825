//! Packet behind the provider seam (`PacketProvider`), against the simulator's Packet API,
//! driven as any provider is: through `MachineProvider` with a recorder of intents in place of
//! a step's context.

use std::sync::Arc;
use std::time::Duration;

use steps::packet::{
    CREATE_INTENT, DeviceOs, DevicePoller, DeviceSettings, DeviceSpec, Location, PacketClient,
    PollPace, Timeouts, Token,
};
use steps::provider::packet::{PacketMachine, PacketProvider};
use steps::provider::{Change, MachineProvider};

use crate::provider_rack::Recorder;

fn machine(hostname: &str, plan: &str, userdata: &std::path::Path) -> PacketMachine {
    PacketMachine {
        spec: DeviceSpec {
            cluster: "supernova".into(),
            hostname: hostname.into(),
            machine_type: plan.into(),
            location: Location::Metro("sv".into()),
            os: DeviceOs::Flatcar {
                channel: "stable".into(),
            },
            reservation: None,
            userdata_path: userdata.to_owned(),
            cluster_id: None,
        },
        named_first: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_is_created_adopted_listed_and_retired_through_the_seam() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = sim::SimConfig::new(tmp.path().join("nodes"));
    config.time_scale = 0.001;
    config.rate_limit.requests = 1_000_000;
    let sim = sim::start(config).await.expect("start the simulator");
    let client = Arc::new(
        PacketClient::new(
            &sim.packet_url(),
            &sim.project_id().to_string(),
            &Token::new(sim.token(), &journal::Redactor::new()),
            &Timeouts::default(),
        )
        .unwrap(),
    );
    let pace = PollPace {
        per_page: Duration::from_millis(20),
    };
    let provider = PacketProvider {
        client: Arc::clone(&client),
        poller: Arc::new(DevicePoller::spawn(
            client,
            "loko:cluster=supernova".into(),
            pace.clone(),
        )),
        settings: DeviceSettings {
            poll: pace,
            ..DeviceSettings::default()
        },
        private_network: "10.0.0.0/8".parse().unwrap(),
        cluster: "supernova".into(),
    };
    let userdata = tmp.path().join("worker-0.ign");
    std::fs::write(&userdata, r#"{"ignition":{"version":"3.4.0"}}"#).unwrap();
    let worker = machine("supernova-worker-0", "c3.small.x86", &userdata);

    let first = Recorder::default();
    let made = provider
        .ensure(&first, "supernova-worker-0", &worker)
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert!(made.acted);
    assert_eq!(first.effects(), [CREATE_INTENT]);
    assert_eq!(made.hostname, "supernova-worker-0");

    // The next attempt (or run) finds the device by its tag: adopted, nothing created.
    let again = Recorder::after(&[CREATE_INTENT]);
    let adopted = provider
        .ensure(&again, "supernova-worker-0", &worker)
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(
        (adopted.id.as_str(), adopted.acted),
        (made.id.as_str(), false)
    );
    assert!(again.effects().is_empty(), "{:?}", again.effects());

    let listed = provider.list().await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        (listed[0].id.as_str(), listed[0].state.as_str()),
        (made.id.as_str(), "active")
    );

    let bigger = machine("supernova-worker-0", "m3.large.x86", &userdata);
    assert!(matches!(
        provider.change(&worker, &bigger),
        Change::Recreate { .. }
    ));
    assert_eq!(provider.change(&worker, &worker), Change::None);

    let retiring = Recorder::default();
    provider
        .retire(&retiring, &worker)
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(retiring.effects(), ["delete device"]);
    assert!(provider.list().await.unwrap().is_empty());
    // Retiring what is gone is success, and deletes nothing.
    let twice = Recorder::default();
    provider.retire(&twice, &worker).await.unwrap();
    assert!(twice.effects().is_empty());
    sim.shutdown().await.unwrap();
}
