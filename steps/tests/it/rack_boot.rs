//! A rack's machine step with loko's boot server and the simulator's rack: served, powered,
//! installed into loko's node; a NIC booting with another MAC named; retired, then forgotten.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use engine::StepError;
use sim::nodes::Nodes;
use sim::rack::{BmcFault, MachineState, Rack, RackMachine};
use steps::netboot::{BootServer, NetbootConfig};
use steps::packet::Timeouts;
use steps::provider::ProvidedMachine;
use steps::provider::netbooted::NetbootedRack;
use steps::provider::rack::{BOOT_INTENT, POWER_OFF_INTENT, RedfishProvider};
use steps::redfish::{BmcCredentials, Polling};

use crate::provider_rack::Recorder;
use crate::rack_support::{embedded_nodes, rack_config, tutorial_node_ignition};

pub(crate) const PASSWORD: &str = "x-rack-boot-pass";
pub(crate) const MAC: &str = "52:54:00:29:00:01";

pub(crate) struct World {
    pub(crate) rack: Rack,
    pub(crate) booted: NetbootedRack,
    pub(crate) nodes: Nodes,
    pub(crate) machine: specs::Machine,
    pub(crate) node: specs::DesiredNode,
    pub(crate) ignition: String,
    _tmp: tempfile::TempDir,
}

async fn world(ip: Ipv4Addr) -> World {
    world_with(ip, Duration::from_millis(50)).await
}

/// A rack of one machine, `rack-a1` (off, disk `/dev/sda`, MAC [`MAC`]), whose BMC applies a
/// reset after `power_delay`, and a boot server of its own; retiring powers off.
pub(crate) async fn world_with(ip: Ipv4Addr, power_delay: Duration) -> World {
    let tmp = tempfile::tempdir().unwrap();
    let (node, ignition) = tutorial_node_ignition(tmp.path());
    let nodes = embedded_nodes(tmp.path(), loko_tests::free_port());
    let rack = Rack::start(
        rack_config(PASSWORD, power_delay, Duration::from_millis(100)),
        vec![RackMachine {
            name: "rack-a1".to_owned(),
            system_id: "a1".to_owned(),
            mac: MAC.to_owned(),
            disks: vec!["/dev/sda".to_owned()],
            public_ip: ip,
            private_ip: Ipv4Addr::new(10, 10, 0, 11),
        }],
        Arc::new(nodes.clone()),
    )
    .await
    .unwrap();
    let server = BootServer::start(
        "127.0.0.1:0".parse().unwrap(),
        None,
        NetbootConfig::default(),
        vec![],
    )
    .await
    .unwrap();
    rack.set_boot_filename(Some(format!("{}/boot.ipxe", server.url())));
    let system = rack.system_url("rack-a1").unwrap();
    let (bmc, path) = system.split_at(system.find("/redfish").unwrap());
    let machine: specs::Machine = serde_json::from_value(serde_json::json!({
        "name": "rack-a1", "role": "controller", "mac": MAC,
        "bmc": {"url": bmc, "system": path},
        "install_disk": "/dev/sda", "public_ipv4": ip.to_string(), "private_ipv4": "10.10.0.11"
    }))
    .unwrap();
    let polling = Polling {
        every: Duration::from_millis(20),
        ..Polling::default()
    };
    let booted = NetbootedRack {
        provider: RedfishProvider {
            credentials: BmcCredentials::new("admin", PASSWORD, &journal::Redactor::new()),
            timeouts: Timeouts::default(),
            polling,
            machines: vec![machine.clone()],
        },
        server: Some(server),
        install_deadline: Duration::from_secs(10),
        retire: specs::RetirePolicy::PowerOff,
        poll: Duration::from_millis(20),
    };
    World {
        rack,
        booted,
        nodes,
        machine,
        node,
        ignition,
        _tmp: tmp,
    }
}

/// The machine step booting the world's node on its machine, its intents recorded and dropped.
pub(crate) async fn boot(w: &World) -> Result<ProvidedMachine, StepError> {
    w.booted
        .boot(
            &Recorder::default(),
            &w.node.hostname,
            &w.machine,
            w.ignition.clone(),
        )
        .await
}

/// The machine step's error when it boots the world's machine.
async fn boot_err(w: &World) -> StepError {
    boot(w).await.unwrap_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_machine_step_boots_lokos_node_and_retiring_forgets_its_mac() {
    let w = world(Ipv4Addr::new(127, 77, 29, 51)).await;
    let intents = Recorder::default();
    let provided = w
        .booted
        .boot(&intents, &w.node.hostname, &w.machine, w.ignition.clone())
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert!(provided.acted);
    assert_eq!(provided.public_ipv4, w.machine.public_ipv4);
    assert_eq!(intents.effects(), [BOOT_INTENT]);
    let status = w.rack.status("rack-a1").unwrap();
    assert_eq!(
        status.installed_on.as_deref(),
        Some("/dev/sda"),
        "{status:?}"
    );
    // The node's own Ignition was fetched, so the node that starts is loko's.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !w.nodes.kubelets().contains_key(&w.node.hostname) && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(w.nodes.kubelets().contains_key(&w.node.hostname));

    let retiring = Recorder::default();
    w.booted
        .retire(&retiring, &w.machine)
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(retiring.effects(), [POWER_OFF_INTENT]);
    assert_eq!(w.rack.status("rack-a1").unwrap().state, MachineState::Off);
    let answer = reqwest::get(format!(
        "{}/boot.ipxe?mac={MAC}",
        w.booted.server.as_ref().unwrap().url()
    ))
    .await
    .unwrap();
    assert_eq!(
        answer.status().as_u16(),
        404,
        "a retired machine's MAC is forgotten"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nic_booting_with_another_mac_fails_the_step_naming_both() {
    let mut w = world(Ipv4Addr::new(127, 77, 29, 52)).await;
    w.booted.install_deadline = Duration::from_secs(2);
    w.rack.set_fault(
        "rack-a1",
        Some(BmcFault::BootsWithMac("52:54:00:29:00:99".into())),
    );
    let err = boot_err(&w).await;
    assert!(matches!(err, StepError::Permanent { .. }), "{err:?}");
    let text = format!("{err:?}");
    assert!(
        text.contains("machine rack-a1: MAC 52:54:00:29:00:01 never booted")
            && text.contains("unknown MAC(s) 52:54:00:29:00:99"),
        "{text}"
    );
}

/// A busy BMC (503 with `Retry-After`) is the engine's to retry, after the time it asks; a BMC
/// that refuses the account (401) is permanent; both name the machine and its BMC, and nothing
/// was powered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_bmc_is_retried_and_a_refusing_one_named() {
    let w = world(Ipv4Addr::new(127, 77, 29, 53)).await;
    w.rack.set_fault("rack-a1", Some(BmcFault::Unavailable));
    let busy = boot_err(&w).await;
    assert!(
        matches!(busy, StepError::Retryable { after: Some(_), .. }),
        "{busy:?}"
    );
    assert!(format!("{busy:?}").contains("machine rack-a1"), "{busy:?}");
    w.rack.set_fault("rack-a1", Some(BmcFault::Unauthorized));
    let refused = boot_err(&w).await;
    assert!(
        matches!(refused, StepError::Permanent { .. }),
        "{refused:?}"
    );
    let text = format!("{refused:?}");
    assert!(
        text.contains("machine rack-a1") && text.contains("401"),
        "{text}"
    );
    assert!(!text.contains(PASSWORD), "{text}");
    assert!(!w.rack.status("rack-a1").unwrap().powered);
}
