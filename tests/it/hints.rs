//! Hints and numbers that agree with what they point at (issue 31): a hint's command runs as
//! printed; the attempt numbers of the run table are those of the progress lines and `--step`.

use std::process::Command;

use journal::testing::{started, succeeded};
use journal::{Digest, Event, Outputs, RunKind, RunOutcome, StepId};

use crate::binary::{loko, text};
use crate::journal_cmd::{sample_journal, write_journal};

/// A step missing from a run: the hint names the command that lists the run's steps, with
/// the journal it was asked about, and that command works.
#[test]
fn a_missing_step_hints_a_command_that_runs_as_printed() {
    let (_dir, state) = sample_journal();
    let out = loko(&["journal", "--state-dir", &state, "1", "--step", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    let said = text(&out.stderr);
    let hinted = format!("loko journal --state-dir {state} 1");
    assert!(
        said.contains(&format!("`{hinted}` lists its steps")),
        "{said}"
    );
    let args: Vec<&str> = hinted.split(' ').skip(1).collect();
    let listed = loko(&args);
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    assert!(text(&listed.stdout).contains("device/n-0"));
}

/// A step that runs again in a later run goes on counting (`loko run` printed "attempt 4"):
/// the run table shows that number, as `--step` does, not how many attempts the run made.
#[test]
fn the_run_table_numbers_attempts_as_the_progress_lines_do() {
    let (dir, state) = sample_journal();
    let device = StepId::new("device/n-0").unwrap();
    write_journal(
        std::path::Path::new(&state),
        RunKind::Apply,
        (serde_json::json!({}), Digest::of(b"spec")),
        vec![device.clone()],
        vec![
            started(&device, 4),
            succeeded(
                &device,
                4,
                Outputs::new().with("device_id", "d-42").unwrap(),
                10,
            ),
            Event::RunEnded {
                outcome: RunOutcome::Succeeded,
            },
        ],
    );
    let out = loko(&["journal", "--state-dir", &state, "2"]);
    let table = text(&out.stdout);
    let line = table
        .lines()
        .find(|l| l.starts_with("device/n-0"))
        .expect(&table);
    assert!(line.contains(" 4 "), "{table}");
    let out = loko(&[
        "journal",
        "--state-dir",
        &state,
        "2",
        "--step",
        "device/n-0",
    ]);
    assert!(text(&out.stdout).contains("attempt 4 started"));
    drop(dir);
}

/// `destroy` lists what it deletes; a device loko itself deleted (a pool scaled down) is not
/// among them, as "the device of X, if it was created".
#[test]
fn destroy_lists_no_device_loko_deleted_itself() {
    let (_dir, spec) = loko_tests::example_copy("tutorial.yaml");
    let spec = spec.to_str().unwrap();
    // A scale-down deletes a device: it needs a yes off a terminal.
    let run = |what: &str| {
        let out = loko(&["run", spec, "--sim", "--time-scale", "0.02", "--yes"]);
        assert!(out.status.success(), "{what}: {}", text(&out.stderr));
    };
    run("the tutorial");
    let text_of_spec = std::fs::read_to_string(spec).unwrap();
    assert!(text_of_spec.contains("    count: 2\n"));
    std::fs::write(
        spec,
        text_of_spec.replace("    count: 2\n", "    count: 1\n"),
    )
    .unwrap();
    run("the pool scaled down");
    let out = loko(&["destroy", spec, "--sim"]);
    assert_eq!(out.status.code(), Some(2), "no terminal: --yes is needed");
    let listed = text(&out.stderr);
    assert!(listed.contains("(supernova-helium-worker-0)"), "{listed}");
    assert!(!listed.contains("supernova-helium-worker-1"), "{listed}");
}

/// A standalone `loko sim --state FILE` started again serves the same endpoints and token, so
/// the `endpoints:` block and the exports pasted from its first start keep working.
#[test]
fn a_restarted_simulator_keeps_its_endpoints_and_token() {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("sim.json");
    // A loopback address of this test's own, port left to the system: between the two starts,
    // no other test's listener can take the port the state file keeps.
    let listen = own_loopback();
    let start = || {
        let mut sim = loko_tests::Killed(
            Command::new(env!("CARGO_BIN_EXE_loko"))
                .args([
                    "sim",
                    "--state",
                    state.to_str().unwrap(),
                    "--listen",
                    &listen,
                ])
                .env_remove("RUST_LOG")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        );
        let mut pasted = Vec::new();
        for line in std::io::BufReader::new(sim.0.stdout.take().unwrap()).lines() {
            let line = line.unwrap();
            if line.starts_with("Serving until Ctrl-C") {
                break;
            }
            if line.contains("packet_api_url:")
                || line.contains("route53_endpoint_url:")
                || line.starts_with("export PACKET_AUTH_TOKEN=")
            {
                pasted.push(line);
            }
        }
        let pid = sim.0.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-INT", &pid])
                .status()
                .unwrap()
                .success()
        );
        assert!(sim.0.wait().unwrap().success());
        pasted
    };
    let first = start();
    assert_eq!(first.len(), 3, "{first:?}");
    assert_eq!(start(), first);
}

/// `127.a.b.c:0`, an address of the loopback network that differs between test processes.
fn own_loopback() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let x = nanos ^ std::process::id().rotate_left(13);
    let octet = |shift: u32| 2 + (x >> shift) % 250;
    format!("127.{}.{}.{}:0", octet(16), octet(8), octet(0))
}
