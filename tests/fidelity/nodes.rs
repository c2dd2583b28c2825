//! Units and pods: every program a node or pod runs is one its image holds, with flags that
//! program accepts; the kubelet starts and labels itself only as a kubelet may; static pods go
//! where the kubelet reads them; pod-checkpointer can run; every node loads its firewall at boot.

use std::collections::{BTreeMap, BTreeSet};

use loko_tests::rendered::{Rendered, render_example};
use serde_json::Value;
use sim::judge::data::facts;
use sim::judge::docker::{docker_runs_in_shell, pod_argv};
use sim::judge::flags::{ParsedArgs, judge_process};
use sim::judge::kubelet::{
    KUBELET_UNIT, NodeUnits, judge_docker_argv, judge_kubelet, packet_metadata,
};
use sim::judge::labels::parse_node_labels;
use sim::judge::problem::Problem;
use sim::judge::systemd::expand;
use sim::nodes::ignition::NodeIgnition;
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

/// A workload's pod spec and its name (`bootstrap-manifests/x.yaml: Pod kube-system/x`).
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

fn containers(spec: &Value) -> Vec<Value> {
    ["initContainers", "containers"]
        .iter()
        .filter_map(|key| spec[*key].as_array())
        .flatten()
        .cloned()
        .collect()
}

fn string_list(value: &Value) -> Option<Vec<String>> {
    value.as_array().map(|items| {
        items
            .iter()
            .map(|item| item.as_str().unwrap_or_default().to_owned())
            .collect()
    })
}

/// The checkpointer's arguments, if `container` runs pod-checkpointer: judged through its image,
/// or, when the image is not one the facts know, by its argv[0] being the checkpointer binary
/// some known image holds (`/checkpoint`).
fn checkpointer_args(subject: &str, container: &Value) -> Option<ParsedArgs> {
    if let (Some(args), _) = judge_container(subject, container) {
        return (args.component == "pod-checkpointer").then_some(args);
    }
    let facts = facts();
    let command = string_list(&container["command"]).unwrap_or_default();
    let args = string_list(&container["args"]).unwrap_or_default();
    let argv: Vec<String> = command.into_iter().chain(args).collect();
    let argv0 = argv.first()?;
    let is_checkpointer = facts
        .images
        .iter()
        .any(|image| image.binaries.get(argv0).map(String::as_str) == Some("pod-checkpointer"));
    is_checkpointer.then(|| {
        let spec = &facts.components["pod-checkpointer"];
        sim::judge::flags::check_args(subject, "pod-checkpointer", spec, &argv[1..]).0
    })
}

/// The judged process of a pod container.
fn judge_container(subject: &str, container: &Value) -> (Option<ParsedArgs>, Vec<Problem>) {
    let facts = facts();
    let image_ref = container["image"].as_str().unwrap_or_default();
    let Some(image) = facts.image(image_ref) else {
        return (
            None,
            vec![Problem::new(
                subject,
                format!(
                    "image {image_ref} is not one whose ENTRYPOINT/CMD the facts know (sim/data/images.json); is it the image upstream publishes?"
                ),
            )],
        );
    };
    let command = string_list(&container["command"]);
    let args = string_list(&container["args"]);
    let argv = pod_argv(image, command.as_deref(), args.as_deref());
    judge_process(subject, image, &argv, facts)
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
            } else if ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "pod-checkpointer"]
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

/// The host path a pod's container path comes from (its hostPath volumes and mounts).
fn pod_host_path(spec: &Value, container: &Value, path: &str) -> Option<String> {
    let volumes: BTreeMap<&str, &str> = spec["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| Some((v["name"].as_str()?, v["hostPath"]["path"].as_str()?)))
        .collect();
    container["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| {
            let target = m["mountPath"].as_str()?.trim_end_matches('/');
            let host = volumes.get(m["name"].as_str()?)?;
            let rest = if path == target {
                ""
            } else {
                path.strip_prefix(target).filter(|r| r.starts_with('/'))?
            };
            Some((
                target.len(),
                format!("{}{rest}", host.trim_end_matches('/')),
            ))
        })
        .max()
        .map(|(_, host)| host)
}

#[test]
fn static_pods_go_where_the_kubelet_reads_them() {
    each_example(|example, rendered, findings| {
        let mut kubelet_dirs = BTreeMap::new();
        // Static pods run on controllers: the bootstrap control plane and the checkpoints.
        for node in rendered.cluster.controllers() {
            let ignition = node_ignition(rendered, &node.hostname);
            let Some(unit) = kubelet_args(&ignition, &node.hostname) else {
                findings.add(example, format!("{}: no kubelet command to read", node.hostname));
                continue;
            };
            match unit.args.value("pod-manifest-path") {
                None => findings.add(
                    example,
                    format!(
                        "{}: {KUBELET_UNIT}: no --pod-manifest-path, so the kubelet runs no static pod (the bootstrap control plane and pod-checkpointer's checkpoints never start); the kubelet flag is --pod-manifest-path",
                        node.hostname
                    ),
                ),
                Some(path) => match unit.run.host_path(path) {
                    None => findings.add(
                        example,
                        format!("{}: {KUBELET_UNIT}: --pod-manifest-path={path} is not bind-mounted from the host", node.hostname),
                    ),
                    Some(host) => {
                        kubelet_dirs.insert(node.hostname.clone(), host);
                    }
                },
            }
        }
        // bootkube copies bootstrap-manifests/ into its --pod-manifest-path (default
        // /etc/kubernetes/manifests), inside its container.
        for node in rendered.cluster.controllers() {
            let ignition = node_ignition(rendered, &node.hostname);
            let units = NodeUnits::new(&ignition);
            let Some(bootkube) = units.unit("bootkube.service") else { continue };
            for (subject, argv) in unit_docker_runs(&ignition, bootkube, &node.hostname) {
                let (Some(run), _) = judge_docker_argv(&subject, &argv) else { continue };
                let target = run
                    .args
                    .value("pod-manifest-path")
                    .unwrap_or(facts().components["bootkube"].defaults.get("pod-manifest-path").map_or("/etc/kubernetes/manifests", String::as_str));
                let host = run.run.host_path(target);
                if host.as_ref() != kubelet_dirs.get(&node.hostname) {
                    findings.add(
                        example,
                        format!(
                            "{subject}: bootkube writes the bootstrap static pods to {target} in its container = host {:?}, the kubelet reads {:?}",
                            host,
                            kubelet_dirs.get(&node.hostname)
                        ),
                    );
                }
            }
        }
        // pod-checkpointer writes checkpoints to /etc/kubernetes/manifests in its container
        // (reference images.md: "active checkpoints /etc/kubernetes/manifests").
        for (workload, spec) in pod_specs(rendered) {
            for container in containers(&spec) {
                if checkpointer_args(&workload, &container).is_none() {
                    continue;
                }
                let host = pod_host_path(&spec, &container, "/etc/kubernetes/manifests");
                for node in rendered.cluster.controllers() {
                    if host.as_ref() != kubelet_dirs.get(&node.hostname) {
                        findings.add(
                            example,
                            format!(
                                "{workload}: pod-checkpointer writes checkpoints to host {host:?}, the kubelet of {} reads {:?}",
                                node.hostname,
                                kubelet_dirs.get(&node.hostname)
                            ),
                        );
                    }
                }
            }
        }
    })
    .assert_none("static pod directories");
}

/// Known gap, kept visible: the checkpointer (kinvolk's bootkube fork) has CRI clients for
/// v1alpha1 and v1alpha2 only, and containerd 2 serves v1 alone. On such a node it runs but
/// cannot tell which checkpoints are active (bootkube issue #934: it never pivots back from a
/// checkpointed apiserver), so a single controller does not recover from a reboot. The fix is
/// a design change (a static control plane on every controller, as Typhoon moved to, or a
/// checkpointer with a CRI v1 client), described in `docs/assets.md`. Run it with
/// `cargo nextest run --test fidelity --run-ignored all`.
#[test]
#[ignore = "known gap: pod-checkpointer speaks CRI v1alpha2, containerd 2 serves v1 only (docs/assets.md)"]
fn pod_checkpointer_has_its_environment_and_a_runtime_socket_it_can_speak_to() {
    let facts = facts();
    let spec_of = &facts.components["pod-checkpointer"];
    each_example(|example, rendered, findings| {
        let mut found = false;
        for (workload, spec) in pod_specs(rendered) {
            for container in containers(&spec) {
                let Some(args) = checkpointer_args(&workload, &container) else { continue };
                found = true;
                let env: BTreeSet<&str> = container["env"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|e| e["name"].as_str())
                    .collect();
                for required in &spec_of.required_env {
                    if !env.contains(required.as_str()) {
                        findings.add(
                            example,
                            format!("{workload}: pod-checkpointer exits \"missing required environment variable {required}\" ({})", spec_of.source.as_deref().unwrap_or_default()),
                        );
                    }
                }
                let endpoint = args
                    .value("container-runtime-endpoint")
                    .map(str::to_owned)
                    .or_else(|| spec_of.defaults.get("container-runtime-endpoint").cloned())
                    .unwrap_or_default();
                let flatcar = &facts.flatcar;
                if let Some(absent) = flatcar.absent_sockets.iter().find(|s| s.endpoint == endpoint) {
                    findings.add(
                        example,
                        format!("{workload}: --container-runtime-endpoint is {endpoint} (given or the default), which does not exist on a Flatcar node: {}", absent.why),
                    );
                } else if endpoint == flatcar.docker_api_socket.endpoint {
                    findings.add(
                        example,
                        format!("{workload}: --container-runtime-endpoint={endpoint} is the {}", flatcar.docker_api_socket.why),
                    );
                } else {
                    match flatcar.cri_sockets.iter().find(|s| s.endpoint == endpoint) {
                        None => findings.add(
                            example,
                            format!("{workload}: --container-runtime-endpoint={endpoint} is not a CRI socket a Flatcar node has (known: {})", flatcar.cri_sockets.iter().map(|s| s.endpoint.as_str()).collect::<Vec<_>>().join(", ")),
                        ),
                        Some(socket) if !socket.api_versions.iter().any(|v| spec_of.cri_api_versions.contains(v)) => findings.add(
                            example,
                            format!(
                                "{workload}: pod-checkpointer has CRI clients for {} only; {endpoint} serves {} ({}): it cannot list the node's pods",
                                spec_of.cri_api_versions.join(", "),
                                socket.api_versions.join(", "),
                                socket.source
                            ),
                        ),
                        Some(_) => {}
                    }
                }
            }
        }
        if !found {
            findings.add(example, "no pod-checkpointer: nothing restarts the control plane's static pods after a controller reboot");
        }
    })
    .assert_none("pod-checkpointer");
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
fn cidr_contains(outer: &str, inner: &str) -> bool {
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

/// One `-A INPUT … -j ACCEPT` rule: its sources and TCP destination ports.
struct AcceptRule {
    text: String,
    sources: Vec<String>,
    ports: Vec<(u16, u16)>,
}

fn accept_rules(rules: &str) -> Vec<AcceptRule> {
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
