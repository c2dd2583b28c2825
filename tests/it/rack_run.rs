//! `loko run` of a rack (`provider: redfish`): its setup checked before any step (every problem
//! in one usage error), then the demo's machines booted through the simulator's BMCs from
//! loko's boot server into a cluster; the demo's rack kept between commands
//! (`<state_dir>/sim/rack.json`), and its BMCs' faults from `--sim-faults`.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::binary::{loko_expect, text, without_bmc};

const MACHINES: [&str; 5] = ["rack-a1", "rack-a2", "rack-a3", "rack-b1", "rack-b2"];

/// The demo's rack as it saved itself (the example's state directory is `<asset_dir>/.loko`).
fn rack_file(dir: &Path) -> PathBuf {
    dir.join("assets/rack/.loko/sim/rack.json")
}

fn saved_rack(dir: &Path) -> Value {
    let text = std::fs::read_to_string(rack_file(dir)).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The saved machine `name`.
fn saved_machine<'a>(rack: &'a Value, name: &str) -> &'a Value {
    rack["machines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["spec"]["name"] == name)
        .unwrap_or_else(|| panic!("the rack holds no machine {name}: {rack:#}"))
}

/// How many resets the BMC of machine `name` ever accepted, by its saved events.
fn resets(rack: &Value, name: &str) -> usize {
    saved_machine(rack, name)["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e.as_str().is_some_and(|e| e.starts_with("reset ")))
        .count()
}

/// The rows of the node table a successful run prints, by role.
fn nodes_of_role(out: &str, role: &str) -> usize {
    out.lines()
        .filter(|l| l.starts_with("rack-") && l.split_whitespace().nth(1) == Some(role))
        .count()
}

#[test]
fn a_demo_rack_persists_between_runs_retires_what_left_and_boots_what_was_powered_off() {
    let (dir, spec) = loko_tests::example_copy("rack.yaml");
    let spec = spec.to_str().unwrap().to_owned();
    let (out, err) = loko_expect(&["run", &spec, "--sim", "--yes"], 0);
    for machine in MACHINES {
        assert!(
            out.contains(&format!("machine {machine}: next boot PXE, On sent")),
            "{out}{err}"
        );
    }
    assert!(out.contains("Cluster rack is ready"), "{out}{err}");
    assert_eq!(nodes_of_role(&out, "controller"), 3, "{out}");
    assert_eq!(nodes_of_role(&out, "worker"), 2, "{out}");
    let first = saved_rack(dir.path());

    // The machines stayed on, their nodes come back as they were: nothing to do, no reset.
    let (out, err) = loko_expect(&["run", &spec, "--sim", "--yes"], 0);
    assert!(
        out.contains("Nothing to do: the cluster matches the spec"),
        "{out}{err}"
    );
    assert!(!err.contains("powered off"), "{err}");
    let again = saved_rack(dir.path());
    for machine in MACHINES {
        assert_eq!(
            resets(&again, machine),
            resets(&first, machine),
            "{machine}"
        );
        assert_eq!(saved_machine(&again, machine)["powered"], true, "{machine}");
    }

    // A pool scaled down: its machine's node is drained, then the machine powered off; the
    // rack keeps it.
    let listed = std::fs::read_to_string(&spec).unwrap();
    let at = listed.find("  - name: rack-b2").unwrap();
    std::fs::write(&spec, &listed[..at]).unwrap();
    let (out, err) = loko_expect(&["run", &spec, "--sim", "--yes"], 0);
    let drained = out
        .find("drain/rack-b2: rack-b2 drained")
        .unwrap_or_else(|| panic!("{out}{err}"));
    let retired = out
        .find("retire/rack-b2: machine rack-b2 is off")
        .unwrap_or_else(|| panic!("{out}{err}"));
    assert!(drained < retired, "{out}");
    // The nodes were up all along: their apiserver answers the drain at once.
    assert!(!out.contains("drain/rack-b2: attempt 1 failed"), "{out}");
    assert!(out.contains("Cluster rack is ready"), "{out}{err}");
    assert_eq!(nodes_of_role(&out, "controller"), 3, "{out}");
    assert_eq!(nodes_of_role(&out, "worker"), 1, "{out}");
    let scaled = saved_rack(dir.path());
    assert_eq!(saved_machine(&scaled, "rack-b2")["powered"], false);
    assert_eq!(saved_machine(&scaled, "rack-b1")["powered"], true);
    // Retired is done: the next run has nothing to do (its retire step is not planned again).
    let (out, err) = loko_expect(&["run", &spec, "--sim", "--yes"], 0);
    assert!(
        out.contains("Nothing to do: the cluster matches the spec"),
        "{out}{err}"
    );
    assert!(!out.contains("retire/"), "{out}");

    // Powered off behind loko's back: the next run finds it off and boots it again.
    let mut edited = scaled.clone();
    let machines = edited["machines"].as_array_mut().unwrap();
    for machine in machines
        .iter_mut()
        .filter(|m| m["spec"]["name"] == "rack-b1")
    {
        machine["powered"] = Value::Bool(false);
    }
    std::fs::write(rack_file(dir.path()), edited.to_string()).unwrap();
    let (out, err) = loko_expect(&["run", &spec, "--sim", "--yes"], 0);
    assert!(
        err.contains("rack-b1: machine rack-b1 (booted by run 1) is powered off"),
        "{err}"
    );
    // From its disk, as installed: a reinstall would lose what the node keeps there.
    assert!(
        out.contains("+ power on rack-b1 (found off; from its disk, as installed by run 1)"),
        "{out}"
    );
    assert!(
        out.contains("machine rack-b1 was off: powered on from its disk"),
        "{out}{err}"
    );
    assert!(!out.contains("machine rack-b1: next boot PXE"), "{out}");
    assert!(out.contains("Cluster rack is ready"), "{out}{err}");
    assert_eq!(nodes_of_role(&out, "worker"), 1, "{out}");
    let booted = saved_rack(dir.path());
    assert_eq!(saved_machine(&booted, "rack-b1")["powered"], true);
    assert_eq!(
        resets(&booted, "rack-b1"),
        resets(&scaled, "rack-b1") + 1,
        "{booted:#}"
    );
}

/// `loko run` of the demo's rack with `--sim-faults` of the faults `rack` (JSON, by machine
/// name, as `sim::rack::BmcFault` names them), expecting exit `code`: the demo's directory and
/// what it printed.
fn run_with_rack_faults(rack: &str, code: i32) -> (tempfile::TempDir, String, String) {
    let (dir, spec) = loko_tests::example_copy("rack.yaml");
    let faults = dir.path().join("faults.json");
    std::fs::write(&faults, format!(r#"{{"rack": {rack}}}"#)).unwrap();
    let (out, err) = loko_expect(
        &[
            "run",
            spec.to_str().unwrap(),
            "--sim",
            "--yes",
            "--sim-faults",
            faults.to_str().unwrap(),
        ],
        code,
    );
    (dir, out, err)
}

#[test]
fn a_bmc_answering_503_for_a_while_is_waited_out_and_the_run_succeeds() {
    // One 503 for the setup's check, one for the machine step's first attempt.
    let (_dir, out, err) = run_with_rack_faults(r#"{"rack-a1": {"unavailable_requests": 2}}"#, 0);
    let retried = out
        .lines()
        .find(|l| l.contains("machine/rack-a1: attempt 1 failed, retrying in"))
        .unwrap_or_else(|| panic!("{out}{err}"));
    assert!(retried.contains("machine rack-a1: "), "{retried}");
    assert!(retried.contains("busy (retry after 5s)"), "{retried}");
    assert!(
        out.contains("machine rack-a1: next boot PXE, On sent"),
        "{out}{err}"
    );
    assert!(out.contains("Cluster rack is ready"), "{out}{err}");
}

#[test]
fn a_stuck_power_state_and_a_nic_booting_another_mac_fail_their_machines_by_name() {
    let (_dir, out, err) = run_with_rack_faults(
        r#"{"rack-a1": "power_stuck", "rack-b1": {"boots_with_mac": "52:54:00:b1:00:99"}}"#,
        1,
    );
    let failed = |step: &str| {
        err.lines()
            .find(|l| l.starts_with(&format!("failed: {step}: ")))
            .unwrap_or_else(|| panic!("{step} did not fail\n{out}{err}"))
            .to_owned()
    };
    let stuck = failed("machine/rack-a1");
    assert!(stuck.contains("machine rack-a1"), "{stuck}");
    assert!(
        stuck.contains("the power state is still Off, not On"),
        "{stuck}"
    );
    let swapped = failed("machine/rack-b1");
    assert!(swapped.contains("machine rack-b1"), "{swapped}");
    assert!(
        swapped.contains("unknown MAC(s) 52:54:00:b1:00:99"),
        "{swapped}"
    );
    assert!(err.contains("the run failed: 2 step(s) failed"), "{err}");
}

#[test]
fn a_bmc_refusing_its_account_is_a_setup_error_before_any_step() {
    let (dir, out, err) = run_with_rack_faults(r#"{"rack-a2": "unauthorized"}"#, 2);
    assert!(
        err.contains("1 problem(s) with the setup; nothing was changed"),
        "{err}"
    );
    assert!(
        err.contains("machine rack-a2: the BMC at http://127.") && err.contains("(401)"),
        "{err}"
    );
    assert!(!out.contains("run 1:"), "{out}");
    let rack = saved_rack(dir.path());
    for machine in MACHINES {
        assert_eq!(resets(&rack, machine), 0, "{machine}: {rack:#}");
    }
}

#[test]
fn a_fault_plan_naming_a_machine_the_rack_lacks_is_refused_by_name() {
    let (_dir, _out, err) = run_with_rack_faults(r#"{"rack-z9": "power_stuck"}"#, 1);
    assert!(
        err.contains("the fault plan names machine rack-z9, which the demo's rack does not have"),
        "{err}"
    );
}

#[test]
fn a_rack_without_bmc_credentials_is_one_usage_error_naming_them() {
    let (_dir, spec) = loko_tests::example_copy("rack.yaml");
    let out = without_bmc(&["run", spec.to_str().unwrap(), "--yes"])
        .env_remove("SSH_AUTH_SOCK")
        // Route53 of a port nothing listens on: refused at once, and named too.
        .env("AWS_ENDPOINT_URL_ROUTE_53", "http://127.0.0.1:9")
        .env("AWS_ACCESS_KEY_ID", "AKIDLOKOTEST")
        .env("AWS_SECRET_ACCESS_KEY", "x-loko-test-secret")
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("3 problem(s) with the setup; nothing was changed"),
        "{err}"
    );
    // The run logs into its nodes as on Packet: the agent is checked with the rack.
    assert!(err.contains("no usable ssh-agent"), "{err}");
    assert!(
        err.contains("no BMC credentials: set LOKO_BMC_USERNAME and LOKO_BMC_PASSWORD"),
        "{err}"
    );
    assert!(err.contains("Route53 at http://127.0.0.1:9"), "{err}");
}

#[test]
fn with_retire_wipe_a_machine_leaving_and_a_destroy_wipe_their_disks() {
    let (dir, spec_path) = loko_tests::example_copy("rack.yaml");
    let spec = spec_path.to_str().unwrap().to_owned();
    let listed = std::fs::read_to_string(&spec_path).unwrap();
    let wiping = listed.replace(
        "  url: \"http://10.0.9.1:8080\"\n",
        "  url: \"http://10.0.9.1:8080\"\n  retire: wipe\n",
    );
    assert_ne!(
        wiping, listed,
        "the example's boot_server changed: adapt the test"
    );
    std::fs::write(&spec_path, &wiping).unwrap();
    loko_expect(&["run", &spec, "--sim", "--yes"], 0);
    assert!(!saved_machine(&saved_rack(dir.path()), "rack-b2")["installed"].is_null());

    let at = wiping.find("  - name: rack-b2").unwrap();
    std::fs::write(&spec_path, &wiping[..at]).unwrap();
    let (out, err) = loko_expect(&["run", &spec, "--sim", "--yes"], 0);
    assert!(
        out.contains("machine rack-b2: /dev/nvme0n1 wiped; off"),
        "{out}{err}"
    );
    let rack = saved_rack(dir.path());
    let b2 = saved_machine(&rack, "rack-b2");
    assert_eq!(b2["powered"], false, "{b2:#}");
    assert!(
        b2["installed"].is_null(),
        "nothing of the node left: {b2:#}"
    );
    assert!(!saved_machine(&rack, "rack-b1")["installed"].is_null());

    // A destroy wipes every machine the cluster has (its boot server serves the wipes).
    let (out, err) = loko_expect(&["destroy", &spec, "--sim", "--yes"], 0);
    for machine in ["rack-a1", "rack-a2", "rack-a3", "rack-b1"] {
        assert!(out.contains(&format!("machine {machine}: ")), "{out}{err}");
        let saved = saved_rack(dir.path());
        assert!(
            saved_machine(&saved, machine)["installed"].is_null(),
            "{machine}: {saved:#}"
        );
    }
    drop(dir);
}
