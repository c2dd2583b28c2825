//! `loko run` of a rack whose spec names its API address (`api_address`,
//! examples/rack-no-dns.yaml): no AWS credential, no Route53 check, no dns step, and the
//! simulator's apiservers, serving the certificates loko issued, answer loko at that name until
//! the cluster is ready; a changed address is refused on the next run. Without the simulator,
//! the setup checked before any step names no AWS credential and no Route53.

use std::process::{Command, Output};

use crate::binary::{LOKO, text, without_bmc};

/// `loko ARGS` without any AWS setting: a run that needed Route53 could not pass its checks.
fn loko_without_aws(args: &[&str]) -> Output {
    let mut command = Command::new(LOKO);
    command
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("LOKO_JOURNAL");
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("AWS_") {
            command.env_remove(name);
        }
    }
    // No shared credentials file or profile either.
    let home = tempfile::tempdir().unwrap();
    command.env("HOME", home.path());
    command.output().expect("run loko")
}

#[test]
fn a_demo_rack_without_a_zone_is_ready_at_its_api_address_and_keeps_it() {
    let (dir, spec) = loko_tests::example_copy("rack-no-dns.yaml");
    let spec = spec.to_str().unwrap().to_owned();
    let out = loko_without_aws(&["run", &spec, "--sim", "--yes"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("Cluster rack is ready"), "{stdout}{stderr}");
    // loko's own clients dialed that name (the bootstrap and ready steps verified the
    // apiservers' certificate for it), and the admin's kubeconfig names it.
    let admin = dir.path().join("assets/rack-no-dns/auth/kubeconfig");
    let admin = std::fs::read_to_string(&admin).unwrap_or_default();
    assert!(
        admin.contains("server: \"https://k8s.rack.example.net:6443\""),
        "{admin}"
    );
    assert!(
        !stdout.lines().any(|l| l.contains("] dns: ")),
        "a dns step ran: {stdout}"
    );

    // The address is in the certificates, and it tells this cluster from another rack of the
    // same name: another one is refused before anything else, naming both.
    let text_of_spec = std::fs::read_to_string(&spec).unwrap();
    std::fs::write(
        &spec,
        text_of_spec.replace(
            "api_address: k8s.rack.example.net",
            "api_address: api.rack.example.net",
        ),
    )
    .unwrap();
    let out = loko_without_aws(&["run", &spec, "--sim", "--yes"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_ne!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stderr.contains("belongs to cluster \"rack\" (API k8s.rack.example.net)")
            && stderr.contains("names \"rack\" (API api.rack.example.net)")
            && stderr.contains("API address cannot change"),
        "{stdout}{stderr}"
    );
    drop(dir);
}

#[test]
fn a_rack_without_a_zone_asks_for_no_aws_credentials_and_checks_no_route53() {
    let (_dir, spec) = loko_tests::example_copy("rack-no-dns.yaml");
    let mut command = without_bmc(&["run", spec.to_str().unwrap(), "--yes"]);
    command
        .env_remove("SSH_AUTH_SOCK")
        // A Route53 nothing answers, with no credentials: named if it were asked.
        .env("AWS_ENDPOINT_URL_ROUTE_53", "http://127.0.0.1:9")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_PROFILE");
    let home = tempfile::tempdir().unwrap();
    let out = command.env("HOME", home.path()).output().unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    // The agent and the BMC credentials, and nothing of AWS.
    assert!(
        err.contains("2 problem(s) with the setup; nothing was changed"),
        "{err}"
    );
    assert!(err.contains("no BMC credentials"), "{err}");
    assert!(!err.contains("Route53") && !err.contains("AWS"), "{err}");
}
