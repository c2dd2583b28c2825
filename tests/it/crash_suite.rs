//! The crash suite: `loko run` of a whole cluster against a standalone simulator, killed at every
//! point where its journal changes (`LOKO_CRASH_AT_APPEND=k`), at random moments (SIGKILL), and
//! interrupted (SIGINT); each time the next `loko run` must finish the same cluster a clean run
//! builds, with nothing done twice: no device created twice, none failed or orphaned, the same
//! DNS records, the CA and keys untouched since first written, the static control plane running on the controller.
//!
//! Every run is a real process; the simulator runs at a small time scale so that a
//! five-minute provisioning takes a fraction of a second.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use loko_tests::world::{
    World, WorldConfig, assert_no_secret, assert_resumed_after_crash, crash_at_append,
    file_digests, stdout,
};

const LOKO: &str = env!("CARGO_BIN_EXE_loko");

fn config() -> WorldConfig {
    WorldConfig {
        time_scale: 0.002,
        moto: false,
        openssh: false,
    }
}

/// What a clean run of an example builds, and how many journal appends it makes.
struct Clean {
    appends: usize,
    hosts: Vec<String>,
    record_names: BTreeSet<String>,
    /// Controllers, each running the static control plane.
    control_planes: usize,
    elapsed: Duration,
}

async fn clean_run(example: &str) -> Clean {
    let w = World::start(LOKO, config()).await;
    let spec = w.spec_from_example(example);
    let t0 = std::time::Instant::now();
    let out = w.loko(&["run", spec.to_str().unwrap()]);
    let elapsed = t0.elapsed();
    assert!(out.status.success(), "the clean run failed");
    let journal = w.loko(&[
        "journal",
        "1",
        "--json",
        "--state-dir",
        w.state_dir().to_str().unwrap(),
    ]);
    let appends = stdout(&journal).lines().count();
    let hosts: Vec<String> = w.devices().live.into_keys().collect();
    let record_names = w.records().into_keys().collect();
    let control_planes = w.static_control_planes();
    assert!(control_planes > 0, "no controller runs a control plane");
    Clean {
        appends,
        hosts,
        record_names,
        control_planes,
        elapsed,
    }
}

/// The checks after every crash and resume.
fn assert_like_clean(w: &World, clean: &Clean, what: &str) {
    w.assert_cluster(&clean.hosts, &[]);
    let records = w.records();
    let names: BTreeSet<String> = records.keys().cloned().collect();
    assert_eq!(names, clean.record_names, "{what}: DNS record names");
    let ips: BTreeSet<String> = w
        .sim
        .state()
        .devices
        .iter()
        .filter(|d| d.state == "active")
        .flat_map(|d| [d.public_ipv4.to_string(), d.private_ipv4.to_string()])
        .collect();
    for (name, values) in &records {
        assert!(!values.is_empty(), "{what}: {name} has no value");
        for value in values {
            assert!(
                ips.contains(value),
                "{what}: {name} points at {value}, no live device's address"
            );
        }
    }
    assert_eq!(
        w.static_control_planes(),
        clean.control_planes,
        "{what}: static control planes"
    );
    assert_no_secret("the journal", &w.journal_json(), w.sim.token());
}

/// Files of the asset directory (not the journal, not a temporary file of a write the crash
/// cut short).
fn assets(w: &World) -> BTreeMap<String, String> {
    file_digests(&w.root.join("assets"))
        .into_iter()
        .filter(|(path, _)| !path.starts_with(".loko") && !path.ends_with(".tmp"))
        .collect()
}

/// Crashes a run of `example` right after its k-th append, then runs again to the end.
async fn crash_at(example: &str, k: usize, clean: &Clean) {
    let what = format!("{example}, crash at append {k}/{}", clean.appends);
    let w = World::start(LOKO, config()).await;
    let spec = w.spec_from_example(example);
    let spec = spec.to_str().unwrap();
    crash_at_append(&mut w.command(&["run", spec]), k, &what);
    let written = assets(&w);

    let out = w.loko(&["run", spec]);
    assert!(out.status.success(), "{what}: the resumed run failed");
    assert_resumed_after_crash(&stdout(&out), k, clean.appends, &what);
    let now = assets(&w);
    for (path, digest) in &written {
        assert_eq!(
            now.get(path),
            Some(digest),
            "{what}: {path} changed after it was first written"
        );
    }
    assert_like_clean(&w, clean, &what);
}

/// The tutorial's cluster, crashed at every append point of a clean run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tutorial_resumes_after_a_crash_at_every_append() {
    let clean = clean_run("tutorial").await;
    eprintln!(
        "clean run: {} appends, {:.1}s",
        clean.appends,
        clean.elapsed.as_secs_f64()
    );
    assert!(clean.appends > 20, "{} appends", clean.appends);
    for k in 1..=clean.appends {
        crash_at("tutorial", k, &clean).await;
    }
}

/// The hybrid example (three controllers, an arm64 iPXE pool), crashed at a sample of points.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hybrid_resumes_after_a_crash_at_sampled_appends() {
    let clean = clean_run("hybrid").await;
    let n = clean.appends;
    let mut points: BTreeSet<usize> = [1, 2, n / 5, n / 3, n / 2, 2 * n / 3, n - 2, n]
        .into_iter()
        .filter(|k| *k >= 1)
        .collect();
    points.insert(n - 1);
    for k in points {
        crash_at("hybrid", k, &clean).await;
    }
}

/// SIGKILL at 30 random moments of runs (not only at appends): on each cluster, runs are
/// killed until one finishes first, then the cluster is checked and a new one begins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_sigkills_leave_nothing_to_clean_up() {
    let clean = clean_run("tutorial").await;
    let seed: u64 = std::env::var("LOKO_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("seed {seed} (LOKO_TEST_SEED={seed} repeats this test)");
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
    let span = clean.elapsed.as_millis() as u64;
    let mut kills = 0;
    let mut worlds = 0;
    while kills < 30 {
        worlds += 1;
        assert!(
            worlds <= 40,
            "only {kills} kills hit a running loko in 40 clusters"
        );
        let w = World::start(LOKO, config()).await;
        let spec = w.spec_from_example("tutorial");
        let spec = spec.to_str().unwrap();
        let mut killed_here = 0;
        // At most 5 kills a cluster: on a machine that got busier since the clean run was
        // timed, a resumed run can need longer than the whole span, and would be killed forever.
        while killed_here < 5 {
            let after = Duration::from_millis(rand::Rng::random_range(&mut rng, 0..span.max(1)));
            let mut child = w.spawn_quiet(&["run", spec]);
            tokio::time::sleep(after).await;
            if child.0.try_wait().unwrap().is_some() {
                break;
            }
            child.0.kill().unwrap();
            child.0.wait().unwrap();
            killed_here += 1;
        }
        kills += killed_here;
        let out = w.loko(&["run", spec]);
        assert!(
            out.status.success(),
            "cluster {worlds}: the final run failed"
        );
        assert_like_clean(
            &w,
            &clean,
            &format!("cluster {worlds} after {killed_here} kills"),
        );
    }
    eprintln!("{kills} kills over {worlds} clusters");
}

/// Ctrl-C (SIGINT) while devices provision: exit 130, and the next run finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_stops_with_130_and_the_run_resumes() {
    let clean = clean_run("tutorial").await;
    let w = World::start(LOKO, config()).await;
    let spec = w.spec_from_example("tutorial");
    let spec = spec.to_str().unwrap();
    let mut child = w.spawn_quiet(&["run", spec]);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while w.sim.state().devices.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "no device was created"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let pid = child.0.id().to_string();
    loko_tests::run(std::process::Command::new("kill").args(["-INT", &pid]));
    let status = child.0.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{status:?}");
    let out = w.loko(&["run", spec]);
    assert!(out.status.success());
    assert!(stdout(&out).contains("resuming run 1"), "{}", stdout(&out));
    assert_like_clean(&w, &clean, "after SIGINT");
}
