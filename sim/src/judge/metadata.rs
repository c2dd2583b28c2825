//! What `/run/metadata/flatcar` holds on a machine of a rack, which has no Packet metadata
//! service: afterburn (`/usr/bin/coreos-metadata`, Flatcar's `coreos-metadata.service`) writes
//! `COREOS_PACKET_*` only on Packet, from Packet's metadata endpoint, so on a rack it writes
//! nothing there. A `coreos-metadata.service` that writes the file with `sh` itself is run
//! here, by `sh`, as the node would run it.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::ignition::NodeIgnition;
use crate::judge::systemd::parse_environment_file;

const UNIT: &str = "coreos-metadata.service";
const METADATA_FILE: &str = "/run/metadata/flatcar";

/// The metadata file of a rack's node booted with `ignition`: empty when its
/// `coreos-metadata.service` is Flatcar's own or runs afterburn, else what its `sh -c`
/// commands write.
pub fn rack_metadata(ignition: &NodeIgnition) -> BTreeMap<String, String> {
    let Some(unit) = ignition
        .units
        .iter()
        .find(|u| u.name == UNIT && u.has_contents)
    else {
        return BTreeMap::new();
    };
    let commands: Vec<&str> = unit
        .text
        .lines()
        .filter_map(|line| line.trim().strip_prefix("ExecStart="))
        .collect();
    if commands.iter().any(|c| c.contains("coreos-metadata")) {
        return BTreeMap::new();
    }
    // One file per judgement: nodes boot concurrently.
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let out = std::env::temp_dir().join(format!(
        "sim-rack-metadata-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let target = out.display().to_string();
    for command in commands {
        let Some(script) = command
            .strip_prefix("/usr/bin/sh -c '")
            .and_then(|s| s.strip_suffix('\''))
        else {
            continue;
        };
        let script = script.replace(METADATA_FILE, &target);
        match Command::new("sh").arg("-c").arg(&script).status() {
            Ok(status) if status.success() => {}
            // A failed unit writes no complete file: nothing the kubelet can rely on.
            _ => return BTreeMap::new(),
        }
    }
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    let _ = std::fs::remove_file(&out);
    parse_environment_file(&text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::kubelet::judge_kubelet;

    const KUBELET: &str = "[Unit]\nRequires=docker.service coreos-metadata.service\n\
After=docker.service coreos-metadata.service\n[Service]\nEnvironmentFile=/run/metadata/flatcar\n\
ExecStart=/usr/bin/docker run --rm --name kubelet quay.io/poseidon/kubelet:v1.32.3 \
--node-ip=${COREOS_PACKET_IPV4_PRIVATE_0} --kubeconfig=/var/lib/kubelet/kubeconfig\n\
[Install]\nWantedBy=multi-user.target\n";

    fn ignition(metadata_unit: &str) -> NodeIgnition {
        let config = serde_json::json!({
            "ignition": {"version": "3.3.0"},
            "systemd": {"units": [
                {"name": "kubelet.service", "enabled": true, "contents": KUBELET},
                {"name": "coreos-metadata.service", "enabled": true, "contents": metadata_unit},
            ]},
        });
        NodeIgnition::parse(&config.to_string())
    }

    #[test]
    fn afterburn_on_a_rack_writes_nothing_and_the_kubelet_is_refused() {
        let packet = "[Service]\nType=oneshot\nEnvironment=COREOS_METADATA_OPT_PROVIDER=--cmdline\n\
ExecStart=/usr/bin/coreos-metadata ${COREOS_METADATA_OPT_PROVIDER} --attributes=/run/metadata/flatcar\n\
[Install]\nRequiredBy=metadata.target\n";
        let node = ignition(packet);
        let metadata = rack_metadata(&node);
        assert!(metadata.is_empty(), "{metadata:?}");
        let problems = judge_kubelet(&node, &metadata).expect_err("refused");
        let text = format!("{problems:?}");
        assert!(text.contains("COREOS_PACKET_IPV4_PRIVATE_0"), "{text}");
    }

    #[test]
    fn a_unit_writing_the_machines_addresses_is_run_and_read() {
        let rack = "[Service]\nType=oneshot\nExecStart=/usr/bin/mkdir -p /run/metadata\n\
ExecStart=/usr/bin/sh -c 'echo COREOS_PACKET_IPV4_PRIVATE_0=10.0.0.5 >/run/metadata/flatcar; \
echo COREOS_PACKET_IPV4_PUBLIC_0=127.10.0.5 >>/run/metadata/flatcar'\n\
[Install]\nRequiredBy=metadata.target\n";
        let metadata = rack_metadata(&ignition(rack));
        assert_eq!(
            metadata
                .get("COREOS_PACKET_IPV4_PRIVATE_0")
                .map(String::as_str),
            Some("10.0.0.5")
        );
        assert_eq!(
            metadata
                .get("COREOS_PACKET_IPV4_PUBLIC_0")
                .map(String::as_str),
            Some("127.10.0.5")
        );
    }
}
