//! `loko run` of a rack (`provider: redfish`): its setup checked before any step, the demo's
//! machines behind the simulator's BMCs, every problem in one usage error. The machine steps
//! are not in the DAG yet: a checked rack stops, having changed nothing.

use std::process::Command;

use crate::binary::{LOKO, loko_expect, text};

#[test]
fn a_demo_rack_passes_its_checks_and_stops_before_any_step() {
    let (dir, spec) = loko_tests::example_copy("rack.yaml");
    let spec = spec.to_str().unwrap().to_owned();
    let (_, err) = loko_expect(&["run", &spec, "--sim", "--yes"], 2);
    assert!(
        err.contains("provider: redfish: the setup is checked (5 machine(s) answer at their BMCs, the boot server listened at http://127.0.0.1:"),
        "{err}"
    );
    assert!(err.contains("nothing was changed"), "{err}");
    assert!(!err.contains("problem(s) with the setup"), "{err}");
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
        // Route53 of a port nothing listens on: refused at once, and named too.
        .env("AWS_ENDPOINT_URL_ROUTE_53", "http://127.0.0.1:9")
        .env("AWS_ACCESS_KEY_ID", "AKIDLOKOTEST")
        .env("AWS_SECRET_ACCESS_KEY", "x-loko-test-secret")
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("2 problem(s) with the setup; nothing was changed"),
        "{err}"
    );
    assert!(
        err.contains("no BMC credentials: set LOKO_BMC_USERNAME and LOKO_BMC_PASSWORD"),
        "{err}"
    );
    assert!(err.contains("Route53 at http://127.0.0.1:9"), "{err}");
}
