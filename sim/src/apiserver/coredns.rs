//! What a CoreDNS pod does, from its Corefile (the ConfigMap it mounts), its resolv.conf and the
//! cluster's Services. Facts from CoreDNS v1.11.4 (`coredns/coredns`, tag v1.11.4):
//!
//! - `plugin/loop/README.md`: *loop* sends a probe query (`HINFO`) for the first zone of its
//!   server block to the server itself at start; when the probe comes back more than twice
//!   the server forwards to itself, and CoreDNS halts. "When a CoreDNS Pod deployed in
//!   Kubernetes detects a loop, the CoreDNS Pod will start to CrashLoopBackOff", the most
//!   common cause being "CoreDNS forwarding requests directly to itself", through a loopback
//!   address or through an upstream that forwards back to CoreDNS.
//! - `plugin/loop/loop.go`: the fatal line, `Loop (%s -> %s) detected for zone %q, see
//!   https://coredns.io/plugins/loop#troubleshooting. Query: "HINFO %s"`, sender first, then
//!   the server's listen address (`:53`).
//! - `forward FROM TO...`: a `TO` that is a path is a resolv.conf whose nameservers are the
//!   upstreams; in a pod, `/etc/resolv.conf` is the one the kubelet writes for the pod.
//! - The *kubernetes* plugin lists and watches what its ClusterRole grants; until it has synced
//!   the *ready* plugin answers 503 on :8181/ready (`Still waiting on: "kubernetes"`).
//!
//! So a CoreDNS pod whose Corefile forwards `.` to `/etc/resolv.conf`, with `loop`, and whose
//! resolv.conf names the cluster DNS Service (which selects CoreDNS's own pods: the
//! `ClusterFirst` default) or a loopback address, crash-loops.

use std::net::IpAddr;

use serde_json::Value;

use super::kubelet::Kubelet;
use super::network;
use super::verdict::{Cluster, Verdict, config_map_data};

/// Whether a PodSpec runs CoreDNS (an image of a `coredns` repository).
pub(super) fn runs_coredns(template: &Value) -> bool {
    coredns_container(template).is_some()
}

fn coredns_container(template: &Value) -> Option<&Value> {
    template["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|container| {
            container["image"]
                .as_str()
                .and_then(|image| image.split([':', '@']).next())
                .is_some_and(|repository| repository.rsplit('/').next() == Some("coredns"))
        })
}

/// What the CoreDNS pod of workload `name` (`labels` its pod labels) does on `kubelet`'s node,
/// with `nameservers` in its resolv.conf.
pub(super) fn verdict(
    cluster: &Cluster<'_>,
    namespace: &str,
    name: &str,
    labels: &Value,
    template: &Value,
    nameservers: &[String],
    kubelet: &Kubelet,
) -> Verdict {
    let Some(container) = coredns_container(template) else {
        return Verdict::Ready;
    };
    let Some(corefile) = corefile(cluster, namespace, template, container) else {
        // No -conf: CoreDNS serves its built-in default (whoami), which forwards nowhere.
        return Verdict::Ready;
    };
    let corefile = match corefile {
        Ok(text) => text,
        Err(missing) => {
            return Verdict::Crashes(format!("open {missing}: no such file or directory"));
        }
    };
    for block in server_blocks(&corefile) {
        let Some(looping) =
            block.loop_detected(nameservers, |ip| serves_pod(cluster, namespace, labels, ip))
        else {
            continue;
        };
        let sender = if looping.is_loopback() {
            "127.0.0.1".to_owned()
        } else {
            // Through a Service, the probe comes back masqueraded by kube-proxy (the
            // endpoint is its own client) from the node's address.
            kubelet.internal_ip.to_string()
        };
        return Verdict::Crashes(format!(
            "[FATAL] plugin/loop: Loop ({sender}:{port} -> :{listen}) detected for zone {zone:?}, see https://coredns.io/plugins/loop#troubleshooting. Query: \"HINFO {probe}.{name}\"",
            port = 32768 + u32::from(kubelet.internal_ip.octets()[3]) * 97,
            listen = block.port,
            zone = block.zone,
            // Two random numbers, then the zone (`<n>.<n>.` for the root).
            probe = "4547991504243258144.3688648895315093531",
            name = block.zone.trim_start_matches('.'),
        ));
    }
    if corefile
        .lines()
        .any(|line| line.split_whitespace().next() == Some("kubernetes"))
    {
        let refusal =
            network::account_missing(cluster.objects, name, namespace, template).or_else(|| {
                network::account_refusal(
                    cluster.policy,
                    cluster.requirements,
                    "coredns",
                    name,
                    namespace,
                    template,
                )
            });
        if let Some(refusal) = refusal {
            return Verdict::NotReady(format!(
                "Readiness probe failed: plugin/ready: Still waiting on: \"kubernetes\" ({refusal})"
            ));
        }
    }
    Verdict::Ready
}

/// The Corefile `-conf` names, read through the container's ConfigMap volume; `None` without
/// `-conf`, `Err(path)` when no mounted ConfigMap holds that file.
fn corefile(
    cluster: &Cluster<'_>,
    namespace: &str,
    template: &Value,
    container: &Value,
) -> Option<Result<String, String>> {
    let args: Vec<&str> = container["args"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let path = args
        .iter()
        .position(|arg| *arg == "-conf" || *arg == "--conf")
        .and_then(|at| args.get(at + 1))
        .copied()
        .or_else(|| args.iter().find_map(|arg| arg.strip_prefix("-conf=")))?;
    let found = container["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|mount| {
            let dir = mount["mountPath"].as_str()?.trim_end_matches('/');
            let file = path.strip_prefix(dir)?.strip_prefix('/')?;
            let volume = template["volumes"]
                .as_array()?
                .iter()
                .find(|v| v["name"] == mount["name"])?;
            let config_map = &volume["configMap"];
            let key = match config_map["items"].as_array() {
                Some(items) => items.iter().find(|item| item["path"] == file)?["key"].as_str()?,
                None => file,
            };
            let data = config_map_data(cluster, namespace, config_map["name"].as_str()?)?;
            data[key].as_str().map(str::to_owned)
        });
    Some(found.ok_or_else(|| path.to_owned()))
}

/// Whether `ip` is the cluster IP of a Service of `namespace`'s cluster that selects pods with
/// `labels` on port 53.
fn serves_pod(cluster: &Cluster<'_>, _namespace: &str, labels: &Value, ip: IpAddr) -> bool {
    cluster.objects.iter().any(|(_, object)| {
        let spec = &object["spec"];
        let selector = spec["selector"].as_object();
        object["kind"] == "Service"
            && spec["clusterIP"].as_str().and_then(|s| s.parse().ok()) == Some(ip)
            && selector.is_some_and(|selector| {
                !selector.is_empty() && selector.iter().all(|(key, value)| &labels[key] == value)
            })
            && spec["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|port| port["port"] == 53)
    })
}

/// One server block of a Corefile, as far as *loop* and *forward* go.
#[derive(Debug, PartialEq, Eq)]
struct ServerBlock {
    /// Its first zone, which *loop* probes.
    zone: String,
    /// Its port.
    port: u16,
    /// Whether *loop* is on.
    has_loop: bool,
    /// The upstreams of `forward` for its zone: addresses, or resolv.conf paths.
    upstreams: Vec<String>,
}

impl ServerBlock {
    /// The upstream a probe of this block returns through, if any: a loopback address of its
    /// own port, or an address `serves_self` says leads back to this CoreDNS.
    fn loop_detected(
        &self,
        nameservers: &[String],
        serves_self: impl Fn(IpAddr) -> bool,
    ) -> Option<IpAddr> {
        if !self.has_loop {
            return None;
        }
        self.upstreams
            .iter()
            .flat_map(|upstream| {
                if upstream.starts_with('/') {
                    // In the pod, /etc/resolv.conf is the kubelet's; other files are unknown.
                    let servers: Vec<(IpAddr, u16)> = if upstream == "/etc/resolv.conf" {
                        nameservers
                            .iter()
                            .filter_map(|s| s.parse().ok())
                            .map(|ip| (ip, 53))
                            .collect()
                    } else {
                        Vec::new()
                    };
                    servers
                } else {
                    address(upstream).into_iter().collect()
                }
            })
            // forward's default policy is random: a probe reaches each upstream in turn, and
            // one that leads back is a loop.
            .find(|(ip, port)| *port == self.port && (ip.is_loopback() || serves_self(*ip)))
            .map(|(ip, _)| ip)
    }
}

/// `1.2.3.4`, `1.2.3.4:53`, `dns://1.2.3.4:53`, `[::1]:53` as an address and port.
fn address(upstream: &str) -> Option<(IpAddr, u16)> {
    let bare = upstream.strip_prefix("dns://").unwrap_or(upstream);
    if let Ok(ip) = bare.parse() {
        return Some((ip, 53));
    }
    let socket: std::net::SocketAddr = bare.parse().ok()?;
    Some((socket.ip(), socket.port()))
}

/// The server blocks of a Corefile: `ZONE[:PORT] ... {` up to its closing brace, with the
/// directives at its first level.
fn server_blocks(corefile: &str) -> Vec<ServerBlock> {
    let mut blocks = Vec::new();
    let mut depth = 0usize;
    let mut current: Option<ServerBlock> = None;
    for line in corefile.lines() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let words: Vec<&str> = line
            .split_whitespace()
            .filter(|w| *w != "{" && *w != "}")
            .collect();
        if depth == 0 && line.ends_with('{') {
            let key = words.first().copied().unwrap_or(".");
            let key = key.strip_prefix("dns://").unwrap_or(key);
            let (zone, port) = match key.rsplit_once(':') {
                Some((zone, port)) => (zone, port.parse().unwrap_or(53)),
                None => (key, 53),
            };
            current = Some(ServerBlock {
                zone: if zone.ends_with('.') {
                    zone.to_owned()
                } else {
                    format!("{zone}.")
                },
                port,
                has_loop: false,
                upstreams: Vec::new(),
            });
        } else if depth == 1
            && let Some(block) = current.as_mut()
        {
            match words.as_slice() {
                ["loop", ..] => block.has_loop = true,
                ["forward", from, to @ ..] if *from == "." || *from == block.zone => {
                    block.upstreams.extend(to.iter().map(|t| (*t).to_owned()));
                }
                _ => {}
            }
        }
        depth += line.matches('{').count();
        depth = depth.saturating_sub(line.matches('}').count());
        if depth == 0
            && let Some(block) = current.take()
        {
            blocks.push(block);
        }
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;

    const TYPHOON: &str = ".:53 {\n    errors\n    health {\n      lameduck 5s\n    }\n    ready\n    kubernetes cluster.local in-addr.arpa ip6.arpa {\n        pods insecure\n        fallthrough in-addr.arpa ip6.arpa\n    }\n    prometheus :9153\n    forward . /etc/resolv.conf\n    cache 30\n    loop\n    reload\n    loadbalance\n}\n";

    #[test]
    fn the_corefile_of_typhoon_forwards_the_root_zone_to_resolv_conf_with_loop() {
        assert_eq!(
            server_blocks(TYPHOON),
            vec![ServerBlock {
                zone: ".".to_owned(),
                port: 53,
                has_loop: true,
                upstreams: vec!["/etc/resolv.conf".to_owned()],
            }]
        );
    }

    #[test]
    fn a_loop_is_an_upstream_that_leads_back() {
        let block = &server_blocks(TYPHOON)[0];
        let cluster_dns: IpAddr = "10.3.0.10".parse().expect("ip");
        let is_cluster_dns = |ip: IpAddr| ip == cluster_dns;
        assert_eq!(
            block.loop_detected(&["10.3.0.10".to_owned()], is_cluster_dns),
            Some(cluster_dns)
        );
        assert_eq!(
            block.loop_detected(&["127.0.0.53".to_owned()], is_cluster_dns),
            Some("127.0.0.53".parse().expect("ip"))
        );
        assert_eq!(
            block.loop_detected(&["147.75.207.207".to_owned()], is_cluster_dns),
            None
        );
        let without_loop = TYPHOON.replace("    loop\n", "");
        assert_eq!(
            server_blocks(&without_loop)[0]
                .loop_detected(&["10.3.0.10".to_owned()], is_cluster_dns),
            None
        );
        let to_itself = TYPHOON.replace("/etc/resolv.conf", "127.0.0.1:53");
        assert!(
            server_blocks(&to_itself)[0]
                .loop_detected(&[], is_cluster_dns)
                .is_some()
        );
    }
}
