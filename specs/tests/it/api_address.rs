//! A rack whose spec names its API address itself (`api_address`): no Route53 record, the API
//! named by the address, etcd's members by their private addresses, and the address fixed once
//! the cluster is built.

use std::path::Path;

fn example(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name);
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn desired(text: &str) -> specs::DesiredCluster {
    specs::parse(text, "rack-no-dns.yaml")
        .unwrap_or_else(|e| panic!("{e}"))
        .desired()
}

#[test]
fn a_rack_without_a_zone_has_no_record_and_names_its_api_and_etcd_without_dns() {
    let desired = desired(&example("rack-no-dns.yaml"));
    let settings = &desired.settings;
    assert!(desired.dns_records.is_empty(), "{:?}", desired.dns_records);
    assert!(settings.route53().is_none());
    assert_eq!(
        settings.apiserver_hosts(),
        (
            "k8s.rack.example.net".to_owned(),
            "k8s.rack.example.net".to_owned()
        )
    );
    let etcd: Vec<String> = (0..settings.controller_count)
        .map(|i| desired.etcd_host(i))
        .collect();
    assert_eq!(etcd, ["10.10.0.11", "10.10.0.12", "10.10.0.13"]);
    // The journal's record names no zone, and reads back as written.
    let record = desired.to_record().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(record["settings"]["api_address"], "k8s.rack.example.net");
    assert!(record["settings"].get("dns_zone").is_none(), "{record}");
    assert!(record["settings"].get("dns_zone_id").is_none(), "{record}");
    let read = specs::DesiredCluster::from_record(&record).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read, desired);
}

#[test]
fn a_zone_names_the_api_and_etcd_by_its_records_as_before() {
    let desired = desired(&example("rack.yaml"));
    let settings = &desired.settings;
    assert_eq!(
        settings.apiserver_hosts(),
        (
            "rack.rack.example.com".to_owned(),
            "rack-private.rack.example.com".to_owned()
        )
    );
    assert_eq!(desired.etcd_host(2), "rack-etcd2.rack.example.com");
    assert!(
        desired
            .dns_records
            .iter()
            .any(|r| r.name == desired.etcd_host(2))
    );
    let record = desired.to_record().unwrap_or_else(|e| panic!("{e}"));
    assert!(record["settings"].get("api_address").is_none(), "{record}");
}

#[test]
fn an_ipv4_api_address_is_an_address() {
    let text = example("rack-no-dns.yaml").replace(
        "api_address: k8s.rack.example.net",
        "api_address: 10.0.1.100",
    );
    let desired = desired(&text);
    let address = desired.settings.api_address.as_ref().map(|a| a.ipv4());
    assert_eq!(address, Some(Some([10, 0, 1, 100].into())));
    assert_eq!(desired.settings.apiserver_hosts().0, "10.0.1.100");
}

#[test]
fn a_changed_api_address_is_refused_naming_the_field() {
    let built = desired(&example("rack-no-dns.yaml"));
    let moved = desired(&example("rack-no-dns.yaml").replace(
        "api_address: k8s.rack.example.net",
        "api_address: api.rack.example.net",
    ));
    let refused = specs::classify(&built, &moved).expect_err("refused");
    let paths: Vec<&str> = refused.changes.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(paths, ["api_address"], "{refused}");
    assert!(refused.to_string().contains("certificate"), "{refused}");

    // From Route53 to an address of one's own: every field of the naming, none of the rest.
    let zoned = desired(&example("rack-no-dns.yaml").replace(
        "api_address: k8s.rack.example.net",
        "dns_zone: rack.example.com\ndns_zone_id: Z3PAABBCFAKEC0",
    ));
    let refused = specs::classify(&zoned, &built).expect_err("refused");
    let mut paths: Vec<&str> = refused.changes.iter().map(|c| c.path.as_str()).collect();
    paths.sort_unstable();
    assert_eq!(
        paths,
        ["api_address", "dns_zone", "dns_zone_id"],
        "{refused}"
    );
}
