//! Before any step of a rack: the credentials, each BMC answering and each system listing its
//! machine's MAC, every problem at once; a busy BMC is the machine step's to retry.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use sim::rack::{BmcFault, Rack, RackMachine};
use steps::packet::Timeouts;
use steps::preflight::check_rack;
use steps::redfish::{BmcCredentials, CredentialsError};

use crate::rack_support::rack_config;

const PASSWORD: &str = "x-rack-preflight-pass";

async fn rack(names: &[&str]) -> Rack {
    let machines = names
        .iter()
        .zip(1u8..)
        .map(|(name, i)| RackMachine {
            name: (*name).to_owned(),
            system_id: (*name).to_owned(),
            mac: format!("52:54:00:00:00:{i:02x}"),
            disks: vec!["/dev/sda".to_owned()],
            public_ip: Ipv4Addr::new(10, 0, 1, i),
            private_ip: Ipv4Addr::new(10, 10, 0, i),
        })
        .collect();
    Rack::start(
        rack_config(PASSWORD, Duration::from_millis(50), Duration::ZERO),
        machines,
        Arc::new(sim::NoNodes),
    )
    .await
    .unwrap()
}

/// The spec's machine `name`, its BMC the rack's, booting from `mac`.
fn machine(rack: &Rack, name: &str, mac: &str) -> specs::Machine {
    let system = rack
        .system_url(name)
        .unwrap_or_else(|| format!("{}/Systems/{name}", rack.url()));
    let (bmc, path) = system.split_at(system.find("/redfish").unwrap());
    serde_json::from_value(serde_json::json!({
        "name": name, "role": "controller", "mac": mac,
        "bmc": {"url": bmc, "system": path},
        "install_disk": "/dev/sda", "public_ipv4": "10.0.1.1", "private_ipv4": "10.10.0.1"
    }))
    .unwrap()
}

#[tokio::test]
async fn every_bmc_problem_of_the_rack_is_named_at_once() {
    let rack = rack(&["good", "locked", "swapped", "busy"]).await;
    rack.set_fault("locked", Some(BmcFault::Unauthorized));
    rack.set_fault("busy", Some(BmcFault::Unavailable));
    let machines = [
        machine(&rack, "good", "52:54:00:00:00:01"),
        machine(&rack, "locked", "52:54:00:00:00:02"),
        // The spec has another MAC than the system lists.
        machine(&rack, "swapped", "52:54:00:00:00:99"),
        machine(&rack, "busy", "52:54:00:00:00:04"),
        machine(&rack, "absent", "52:54:00:00:00:05"),
    ];
    let credentials = Ok(BmcCredentials::new(
        "admin",
        PASSWORD,
        &journal::Redactor::new(),
    ));
    let problems = check_rack(&credentials, &machines, &Timeouts::default()).await;
    let whats: Vec<&str> = problems.iter().map(|p| p.what.as_str()).collect();
    assert_eq!(whats.len(), 3, "{whats:#?}");
    assert!(
        whats[0].starts_with("machine locked: the BMC at http://127.0.0.1:")
            && whats[0].ends_with("refuses the user admin (401)"),
        "{whats:#?}"
    );
    assert!(
        whats[1].starts_with("machine swapped: system /redfish/v1/Systems/swapped")
            && whats[1]
                .contains("does not list MAC 52:54:00:00:00:99 (it lists 52:54:00:00:00:03)"),
        "{whats:#?}"
    );
    assert!(
        whats[2].starts_with("machine absent: the BMC at") && whats[2].contains("has no system"),
        "{whats:#?}"
    );
    assert!(
        problems
            .iter()
            .all(|p| !p.what.contains(PASSWORD) && !p.hint.contains(PASSWORD)),
        "{problems:#?}"
    );

    let wrong = Ok(BmcCredentials::new(
        "admin",
        "x-not-the-pass",
        &journal::Redactor::new(),
    ));
    let problems = check_rack(&wrong, &machines[..1], &Timeouts::default()).await;
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0].what.contains("refuses the user admin"),
        "{problems:#?}"
    );
}

#[tokio::test]
async fn no_credentials_is_one_problem_saying_where_they_come_from() {
    let problems = check_rack(&Err(CredentialsError::Missing), &[], &Timeouts::default()).await;
    assert_eq!(problems.len(), 1);
    assert!(
        problems[0].what.contains("LOKO_BMC_USERNAME"),
        "{problems:#?}"
    );
    assert!(
        problems[0].hint.contains("LOKO_BMC_PASSWORD"),
        "{problems:#?}"
    );
}
