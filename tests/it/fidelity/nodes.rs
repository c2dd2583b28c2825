//! Units and pods: every program a node or pod runs is one its image holds, with flags that
//! program accepts; the kubelet starts and labels itself only as a kubelet may; every
//! controller's kubelet would run the static control plane from what loko puts on its disk,
//! whose keys are private and never in the Ignition; every node loads its firewall at boot.

use std::collections::{BTreeMap, BTreeSet};

use loko_tests::rendered::{Rendered, render_example};
use serde_json::Value;
use sim::ignition::NodeIgnition;
use sim::judge::data::facts;
use sim::judge::docker::docker_runs_in_shell;
use sim::judge::kubelet::{
    KUBELET_UNIT, NodeUnits, judge_docker_argv, judge_kubelet, packet_metadata,
};
use sim::judge::labels::parse_node_labels;
use sim::judge::pod::{containers, judge_container, judge_static_pod};
use sim::judge::problem::Problem;
use sim::judge::systemd::expand;
use specs::Role;

const EXAMPLES: [&str; 3] = ["tutorial.yaml", "flannel.yaml", "hybrid.yaml"];

/// Problems found over every example; the test fails listing them all.
#[derive(Default)]
struct Findings(Vec<String>);

impl Findings {
    fn add(&mut self, example: &str, problem: impl std::fmt::Display) {
        self.0.push(format!("[{example}] {problem}"));
    }

    fn extend(&mut self, example: &str, problems: impl IntoIterator<Item = Problem>) {
        for problem in problems {
            self.add(example, problem);
        }
    }

    fn assert_none(self, what: &str) {
        let mut lines = self.0;
        lines.sort();
        lines.dedup();
        assert!(
            lines.is_empty(),
            "{what}: {} problem(s)\n{}",
            lines.len(),
            lines.join("\n")
        );
    }
}

fn each_example(mut check: impl FnMut(&str, &Rendered, &mut Findings)) -> Findings {
    let mut findings = Findings::default();
    for example in EXAMPLES {
        let rendered = render_example(example);
        check(example, &rendered, &mut findings);
    }
    findings
}

fn node_ignition(rendered: &Rendered, hostname: &str) -> NodeIgnition {
    NodeIgnition::parse(&rendered.ignitions[hostname].to_string())
}

/// What coreos-metadata would write on the node (documentation addresses: the values do not
/// matter, only that they are there when the kubelet starts).
fn metadata(hostname: &str) -> BTreeMap<String, String> {
    packet_metadata(hostname, "203.0.113.10", "10.128.156.10")
}

/// The kubelet's judged arguments on a node, even when it would not start.
fn kubelet_args(
    ignition: &NodeIgnition,
    hostname: &str,
) -> Option<sim::judge::kubelet::DockerUnit> {
    sim::judge::kubelet::judge_docker_unit(ignition, KUBELET_UNIT, &metadata(hostname)).0
}

#[test]
fn every_kubelet_would_start_on_flatcar() {
    each_example(|example, rendered, findings| {
        for node in &rendered.cluster.nodes {
            let ignition = node_ignition(rendered, &node.hostname);
            if let Err(problems) = judge_kubelet(&ignition, &metadata(&node.hostname)) {
                let problems = problems.into_iter().map(|p| Problem {
                    subject: format!("{}: {}", node.hostname, p.subject),
                    message: p.message,
                });
                findings.extend(example, problems);
            }
        }
    })
    .assert_none("kubelets that would not start on Flatcar");
}

/// Every `docker run` of a unit: in an `Exec*=` line, in an `sh -c` text, or in a script the
/// Ignition writes and the unit runs.
fn unit_docker_runs(
    ignition: &NodeIgnition,
    unit: &sim::judge::systemd::Unit,
    hostname: &str,
) -> Vec<(String, Vec<String>)> {
    let mut env = metadata(hostname);
    env.extend(unit.environment());
    let mut runs = Vec::new();
    for key in [
        "ExecStartPre",
        "ExecStart",
        "ExecStartPost",
        "ExecStop",
        "ExecStopPost",
    ] {
        for line in unit.exec(key) {
            let (argv, _) = expand(&line.words, &env);
            let subject = format!("{hostname}: {} {key}", unit.name);
            let Some(program) = argv.first() else {
                continue;
            };
            if program.rsplit('/').next() == Some("docker") {
                // `docker rm`, `docker pull`… run no container.
                if argv.get(1).map(String::as_str) == Some("run") {
                    runs.push((subject, argv));
                }
            } else if matches!(program.rsplit('/').next(), Some("sh" | "bash"))
                && argv.get(1).map(String::as_str) == Some("-c")
            {
                for run in docker_runs_in_shell(argv.get(2).map_or("", String::as_str)) {
                    runs.push((format!("{subject} (sh -c)"), run));
                }
            } else if let Some(script) = ignition.file(program) {
                for run in docker_runs_in_shell(&String::from_utf8_lossy(&script.contents)) {
                    runs.push((format!("{subject} ({program})"), run));
                }
            }
        }
    }
    runs
}

#[test]
fn every_unit_runs_programs_with_flags_they_accept() {
    each_example(|example, rendered, findings| {
        for node in &rendered.cluster.nodes {
            let ignition = node_ignition(rendered, &node.hostname);
            let units = NodeUnits::new(&ignition);
            for declared in &ignition.units {
                let Some(unit) = units.unit(&declared.name) else {
                    continue;
                };
                for (subject, argv) in unit_docker_runs(&ignition, unit, &node.hostname) {
                    let (_, problems) = judge_docker_argv(&subject, &argv);
                    findings.extend(example, problems);
                }
            }
        }
    })
    .assert_none("unit commands a real node would refuse");
}

/// A workload's pod spec and its name (`static-manifests/x.json: Pod x`).
fn pod_specs(rendered: &Rendered) -> Vec<(String, Value)> {
    let mut specs = Vec::new();
    for (rel, object) in rendered.manifests() {
        let objects = match object["kind"].as_str() {
            Some("List") => object["items"].as_array().cloned().unwrap_or_default(),
            _ => vec![object],
        };
        for object in objects {
            let kind = object["kind"].as_str().unwrap_or_default().to_owned();
            let spec = match kind.as_str() {
                "Pod" => object["spec"].clone(),
                "DaemonSet" | "Deployment" | "StatefulSet" | "ReplicaSet" | "Job" => {
                    object["spec"]["template"]["spec"].clone()
                }
                _ => continue,
            };
            let name = object["metadata"]["name"].as_str().unwrap_or_default();
            specs.push((format!("{rel}: {kind} {name}"), spec));
        }
    }
    specs
}

#[test]
fn every_pod_container_runs_its_component_with_known_flags() {
    each_example(|example, rendered, findings| {
        for (workload, spec) in pod_specs(rendered) {
            for container in containers(&spec) {
                let subject = format!(
                    "{workload}: container {}",
                    container["name"].as_str().unwrap_or_default()
                );
                let (_, problems) = judge_container(&subject, &container);
                findings.extend(example, problems);
            }
        }
    })
    .assert_none("pod containers a real node would not run as intended");
}

/// The labels a node's Node object carries: what its kubelet may set of its `--node-labels`, and
/// what every kubelet sets.
fn node_labels(rendered: &Rendered, hostname: &str) -> BTreeMap<String, String> {
    let rule = &facts().label_rule;
    let ignition = node_ignition(rendered, hostname);
    let mut labels: BTreeMap<String, String> = kubelet_args(&ignition, hostname)
        .and_then(|unit| unit.args.value("node-labels").map(parse_node_labels))
        .unwrap_or_default()
        .into_iter()
        .filter(|(key, _)| rule.allows(key))
        .collect();
    for (key, value) in [
        ("kubernetes.io/hostname", hostname),
        ("kubernetes.io/os", "linux"),
        ("beta.kubernetes.io/os", "linux"),
    ] {
        labels.insert(key.to_owned(), value.to_owned());
    }
    labels
}

#[test]
fn node_selectors_select_labels_the_kubelets_set() {
    each_example(|example, rendered, findings| {
        let nodes: Vec<(String, Role, BTreeMap<String, String>)> = rendered
            .cluster
            .nodes
            .iter()
            .map(|n| (n.hostname.clone(), n.role, node_labels(rendered, &n.hostname)))
            .collect();
        for (workload, spec) in pod_specs(rendered) {
            let Some(selector) = spec["nodeSelector"].as_object() else { continue };
            let selects = |labels: &BTreeMap<String, String>| {
                selector.iter().all(|(key, value)| {
                    labels.get(key).map(String::as_str) == Some(value.as_str().unwrap_or_default())
                })
            };
            let selected: Vec<&str> = nodes
                .iter()
                .filter(|(_, _, labels)| selects(labels))
                .map(|(hostname, _, _)| hostname.as_str())
                .collect();
            if selected.is_empty() {
                findings.add(
                    example,
                    format!(
                        "{workload}: nodeSelector {} matches no node: kubelets set only {}",
                        Value::Object(selector.clone()),
                        nodes
                            .iter()
                            .map(|(h, _, l)| format!("{h} {:?}", l.keys().filter(|k| !k.starts_with("kubernetes.io/") && !k.starts_with("beta.")).collect::<Vec<_>>()))
                            .collect::<Vec<_>>()
                            .join("; ")
                    ),
                );
            } else if ["kube-apiserver", "kube-controller-manager", "kube-scheduler"]
                .iter()
                .any(|c| workload.contains(c))
                && !nodes
                    .iter()
                    .any(|(h, role, _)| *role == Role::Controller && selected.contains(&h.as_str()))
            {
                findings.add(
                    example,
                    format!("{workload}: a control-plane workload whose nodeSelector selects no controller (it selects {selected:?})"),
                );
            }
        }
    })
    .assert_none("node selectors");
}

/// Every controller's kubelet runs the static control plane: the pods loko puts in the kubelet's
/// `--pod-manifest-path` (as the kubelet's unit mounts it), each judged as the kubelet and its
/// component would start it, with the files loko puts on the node.
#[test]
fn every_controller_would_run_the_static_control_plane() {
    each_example(|example, rendered, findings| {
        let on_disk = rendered.controller_files();
        for node in rendered.cluster.controllers() {
            let host = &node.hostname;
            let ignition = node_ignition(rendered, host);
            let Some(unit) = kubelet_args(&ignition, host) else {
                findings.add(example, format!("{host}: no kubelet command to read"));
                continue;
            };
            let Some(path) = unit.args.value("pod-manifest-path") else {
                findings.add(
                    example,
                    format!("{host}: {KUBELET_UNIT}: no --pod-manifest-path, so the kubelet runs no static pod and the controller no control plane; the kubelet flag is --pod-manifest-path"),
                );
                continue;
            };
            let Some(dir) = unit.run.host_path(path) else {
                findings.add(
                    example,
                    format!("{host}: {KUBELET_UNIT}: --pod-manifest-path={path} is not bind-mounted from the host"),
                );
                continue;
            };
            let dir = format!("{}/", dir.trim_end_matches('/'));
            let exists = |path: &str| on_disk.contains_key(path) || ignition.file(path).is_some();
            let mut running = BTreeSet::new();
            for (file, (contents, _)) in &on_disk {
                let Some(name) = file.strip_prefix(&dir) else { continue };
                // The kubelet skips hidden files and reads nothing below its directory.
                if name.starts_with('.') || name.contains('/') {
                    continue;
                }
                let pod: Value = match serde_json::from_slice(contents) {
                    Ok(pod) => pod,
                    Err(e) => {
                        findings.add(example, format!("{host}: {file}: not a manifest: {e}"));
                        continue;
                    }
                };
                match judge_static_pod(&format!("{host}: {file}"), &pod, &exists) {
                    Ok(pod) => {
                        running.insert(pod.args.component);
                    }
                    Err(problems) => findings.extend(example, problems),
                }
            }
            for component in ["kube-apiserver", "kube-controller-manager", "kube-scheduler"] {
                if !running.contains(component) {
                    findings.add(
                        example,
                        format!("{host}: no static {component} pod would run from the kubelet's {dir} (loko puts there: {:?})", on_disk.keys().filter(|f| f.starts_with(&dir)).collect::<Vec<_>>()),
                    );
                }
            }
        }
    })
    .assert_none("static control planes");
}

/// The control plane's keys (and kubeconfigs, which embed one) are 0600 on the controllers, and
/// never in a node's Ignition: Packet's metadata service serves a device's userdata to every
/// process on it.
#[test]
fn the_control_planes_keys_are_private_and_never_in_the_ignition() {
    each_example(|example, rendered, findings| {
        let on_disk = rendered.controller_files();
        let mut keys = Vec::new();
        for (path, (contents, mode)) in &on_disk {
            let text = String::from_utf8_lossy(contents);
            if text.contains("PRIVATE KEY") || text.contains("client-key-data") {
                keys.push((path, text.into_owned()));
                if mode & 0o077 != 0 {
                    findings.add(
                        example,
                        format!("{path}: holds a private key with mode {mode:o}"),
                    );
                }
            }
        }
        if keys.is_empty() {
            findings.add(
                example,
                "the control plane gets no key: its apiserver cannot serve",
            );
        }
        for node in &rendered.cluster.nodes {
            let userdata = rendered.userdata[&node.hostname].to_string();
            let ignition = rendered.ignitions[&node.hostname].to_string();
            for (path, text) in &keys {
                // A key's base64 body, whichever way the Ignition encodes files.
                let body: String = text
                    .lines()
                    .filter(|l| !l.starts_with("-----") && l.len() > 40)
                    .take(1)
                    .collect();
                let encoded = base64_of(text);
                for (what, document) in [("userdata", &userdata), ("installed Ignition", &ignition)]
                {
                    if (!body.is_empty() && document.contains(&body)) || document.contains(&encoded)
                    {
                        findings.add(
                            example,
                            format!("{}: its {what} carries {path}", node.hostname),
                        );
                    }
                }
            }
        }
    })
    .assert_none("control plane secrets");
}

fn base64_of(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// `a.b.c.d/n` as (network, prefix length); a bare address is a /32.
fn parse_cidr(text: &str) -> Option<(u32, u32)> {
    let (address, prefix) = text.split_once('/').unwrap_or((text, "32"));
    let address: std::net::Ipv4Addr = address.parse().ok()?;
    let prefix: u32 = prefix.parse().ok().filter(|p| *p <= 32)?;
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    Some((u32::from(address) & mask, prefix))
}

/// Whether every address of `inner` is in `outer`.
pub(super) fn cidr_contains(outer: &str, inner: &str) -> bool {
    match (parse_cidr(outer), parse_cidr(inner)) {
        (Some((outer_net, outer_len)), Some((inner_net, inner_len))) => {
            let mask = if outer_len == 0 {
                0
            } else {
                u32::MAX << (32 - outer_len)
            };
            inner_len >= outer_len && inner_net & mask == outer_net
        }
        _ => false,
    }
}

/// One `-A INPUT … -j ACCEPT` rule: its protocol, sources and destination ports.
pub(super) struct AcceptRule {
    pub(super) text: String,
    /// `-p`, when the rule names one.
    pub(super) protocol: Option<String>,
    pub(super) sources: Vec<String>,
    pub(super) ports: Vec<(u16, u16)>,
}

pub(super) fn accept_rules(rules: &str) -> Vec<AcceptRule> {
    rules
        .lines()
        .filter(|line| line.starts_with("-A INPUT") && line.contains("-j ACCEPT"))
        .map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let value = |names: &[&str]| {
                words
                    .windows(2)
                    .filter(|w| names.contains(&w[0]))
                    .flat_map(|w| w[1].split(','))
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            };
            let ports = value(&["--dport", "--dports", "--destination-port"])
                .iter()
                .filter_map(|p| {
                    let (low, high) = p.split_once(':').unwrap_or((p, p));
                    Some((low.parse().ok()?, high.parse().ok()?))
                })
                .collect();
            AcceptRule {
                text: line.to_owned(),
                protocol: value(&["-p", "--protocol"]).into_iter().next(),
                sources: value(&["-s", "--source"]),
                ports,
            }
        })
        .collect()
}

#[test]
fn every_node_loads_a_firewall_at_boot_with_ssh_and_the_api_limited_to_management_cidrs() {
    each_example(|example, rendered, findings| {
        let settings = &rendered.cluster.settings;
        let management: BTreeSet<String> =
            settings.management_cidrs.iter().map(ToString::to_string).collect();
        let private = settings.node_private_cidr.to_string();
        // Pods reach the API through the `kubernetes` Service: kube-proxy DNATs to the
        // controllers' :6443 and keeps the pod's source address.
        let pods = settings.pod_cidr.to_string();
        let anywhere = management.contains("0.0.0.0/0");
        for node in &rendered.cluster.nodes {
            let host = &node.hostname;
            let ignition = node_ignition(rendered, host);
            let units = NodeUnits::new(&ignition);
            let started = units.started_at_boot();
            // Flatcar's iptables-restore.service (its own unit, `sim/data/flatcar-node.json`)
            // restores /var/lib/iptables/rules-save; upstream Lokomotive enabled it and wrote
            // that file on every node, and ip6tables-restore.service with its IPv6 twin.
            let mut rules_files = Vec::new();
            let mut rules6_files = Vec::new();
            for name in &started {
                let Some(unit) = units.unit(name) else { continue };
                for line in unit.exec("ExecStart") {
                    let words: Vec<&str> = line.words.iter().map(|w| w.text.as_str()).collect();
                    let file = words.iter().skip(1).rev().find(|w| w.starts_with('/'));
                    match (words.first(), file) {
                        (Some(program), Some(file)) if program.ends_with("/ip6tables-restore") => {
                            rules6_files.push((*file).to_owned());
                        }
                        (Some(program), Some(file)) if program.ends_with("/iptables-restore") => {
                            rules_files.push((*file).to_owned());
                        }
                        _ => {}
                    }
                }
            }
            match rules6_files.iter().find_map(|path| ignition.file(path)) {
                None => findings.add(
                    example,
                    format!("{host}: no IPv6 firewall is loaded at boot (upstream: ip6tables-restore.service enabled, /var/lib/ip6tables/rules-save with INPUT DROP); the node has a public IPv6 address"),
                ),
                Some(rules6) => {
                    let text = String::from_utf8_lossy(&rules6.contents);
                    for required in ["*filter", ":INPUT DROP", "COMMIT"] {
                        if !text.contains(required) {
                            findings.add(example, format!("{host}: {}: no `{required}`", rules6.path));
                        }
                    }
                }
            }
            let Some(rules) = rules_files.iter().find_map(|path| ignition.file(path)) else {
                findings.add(
                    example,
                    format!(
                        "{host}: no firewall is loaded at boot: no started unit restores iptables rules from a file the Ignition writes (upstream: iptables-restore.service enabled, rules in /var/lib/iptables/rules-save; units started at boot here: {})",
                        started.iter().filter(|u| !u.ends_with(".target")).cloned().collect::<Vec<_>>().join(", ")
                    ),
                );
                continue;
            };
            let text = String::from_utf8_lossy(&rules.contents).into_owned();
            for required in ["*filter", ":INPUT DROP", "-A INPUT -i lo -j ACCEPT", "COMMIT"] {
                if !text.contains(required) {
                    findings.add(example, format!("{host}: {}: no `{required}`", rules.path));
                }
            }
            let rules = accept_rules(&text);
            let open_to = |port: u16| -> Vec<&AcceptRule> {
                rules
                    .iter()
                    .filter(|r| r.ports.iter().any(|(low, high)| (*low..=*high).contains(&port)))
                    .collect()
            };
            let mut limited = vec![(22, "SSH", vec![private.clone()])];
            if node.role == Role::Controller {
                limited.push((6443, "the API", vec![private.clone(), pods.clone()]));
            }
            for (port, what, cluster) in limited {
                let accepting = open_to(port);
                for rule in &accepting {
                    let bad: Vec<&String> = rule
                        .sources
                        .iter()
                        .filter(|s| {
                            !management.iter().chain(&cluster).any(|allowed| cidr_contains(allowed, s))
                        })
                        .collect();
                    if rule.sources.is_empty() && !anywhere {
                        findings.add(example, format!("{host}: `{}` opens {what} (port {port}) to every address; management_cidrs are {management:?}", rule.text));
                    } else if !bad.is_empty() {
                        findings.add(example, format!("{host}: `{}` opens {what} (port {port}) to {bad:?}, outside management_cidrs {management:?} and the cluster's {cluster:?}", rule.text));
                    }
                }
                for cidr in &management {
                    let reachable = accepting.iter().any(|r| {
                        r.sources.is_empty() || r.sources.iter().any(|s| cidr_contains(s, cidr))
                    });
                    if !reachable {
                        findings.add(example, format!("{host}: {what} (port {port}) is not open to management CIDR {cidr}"));
                    }
                }
            }
            // etcd, its metrics, the kubelet, kube-proxy's health and BGP answer the cluster only.
            let mut internal = vec![(179, "BGP"), (10250, "the kubelet API"), (10256, "kube-proxy health")];
            if node.role == Role::Controller {
                internal.extend([(2379, "etcd clients"), (2380, "etcd peers"), (2381, "etcd metrics")]);
            }
            for (port, what) in internal {
                for rule in open_to(port) {
                    let outside: Vec<&String> = rule
                        .sources
                        .iter()
                        .filter(|s| !cidr_contains(&private, s) && !cidr_contains(&pods, s))
                        .collect();
                    if rule.sources.is_empty() || !outside.is_empty() {
                        findings.add(example, format!("{host}: `{}` opens {what} (port {port}) beyond the cluster (node_private_cidr {private}, pod_cidr {pods})", rule.text));
                    }
                }
            }
        }
    })
    .assert_none("firewalls");
}

#[test]
fn kubelets_serve_no_unauthenticated_read_only_port() {
    // Upstream Lokomotive (controller.yaml.tmpl and worker.yaml.tmpl @1ad769ec) ran the kubelet
    // with --read-only-port=0; without it (and without a --config file setting readOnlyPort)
    // the flag's default port serves pods and metrics without authentication.
    each_example(|example, rendered, findings| {
        for node in &rendered.cluster.nodes {
            let ignition = node_ignition(rendered, &node.hostname);
            let Some(unit) = kubelet_args(&ignition, &node.hostname) else {
                findings.add(
                    example,
                    format!("{}: no kubelet command to read", node.hostname),
                );
                continue;
            };
            if unit.args.value("read-only-port") != Some("0") && !unit.args.has("config") {
                findings.add(
                    example,
                    format!(
                        "{}: {KUBELET_UNIT}: --read-only-port is not 0",
                        node.hostname
                    ),
                );
            }
        }
    })
    .assert_none("kubelet read-only ports");
}

#[test]
fn firewall_rules_and_cidrs_read_as_iptables_does() {
    let rules = accept_rules(
        "*filter\n:INPUT DROP [0:0]\n-A INPUT -p tcp -s 10.0.0.0/8,192.0.2.0/24 -m multiport --dports 22,2379:2381 -j ACCEPT\n-A INPUT -p tcp --dport 6443 -j ACCEPT\n-A INPUT -p tcp --dport 80 -j DROP\nCOMMIT\n",
    );
    assert_eq!(rules.len(), 2);
    assert_eq!(rules[0].sources, ["10.0.0.0/8", "192.0.2.0/24"]);
    assert_eq!(rules[0].ports, [(22, 22), (2379, 2381)]);
    assert!(rules[1].sources.is_empty());
    assert!(cidr_contains("0.0.0.0/0", "10.2.0.0/16"));
    assert!(cidr_contains("10.0.0.0/8", "10.2.0.0/16"));
    assert!(!cidr_contains("10.2.0.0/16", "10.0.0.0/8"));
    assert!(cidr_contains("153.79.80.1/16", "153.79.0.0/16"));
    assert!(!cidr_contains("192.0.2.0/24", "198.51.100.0/24"));
}
