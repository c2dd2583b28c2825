//! `loko plan`, `loko status` and `loko destroy` of a rack (`provider: redfish`), against the
//! demo's: the plan in a rack's words (boot, retire), refreshed through the BMCs only with
//! their credentials; each node's machine and its power state from its BMC; the destroy's
//! confirmation listing the machines it powers off, then a `retire/<host>` step for each.

use std::process::{Command, Output};

use crate::binary::{LOKO, loko_expect, text, without_bmc};

/// `loko ARGS` without any BMC credentials or journal of the caller's environment.
fn loko_without_bmc(args: &[&str]) -> Output {
    without_bmc(args).output().unwrap()
}

const MACHINES: [(&str, &str); 5] = [
    ("rack-a1", "rack-a1"),
    ("rack-a2", "rack-a2"),
    ("rack-a3", "rack-a3"),
    ("rack-b1", "rack-b1"),
    ("rack-b2", "rack-b2"),
];

#[test]
fn a_demo_rack_is_planned_shown_and_destroyed_machine_by_machine() {
    let (dir, spec_path) = loko_tests::example_copy("rack.yaml");
    let spec = spec_path.to_str().unwrap().to_owned();
    loko_expect(&["run", &spec, "--sim", "--yes"], 0);

    // A kubeconfig that reaches the first controller's machine at its address.
    let (path, _) = loko_expect(&["kubeconfig", &spec, "--by-address"], 0);
    let kubeconfig = std::fs::read_to_string(path.trim()).unwrap();
    assert!(
        kubeconfig.contains("server: \"https://127."),
        "{kubeconfig}"
    );

    // The demo's journal holds its machines where the demo moved them: nothing to do.
    let out = loko_without_bmc(&["plan", &spec]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("Plan: 0 to add, 0 to change, 0 to destroy.\nMachines to boot: 0."),
        "{stdout}{stderr}"
    );
    assert!(
        stderr.contains("note: not refreshed: no BMC credentials"),
        "{stderr}"
    );

    // With credentials, the plan asks the BMCs (the demo's stopped with its run).
    let out = Command::new(LOKO)
        .args(["plan", &spec])
        .env_remove("LOKO_JOURNAL")
        .env_remove("LOKO_BMC_CREDENTIALS_FILE")
        .env("LOKO_BMC_USERNAME", "admin")
        .env("LOKO_BMC_PASSWORD", "x-rack-plan-pass")
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("problem(s) with the setup"), "{stderr}");
    assert!(stderr.contains("machine rack-a1"), "{stderr}");

    // A worker's machine left the spec: retired, in a rack's words.
    let full = std::fs::read_to_string(&spec_path).unwrap();
    let cut = full.find("  - name: rack-b2").unwrap();
    std::fs::write(&spec_path, &full[..cut]).unwrap();
    let out = loko_without_bmc(&["plan", &spec]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("  - retire rack-b2 (its machine powered off)"),
        "{stdout}"
    );
    assert!(!stdout.contains("- delete"), "{stdout}");
    // Not on a terminal, the run lists the machine it would power off and stops.
    let out = loko_without_bmc(&["run", &spec, "--sim"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("this run powers off 1 machine(s):")
            && stderr.contains("machine rack-b2: its node left the spec"),
        "{stderr}"
    );
    std::fs::write(&spec_path, &full).unwrap();

    // Each node's machine, its state as its BMC reports it.
    let out = loko_without_bmc(&["status", &spec, "--sim"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    let header = stdout.lines().next().unwrap_or_default();
    assert!(
        header.contains("MACHINE") && !header.contains("DEVICE"),
        "{stdout}"
    );
    for (node, machine) in MACHINES {
        let row = stdout
            .lines()
            .find(|l| l.starts_with(&format!("{node} ")))
            .unwrap_or_else(|| panic!("no row of {node}: {stdout}"));
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells[1], machine, "{row}");
        assert_eq!(cells[2], "On", "as the demo's rack saved it: {row}");
    }
    assert!(stdout.contains("rack.rack.example.com"), "{stdout}");

    // Not on a terminal, the destroy lists what it powers off and stops.
    let (_, stderr) = loko_expect(&["destroy", &spec, "--sim"], 2);
    assert!(stderr.contains("it powers off and deletes:"), "{stderr}");
    for (node, machine) in MACHINES {
        assert!(
            stderr.contains(&format!("  - machine {machine} (MAC 52:54:00:"))
                && node == machine
                && stderr.contains(", BMC http://127."),
            "{stderr}"
        );
    }
    assert!(
        stderr.contains("DNS record rack.rack.example.com"),
        "{stderr}"
    );

    let (stdout, stderr) = loko_expect(&["destroy", &spec, "--sim", "--yes"], 0);
    for (node, _) in MACHINES {
        assert!(
            stdout.contains(&format!("retire/{node}: done")),
            "{stdout}{stderr}"
        );
    }
    assert!(stdout.contains("destroy/dns: done"), "{stdout}");
    assert!(!stdout.contains("destroy/devices"), "{stdout}");
    assert!(
        stdout.contains("Cluster rack destroyed: its machines are powered off"),
        "{stdout}"
    );

    // Destroyed: every machine is booted again by the next run.
    let out = loko_without_bmc(&["plan", &spec, "--no-refresh"]);
    let stdout = text(&out.stdout);
    for (node, _) in MACHINES {
        assert!(stdout.contains(&format!("  + boot {node}\n")), "{stdout}");
    }
    assert!(stdout.contains("Machines to boot: 5."), "{stdout}");
    drop(dir);
}
