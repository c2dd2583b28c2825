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

/// The IPv4 rules of a node of `role`.
pub fn rules_v4(cluster: &DesiredCluster, role: Role) -> String {
    let s = &cluster.settings;
    let management: Vec<String> = s.management_cidrs.iter().map(|c| c.to_string()).collect();
    let cluster_sources = [s.node_private_cidr.to_string(), s.pod_cidr.to_string()];
    let mut rules = String::from(
        "*filter\n\
         :INPUT DROP [0:0]\n\
         :FORWARD ACCEPT [0:0]\n\
         :OUTPUT ACCEPT [0:0]\n\
         -A INPUT -i lo -j ACCEPT\n\
         -A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
         -A INPUT -p icmp -j ACCEPT\n",
    );
    let mut allow = |sources: &[String], proto: &str, ports: &str, why: &str| {
        rules.push_str(&format!("# {why}\n"));
        for source in sources {
            rules.push_str(&format!(
                "-A INPUT -p {proto} -s {source} -m multiport --dports {ports} -j ACCEPT\n"
            ));
        }
    };
    allow(&management, "tcp", "22", "SSH: management_cidrs only");
    // kubelet API, kube-proxy health, Calico BGP.
    allow(
        &cluster_sources,
        "tcp",
        "179,10250,10256",
        "kubelet, kube-proxy health, BGP",
    );
    if s.networking == Networking::Flannel {
        allow(&cluster_sources, "udp", "4789", "flannel VXLAN");
    }
    if role == Role::Controller {
        let mut api_sources = management.clone();
        api_sources.extend(cluster_sources.iter().cloned());
        allow(
            &api_sources,
            "tcp",
            "6443",
            "the API: management_cidrs and the cluster",
        );
        allow(
            &cluster_sources,
            "tcp",
            "2379,2380,2381",
            "etcd clients, peers, metrics",
        );
    }
    rules.push_str("COMMIT\n");
    rules
}

/// The IPv6 rules: nothing reaches a node over IPv6 but replies and ICMPv6 (which neighbour
/// discovery needs; the templates dropped it).
pub fn rules_v6() -> String {
    "*filter\n\
     :INPUT DROP [0:0]\n\
     :FORWARD DROP [0:0]\n\
     :OUTPUT ACCEPT [0:0]\n\
     -A INPUT -i lo -j ACCEPT\n\
     -A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
     -A INPUT -p ipv6-icmp -j ACCEPT\n\
     COMMIT\n"
        .to_owned()
}
