//! A rack whose spec names its API address (`api_address`, examples/rack-no-dns.yaml): no dns
//! step, etcd's members named by their private addresses in their units and certificates, and
//! the kubeconfigs' server the address, which the apiserver's certificate holds as kubectl
//! checks it.

use std::path::Path;
use std::time::SystemTime;

use crate::kubeconfig_kubectl::{fake_apiserver, kubectl};
use crate::pki_support::{Pki, output, text};
use steps::assets::kubeconfig::{self, ADMIN_KUBECONFIG, KUBELET_KUBECONFIG};
use steps::cluster::apply_dag;
use steps::history::History;
use steps::step_name::StepName;

const ADDRESS: &str = "k8s.rack.example.net";

/// The example, with `edit` applied to its text.
fn rack_no_dns(edit: impl Fn(String) -> String) -> specs::DesiredCluster {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/rack-no-dns.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
    specs::parse(&edit(text), "rack-no-dns.yaml")
        .unwrap_or_else(|e| panic!("{e}"))
        .desired()
}

#[test]
fn its_dag_has_no_dns_step_and_the_bootstrap_waits_for_none() {
    let desired = rack_no_dns(|t| t);
    let dag = apply_dag(&desired, &History::default(), &[]).unwrap_or_else(|e| panic!("{e}"));
    let dns = StepName::Dns.id();
    assert!(dag.steps().all(|s| s.id() != &dns));
    for step in dag.steps() {
        assert!(!step.deps().contains(&dns), "{} after dns", step.id());
    }
    let bootstrap = StepName::Bootstrap.id();
    assert!(dag.steps().any(|s| s.id() == &bootstrap));
}

#[test]
fn etcd_members_are_named_by_their_private_addresses_and_wait_for_no_dns() {
    let rendered = loko_tests::rendered::render(rack_no_dns(|t| t));
    let host = "rack-a2";
    let units = rendered.units(host);
    let unit = |name: &str| {
        units
            .iter()
            .find(|(n, ..)| n == name)
            .and_then(|(.., text)| text.clone())
    };
    let etcd = unit("etcd-member.service").unwrap_or_else(|| panic!("no etcd on {host}"));
    for wanted in [
        "--advertise-client-urls=https://10.10.0.12:2379",
        "--initial-advertise-peer-urls=https://10.10.0.12:2380",
        "--initial-cluster=etcd0=https://10.10.0.11:2380,etcd1=https://10.10.0.12:2380,etcd2=https://10.10.0.13:2380",
        "Requires=docker.service coreos-metadata.service\n",
    ] {
        assert!(etcd.contains(wanted), "{wanted} not in\n{etcd}");
    }
    assert!(!etcd.contains("wait-for-dns"), "{etcd}");
    assert!(unit("wait-for-dns.service").is_none());
    let rejoin = rendered
        .file(host, "/opt/etcd-rejoin")
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default();
    assert!(
        rejoin.contains(
            "--endpoints=https://10.10.0.11:2379,https://10.10.0.12:2379,https://10.10.0.13:2379"
        ),
        "{rejoin}"
    );
    let apiserver =
        std::fs::read_to_string(rendered.root.join("static-manifests/kube-apiserver.json"))
            .unwrap_or_default();
    assert!(
        apiserver.contains(
            "--etcd-servers=https://10.10.0.11:2379,https://10.10.0.12:2379,https://10.10.0.13:2379"
        ),
        "{apiserver}"
    );
}

/// The SANs `openssl x509` prints for `cert`.
fn sans(pki: &Pki, cert: &str) -> String {
    let out = output(
        std::process::Command::new("openssl")
            .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
            .arg(pki.path(cert)),
    );
    text(&out)
}

#[test]
fn the_certificates_name_the_api_address_and_etcd_by_address() {
    let desired = rack_no_dns(|t| t);
    let pki = Pki::issue(&desired, SystemTime::now());
    let apiserver = sans(&pki, "tls/apiserver.crt");
    assert_eq!(
        apiserver.matches(&format!("DNS:{ADDRESS}")).count(),
        1,
        "{apiserver}"
    );
    assert!(!apiserver.contains("rack.example.com"), "{apiserver}");
    let members = "IP Address:10.10.0.11, IP Address:10.10.0.12, IP Address:10.10.0.13";
    for cert in [
        "tls/etcd/server.crt",
        "tls/etcd/peer.crt",
        "tls/etcd-client.crt",
    ] {
        let names = sans(&pki, cert);
        assert!(names.contains(members), "{cert}: {names}");
        assert!(!names.contains("etcd0"), "{cert}: {names}");
    }
}

#[test]
fn kubectl_reaches_the_api_address_with_the_kubeconfigs() {
    for (address, other) in [
        (ADDRESS, "rack.rack.example.com"),
        ("10.0.1.100", "10.0.1.11"),
    ] {
        let desired = rack_no_dns(|t| t.replace(ADDRESS, address));
        let pki = Pki::issue(&desired, SystemTime::now());
        let token = steps::assets::bootstrap_token::ensure_token(&pki.dir, SystemTime::now(), true)
            .unwrap_or_else(|e| panic!("{e}"));
        kubeconfig::write_kubeconfigs(&pki.dir, &desired, &token).unwrap_or_else(|e| panic!("{e}"));
        let server = format!("server: \"https://{address}:6443\"");
        for file in [ADMIN_KUBECONFIG, KUBELET_KUBECONFIG] {
            let text = std::fs::read_to_string(pki.path(file)).unwrap_or_default();
            assert!(text.contains(&server), "{file}: {text}");
        }
        let (_server, port) = fake_apiserver(&pki);
        // kubectl checks the certificate for the name it is told it dials: the address (an
        // address against the IP SANs only, as Go's x509 does), and nothing else.
        let get = |name: &str| {
            output(
                kubectl(pki.tmp.path())
                    .arg("--kubeconfig")
                    .arg(pki.path(ADMIN_KUBECONFIG))
                    .args(["--server", &format!("https://127.0.0.1:{port}")])
                    .args(["--tls-server-name", name, "--request-timeout=10s"])
                    .args(["get", "--raw", "/"]),
            )
        };
        let out = get(address);
        assert!(
            out.status.success() && text(&out).contains("s_server"),
            "{address}: {}",
            text(&out)
        );
        let out = get(other);
        assert!(
            !out.status.success() && text(&out).contains("certificate is valid for"),
            "{other}: {}",
            text(&out)
        );
    }
}

/// The value of `--<flag>=` on the etcd unit's command line.
fn unit_flag(unit: &str, flag: &str) -> String {
    let prefix = format!("--{flag}=");
    unit.split_whitespace()
        .find_map(|word| word.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no --{flag} in\n{unit}"))
        .to_owned()
}

#[test]
fn a_real_etcd_cluster_forms_on_the_private_addresses_the_units_and_certificates_name() {
    let rendered = loko_tests::rendered::render(rack_no_dns(|t| t));
    let tls = |rel: &str| rendered.root.join(rel).display().to_string();
    let work = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    // Each member as its controller's unit starts it, in a network namespace holding the
    // controllers' private addresses; each listens on its own address (the unit's 0.0.0.0
    // would collide here, where the three share one namespace).
    let mut script = String::from("set -u\nip link set lo up\n");
    let mut endpoints = Vec::new();
    for node in rendered.cluster.controllers() {
        let units = rendered.units(&node.hostname);
        let unit = units
            .iter()
            .find(|(name, ..)| name == "etcd-member.service")
            .and_then(|(.., text)| text.clone())
            .unwrap_or_else(|| panic!("no etcd on {}", node.hostname));
        let client = unit_flag(&unit, "advertise-client-urls");
        let peer = unit_flag(&unit, "initial-advertise-peer-urls");
        let address = rendered.cluster.etcd_host(node.index);
        endpoints.push(client.clone());
        script.push_str(&format!(
            "ip addr add {address}/32 dev lo\n\
             etcd --name etcd{index} --data-dir {work}/etcd{index} \
             --listen-client-urls {client} --advertise-client-urls {client} \
             --listen-peer-urls {peer} --initial-advertise-peer-urls {peer} \
             --initial-cluster {initial} --initial-cluster-state new \
             --cert-file {server_crt} --key-file {server_key} --trusted-ca-file {server_ca} \
             --client-cert-auth --peer-cert-file {peer_crt} --peer-key-file {peer_key} \
             --peer-trusted-ca-file {peer_ca} --peer-client-cert-auth \
             > {work}/etcd{index}.log 2>&1 &\n",
            index = node.index,
            work = work.path().display(),
            initial = unit_flag(&unit, "initial-cluster"),
            server_crt = tls("tls/etcd/server.crt"),
            server_key = tls("tls/etcd/server.key"),
            server_ca = tls("tls/etcd/server-ca.crt"),
            peer_crt = tls("tls/etcd/peer.crt"),
            peer_key = tls("tls/etcd/peer.key"),
            peer_ca = tls("tls/etcd/peer-ca.crt"),
        ));
    }
    // The apiserver's client certificate against the endpoints etcd-rejoin and the apiservers
    // name: healthy only once the members found each other over peer TLS at those addresses.
    script.push_str(&format!(
        "for _ in $(seq 60); do\n\
         if ETCDCTL_API=3 etcdctl --endpoints={endpoints} --dial-timeout=2s \
         --command-timeout=2s --cacert={ca} --cert={cert} --key={key} endpoint health \
         > {work}/health 2>&1; then echo HEALTHY; break; fi\n\
         sleep 1\n\
         done\n\
         cat {work}/health\n\
         kill $(jobs -p)\nwait\n\
         tail -n 5 {work}/etcd*.log\n",
        endpoints = endpoints.join(","),
        ca = tls("tls/etcd-client-ca.crt"),
        cert = tls("tls/etcd-client.crt"),
        key = tls("tls/etcd-client.key"),
        work = work.path().display(),
    ));
    let out = output(std::process::Command::new("unshare").args(["--net", "bash", "-c", &script]));
    let report = text(&out);
    assert!(report.contains("HEALTHY"), "{report}");
    for endpoint in &endpoints {
        assert!(
            report.contains(&format!("{endpoint} is healthy")),
            "{endpoint}: {report}"
        );
    }
}
