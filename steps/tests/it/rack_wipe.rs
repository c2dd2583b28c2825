//! `boot_server.retire: wipe` against the simulator's rack: a retired machine, on or off, is
//! booted into the wipe of its install disk, which empties it and powers it off; a resumed
//! attempt waits for a wipe under way; a wipe of a disk the machine lacks fails, named. The
//! wipe's Ignition as `ignition-validate`, shellcheck and `systemd-analyze verify` read it.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use engine::StepError;
use sim::rack::{MachineState, MachineStatus};
use steps::netboot::{BootServer, NetbootConfig};
use steps::packet::Timeouts;
use steps::provider::rack::WIPE_INTENT;
use steps::redfish::{BmcCredentials, Polling, RedfishClient, Reset};

use crate::netboot::ignition_validate;
use crate::node_artifacts::{node_artifacts, shellcheck, systemd_verify};
use crate::provider_rack::Recorder;
use crate::rack_boot::{MAC, PASSWORD, World, boot, world_with};

async fn wiping_world(ip: Ipv4Addr, power_delay: Duration) -> World {
    let mut w = world_with(ip, power_delay).await;
    w.booted.retire = specs::RetirePolicy::Wipe;
    w
}

/// The world's node installed on its machine and running.
async fn install(w: &World) {
    boot(w).await.unwrap_or_else(|e| panic!("{e:?}"));
    let status = w.rack.status("rack-a1").unwrap();
    assert_eq!(
        status.installed_on.as_deref(),
        Some("/dev/sda"),
        "{status:?}"
    );
}

fn status(w: &World) -> MachineStatus {
    w.rack.status("rack-a1").unwrap()
}

fn wiped(status: &MachineStatus) -> bool {
    status.events.iter().any(|e| e.contains("wiped /dev/sda"))
}

/// The machine's disk was wiped and it is off; its status.
fn wiped_and_off(w: &World) -> MachineStatus {
    let after = status(w);
    assert!(wiped(&after), "{after:?}");
    assert_eq!(after.state, MachineState::Off, "{after:?}");
    assert!(!after.powered);
    after
}

/// A first retire: its only effect the wipe's intent, and the machine wiped and off.
async fn retire_wiping(w: &World) -> MachineStatus {
    let retiring = Recorder::default();
    w.booted
        .retire(&retiring, &w.machine)
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(retiring.effects(), [WIPE_INTENT]);
    wiped_and_off(w)
}

/// The machine powered on through its BMC, its next boot left as it is (from its disk).
async fn power_on(w: &World) {
    let client = RedfishClient::connect(
        &w.machine.bmc.url,
        &BmcCredentials::new("admin", PASSWORD, &journal::Redactor::new()),
        &Timeouts::default(),
    )
    .await
    .unwrap();
    let system = client.system(&w.machine.bmc.system).await.unwrap();
    client
        .reset(&system, Reset::On, &Polling::default())
        .await
        .unwrap();
}

async fn until(w: &World, what: &str, done: impl Fn(&MachineStatus) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done(&status(w)) {
        assert!(Instant::now() < deadline, "{what}: {:?}", status(w));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retired_machine_is_wiped_off_and_boots_nothing_after() {
    let w = wiping_world(Ipv4Addr::new(127, 77, 29, 61), Duration::from_millis(50)).await;
    install(&w).await;
    let after = retire_wiping(&w).await;
    assert_eq!(after.installed_on, None, "the disk holds no node");
    let answer = reqwest::get(format!(
        "{}/boot.ipxe?mac={MAC}",
        w.booted.server.as_ref().unwrap().url()
    ))
    .await
    .unwrap();
    assert_eq!(answer.status().as_u16(), 404, "its MAC is forgotten");

    power_on(&w).await;
    until(&w, "a later boot from its disk", |s| {
        s.state == MachineState::NoBootableDevice
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_machine_already_off_is_booted_to_be_wiped() {
    let w = wiping_world(Ipv4Addr::new(127, 77, 29, 62), Duration::from_millis(50)).await;
    let after = retire_wiping(&w).await;
    assert!(after.events.iter().any(|e| e == "reset On"), "{after:?}");
}

/// An attempt that stopped after its reset (a crash, a cancelled run): the next finds the
/// machine on with the wipe's intent journaled and waits for it, without a second reset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_retire_waits_for_the_wipe_under_way() {
    let w = wiping_world(Ipv4Addr::new(127, 77, 29, 63), Duration::from_millis(400)).await;
    install(&w).await;
    let first = Recorder::default();
    let stopped = tokio::time::timeout(
        Duration::from_millis(150),
        w.booted.retire(&first, &w.machine),
    )
    .await;
    assert!(stopped.is_err(), "the first attempt ended: {stopped:?}");
    assert_eq!(first.effects(), [WIPE_INTENT]);
    assert!(status(&w).powered, "the reset is not applied yet");

    let resumed = Recorder::after(&[WIPE_INTENT]);
    w.booted
        .retire(&resumed, &w.machine)
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert!(resumed.effects().is_empty(), "no second wipe's intent");
    let after = wiped_and_off(&w);
    let restarts = after
        .events
        .iter()
        .filter(|e| e.starts_with("reset "))
        .collect::<Vec<_>>();
    assert_eq!(restarts, ["reset On", "reset ForceRestart"], "{after:?}");
}

/// An earlier attempt's wipe that never powers the machine off (it booted while no boot
/// server answered: a loko that crashed) is started again once the deadline passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_earlier_wipe_that_never_ends_is_started_again() {
    let mut w = wiping_world(Ipv4Addr::new(127, 77, 29, 65), Duration::from_millis(50)).await;
    w.booted.install_deadline = Duration::from_secs(1);
    install(&w).await;
    let resumed = Recorder::after(&[WIPE_INTENT]);
    w.booted
        .retire(&resumed, &w.machine)
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(resumed.effects(), [WIPE_INTENT], "booted to wipe again");
    wiped_and_off(&w);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wipe_of_a_disk_the_machine_lacks_fails_naming_both() {
    let mut w = wiping_world(Ipv4Addr::new(127, 77, 29, 64), Duration::from_millis(50)).await;
    w.booted.install_deadline = Duration::from_secs(2);
    w.machine.install_disk = "/dev/sdb".to_owned();
    let err = w
        .booted
        .retire(&Recorder::default(), &w.machine)
        .await
        .unwrap_err();
    assert!(matches!(err, StepError::Retryable { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("machine rack-a1: fetched the wipe of /dev/sdb, but is not off"),
        "{text}"
    );
    let after = status(&w);
    assert!(
        matches!(&after.state, MachineState::BootFailed(why)
            if why.contains("wipefs /dev/sdb: no such disk (this machine has /dev/sda)")),
        "{after:?}"
    );
    assert!(after.powered);
}

/// The wipe a retired machine's MAC is served: Flatcar's PXE kernel as for the installer, no
/// node Ignition, and an Ignition that the real tools take.
#[tokio::test]
async fn the_wipe_passes_ignition_validate_shellcheck_and_systemd_analyze() {
    const DISK: &str = "/dev/disk/by-id/wwn-0x5000c500a1b2c3d4";
    let config = NetbootConfig {
        ssh_keys: vec!["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO1V6Bq0dFYb2Gq3XhQm8YHt1rS0o8GmDL3k2pYwUq3c core@rack".to_owned()],
        ..NetbootConfig::default()
    };
    let server = BootServer::start("127.0.0.1:0".parse().unwrap(), None, config, vec![])
        .await
        .unwrap();
    server
        .serve_wipe(MAC.parse().unwrap(), "rack-a1", DISK)
        .unwrap();
    let get = async |path: &str| {
        let response = reqwest::get(format!("{}{path}?mac={MAC}", server.url()))
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    };
    let (status, script) = get("/boot.ipxe").await;
    assert!(
        status == 200 && script.contains("/flatcar_production_pxe.vmlinuz "),
        "{status} {script}"
    );
    assert_eq!(
        get("/node-ignition").await.0,
        404,
        "a wipe installs no node"
    );
    let (status, wipe) = get("/ignition").await;
    assert_eq!(status, 200);

    let work = tempfile::tempdir().unwrap();
    assert_eq!(ignition_validate(&wipe, work.path()), None);

    let node = node_artifacts("wipe", "rack-a1", &serde_json::from_str(&wipe).unwrap());
    let script = &node
        .files
        .iter()
        .find(|f| f.path == "/opt/wipe")
        .expect("the wipe's script")
        .contents;
    assert!(
        script.contains(&format!(
            "wipefs --all --force \"${{partitions[@]}}\" '{DISK}'"
        )),
        "{script}"
    );
    assert_eq!(shellcheck(None, script, work.path()), None);
    let (units, report) = systemd_verify(&node);
    assert!(units.iter().any(|u| u == "wipe.service"), "{units:?}");
    assert_eq!(report, None);
}
