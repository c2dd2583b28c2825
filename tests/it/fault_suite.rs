//! The fault suite: `loko run` against a simulator that misbehaves the way Packet, Route53 and
//! the nodes did for users of the Terraform modules (`peer-lessons.md`). Each run either builds
//! the right cluster, or stops with an error naming the object and then, once the fault is
//! lifted, resumes to completion. Nothing duplicated, nothing orphaned, no secret printed.

use std::process::Output;
use std::time::Duration;

use loko_tests::world::{World, assert_no_secret, pool, stderr, stdout};
use sim::{DeviceFate, DeviceFaults, FaultPlan, OperationFaults};

const LOKO: &str = env!("CARGO_BIN_EXE_loko");
const WORKERS: u32 = 6;

fn hosts() -> Vec<String> {
    let mut hosts = vec!["supernova-controller-0".to_owned()];
    hosts.extend((0..WORKERS).map(|i| format!("supernova-helium-worker-{i}")));
    hosts
}

/// A cluster of one controller and six workers, run once under `plan`.
async fn run_under(plan: FaultPlan) -> (World, String, Output) {
    let w = World::quick(LOKO).await;
    w.sim.set_faults(plan).expect("a valid fault plan");
    let spec = w.spec(&pool("helium", WORKERS, "t1.small.x86"));
    let spec = spec.to_str().unwrap().to_owned();
    let out = w.loko(&["run", &spec]);
    (w, spec, out)
}

/// The run succeeded, or failed (exit 1) naming `culprit` and succeeds once the faults are
/// lifted; either way the cluster is exactly the desired one. Returns all loko printed.
fn completes(w: &World, spec: &str, first: Output, culprit: &str, replaced: &[&str]) -> String {
    let mut printed = stdout(&first) + &stderr(&first);
    if !first.status.success() {
        assert_eq!(first.status.code(), Some(1), "a failed run exits 1");
        let err = stderr(&first);
        assert!(
            err.contains(culprit),
            "the error does not name {culprit}: {err}"
        );
        w.sim.set_faults(FaultPlan::default()).unwrap();
        let out = w.loko(&["run", spec]);
        assert!(
            out.status.success(),
            "the run after lifting the faults failed"
        );
        assert!(stdout(&out).contains("resuming run 1"), "{}", stdout(&out));
        printed += &(stdout(&out) + &stderr(&out));
    }
    w.assert_cluster(&hosts(), replaced);
    assert_eq!(w.static_control_planes(), 1);
    assert_no_secret("the journal", &w.journal_json(), w.sim.token());
    assert_no_secret("loko's output", &printed, w.sim.token());
    printed
}

/// The journal holds no failed attempt; `what` names the fault that must not have caused one.
fn assert_no_failed_attempt(w: &World, what: &str) {
    let journal = w.journal_json();
    let failed: Vec<&str> = journal
        .lines()
        .filter(|l| l.contains("step_failed"))
        .collect();
    assert!(failed.is_empty(), "{what} failed its attempt: {failed:?}");
}

fn every_operation(faults: OperationFaults) -> FaultPlan {
    FaultPlan::seeded(7).operation("*", faults)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_percent_server_errors() {
    let (w, spec, out) = run_under(every_operation(
        OperationFaults::default().server_errors(0.1),
    ))
    .await;
    completes(&w, &spec, out, "failed", &[]);
    let injected = w.sim.state().injected_faults;
    assert!(
        injected.get("server_error") > Some(&0),
        "no 500 was sent: {injected:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_of_429_with_retry_after() {
    let plan = every_operation(
        OperationFaults::default()
            .rate_limited_burst(10, 1)
            .rate_limited(0.05, 1),
    );
    let (w, spec, out) = run_under(plan).await;
    completes(&w, &spec, out, "429", &[]);
    assert!(w.sim.state().rate_limited_responses >= 10);
}

/// A 429 on a create means the create was refused, not done: the step waits the server's
/// `Retry-After` and sends it again within the same attempt, so the journal shows no failed
/// attempt and no lookup for a device that cannot exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_create_is_sent_again_within_its_attempt() {
    let plan = FaultPlan::seeded(5).operation(
        "packet.devices.create",
        OperationFaults::default().rate_limited_burst(3, 1),
    );
    let (w, spec, out) = run_under(plan).await;
    assert!(out.status.success(), "{}", stderr(&out));
    completes(&w, &spec, out, "429", &[]);
    assert_eq!(w.sim.state().injected_faults.get("rate_limited"), Some(&3));
    assert_no_failed_attempt(&w, "a create's 429");
}

/// A 429 on a delete is a refusal too: scaling a pool down waits the server's `Retry-After` and
/// sends the delete again within the step's attempt, instead of failing it and starting over
/// from a fresh listing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_delete_is_sent_again_within_its_attempt() {
    let (w, _, out) = run_under(FaultPlan::default()).await;
    assert!(out.status.success(), "{}", stderr(&out));
    w.sim
        .set_faults(FaultPlan::seeded(5).operation(
            "packet.devices.delete",
            OperationFaults::default().rate_limited_burst(3, 1),
        ))
        .unwrap();
    let smaller = w.spec(&pool("helium", WORKERS - 3, "t1.small.x86"));
    let out = w.loko(&["run", smaller.to_str().unwrap(), "--yes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(w.sim.state().injected_faults.get("rate_limited"), Some(&3));
    let kept: Vec<String> = hosts().into_iter().take(1 + WORKERS as usize - 3).collect();
    w.assert_cluster(&kept, &[]);
    assert_no_failed_attempt(&w, "a delete's 429");
}

/// A create whose answer is lost (the device exists, the client got a 502) is the classic
/// orphan maker; the retry must find the device by its tag, not create a second one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_create_responses_make_no_duplicate() {
    let plan = FaultPlan::seeded(3).operation(
        "packet.devices.create",
        OperationFaults::default().lost_responses(0.5),
    );
    let (w, spec, out) = run_under(plan).await;
    let printed = completes(&w, &spec, out, "device/", &[]);
    assert!(
        printed.contains("adopted device"),
        "no create was lost: {printed}"
    );
    let creates = w.sim.state().requests["packet.devices.create"];
    assert_eq!(creates, u64::from(WORKERS) + 1, "one create per node");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_truncated_json() {
    let plan = FaultPlan::seeded(11).operation(
        "*",
        OperationFaults::default()
            .malformed_json(0.2)
            .truncated_json(0.2),
    );
    let (w, spec, out) = run_under(plan).await;
    completes(&w, &spec, out, "failed", &[]);
    let injected = w.sim.state().injected_faults;
    assert!(
        injected.get("malformed_json") > Some(&0) && injected.get("truncated_json") > Some(&0),
        "no broken body was sent: {injected:?}"
    );
}

/// Devices that end `failed`, and one that then answers 403 (moved out of the project, as
/// Packet did), are replaced; the failed ones are deleted, none is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_and_forbidden_devices_are_replaced() {
    let plan = FaultPlan::seeded(5)
        .devices(DeviceFaults {
            failed_share: 0.05,
            ..DeviceFaults::default()
        })
        .device_fate("supernova-helium-worker-1", DeviceFate::Failed)
        .device_fate("supernova-helium-worker-2", DeviceFate::FailedThenForbidden);
    let (w, spec, out) = run_under(plan).await;
    // Every device of the two forced hostnames fails: the step gives up after its bounded
    // replacements and names the node; with the fault lifted, the next run finishes.
    let all: Vec<String> = hosts();
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    completes(&w, &spec, out, "supernova-helium-worker-", &all);
    let ever = w.devices().ever;
    assert!(ever["supernova-helium-worker-1"] >= 2, "{ever:?}");
    assert!(ever["supernova-helium-worker-2"] >= 2, "{ever:?}");
}

/// A device that never leaves `provisioning` is replaced after the provisioning deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_stuck_provisioning_is_replaced() {
    let plan = FaultPlan::seeded(9)
        .device_fate("supernova-helium-worker-0", DeviceFate::StuckProvisioning);
    let (w, spec, out) = run_under(plan).await;
    let printed = completes(
        &w,
        &spec,
        out,
        "supernova-helium-worker-0",
        &["supernova-helium-worker-0"],
    );
    assert!(
        printed.contains("past its provisioning deadline"),
        "{printed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_device_state_is_waited_on() {
    let plan = FaultPlan::seeded(13).devices(DeviceFaults {
        unknown_state_share: 1.0,
        unknown_state: "post_provisioning".into(),
        ..DeviceFaults::default()
    });
    let (w, spec, out) = run_under(plan).await;
    assert!(
        out.status.success(),
        "an unknown state must not fail the run"
    );
    let printed = completes(&w, &spec, out, "", &[]);
    assert!(printed.contains("post_provisioning"), "{printed}");
}

/// SSH refused for the first 300 simulated seconds of every node: the SSH steps retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_refused_while_nodes_boot() {
    // 1500 simulated seconds are 3 s here: long enough that a busy machine still reaches the
    // SSH steps inside the window (300 s, 0.6 s, was missed under load).
    let plan = FaultPlan::seeded(17).ssh_refused_for(Duration::from_secs(1500));
    let (w, spec, out) = run_under(plan).await;
    let printed = completes(&w, &spec, out, "etcd-secrets", &[]);
    assert!(
        printed.contains("retrying"),
        "no SSH step met the refusal: {printed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_apiserver_is_waited_for() {
    let plan = FaultPlan::seeded(19).apiserver_start_delay(Duration::from_secs(900));
    let (w, spec, out) = run_under(plan).await;
    assert!(out.status.success(), "a slow apiserver must be waited for");
    let printed = completes(&w, &spec, out, "", &[]);
    // Awaited as progress, not printed as an error (issue 15).
    assert!(
        printed.contains("waiting for the static control plane's apiserver"),
        "{printed}"
    );
    assert!(!printed.contains("does not answer"), "{printed}");
}
