//! The rack kept in its state file (`RackConfig::state_file`): started again on it, it holds
//! every machine it had, listed or not, each powered as it was, with its boot override, and a
//! machine that was on boots its installed disk into the same node.

use std::path::Path;
use std::time::Duration;

use serde_json::json;
use sim::rack::MachineState;

use crate::rack::{RackWorld, boot_fixture, rack_config, rack_on, rack_world_kept};

const SYSTEM_ID: &str = "c0ffee00-0000-4000-8000-000000000001";
const POWER_DELAY: Duration = Duration::from_millis(50);

/// As a demo's command ends: the BMCs stop (the machines saved), the nodes go with the
/// process. Then a rack starts on the same state file, listing no machine.
async fn restarted(r: RackWorld, file: &Path) -> RackWorld {
    let RackWorld {
        world, rack, ip, ..
    } = r;
    rack.shutdown().await;
    world.nodes.stop_node(SYSTEM_ID).await;
    assert!(
        std::net::TcpStream::connect(world.addr(ip)).is_err(),
        "the node still answers"
    );
    let config = rack_config(POWER_DELAY, Some(file.to_owned()));
    rack_on(world, ip, config, Vec::new()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rack_started_again_on_its_state_file_has_its_machines_and_their_nodes_back() {
    let state_dir = tempfile::tempdir().unwrap();
    let file = state_dir.path().join("rack.json");
    let r = rack_world_kept(11, POWER_DELAY, Some(file.clone())).await;
    let boot = boot_fixture(r.world.ignition(None, true), "/dev/sda").await;
    r.rack
        .set_boot_filename(Some(format!("{}/boot.ipxe", boot.url)));
    r.pxe_once_and("On").await;
    r.settled(|s| *s == MachineState::Running).await;
    let override_cd = json!({"Boot": {"BootSourceOverrideTarget": "Cd", "BootSourceOverrideEnabled": "Continuous"}});
    let (status, _) = r
        .call(reqwest::Method::PATCH, &r.system(), Some(override_cd))
        .await;
    assert_eq!(status, 204);
    let before = r.rack.status("rack-controller-0").unwrap().events;

    let r = restarted(r, &file).await;
    let status = r
        .rack
        .status("rack-controller-0")
        .expect("a machine no longer listed left the rack");
    assert_eq!(status.state, MachineState::Running, "{status:?}");
    assert_eq!(status.installed_on.as_deref(), Some("/dev/sda"));
    assert!(status.events.starts_with(&before), "{status:?}");
    assert_eq!(r.power_state().await, "On");
    let (_, system) = r.call(reqwest::Method::GET, &r.system(), None).await;
    assert_eq!(system["Boot"]["BootSourceOverrideTarget"], "Cd");
    assert_eq!(system["Boot"]["BootSourceOverrideEnabled"], "Continuous");
    assert_eq!(
        boot.seen.lock().unwrap().len(),
        4,
        "it booted its disk, not the network"
    );
    // The same node: the installed Ignition's host key (which the client trusts) and admin.
    let output = r.world.core(r.ip).run("echo back", b"").await;
    assert_eq!(String::from_utf8_lossy(&output.stdout), "back\n");

    // Powered off, it stays off in the next rack.
    r.reset("ForceOff").await;
    r.settled(|s| *s == MachineState::Off).await;
    let r = restarted(r, &file).await;
    assert_eq!(r.power_state().await, "Off");
    let status = r.rack.status("rack-controller-0").unwrap();
    assert_eq!(status.state, MachineState::Off);
    assert!(std::net::TcpStream::connect(r.world.addr(r.ip)).is_err());
}
