//! Workers leave gracefully: before a scale down deletes a worker's device, its node is
//! cordoned, its pods evicted as their PodDisruptionBudgets allow, and its Node deleted, in
//! that order, as the simulator's log of API changes (`/_sim/state`'s `api_events`) shows; a
//! budget that never allows it fails the run naming the pod and the budget. Run by the built
//! binary against a standalone simulator.

use std::path::Path;

use loko_tests::world::{World, pool, stderr, stdout};

const LOKO: &str = env!("CARGO_BIN_EXE_loko");

async fn world() -> World {
    World::quick(LOKO).await
}

/// A Deployment of three pods (one per worker: it does not tolerate the controller's taint)
/// and a budget over them.
fn web(budget: &str) -> [serde_json::Value; 2] {
    let labels = serde_json::json!({"app": "web"});
    [
        serde_json::json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "web", "image": "nginx"}]},
                },
            },
        }),
        serde_json::json!({
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {budget: 2, "selector": {"matchLabels": labels}},
        }),
    ]
}

/// Server-side applies `objects` as the cluster's admin (the asset directory's certificate),
/// through the first controller's apiserver.
fn apply(w: &World, objects: &[serde_json::Value]) {
    let controller = w
        .active_device("supernova-controller-0")
        .map(|d| d.public_ipv4)
        .expect("the controller runs");
    let tls = w.root.join("assets/tls");
    let name = "supernova.packet.example.com";
    for object in objects {
        let path = match object["kind"].as_str() {
            Some("Deployment") => "/apis/apps/v1/namespaces/default/deployments/web",
            _ => "/apis/policy/v1/namespaces/default/poddisruptionbudgets/web",
        };
        let out = loko_tests::curl_as_admin(&tls)
            .args(["-sS", "-f", "-X", "PATCH"])
            .args(["-H", "Content-Type: application/apply-patch+yaml"])
            .args(["--resolve", &format!("{name}:6443:{controller}")])
            .args(["--data-binary", &object.to_string()])
            .arg(format!(
                "https://{name}:6443{path}?fieldManager=test&force=true"
            ))
            .output()
            .expect("curl");
        assert!(
            out.status.success(),
            "{path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Where in the simulator's log each of `object`'s changes is (by verb and object).
fn positions(w: &World, verb: &str, object: &str) -> Vec<usize> {
    w.sim
        .state()
        .api_events
        .iter()
        .enumerate()
        .filter(|(_, e)| e.verb == verb && e.object.starts_with(object))
        .map(|(i, _)| i)
        .collect()
}

fn spec_of(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scale_down_drains_each_worker_before_deleting_its_device() {
    let w = world().await;
    let spec = w.spec(&pool("helium", 3, "t1.small.x86"));
    assert!(w.loko(&["run", spec_of(&spec)]).status.success());
    apply(&w, &web("maxUnavailable"));

    w.spec(&pool("helium", 1, "t1.small.x86"));
    let plan = w.loko(&["plan", spec_of(&spec)]);
    assert!(
        stdout(&plan).contains("~ drain supernova-helium-worker-2 first"),
        "{}",
        stdout(&plan)
    );
    let out = w.loko(&["run", spec_of(&spec), "--yes"]);
    assert!(out.status.success(), "{}", stderr(&out));

    let events = w.sim.state().api_events;
    for host in ["supernova-helium-worker-1", "supernova-helium-worker-2"] {
        let cordon = positions(&w, "patch", &format!("nodes/{host}"));
        let node_deleted = positions(&w, "delete", &format!("nodes/{host}"));
        let device_deleted = positions(&w, "delete", &format!("packet/devices/{host}"));
        assert_eq!(cordon.len(), 1, "{events:#?}");
        assert_eq!(node_deleted.len(), 1, "{events:#?}");
        assert_eq!(device_deleted.len(), 1, "{events:#?}");
        assert!(
            cordon[0] < node_deleted[0] && node_deleted[0] < device_deleted[0],
            "{events:#?}"
        );
        assert_eq!(events[cordon[0]].detail, "spec.unschedulable=true");
        assert_eq!(events[cordon[0]].user, "kubernetes-admin", "{events:#?}");
        // Its web pod was evicted between the cordon and the Node's deletion (the other
        // worker drains at the same time: its eviction is told apart by the node).
        let evicted: Vec<usize> = positions(&w, "create", "pods/default/web-")
            .into_iter()
            .filter(|i| events[*i].detail == format!("nodeName={host}"))
            .collect();
        assert!(
            evicted
                .iter()
                .all(|i| cordon[0] < *i && *i < node_deleted[0]),
            "{events:#?}"
        );
        assert_eq!(evicted.len(), 1, "{events:#?}");
    }
    w.assert_cluster(
        &["supernova-controller-0", "supernova-helium-worker-0"].map(str::to_owned),
        &[],
    );

    // The deletions are done: the next run has nothing to do (no delete step planned again).
    let out = w.loko(&["run", spec_of(&spec), "--yes"]);
    assert!(
        stdout(&out).contains("Nothing to do: the cluster matches the spec"),
        "{}",
        stdout(&out)
    );

    // The pool's type changes: its worker's device is deleted by its device step, drained
    // first, and its new device registers a new Node.
    w.spec(&pool("helium", 1, "c3.small.x86"));
    let out = w.loko(&["run", spec_of(&spec), "--yes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let host = "supernova-helium-worker-0";
    let events = w.sim.state().api_events;
    let cordon = positions(&w, "patch", &format!("nodes/{host}"));
    let node_deleted = positions(&w, "delete", &format!("nodes/{host}"));
    let device_deleted = positions(&w, "delete", &format!("packet/devices/{host}"));
    assert_eq!(
        (cordon.len(), node_deleted.len(), device_deleted.len()),
        (1, 1, 1),
        "{events:#?}"
    );
    assert!(
        cordon[0] < node_deleted[0] && node_deleted[0] < device_deleted[0],
        "{events:#?}"
    );
    w.assert_cluster(
        &["supernova-controller-0", "supernova-helium-worker-0"].map(str::to_owned),
        &[host],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_a_budget_blocks_fails_naming_the_pod_and_the_budget() {
    let w = world().await;
    let spec = w.spec(&pool("helium", 3, "t1.small.x86"));
    assert!(w.loko(&["run", spec_of(&spec)]).status.success());
    apply(&w, &web("maxUnavailable").map(|mut o| {
        if o["kind"] == "PodDisruptionBudget" {
            o["spec"] = serde_json::json!({"minAvailable": 3, "selector": {"matchLabels": {"app": "web"}}});
        }
        o
    }));

    w.spec(&pool("helium", 2, "t1.small.x86"));
    let out = w.loko(&["run", spec_of(&spec), "--yes", "--drain-timeout", "2s"]);
    assert!(!out.status.success());
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        text.contains("node supernova-helium-worker-2 not drained after 2s"),
        "{text}"
    );
    assert!(text.contains("pod default/web-"), "{text}");
    assert!(
        text.contains("The disruption budget web needs 3 healthy pods and has 3 currently"),
        "{text}"
    );
    assert!(text.contains("--skip-drain"), "{text}");
    assert!(
        positions(&w, "delete", "packet/devices/").is_empty(),
        "no device deleted"
    );
    assert!(w.devices().live.contains_key("supernova-helium-worker-2"));

    // The user decides the budget may be broken.
    let out = w.loko(&["run", spec_of(&spec), "--yes", "--skip-drain"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("supernova-helium-worker-2 is not drained (--skip-drain)"),
        "{}",
        stdout(&out)
    );
    assert!(!w.devices().live.contains_key("supernova-helium-worker-2"));
    assert!(
        positions(&w, "delete", "nodes/").is_empty(),
        "no Node deleted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_without_an_apiserver_names_skip_drain_and_deletes_nothing() {
    let w = world().await;
    let spec = w.spec(&pool("helium", 2, "t1.small.x86"));
    assert!(w.loko(&["run", spec_of(&spec)]).status.success());
    // The controller comes back without its apiserver: the cluster's API is down.
    let plan: sim::FaultPlan = serde_json::from_value(serde_json::json!({
        "nodes": {"apiserver_start_delay_secs": 1e9},
    }))
    .expect("a fault plan");
    w.sim.set_faults(plan).expect("faults set");
    assert!(w.sim.reboot("supernova-controller-0").await);

    w.spec(&pool("helium", 1, "t1.small.x86"));
    let out = w.loko(&["run", spec_of(&spec), "--yes"]);
    assert!(!out.status.success());
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        text.contains("cannot drain node supernova-helium-worker-1: the apiserver at https://supernova.packet.example.com:"),
        "{text}"
    );
    assert!(
        text.contains("`loko run --skip-drain` deletes the device without draining"),
        "{text}"
    );
    assert!(w.devices().live.contains_key("supernova-helium-worker-1"));
    assert!(positions(&w, "delete", "packet/devices/").is_empty());
}
