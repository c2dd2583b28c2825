//! The host firewall of every node: iptables rules in the files Flatcar's
//! `iptables-restore.service` and `ip6tables-restore.service` load at boot, as the templates
//! wrote them (`/var/lib/iptables/rules-save`), with the sources narrowed.
//!
//! The 2019 templates opened SSH, the API, etcd and its metrics to the whole internet. Here:
//! SSH only from `management_cidrs`; the API from `management_cidrs` and the cluster itself
//! (nodes, and pods through the `kubernetes` service); etcd, its metrics, BGP, the kubelet and
//! kube-proxy's health only from the cluster. Everything else is dropped, except loopback,
//! replies and ICMP. Calico's Felix adds its own rules (IP-in-IP from known hosts) on top.

use specs::{DesiredCluster, Networking, Role};

/// Where Flatcar's `iptables-restore.service` reads the IPv4 rules.
pub const RULES_V4: &str = "/var/lib/iptables/rules-save";
/// Where Flatcar's `ip6tables-restore.service` reads the IPv6 rules.
pub const RULES_V6: &str = "/var/lib/ip6tables/rules-save";

/// One kind of traffic a node accepts: `protocol` to `ports` from `sources` (CIDRs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowance {
    /// Why it is open (a comment in the rules).
    pub why: &'static str,
    /// `tcp` or `udp`.
    pub protocol: &'static str,
    pub ports: Vec<u16>,
    pub sources: Vec<String>,
}

/// What a node of `role` accepts beyond loopback, replies and ICMP. The same list is Felix's
/// failsafe on the controllers' host endpoints (`manifests/network.rs`), so Calico opens
/// nothing these rules close.
pub fn allowances(cluster: &DesiredCluster, role: Role) -> Vec<Allowance> {
    let s = &cluster.settings;
    let management: Vec<String> = s.management_cidrs.iter().map(|c| c.to_string()).collect();
    let cluster_sources = vec![s.node_private_cidr.to_string(), s.pod_cidr.to_string()];
    let mut out = vec![
        Allowance {
            why: "SSH: management_cidrs only",
            protocol: "tcp",
            ports: vec![22],
            sources: management.clone(),
        },
        Allowance {
            why: "kubelet, kube-proxy health, BGP",
            protocol: "tcp",
            ports: vec![179, 10250, 10256],
            sources: cluster_sources.clone(),
        },
    ];
    if s.networking == Networking::Flannel {
        out.push(Allowance {
            why: "flannel VXLAN",
            protocol: "udp",
            ports: vec![4789],
            sources: cluster_sources.clone(),
        });
    }
    if role == Role::Controller {
        let mut api_sources = management;
        api_sources.extend(cluster_sources.iter().cloned());
        out.push(Allowance {
            why: "the API: management_cidrs and the cluster",
            protocol: "tcp",
            ports: vec![6443],
            sources: api_sources,
        });
        out.push(Allowance {
            why: "etcd clients, peers, metrics",
            protocol: "tcp",
            ports: vec![2379, 2380, 2381],
            sources: cluster_sources,
        });
    }
    out
}

/// The IPv4 rules of a node of `role`.
pub fn rules_v4(cluster: &DesiredCluster, role: Role) -> String {
    // Pods' traffic is forwarded (the CNI's own chains judge it).
    let mut rules = filter_head("ACCEPT", "icmp");
    for allowance in allowances(cluster, role) {
        let ports: Vec<String> = allowance.ports.iter().map(u16::to_string).collect();
        rules.push_str(&format!("# {}\n", allowance.why));
        for source in &allowance.sources {
            rules.push_str(&format!(
                "-A INPUT -p {} -s {source} -m multiport --dports {} -j ACCEPT\n",
                allowance.protocol,
                ports.join(",")
            ));
        }
    }
    rules.push_str("COMMIT\n");
    rules
}

/// The IPv6 rules: nothing reaches a node over IPv6 but replies and ICMPv6 (which neighbour
/// discovery needs; the templates dropped it).
pub fn rules_v6() -> String {
    filter_head("DROP", "ipv6-icmp") + "COMMIT\n"
}

/// The start of both tables: nothing comes in but loopback, replies and `icmp` (ICMP or
/// ICMPv6), whatever goes out; forwarded traffic by `forward`'s policy.
fn filter_head(forward: &str, icmp: &str) -> String {
    format!(
        "*filter\n\
         :INPUT DROP [0:0]\n\
         :FORWARD {forward} [0:0]\n\
         :OUTPUT ACCEPT [0:0]\n\
         -A INPUT -i lo -j ACCEPT\n\
         -A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
         -A INPUT -p {icmp} -j ACCEPT\n"
    )
}
