//! Would this node's `kubelet.service` start a kubelet on Flatcar, and with what?
//!
//! systemd starts the unit at boot only if it is enabled into a target that boots or pulled in by
//! a unit that starts; it refuses to start it when a required `EnvironmentFile=` is missing; the
//! variables the command line uses come from `Environment=` and the environment files present
//! when it starts (so a file written by a service must be written by a service ordered before
//! the kubelet); docker runs the image with the arguments after it; the kubelet must accept each
//! flag and each self-label, and reads its kubeconfig through the container's mounts.

use std::collections::{BTreeMap, BTreeSet};

use super::data::{Facts, facts};
use super::docker::DockerRun;
use super::flags::{ParsedArgs, judge_process};
use super::labels::parse_node_labels;
use super::problem::Problem;
use super::systemd::{Unit, expand, parse_environment_file};
use crate::ignition::NodeIgnition;

/// The unit judged.
pub const KUBELET_UNIT: &str = "kubelet.service";

/// Targets a Flatcar node reaches at boot.
const BOOT_TARGETS: [&str; 5] = [
    "default.target",
    "multi-user.target",
    "basic.target",
    "sysinit.target",
    "network.target",
];

/// A kubelet that starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeletStart {
    /// Labels from `--node-labels`, variables expanded.
    pub labels: BTreeMap<String, String>,
    /// `--node-ip`, if given.
    pub node_ip: Option<String>,
    /// The host path of the kubeconfig it starts with: `--kubeconfig`, or
    /// `--bootstrap-kubeconfig` when the Ignition does not write the former.
    pub kubeconfig: String,
    /// `kubeconfig` is the `--bootstrap-kubeconfig`: the kubelet gets its client certificate by
    /// TLS bootstrap and writes `--kubeconfig` itself.
    pub bootstrap: bool,
    /// `--rotate-certificates`: the kubelet renews its client certificate.
    pub rotate_certificates: bool,
    /// The host directory of `--pod-manifest-path` (its static pods), if given and mounted.
    pub pod_manifest_path: Option<String>,
    /// Every argument as the kubelet reads it.
    pub args: ParsedArgs,
    /// The nameservers of its `--resolv-conf` as the kubelet reads that file: what a pod of
    /// `dnsPolicy: Default` gets.
    pub host_nameservers: Vec<String>,
}

/// A docker-run unit as it would start: its container's process, judged.
#[derive(Debug, Clone)]
pub struct DockerUnit {
    /// The `docker run`.
    pub run: DockerRun,
    /// The process's arguments.
    pub args: ParsedArgs,
}

/// The units of a node's Ignition, parsed.
pub struct NodeUnits {
    units: BTreeMap<String, (bool, Unit)>,
}

impl NodeUnits {
    /// Parses every unit of `ignition`, with the units Flatcar ships: a unit the Ignition only
    /// enables (or gives drop-ins) is Flatcar's text.
    pub fn new(ignition: &NodeIgnition) -> NodeUnits {
        let flatcar = &facts().flatcar;
        let mut units: BTreeMap<String, (bool, Unit)> = flatcar
            .builtin_units
            .iter()
            .map(|(name, text)| {
                let enabled = flatcar.enabled_by_default.contains(name);
                (name.clone(), (enabled, Unit::parse(name, text)))
            })
            .collect();
        for declared in &ignition.units {
            let text = match flatcar.builtin_units.get(&declared.name) {
                Some(builtin) if !declared.has_contents => format!("{builtin}\n{}", declared.text),
                _ => declared.text.clone(),
            };
            let enabled = declared.enabled
                || (!declared.has_contents && flatcar.enabled_by_default.contains(&declared.name));
            units.insert(
                declared.name.clone(),
                (enabled, Unit::parse(&declared.name, &text)),
            );
        }
        NodeUnits { units }
    }

    /// A declared unit.
    pub fn unit(&self, name: &str) -> Option<&Unit> {
        self.units.get(name).map(|(_, unit)| unit)
    }

    /// Units started at boot: boot targets, enabled units installed into a started unit, and
    /// everything a started unit requires or wants (units Flatcar ships are not declared and
    /// count as present).
    pub fn started_at_boot(&self) -> BTreeSet<String> {
        let mut started: BTreeSet<String> = BOOT_TARGETS.iter().map(|t| (*t).to_owned()).collect();
        loop {
            let before = started.len();
            for (name, (enabled, unit)) in &self.units {
                let installed = unit
                    .list("Install", "WantedBy")
                    .into_iter()
                    .chain(unit.list("Install", "RequiredBy"));
                if *enabled && installed.into_iter().any(|t| started.contains(&t)) {
                    started.insert(name.clone());
                }
            }
            let pulled: Vec<String> = started
                .iter()
                .filter_map(|name| self.unit(name))
                .flat_map(|unit| {
                    ["Requires", "Wants", "BindsTo"]
                        .into_iter()
                        .flat_map(|key| unit.list("Unit", key))
                })
                .collect();
            started.extend(pulled);
            if started.len() == before {
                return started;
            }
        }
    }

    /// Whether `first` is ordered before `then` (`then` has `After=first`, or `first` has
    /// `Before=then`).
    pub fn ordered_before(&self, first: &str, then: &str) -> bool {
        self.unit(then)
            .is_some_and(|u| u.list("Unit", "After").iter().any(|a| a == first))
            || self
                .unit(first)
                .is_some_and(|u| u.list("Unit", "Before").iter().any(|b| b == then))
    }
}

/// The environment `unit_name` starts with on this node, or why systemd would not start it.
/// `metadata` holds what Flatcar's metadata service writes on this node.
pub fn unit_environment(
    ignition: &NodeIgnition,
    units: &NodeUnits,
    unit_name: &str,
    metadata: &BTreeMap<String, String>,
    facts: &Facts,
    problems: &mut Vec<Problem>,
) -> BTreeMap<String, String> {
    let Some(unit) = units.unit(unit_name) else {
        return BTreeMap::new();
    };
    let started = units.started_at_boot();
    let mut env = BTreeMap::new();
    for file in unit.environment_files() {
        if let Some(written) = ignition.file(&file.path) {
            env.extend(parse_environment_file(&String::from_utf8_lossy(
                &written.contents,
            )));
            continue;
        }
        let producer = facts
            .flatcar
            .environment_file_producers
            .iter()
            .find(|p| p.path == file.path);
        let present = match producer {
            Some(p) if !started.contains(&p.unit) => {
                problems.push(Problem::new(
                    unit_name,
                    format!(
                        "EnvironmentFile={} is written by {}, which nothing starts at boot (it is not enabled, and {unit_name} neither Requires= nor Wants= it)",
                        file.path, p.unit
                    ),
                ));
                false
            }
            Some(p) if !units.ordered_before(&p.unit, unit_name) => {
                problems.push(Problem::new(
                    unit_name,
                    format!(
                        "EnvironmentFile={} is written by {}, but {unit_name} is not ordered after it (no After={}): systemd starts both at once and reads the file before it exists (upstream Lokomotive had Requires= and After=coreos-metadata.service; {})",
                        file.path, p.unit, p.unit, p.source
                    ),
                ));
                false
            }
            Some(p) => {
                env.extend(
                    metadata
                        .iter()
                        .filter(|(k, _)| k.starts_with(&p.variables_prefix))
                        .map(|(k, v)| (k.clone(), v.clone())),
                );
                true
            }
            None => false,
        };
        if !present && !file.optional && producer.is_none() {
            problems.push(Problem::new(
                unit_name,
                format!(
                    "Failed to load environment files: {} does not exist (nothing on the node writes it)",
                    file.path
                ),
            ));
        }
    }
    env.extend(unit.environment());
    env
}

/// Judges a unit whose `ExecStart=` is a `docker run`: started at boot, environment, the docker
/// command line, the image, and the container process's arguments.
pub fn judge_docker_unit(
    ignition: &NodeIgnition,
    unit_name: &str,
    metadata: &BTreeMap<String, String>,
) -> (Option<DockerUnit>, Vec<Problem>) {
    let facts = facts();
    let mut problems = Vec::new();
    let units = NodeUnits::new(ignition);
    let Some(unit) = units.unit(unit_name) else {
        problems.push(Problem::new(
            unit_name,
            "the Ignition declares no such unit",
        ));
        return (None, problems);
    };
    if !units.started_at_boot().contains(unit_name) {
        problems.push(Problem::new(
            unit_name,
            "nothing starts it at boot: it is not enabled into a target that boots (enabled with [Install] WantedBy=multi-user.target), and no started unit Requires= or Wants= it",
        ));
    }
    let env = unit_environment(ignition, &units, unit_name, metadata, facts, &mut problems);
    // The container is started by ExecStart's `docker run`, or by a detached `docker run -d` in
    // ExecStartPre with ExecStart following its logs (Typhoon v1.32.3's kubelet.service).
    let exec = unit.exec("ExecStart");
    if exec.len() != 1 {
        problems.push(Problem::new(
            unit_name,
            format!(
                "has {} ExecStart= lines; a service runs exactly one",
                exec.len()
            ),
        ));
        return (None, problems);
    }
    let is_run = |line: &&super::systemd::ExecLine| {
        let words: Vec<&str> = line.words.iter().take(2).map(|w| w.text.as_str()).collect();
        words
            .first()
            .is_some_and(|w| w.rsplit('/').next() == Some("docker"))
            && words.get(1) == Some(&"run")
    };
    let pre = unit.exec("ExecStartPre");
    let Some(start) = exec.iter().find(is_run).or_else(|| pre.iter().find(is_run)) else {
        problems.push(Problem::new(
            unit_name,
            "neither ExecStart nor ExecStartPre runs `docker run`, so no container starts",
        ));
        return (None, problems);
    };
    let (argv, used) = expand(&start.words, &env);
    for name in used.iter().filter(|name| !env.contains_key(*name)) {
        problems.push(Problem::new(
            unit_name,
            format!(
                "ExecStart uses ${{{name}}}, which is not set when the unit starts (no Environment= and no environment file present at start defines it), so it expands to nothing"
            ),
        ));
    }
    let (unit, run_problems) = judge_docker_argv(unit_name, &argv);
    problems.extend(run_problems);
    (unit, problems)
}

/// The unit of a controller's etcd member.
pub const ETCD_UNIT: &str = "etcd-member.service";

/// The host path of the certificate a node's etcd member serves its clients with: its unit's
/// `--cert-file`, through the container's bind mounts. `None` when the node runs no etcd
/// member that names one.
pub fn etcd_serving_cert(ignition: &NodeIgnition) -> Option<String> {
    let (unit, _) = judge_docker_unit(ignition, ETCD_UNIT, &BTreeMap::new());
    let DockerUnit { run, args } = unit?;
    run.host_path(args.value("cert-file")?)
}

/// Judges a `docker run` command line: docker accepts it, the image is known, and the
/// container's process accepts its arguments.
pub fn judge_docker_argv(subject: &str, argv: &[String]) -> (Option<DockerUnit>, Vec<Problem>) {
    let facts = facts();
    let run = match DockerRun::parse(argv, &facts.docker_run) {
        Ok(run) => run,
        Err(error) => {
            return (
                None,
                vec![Problem::new(
                    subject,
                    format!("not a docker run docker accepts: {error}"),
                )],
            );
        }
    };
    let Some(image) = facts.image(&run.image) else {
        return (
            None,
            vec![Problem::new(
                subject,
                format!(
                    "image {} is not one whose ENTRYPOINT/CMD the facts know (sim/data/images.json)",
                    run.image
                ),
            )],
        );
    };
    let process = run.process_argv(image);
    let (args, problems) = judge_process(subject, image, &process, facts);
    (args.map(|args| DockerUnit { run, args }), problems)
}

/// Judges `kubelet.service`: a kubelet that registers, or every reason it would not.
pub fn judge_kubelet(
    ignition: &NodeIgnition,
    metadata: &BTreeMap<String, String>,
) -> Result<KubeletStart, Vec<Problem>> {
    let facts = facts();
    let (unit, mut problems) = judge_docker_unit(ignition, KUBELET_UNIT, metadata);
    let Some(DockerUnit { run, args }) = unit else {
        return Err(problems);
    };
    if args.component != "kubelet" {
        problems.push(Problem::new(
            KUBELET_UNIT,
            format!(
                "the container runs {} ({}), not a kubelet",
                args.component, args.binary
            ),
        ));
        return Err(problems);
    }
    // --node-labels is a map flag: repeated flags add up.
    let labels: BTreeMap<String, String> = args
        .values("node-labels")
        .into_iter()
        .flat_map(parse_node_labels)
        .collect();
    if let Some(refusal) = facts.label_rule.refuse(&labels) {
        problems.push(Problem::new(
            KUBELET_UNIT,
            format!("kubelet exits: {refusal}"),
        ));
    }
    if let Some(mount) = run.mount_for("/sys/fs/cgroup")
        && mount.read_only
    {
        problems.push(Problem::new(
            KUBELET_UNIT,
            format!(
                "-v {} makes /sys/fs/cgroup read-only in the kubelet's container: the kubelet cannot create the pods' cgroups (Typhoon v1.32.3 mounts -v /sys/fs/cgroup:/sys/fs/cgroup read-write)",
                mount.spec
            ),
        ));
    }
    // With --bootstrap-kubeconfig the kubelet writes --kubeconfig itself after TLS bootstrap.
    let (kubeconfig_flag, bootstrap) =
        match (args.value("kubeconfig"), args.value("bootstrap-kubeconfig")) {
            (Some(path), Some(bootstrap))
                if run
                    .host_path(path)
                    .is_none_or(|host| ignition.file(&host).is_none()) =>
            {
                (Some(bootstrap), true)
            }
            (kubeconfig, _) => (kubeconfig, false),
        };
    let kubeconfig = match kubeconfig_flag {
        None => {
            problems.push(Problem::new(
                KUBELET_UNIT,
                "no --kubeconfig: the kubelet runs standalone and never registers with an apiserver",
            ));
            None
        }
        Some(path) => match run.host_path(path) {
            None => {
                problems.push(Problem::new(
                    KUBELET_UNIT,
                    format!("--kubeconfig (or --bootstrap-kubeconfig) {path} is not under any -v bind mount, so the container does not see a host file there"),
                ));
                None
            }
            Some(host) if ignition.file(&host).is_none() => {
                problems.push(Problem::new(
                    KUBELET_UNIT,
                    format!("--kubeconfig (or --bootstrap-kubeconfig) {path} is the host's {host}, which the Ignition does not write"),
                ));
                None
            }
            Some(host) => Some(host),
        },
    };
    match kubeconfig {
        Some(kubeconfig) if problems.is_empty() => Ok(KubeletStart {
            labels,
            node_ip: args.value("node-ip").map(str::to_owned),
            kubeconfig,
            bootstrap,
            rotate_certificates: args.bool_flag("rotate-certificates"),
            pod_manifest_path: args
                .value("pod-manifest-path")
                .and_then(|path| run.host_path(path)),
            host_nameservers: host_nameservers(ignition, &run, &args, facts),
            args,
        }),
        _ => Err(problems),
    }
}

/// The nameservers of the kubelet's `--resolv-conf` (by default `/etc/resolv.conf`), as the
/// kubelet reads the file from its container: a host file through a `-v` mount, else the copy
/// of the host's `/etc/resolv.conf` docker gives a `--network host` container. A file the
/// Ignition writes is read; one Flatcar provides is known from the facts. An empty
/// `--resolv-conf` makes the kubelet give `Default` pods 127.0.0.1 (`GetPodDNS`,
/// `pkg/kubelet/network/dns/dns.go`).
fn host_nameservers(
    ignition: &NodeIgnition,
    run: &DockerRun,
    args: &ParsedArgs,
    facts: &Facts,
) -> Vec<String> {
    let path = args.value("resolv-conf").unwrap_or("/etc/resolv.conf");
    if path.is_empty() {
        return vec!["127.0.0.1".to_owned()];
    }
    let Some(host) = run
        .host_path(path)
        .or_else(|| (path == "/etc/resolv.conf").then(|| path.to_owned()))
    else {
        // Not in the container: the kubelet cannot read it, and no pod gets a nameserver.
        return Vec::new();
    };
    if let Some(file) = ignition.file(&host) {
        return String::from_utf8_lossy(&file.contents)
            .lines()
            .filter_map(|line| line.trim().strip_prefix("nameserver"))
            .map(|rest| rest.trim().to_owned())
            .filter(|address| !address.is_empty())
            .collect();
    }
    facts
        .flatcar
        .resolv_conf
        .nameservers(&host)
        .unwrap_or_default()
}

/// What `coreos-metadata.service` writes to `/run/metadata/flatcar` on a Packet node
/// (afterburn's Packet provider attribute names).
pub fn packet_metadata(
    hostname: &str,
    public_ipv4: &str,
    private_ipv4: &str,
) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("COREOS_PACKET_HOSTNAME".to_owned(), hostname.to_owned()),
        (
            "COREOS_PACKET_IPV4_PUBLIC_0".to_owned(),
            public_ipv4.to_owned(),
        ),
        (
            "COREOS_PACKET_IPV4_PRIVATE_0".to_owned(),
            private_ipv4.to_owned(),
        ),
    ])
}

/// The kubelet's reading of a node's Ignition, beside its judge: the Ignition's parser stays
/// below the judges, which read it.
impl NodeIgnition {
    /// The text of the kubeconfig `kubelet.service` starts with (through the container's bind
    /// mounts): its `--kubeconfig` if the Ignition writes that file, else its
    /// `--bootstrap-kubeconfig` (the kubelet writes `--kubeconfig` itself after TLS bootstrap),
    /// whether or not that kubelet would start; see [`judge_kubelet`]
    /// for that.
    pub fn kubelet_kubeconfig(&self) -> Option<String> {
        let (unit, _) = judge_docker_unit(self, KUBELET_UNIT, &BTreeMap::new());
        let unit = unit?;
        ["kubeconfig", "bootstrap-kubeconfig"]
            .into_iter()
            .filter_map(|flag| unit.run.host_path(unit.args.value(flag)?))
            .find_map(|host| self.file(&host))
            .map(|file| String::from_utf8_lossy(&file.contents).into_owned())
    }

    /// The labels of `kubelet.service`'s `--node-labels`, read as docker and the kubelet read
    /// the unit, whether or not the kubelet accepts them; see
    /// [`judge_kubelet`] for that.
    pub fn node_labels(&self) -> BTreeMap<String, String> {
        let (unit, _) = judge_docker_unit(self, KUBELET_UNIT, &BTreeMap::new());
        unit.and_then(|unit| unit.args.value("node-labels").map(parse_node_labels))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::problem::lines;

    const GOOD_UNIT: &str = "[Unit]\nRequires=docker.service coreos-metadata.service\n\
After=docker.service coreos-metadata.service\n[Service]\nEnvironmentFile=/run/metadata/flatcar\n\
ExecStart=/usr/bin/docker run --rm --name kubelet --privileged --pid host --network host \\\n\
  -v /etc/kubernetes:/etc/kubernetes:ro -v /var/lib/kubelet:/var/lib/kubelet:rshared \\\n\
  quay.io/poseidon/kubelet:v1.32.3 \\\n\
  --node-ip=${COREOS_PACKET_IPV4_PRIVATE_0} \\\n\
  --node-labels=node.kubernetes.io/node,lokomotive.alpha.kinvolk.io/public-ipv4=${COREOS_PACKET_IPV4_PUBLIC_0} \\\n\
  --kubeconfig=/etc/kubernetes/kubeconfig --pod-manifest-path=/etc/kubernetes/manifests --read-only-port=0\n\
[Install]\nWantedBy=multi-user.target\n";

    fn ignition(kubelet: &str, enabled: bool) -> NodeIgnition {
        NodeIgnition::parse(
            &serde_json::json!({
                "ignition": {"version": "3.3.0"},
                "storage": {"files": [{"path": "/etc/kubernetes/kubeconfig", "contents": {"source": "data:,kubeconfig"}}]},
                "systemd": {"units": [{"name": "kubelet.service", "enabled": enabled, "contents": kubelet}]}
            })
            .to_string(),
        )
    }

    fn metadata() -> BTreeMap<String, String> {
        packet_metadata("w-0", "127.10.0.2", "10.0.0.2")
    }

    fn refused(unit: &str) -> String {
        let problems = judge_kubelet(&ignition(unit, true), &metadata()).expect_err("refused");
        lines(&problems)
    }

    #[test]
    fn a_correct_kubelet_unit_starts_a_kubelet() {
        let start = judge_kubelet(&ignition(GOOD_UNIT, true), &metadata()).expect("starts");
        assert_eq!(start.node_ip.as_deref(), Some("10.0.0.2"));
        assert_eq!(start.kubeconfig, "/etc/kubernetes/kubeconfig");
        assert_eq!(
            start.labels["lokomotive.alpha.kinvolk.io/public-ipv4"],
            "127.10.0.2"
        );
        assert!(start.labels.contains_key("node.kubernetes.io/node"));
    }

    #[test]
    fn a_doubled_entrypoint_is_reported() {
        let text = refused(&GOOD_UNIT.replace("v1.32.3 \\\n", "v1.32.3 /kubelet \\\n"));
        assert!(text.contains("positional argument \"/kubelet\""), "{text}");
    }

    #[test]
    fn an_unknown_flag_is_reported() {
        let text = refused(&GOOD_UNIT.replace("--pod-manifest-path", "--static-pod-path"));
        assert!(text.contains("unknown flag: --static-pod-path"), "{text}");
    }

    #[test]
    fn a_forbidden_self_label_is_reported() {
        let text =
            refused(&GOOD_UNIT.replace("node.kubernetes.io/node", "node-role.kubernetes.io/node"));
        assert!(text.contains("[node-role.kubernetes.io/node]"), "{text}");
    }

    #[test]
    fn an_environment_file_without_a_producer_ordered_before_is_reported() {
        let unordered = GOOD_UNIT.replace(
            "After=docker.service coreos-metadata.service",
            "After=docker.service",
        );
        let text = refused(&unordered);
        assert!(
            text.contains("not ordered after it (no After=coreos-metadata.service)"),
            "{text}"
        );
        assert!(text.contains("${COREOS_PACKET_IPV4_PRIVATE_0}"), "{text}");
        let not_started = GOOD_UNIT.replace(
            "Requires=docker.service coreos-metadata.service",
            "Requires=docker.service",
        );
        let text = refused(&not_started);
        assert!(text.contains("nothing starts at boot"), "{text}");
        let missing = GOOD_UNIT.replace("/run/metadata/flatcar", "/etc/kubelet.env");
        let text = refused(&missing);
        assert!(
            text.contains("Failed to load environment files: /etc/kubelet.env"),
            "{text}"
        );
    }

    /// Typhoon v1.32.3's shape (poseidon/typhoon, aws/flatcar-linux/kubernetes/workers/butane/
    /// worker.yaml): a detached `docker run -d` in ExecStartPre, ExecStart following its logs,
    /// repeated --node-labels, TLS bootstrap.
    #[test]
    fn a_detached_run_with_repeated_labels_and_bootstrap_starts_a_kubelet() {
        let unit = "[Unit]\nRequires=docker.service coreos-metadata.service\nAfter=docker.service coreos-metadata.service\n\
[Service]\nEnvironment=KUBELET_IMAGE=quay.io/poseidon/kubelet:v1.32.3\nEnvironmentFile=/run/metadata/flatcar\n\
ExecStartPre=/usr/bin/docker run -d --name kubelet --privileged --pid host --network host \\\n\
  -v /etc/kubernetes:/etc/kubernetes:ro -v /sys/fs/cgroup:/sys/fs/cgroup \\\n\
  ${KUBELET_IMAGE} --bootstrap-kubeconfig=/etc/kubernetes/kubeconfig --kubeconfig=/var/lib/kubelet/kubeconfig \\\n\
  --node-labels=node.kubernetes.io/node --node-labels=pool=a\n\
ExecStart=docker logs -f kubelet\n[Install]\nWantedBy=multi-user.target\n";
        let start = judge_kubelet(&ignition(unit, true), &metadata()).expect("starts");
        assert_eq!(start.kubeconfig, "/etc/kubernetes/kubeconfig");
        assert!(start.bootstrap);
        assert!(start.labels.contains_key("node.kubernetes.io/node"));
        assert_eq!(start.labels["pool"], "a");
    }

    #[test]
    fn read_only_cgroups_are_reported() {
        let text = refused(
            &GOOD_UNIT.replace("-v /var/lib/kubelet", "-v /sys:/sys:ro -v /var/lib/kubelet"),
        );
        assert!(
            text.contains("-v /sys:/sys:ro makes /sys/fs/cgroup read-only"),
            "{text}"
        );
        let start = judge_kubelet(
            &ignition(
                &GOOD_UNIT.replace(
                    "-v /var/lib/kubelet",
                    "-v /sys:/sys:ro -v /sys/fs/cgroup:/sys/fs/cgroup -v /var/lib/kubelet",
                ),
                true,
            ),
            &metadata(),
        );
        assert!(start.is_ok(), "{start:?}");
    }

    #[test]
    fn a_unit_nothing_starts_or_a_missing_kubeconfig_is_reported() {
        let problems =
            judge_kubelet(&ignition(GOOD_UNIT, false), &metadata()).expect_err("not started");
        assert!(lines(&problems).contains("nothing starts it at boot"));
        let text = refused(&GOOD_UNIT.replace(
            "--kubeconfig=/etc/kubernetes/kubeconfig",
            "--kubeconfig=/etc/kubernetes/other",
        ));
        assert!(text.contains("which the Ignition does not write"), "{text}");
        let text = refused(&GOOD_UNIT.replace("-v /etc/kubernetes:/etc/kubernetes:ro ", ""));
        assert!(text.contains("not under any -v bind mount"), "{text}");
    }
}
