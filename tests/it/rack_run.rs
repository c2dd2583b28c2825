//! `loko run` of a rack (`provider: redfish`): its setup checked before any step (every problem
//! in one usage error), then the demo's machines booted through the simulator's BMCs from
//! loko's boot server into a cluster.

use std::process::Command;

use crate::binary::{LOKO, loko_expect, text};

#[test]
fn a_demo_rack_boots_its_machines_into_a_ready_cluster() {
    let (dir, spec) = loko_tests::example_copy("rack.yaml");
    let spec = spec.to_str().unwrap().to_owned();
    let (out, err) = loko_expect(&["run", &spec, "--sim", "--yes"], 0);
    for machine in ["rack-a1", "rack-a2", "rack-a3", "rack-b1", "rack-b2"] {
        assert!(
            out.contains(&format!("machine {machine}: next boot PXE, On sent")),
            "{out}{err}"
        );
    }
    assert!(out.contains("Cluster rack is ready"), "{out}{err}");
    drop(dir);
}

#[test]
fn a_rack_without_bmc_credentials_is_one_usage_error_naming_them() {
    let (_dir, spec) = loko_tests::example_copy("rack.yaml");
    let out = Command::new(LOKO)
        .args(["run", spec.to_str().unwrap(), "--yes"])
        .env_remove("RUST_LOG")
        .env_remove("LOKO_JOURNAL")
        .env_remove("LOKO_BMC_USERNAME")
        .env_remove("LOKO_BMC_PASSWORD")
        .env_remove("LOKO_BMC_CREDENTIALS_FILE")
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
