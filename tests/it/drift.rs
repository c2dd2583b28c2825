//! The cloud is the truth: a run starts from what exists, not only from its journal. Devices
//! deleted behind loko's back, an emptied cloud and an interrupted destroy are each repaired
//! by the next `loko run`, and nothing is deleted that the user was not shown; run by the
//! built binary against a standalone simulator.

use std::time::{Duration, Instant};

use loko_tests::world::{World, pool, stderr, stdout};
use steps::packet::{PacketClient, Timeouts, Token};

const LOKO: &str = env!("CARGO_BIN_EXE_loko");

async fn world() -> World {
    World::quick(LOKO).await
}

/// The hostnames of the world's spec with one pool of two workers.
fn hosts() -> Vec<String> {
    [
        "supernova-controller-0",
        "supernova-helium-worker-0",
        "supernova-helium-worker-1",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Deletes the live devices of `hostnames` through the Packet API, as a user of the console
/// would, and waits until the simulator no longer lists them as live.
async fn delete_behind_loko_s_back(w: &World, hostnames: &[&str]) {
    let client = PacketClient::new(
        &w.sim.packet_url(),
        &w.sim.project_id().to_string(),
        &Token::new(w.sim.token(), &journal::Redactor::new()),
        &Timeouts::default(),
    )
    .unwrap();
    for device in w.sim.state().devices {
        if hostnames.contains(&device.hostname.as_str()) && device.state == "active" {
            client.delete_device(&device.id).await.unwrap();
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while hostnames.iter().any(|h| w.devices().live.contains_key(*h)) {
        assert!(Instant::now() < deadline, "the devices were never deleted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `loko status` exits `code`.
fn assert_status(w: &World, spec: &str, code: i32) {
    let out = w.loko(&["status", spec, "--time-scale", "0.002"]);
    assert_eq!(out.status.code(), Some(code), "{}", stdout(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_deleted_behind_loko_s_back_is_planned_and_created_again() {
    let w = world().await;
    let spec = w.spec(&pool("helium", 2, "t1.small.x86"));
    let spec = spec.to_str().unwrap();
    assert!(w.loko(&["run", spec]).status.success());
    assert_status(&w, spec, 0);

    delete_behind_loko_s_back(&w, &["supernova-helium-worker-1"]).await;
    assert_status(&w, spec, 4);
    let out = w.loko(&["plan", spec]);
    assert!(out.status.success());
    assert!(
        stdout(&out).contains("+ create supernova-helium-worker-1 (gone since run 1)")
            && stdout(&out).contains("Plan: 1 to add, 0 to change, 0 to destroy."),
        "{}",
        stdout(&out)
    );

    let out = w.loko(&["run", spec]);
    assert!(out.status.success());
    assert!(!stdout(&out).contains("Nothing to do"), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("supernova-helium-worker-1: device"),
        "the drift is said: {}",
        stderr(&out)
    );
    w.assert_cluster(&hosts(), &["supernova-helium-worker-1"]);
    assert_eq!(w.devices().ever["supernova-helium-worker-1"], 2);
    assert_status(&w, spec, 0);
    let journal = w.journal_json();
    assert!(journal.contains("drift_detected"), "journaled: {journal}");
    // Every device carries the cluster's id, the first ones and the replacement alike.
    let ids: std::collections::BTreeSet<String> = w
        .sim
        .state()
        .devices
        .iter()
        .flat_map(|d| {
            d.tags
                .iter()
                .filter(|t| t.starts_with("loko:cluster-id="))
                .cloned()
        })
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert!(
        w.sim
            .state()
            .devices
            .iter()
            .all(|d| d.tags.iter().any(|t| ids.contains(t)))
    );

    // And the run after it finds nothing to redo.
    let out = w.loko(&["run", spec]);
    assert!(stdout(&out).contains("Nothing to do"), "{}", stdout(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emptied_cloud_is_built_again() {
    let w = world().await;
    let spec = w.spec(&pool("helium", 2, "t1.small.x86"));
    let spec = spec.to_str().unwrap();
    assert!(w.loko(&["run", spec]).status.success());
    let all: Vec<String> = hosts();
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    delete_behind_loko_s_back(&w, &all).await;

    let out = w.loko(&["run", spec]);
    assert!(out.status.success());
    assert!(!stdout(&out).contains("Nothing to do"), "{}", stdout(&out));
    w.assert_cluster(&hosts(), &all);
    assert_eq!(w.static_control_planes(), 1);
    // The DNS record names the new controller's address.
    let controller = w.active_device("supernova-controller-0").unwrap();
    let records = w.records();
    assert!(
        records
            .values()
            .any(|v| v.contains(&controller.public_ipv4.to_string())),
        "{records:?} {controller:?}"
    );
    assert_status(&w, spec, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_after_an_interrupted_destroy_builds_again() {
    let w = world().await;
    let spec = w.spec(&pool("helium", 2, "t1.small.x86"));
    let spec = spec.to_str().unwrap();
    assert!(w.loko(&["run", spec]).status.success());

    // Ctrl-C as soon as the destroy has deleted a device.
    let mut child = w.spawn_quiet(&["destroy", spec, "--yes"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while w.devices().live.len() == hosts().len() {
        assert!(Instant::now() < deadline, "the destroy deleted nothing");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let pid = child.0.id().to_string();
    loko_tests::run(std::process::Command::new("kill").args(["-INT", &pid]));
    let status = child.0.wait().unwrap();
    eprintln!("the destroy ended {status:?}");

    let out = w.loko(&["run", spec]);
    assert!(out.status.success());
    assert!(!stdout(&out).contains("Nothing to do"), "{}", stdout(&out));
    let live = w.devices().live;
    assert_eq!(
        live.keys().cloned().collect::<Vec<_>>(),
        hosts(),
        "every node has a device again"
    );
    assert_status(&w, spec, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scale_down_off_a_terminal_needs_a_yes_and_names_the_devices() {
    let w = world().await;
    let spec = w.spec(&pool("helium", 3, "t1.small.x86"));
    let spec = spec.to_str().unwrap();
    assert!(w.loko(&["run", spec]).status.success());
    let ids: std::collections::BTreeMap<String, String> = w
        .sim
        .state()
        .devices
        .into_iter()
        .map(|d| (d.hostname, d.id))
        .collect();

    // `count: 3` → `1`: two devices would go. Refused before any change, naming them.
    w.spec(&pool("helium", 1, "t1.small.x86"));
    let deletes = |w: &World| w.sim.state().requests.get("packet.devices.delete").copied();
    let before = deletes(&w);
    let out = w.loko(&["run", spec]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    for host in ["supernova-helium-worker-1", "supernova-helium-worker-2"] {
        let line = format!("device {} ({host})", ids[host]);
        assert!(stderr(&out).contains(&line), "{line} in {}", stderr(&out));
    }
    assert!(stderr(&out).contains("--yes"), "{}", stderr(&out));
    assert_eq!(deletes(&w), before, "nothing deleted");
    assert_eq!(w.devices().live.len(), 4);

    let out = w.loko(&["run", spec, "--yes"]);
    assert!(out.status.success());
    w.assert_cluster(&hosts()[..2], &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_of_the_spec_with_a_fresh_journal_leaves_the_live_cluster_alone() {
    let w = world().await;
    let spec = w.spec(&pool("helium", 2, "t1.small.x86"));
    let spec = spec.to_str().unwrap();
    assert!(w.loko(&["run", spec]).status.success());
    let before = w.sim.state().devices;

    // The same cluster, a pool's type changed, from a fresh state directory: its journal
    // knows nothing of the live devices that carry the cluster's tags.
    let copy = w.root.join("copy.yaml");
    let text = std::fs::read_to_string(spec)
        .unwrap()
        .replace("type: t1.small.x86", "type: c3.small.x86");
    std::fs::write(&copy, text).unwrap();
    let fresh = w.root.join("fresh-state");
    let copy = copy.to_str().unwrap();
    let fresh = fresh.to_str().unwrap();
    let out = w.loko(&["plan", copy, "--state-dir", fresh]);
    assert!(
        stderr(&out).contains("loko run would stop before any change"),
        "{}",
        stderr(&out)
    );
    let out = w.loko(&["run", copy, "--state-dir", fresh, "--yes"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    for device in &before {
        let line = format!("device {} ({}", device.id, device.hostname);
        assert!(stderr(&out).contains(&line), "{line} in {}", stderr(&out));
    }
    assert!(
        stderr(&out).contains(fresh),
        "names the journal: {}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("cluster id "), "{}", stderr(&out));
    assert_eq!(
        w.sim.state().devices,
        before,
        "the live cluster is untouched"
    );
    assert_status(&w, spec, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_whose_journal_was_lost_is_adopted_only_when_asked() {
    let w = world().await;
    let spec = w.spec(&pool("helium", 1, "t1.small.x86"));
    let spec = spec.to_str().unwrap();
    assert!(w.loko(&["run", spec]).status.success());
    let before = w.sim.state().devices;
    std::fs::remove_dir_all(w.state_dir()).unwrap();

    // Refused, naming the devices, with the way to take them over.
    let out = w.loko(&["run", spec]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--adopt"), "{}", stderr(&out));
    // Asked for, but without a yes off a terminal: listed and refused.
    let out = w.loko(&["run", spec, "--adopt"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    for device in &before {
        let line = format!("device {} ({}", device.id, device.hostname);
        assert!(stderr(&out).contains(&line), "{line} in {}", stderr(&out));
    }
    assert_eq!(w.sim.state().devices, before);

    let out = w.loko(&["run", spec, "--adopt", "--yes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let hosts: Vec<String> = hosts()[..2].to_vec();
    w.assert_cluster(&hosts, &[]);
    assert_eq!(w.sim.state().devices.len(), before.len(), "nothing created");
    assert_status(&w, spec, 0);

    // Another CA (a lost asset directory too) never takes them over.
    std::fs::remove_dir_all(w.root.join("assets")).unwrap();
    let out = w.loko(&["run", spec, "--adopt", "--yes"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(w.sim.state().devices.len(), before.len(), "nothing created");
}
