//! The provider of a rack's machines against sushy-tools' BMCs: a machine ensured is booted
//! from the network and on, adopted when an earlier attempt booted it, retired off; a machine
//! whose system answers with another NIC is never touched.

use std::sync::Mutex;
use std::time::Duration;

use engine::StepError;
use journal::Outputs;
use loko_tests::sushy::{FakeSystem, Sushy};
use steps::packet::Timeouts;
use steps::provider::rack::{BOOT_INTENT, POWER_OFF_INTENT, RedfishProvider};
use steps::provider::{Change, Intents, MachineProvider};
use steps::redfish::{BmcCredentials, Polling, PowerState, RedfishClient};

const UUID: &str = "c9b7a4f2-0000-4000-8000-0000000000b1";
const MAC: &str = "52:54:00:b1:00:01";
const PASSWORD: &str = "rack-bmc-pass-40c2";

/// The intents of one step, as the journal would hold them.
#[derive(Default)]
pub(crate) struct Recorder {
    earlier: Vec<String>,
    recorded: Mutex<Vec<(String, Outputs)>>,
}

impl Recorder {
    /// The intents of an attempt after earlier ones journaled `earlier`.
    pub(crate) fn after(earlier: &[&str]) -> Recorder {
        Recorder {
            earlier: earlier.iter().map(|e| (*e).to_owned()).collect(),
            ..Recorder::default()
        }
    }

    pub(crate) fn effects(&self) -> Vec<String> {
        self.recorded
            .lock()
            .unwrap()
            .iter()
            .map(|(e, _)| e.clone())
            .collect()
    }
}

impl Intents for Recorder {
    async fn intent(&self, effect: &str, detail: Outputs) -> Result<(), StepError> {
        self.recorded
            .lock()
            .unwrap()
            .push((effect.to_owned(), detail));
        Ok(())
    }

    fn intended_before(&self, effect: &str) -> bool {
        self.earlier.iter().any(|e| e == effect)
    }

    fn progress(&self, _: String) {}
}

fn machine(sushy: &Sushy, mac: &str) -> specs::Machine {
    serde_json::from_value(serde_json::json!({
        "name": "rack-b1", "role": "helium", "mac": mac,
        "bmc": {"url": sushy.url, "system": format!("/redfish/v1/Systems/{UUID}")},
        "install_disk": "/dev/sda", "public_ipv4": "10.0.1.21", "private_ipv4": "10.10.0.21"
    }))
    .unwrap()
}

fn provider(sushy: &Sushy, machines: Vec<specs::Machine>) -> RedfishProvider {
    RedfishProvider {
        credentials: BmcCredentials::new(
            &sushy.username,
            &sushy.password,
            &journal::Redactor::new(),
        ),
        timeouts: Timeouts::default(),
        polling: Polling {
            every: Duration::from_millis(500),
            within: Duration::from_secs(30),
        },
        machines,
    }
}

async fn power(sushy: &Sushy) -> Option<PowerState> {
    let client = RedfishClient::connect(
        &sushy.url,
        &BmcCredentials::new(&sushy.username, &sushy.password, &journal::Redactor::new()),
        &Timeouts::default(),
    )
    .await
    .unwrap();
    let system = client
        .system(&format!("/redfish/v1/Systems/{UUID}"))
        .await
        .unwrap();
    assert_eq!(
        system.boot.and_then(|b| b.override_target).as_deref(),
        Some("Pxe")
    );
    system.power_state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_machine_is_booted_adopted_and_retired() {
    let dir = tempfile::tempdir().unwrap();
    let sushy = Sushy::start(
        dir.path(),
        &[FakeSystem {
            uuid: UUID.into(),
            name: "rack-b1".into(),
            power_state: "Off",
            macs: vec![MAC.into()],
        }],
        "admin",
        PASSWORD,
    );
    let m = machine(&sushy, MAC);
    let rack = provider(&sushy, vec![m.clone()]);

    let first = Recorder::default();
    let provided = rack.ensure(&first, "rack-b1", &m).await.unwrap();
    assert!(provided.acted);
    assert_eq!(first.effects(), [BOOT_INTENT]);
    let (_, detail) = first.recorded.lock().unwrap()[0].clone();
    assert_eq!(detail.get::<String>("mac").unwrap(), MAC);
    assert_eq!(detail.get::<String>("reset").unwrap(), "On");
    let outputs =
        serde_json::to_string(&steps::kinds::DeviceOutputs::from(provided.clone())).unwrap();
    assert!(
        outputs.contains("10.10.0.21") && outputs.contains("rack-b1"),
        "{outputs}"
    );
    assert!(!outputs.contains(PASSWORD));
    assert_eq!(power(&sushy).await, Some(PowerState::On));

    // A resumed attempt, after the boot's intent: the machine is on, so it is adopted.
    let resumed = Recorder {
        earlier: vec![BOOT_INTENT.into()],
        ..Recorder::default()
    };
    let adopted = rack.ensure(&resumed, "rack-b1", &m).await.unwrap();
    assert!(!adopted.acted);
    assert!(resumed.effects().is_empty(), "no second reset");

    let listed = rack.list().await.unwrap();
    assert_eq!(
        (listed[0].id.as_str(), listed[0].state.as_str()),
        ("rack-b1", "On")
    );

    let retiring = Recorder::default();
    rack.retire(&retiring, &m).await.unwrap();
    assert_eq!(retiring.effects(), [POWER_OFF_INTENT]);
    assert_eq!(power(&sushy).await, Some(PowerState::Off));
    let again = Recorder::default();
    rack.retire(&again, &m).await.unwrap();
    assert!(
        again.effects().is_empty(),
        "an off machine is retired already"
    );

    // The system answers with another NIC: not this machine, never powered.
    let wrong = machine(&sushy, "52:54:00:b1:00:99");
    let refused = Recorder::default();
    let err = rack.ensure(&refused, "rack-b1", &wrong).await.unwrap_err();
    assert!(matches!(err, StepError::Permanent { .. }), "{err:?}");
    let text = format!("{err:?}");
    assert!(
        text.contains("machine rack-b1") && text.contains("52:54:00:b1:00:99"),
        "{text}"
    );
    assert!(refused.effects().is_empty());
    assert_eq!(power(&sushy).await, Some(PowerState::Off));
}

#[test]
fn a_changed_mac_is_another_machine() {
    let m: specs::Machine = serde_json::from_value(serde_json::json!({
        "name": "a", "role": "controller", "mac": "52:54:00:00:00:01",
        "bmc": {"url": "https://bmc", "system": "/redfish/v1/Systems/1"},
        "install_disk": "/dev/sda", "public_ipv4": "10.0.1.1", "private_ipv4": "10.10.0.1"
    }))
    .unwrap();
    let rack = RedfishProvider {
        credentials: BmcCredentials::new("admin", "x-unused-pass-1", &journal::Redactor::new()),
        timeouts: Timeouts::default(),
        polling: Polling::default(),
        machines: vec![],
    };
    let mut other = m.clone();
    other.mac = specs::MacAddress::parse("52:54:00:00:00:02").unwrap();
    assert!(
        matches!(rack.change(&m, &other), Change::Recreate { why } if why.contains("another machine"))
    );
    let mut moved = m.clone();
    moved.bmc.url = "https://bmc2".into();
    assert_eq!(rack.change(&m, &moved), Change::None);
    let mut renumbered = m.clone();
    renumbered.private_ipv4 = "10.10.0.9".parse().unwrap();
    assert!(matches!(
        rack.change(&m, &renumbered),
        Change::Refused { .. }
    ));
}
