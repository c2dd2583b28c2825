//! Each node's Ignition: accepted by Debian's `ignition-validate` (a peer nobody here wrote),
//! read by the simulator's nodes as a Flatcar node would, and deterministic.

use std::path::Path;
use std::process::Command;

use sim::ignition::NodeIgnition;
use specs::{DesiredCluster, Role};
use steps::assets::AssetDir;
use steps::ignition::{self, HostKey};

const KUBECONFIG: &str = "apiVersion: v1\nkind: Config\nclusters: []\n";

fn example(name: &str) -> DesiredCluster {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name);
    specs::load(&path).unwrap().desired()
}

fn render_all(cluster: &DesiredCluster, dir: &AssetDir) -> Vec<(String, HostKey, String)> {
    cluster
        .nodes
        .iter()
        .map(|node| {
            let key = ignition::ensure_host_key(dir, &node.hostname).unwrap();
            let text = ignition::render(cluster, node, &key, KUBECONFIG).unwrap();
            (node.hostname.clone(), key, text)
        })
        .collect()
}

#[test]
fn ignition_validate_accepts_every_node_of_every_example() {
    for name in [
        "tutorial.yaml",
        "hybrid.yaml",
        "flannel.yaml",
        "rack.yaml",
        "rack-no-dns.yaml",
    ] {
        let cluster = example(name);
        let tmp = tempfile::tempdir().unwrap();
        let dir = AssetDir::create(tmp.path()).unwrap();
        for (host, _, text) in render_all(&cluster, &dir) {
            let path = ignition::write(&dir, &host, &text).unwrap();
            let out = Command::new("ignition-validate")
                .arg(&path)
                .output()
                .expect(
                    "ignition-validate must be installed (scripts/test installs Debian's ignition)",
                );
            let report = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(out.status.success(), "{name} {host}: {report}");
            assert!(
                report.trim().is_empty(),
                "{name} {host}: warnings: {report}"
            );
            // The installed Ignition inside an iPXE installer is validated too.
            let node = cluster.node(&host).unwrap();
            if matches!(node.os, specs::OsImage::Ipxe { .. }) {
                let parsed = NodeIgnition::parse(&text);
                assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
                assert!(parsed.file("/etc/kubernetes/kubeconfig").is_some());
            }
        }
    }
}

#[test]
fn the_simulated_node_finds_keys_host_key_kubeconfig_and_labels() {
    let cluster = example("tutorial.yaml");
    let tmp = tempfile::tempdir().unwrap();
    let dir = AssetDir::create(tmp.path()).unwrap();
    for (host, key, text) in render_all(&cluster, &dir) {
        let node = cluster.node(&host).unwrap();
        let parsed = NodeIgnition::parse(&text);
        assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
        let wanted: Vec<String> = cluster
            .settings
            .ssh_keys
            .iter()
            .map(|k| k.as_str().to_owned())
            .collect();
        assert_eq!(parsed.authorized_keys, wanted);
        assert_eq!(
            parsed.host_key().unwrap().trim(),
            key.private_openssh().trim()
        );
        assert_eq!(parsed.kubelet_kubeconfig().as_deref(), Some(KUBECONFIG));
        let labels = parsed.node_labels();
        match node.role {
            Role::Controller => {
                assert!(labels.contains_key(ignition::CONTROLLER_LABEL));
                // The static control plane comes over SSH, never in the Ignition.
                assert!(!parsed.declares_unit("bootkube"));
                assert!(parsed.declares_unit("etcd-member.service"));
            }
            Role::Worker => {
                assert!(labels.contains_key(ignition::WORKER_LABEL));
                assert_eq!(
                    labels.get("node.supernova.io/role").map(String::as_str),
                    Some("backend")
                );
                assert!(!parsed.declares_unit("etcd-member"));
                assert!(parsed.declares_unit("delete-node.service"));
            }
        }
    }
}

#[test]
fn controllers_name_every_etcd_peer_and_arm64_says_so() {
    let cluster = example("hybrid.yaml");
    let tmp = tempfile::tempdir().unwrap();
    let dir = AssetDir::create(tmp.path()).unwrap();
    let count = cluster.settings.controller_count;
    let name = cluster.settings.cluster_name.as_str();
    let zone = cluster.settings.dns_zone.as_str();
    for (host, _, text) in render_all(&cluster, &dir) {
        let node = cluster.node(&host).unwrap();
        let parsed = NodeIgnition::parse(&text);
        let etcd = parsed
            .units
            .iter()
            .find(|u| u.name == "etcd-member.service");
        match node.role {
            Role::Controller => {
                let etcd = etcd.unwrap();
                for j in 0..count {
                    let peer = format!("etcd{j}=https://{name}-etcd{j}.{zone}:2380");
                    assert!(etcd.text.contains(&peer), "{host}: no {peer}");
                }
                let me = format!("--name=etcd{} ", node.index);
                assert!(etcd.text.contains(me.trim_end()), "{host}");
            }
            Role::Worker => assert!(etcd.is_none(), "{host}"),
        }
        let kubelet = &parsed
            .units
            .iter()
            .find(|u| u.name == "kubelet.service")
            .unwrap()
            .text;
        assert!(kubelet.contains(&format!("--cluster-dns={}", cluster.dns_service_ip)));
        assert!(kubelet.contains(&format!(
            "--cluster-domain={}",
            cluster.settings.cluster_domain_suffix
        )));
        for taint in &node.taints {
            assert!(kubelet.contains(&taint.to_string()), "{host}: {taint}");
        }
        if node.os.arch() == specs::OsArch::Arm64 && node.role == Role::Controller {
            assert!(
                parsed
                    .units
                    .iter()
                    .any(|u| u.text.contains("ETCD_UNSUPPORTED_ARCH=arm64"))
            );
        }
    }
}

#[test]
fn raid_flags_become_the_raid_unit() {
    let cluster = example("flannel.yaml");
    let tmp = tempfile::tempdir().unwrap();
    let dir = AssetDir::create(tmp.path()).unwrap();
    for (host, _, text) in render_all(&cluster, &dir) {
        let node = cluster.node(&host).unwrap();
        let parsed = NodeIgnition::parse(&text);
        let script = parsed
            .file("/opt/persist-data-raid")
            .map(|f| String::from_utf8_lossy(&f.contents).into_owned());
        match node.raid {
            specs::RaidSetup::None => assert!(script.is_none(), "{host}"),
            specs::RaidSetup::AllDisks => {
                let s = script.unwrap();
                assert!(s.contains("/dev/md/node-local-storage") && s.contains("mkfs.ext4"));
                // It comes back after a reboot: the array and the mount are recorded.
                assert!(
                    s.contains("/etc/mdadm.conf") && s.contains("/etc/fstab"),
                    "{s}"
                );
            }
            specs::RaidSetup::Hdd => {
                assert!(script.unwrap().contains("node-local-hdd-storage"));
            }
            specs::RaidSetup::Ssd { filesystem } => {
                let s = script.unwrap();
                assert!(s.contains("node-local-ssd-storage"));
                assert_eq!(s.contains("mkfs.ext4"), filesystem, "{host}");
                assert_eq!(s.contains("/etc/fstab"), filesystem, "{host}");
            }
        }
    }
}

#[test]
fn host_keys_are_kept_and_rendering_is_deterministic() {
    let cluster = example("tutorial.yaml");
    let tmp = tempfile::tempdir().unwrap();
    let dir = AssetDir::create(tmp.path()).unwrap();
    let first = render_all(&cluster, &dir);
    let second = render_all(&cluster, &dir);
    for ((host, key1, text1), (_, key2, text2)) in first.iter().zip(&second) {
        assert_eq!(key1.public_line(), key2.public_line(), "{host}");
        assert_eq!(text1, text2, "{host}");
        assert!(
            !format!("{key1:?}").contains("PRIVATE"),
            "Debug shows no secret"
        );
    }
    let hosts: std::collections::BTreeSet<&str> =
        first.iter().map(|(_, k, _)| k.public_line()).collect();
    assert_eq!(hosts.len(), first.len(), "a key per node");
    use std::os::unix::fs::PermissionsExt as _;
    let key_path = dir.path("ssh/supernova-controller-0/ssh_host_ed25519_key");
    assert_eq!(
        std::fs::metadata(key_path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // A damaged host key is an error naming it, never silently replaced.
    std::fs::write(
        dir.path("ssh/supernova-controller-0/ssh_host_ed25519_key"),
        "garbage",
    )
    .unwrap();
    let err = ignition::ensure_host_key(&dir, "supernova-controller-0").unwrap_err();
    assert!(err.to_string().contains("ssh_host_ed25519_key"), "{err}");
}

/// What keeps a node working over the life of the cluster, as the 2019 templates had it: etcd
/// rejoins after a controller is reprovisioned, workers keep iSCSI, and an iPXE installer picks
/// the smallest unmounted disk, retries a failed download and keeps its sshd off port 22.
#[test]
fn nodes_survive_reprovisioning_reboots_and_failed_installs() {
    let cluster = example("hybrid.yaml");
    let tmp = tempfile::tempdir().unwrap();
    let dir = AssetDir::create(tmp.path()).unwrap();
    let mut installers = 0;
    for (host, _, text) in render_all(&cluster, &dir) {
        let node = cluster.node(&host).unwrap();
        let sent = NodeIgnition::parse(&text);
        let unit = |ignition: &NodeIgnition, name: &str| {
            ignition
                .units
                .iter()
                .find(|u| u.name == name)
                .map(|u| (u.enabled, u.text.clone()))
        };
        if matches!(node.os, specs::OsImage::Ipxe { .. }) {
            installers += 1;
            // The installer's own Ignition (the simulated node reads through it to the
            // installed system's, as a machine does after the reboot).
            let raw: serde_json::Value = serde_json::from_str(&text).unwrap();
            let find = |list: &str, key: &str, value: &str| {
                raw[list][if list == "systemd" { "units" } else { "files" }]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|item| item[key] == value)
                    .unwrap_or_else(|| panic!("{host}: no {value}"))
                    .clone()
            };
            let script = find("storage", "path", "/opt/installer");
            let script =
                sim::ignition::decode_data_url(script["contents"]["source"].as_str().unwrap())
                    .unwrap();
            let script = String::from_utf8(script).unwrap();
            assert!(script.contains("flatcar-install -s "), "{host}: {script}");
            let installer = find("systemd", "name", "installer.service").to_string();
            assert!(installer.contains("Restart=on-failure"), "{installer}");
            assert!(installer.contains("RestartSec=60"), "{installer}");
            let sshd = find("systemd", "name", "sshd.socket").to_string();
            assert!(sshd.contains("ListenStream=2222"), "{sshd}");
        }
        let installed = sent;
        match node.role {
            Role::Controller => {
                let (_, etcd) = unit(&installed, "etcd-member.service").unwrap();
                assert!(etcd.contains("ExecStopPost=-/opt/etcd-rejoin"), "{etcd}");
                let rejoin = installed.file("/opt/etcd-rejoin").unwrap();
                let rejoin = String::from_utf8_lossy(&rejoin.contents);
                assert!(rejoin.contains("member add etcd"), "{rejoin}");
                assert!(rejoin.contains("ETCD_INITIAL_CLUSTER_STATE=existing"));
                assert!(etcd.contains("-e ETCD_INITIAL_CLUSTER_STATE"), "{etcd}");
            }
            Role::Worker => {
                assert_eq!(unit(&installed, "iscsid.service").map(|u| u.0), Some(true));
            }
        }
    }
    assert!(installers > 0, "hybrid.yaml has an iPXE node");
}

/// A rack has no Packet metadata service (afterburn serves `COREOS_PACKET_*` only on Packet):
/// each rack node's `coreos-metadata.service` runs no `coreos-metadata`, and its command, run
/// here by `sh`, writes the machine's addresses under the names the kubelet and etcd read.
#[test]
fn a_rack_node_writes_its_machines_addresses_without_packet_metadata() {
    let cluster = example("rack.yaml");
    let tmp = tempfile::tempdir().unwrap();
    let dir = AssetDir::create(tmp.path()).unwrap();
    for (host, _, text) in render_all(&cluster, &dir) {
        let machine = cluster.node(&host).unwrap().machine.clone().unwrap();
        let parsed = NodeIgnition::parse(&text);
        let unit = parsed
            .units
            .iter()
            .find(|u| u.name == "coreos-metadata.service")
            .unwrap_or_else(|| panic!("{host}: no coreos-metadata.service"));
        assert!(unit.enabled, "{host}");
        assert!(
            !unit.text.contains("/usr/bin/coreos-metadata"),
            "{host}: {}",
            unit.text
        );
        let out = tmp.path().join(format!("{host}.env"));
        for line in unit.text.lines() {
            let Some(command) = line.strip_prefix("ExecStart=/usr/bin/sh -c '") else {
                continue;
            };
            let command = command
                .trim_end_matches('\'')
                .replace("/run/metadata/flatcar", &out.display().to_string());
            let status = Command::new("sh").arg("-c").arg(&command).status().unwrap();
            assert!(status.success(), "{host}: {command}");
        }
        let written = std::fs::read_to_string(&out)
            .unwrap_or_else(|e| panic!("{host}: the unit wrote no metadata file: {e}"));
        assert_eq!(
            written,
            format!(
                "COREOS_PACKET_HOSTNAME={host}\nCOREOS_PACKET_IPV4_PUBLIC_0={}\nCOREOS_PACKET_IPV4_PRIVATE_0={}\n",
                machine.public_ipv4, machine.private_ipv4
            )
        );
        // The simulator's rack judges the kubelet with what this unit writes.
        let metadata = sim::judge::metadata::rack_metadata(&parsed);
        assert_eq!(metadata.len(), 3, "{host}: {metadata:?}");
        if let Err(problems) = sim::judge::kubelet::judge_kubelet(&parsed, &metadata) {
            panic!("{host}: {problems:?}");
        }
    }
}
