//! Identities can act: every component's required requests (from the upstream components' own
//! roles, `sim/data/rbac/requirements.yaml`) are allowed by the RBAC loko renders plus Kubernetes'
//! bootstrap policy, judged by `sim::judge::rbac` as the apiserver would; Calico gets the CRDs
//! its version ships; every kubeconfig a host-network pod or the kubelet uses names a server the
//! host can resolve before service IPs route.
//!
//! Identities are read from what loko renders, never from loko's code: the kubelet's from the
//! bootstrap token in the kubeconfig its Ignition writes (authenticated by the token Secret the
//! bootstrap step applies) and then `system:node:<hostname>`, as TLS bootstrap makes it; each
//! pod's from its rendered `serviceAccountName`; delete-node's from the kubeconfig its unit
//! passes to kubectl (the kubelet's own); the static control plane's from the kubeconfig its
//! `--kubeconfig` names on the controller's disk. A node's requests are judged with the Node
//! authorizer and NodeRestriction when the rendered apiserver enables them.

use std::path::Path;

use base64::Engine as _;
use loko_tests::rendered::{Rendered, render_example};
use serde_json::Value;
use sim::judge::rbac::{
    Authorizers, Policy, Request, Requirements, UserInfo, manifest_objects, node_user,
};

pub(super) const EXAMPLES: [&str; 3] = ["tutorial.yaml", "flannel.yaml", "hybrid.yaml"];

/// The kubeconfig path every node's Ignition gives the kubelet (and delete-node, upstream).
pub(super) const NODE_KUBECONFIG: &str = "/etc/kubernetes/kubeconfig";

/// A workload recognized by its container image (the repository's last path segments, as the
/// upstream components publish them), and the requirement identity it must satisfy.
const WORKLOADS: &[(&[&str], &str)] = &[
    (&["kube-proxy"], "kube-proxy"),
    (&["coredns/coredns", "coredns"], "coredns"),
    (&["calico/node"], "calico-node"),
    (&["calico/kube-controllers"], "calico-kube-controllers"),
    (&["flannel/flannel"], "flannel"),
];

pub(super) struct Judge {
    pub(super) rendered: Rendered,
    pub(super) objects: Vec<Value>,
    policy: Policy,
    requirements: Requirements,
}

impl Judge {
    pub(super) fn new(example: &str) -> Judge {
        let rendered = render_example(example);
        let manifests = rendered.root.join("manifests");
        let objects = manifest_objects(&manifests)
            .unwrap_or_else(|e| panic!("{example}: manifests: {e}"))
            .into_iter()
            .map(|(_, object)| object)
            .collect();
        let policy = Policy::bootstrap_with_manifests(&manifests)
            .unwrap_or_else(|e| panic!("{example}: RBAC objects: {e}"));
        Judge {
            rendered,
            objects,
            policy,
            requirements: Requirements::load().expect("the judge's requirements"),
        }
    }

    /// `None` if `user` may make every request of `identity`; else what it may not (the first
    /// few, and how many).
    pub(super) fn refusals(&self, identity: &str, user: &UserInfo, node: &str) -> Option<String> {
        let needs = self
            .requirements
            .identity(identity)
            .unwrap_or_else(|e| panic!("{e}"))
            .requests(node);
        let authorizers = self.apiserver_authorizers();
        let refused: Vec<String> = needs
            .iter()
            .filter(|request| !authorizers.admit(&self.policy, user, request).is_allowed())
            .map(ToString::to_string)
            .collect();
        const SHOWN: usize = 6;
        (!refused.is_empty()).then(|| {
            format!(
                "{} cannot {}{} ({} of the {} requests its upstream role holds are refused)",
                user.describe(),
                refused[..refused.len().min(SHOWN)].join(", "),
                if refused.len() > SHOWN { ", ..." } else { "" },
                refused.len(),
                needs.len()
            )
        })
    }

    /// The Node authorizer and NodeRestriction as the rendered kube-apiserver's flags enable
    /// them.
    fn apiserver_authorizers(&self) -> Authorizers {
        let flags = self.apiserver_flags();
        let listed = |flag: &str, item: &str| {
            flags
                .iter()
                .filter_map(|f| f.strip_prefix(flag))
                .any(|list| list.split(',').any(|i| i == item))
        };
        Authorizers {
            node: listed("--authorization-mode=", "Node"),
            node_restriction: listed("--enable-admission-plugins=", "NodeRestriction"),
        }
    }

    /// The rendered static kube-apiserver's command line.
    pub(super) fn apiserver_flags(&self) -> Vec<String> {
        static_pods(&self.rendered)
            .into_iter()
            .filter(|(_, pod)| pod["metadata"]["name"] == "kube-apiserver")
            .flat_map(|(_, pod)| {
                sim::judge::pod::containers(&pod["spec"])
                    .into_iter()
                    .flat_map(|c| {
                        ["command", "args"]
                            .into_iter()
                            .flat_map(|k| c[k].as_array().cloned().unwrap_or_default())
                            .filter_map(|v| v.as_str().map(str::to_owned))
                            .collect::<Vec<_>>()
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Workloads (DaemonSets, Deployments) by the identity their image makes them.
    fn workloads(&self, identity: &str) -> Vec<&Value> {
        let images = WORKLOADS
            .iter()
            .find(|(_, id)| *id == identity)
            .map(|(images, _)| *images)
            .unwrap_or_default();
        self.objects
            .iter()
            .filter(|o| o["kind"] == "DaemonSet" || o["kind"] == "Deployment")
            .filter(|o| {
                containers(&o["spec"]["template"]["spec"]).any(|c| {
                    let image = c["image"].as_str().unwrap_or_default();
                    let repository = image.split([':', '@']).next().unwrap_or_default();
                    images.iter().any(|suffix| {
                        repository == *suffix || repository.ends_with(&format!("/{suffix}"))
                    })
                })
            })
            .collect()
    }

    /// The service account a workload's pods run as, and whether the manifests create it.
    fn service_account(&self, workload: &Value) -> (String, String, bool) {
        let namespace = workload["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_owned();
        let pod = &workload["spec"]["template"]["spec"];
        let account = pod["serviceAccountName"]
            .as_str()
            .or_else(|| pod["serviceAccount"].as_str())
            .unwrap_or("default")
            .to_owned();
        let exists = account == "default" || self.has_service_account(&namespace, &account);
        (namespace, account, exists)
    }

    fn has_service_account(&self, namespace: &str, account: &str) -> bool {
        self.objects.iter().any(|o| {
            o["kind"] == "ServiceAccount"
                && o["metadata"]["name"] == account
                && o["metadata"]["namespace"].as_str().unwrap_or("default") == namespace
        })
    }

    /// The names a node resolves before any cluster service routes: the API records upstream
    /// created in the cluster's zone (`<cluster>-private.<zone>`, `<cluster>.<zone>`).
    fn host_resolvable_api_names(&self) -> [String; 2] {
        let s = &self.rendered.cluster.settings;
        [
            format!("{}-private.{}", s.cluster_name, s.dns_zone),
            format!("{}.{}", s.cluster_name, s.dns_zone),
        ]
    }
}

fn containers(pod: &Value) -> impl Iterator<Item = &Value> {
    ["initContainers", "containers"]
        .into_iter()
        .flat_map(move |key| pod[key].as_array().into_iter().flatten())
}

/// The current context's user's client certificate (PEM) of a kubeconfig text.
fn kubeconfig_certificate(kubeconfig: &str) -> Option<Vec<u8>> {
    let document: serde_yaml::Value = serde_yaml::from_str(kubeconfig).ok()?;
    let current = document["current-context"].as_str();
    let context_user = document["contexts"]
        .as_sequence()
        .into_iter()
        .flatten()
        .find(|c| c["name"].as_str() == current)
        .and_then(|c| c["context"]["user"].as_str());
    let users = document["users"].as_sequence()?;
    let user = context_user
        .and_then(|name| users.iter().find(|u| u["name"].as_str() == Some(name)))
        .or_else(|| users.first())?;
    let data = user["user"]["client-certificate-data"].as_str()?;
    base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .ok()
}

/// The host of the current context's cluster's server.
fn kubeconfig_server_host(kubeconfig: &str) -> Option<String> {
    let document: serde_yaml::Value = serde_yaml::from_str(kubeconfig).ok()?;
    let current = document["current-context"].as_str();
    let context_cluster = document["contexts"]
        .as_sequence()
        .into_iter()
        .flatten()
        .find(|c| c["name"].as_str() == current)
        .and_then(|c| c["context"]["cluster"].as_str());
    let clusters = document["clusters"].as_sequence()?;
    let cluster = context_cluster
        .and_then(|name| clusters.iter().find(|c| c["name"].as_str() == Some(name)))
        .or_else(|| clusters.first())?;
    let server = cluster["cluster"]["server"].as_str()?;
    let rest = server.split_once("://").map_or(server, |(_, rest)| rest);
    let authority = rest.split('/').next()?;
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => authority,
    };
    Some(host.trim_matches(['[', ']']).to_owned())
}

#[test]
fn every_components_service_account_may_do_what_its_upstream_role_grants() {
    let mut failures = Vec::new();
    for example in EXAMPLES {
        let judge = Judge::new(example);
        // Calico's manifest runs calico-kube-controllers beside calico-node: nothing else
        // frees the IPAM of deleted nodes.
        let network: &[&str] = match judge.rendered.cluster.settings.networking {
            specs::Networking::Calico => &["calico-node", "calico-kube-controllers"],
            specs::Networking::Flannel => &["flannel"],
        };
        for &identity in ["kube-proxy", "coredns"].iter().chain(network) {
            let workloads = judge.workloads(identity);
            if workloads.is_empty() {
                failures.push(format!("{example}: no workload runs {identity}"));
            }
            for workload in workloads {
                let (namespace, account, exists) = judge.service_account(workload);
                let what = format!(
                    "{example}: {identity} ({} {})",
                    workload["kind"].as_str().unwrap_or_default(),
                    workload["metadata"]["name"].as_str().unwrap_or_default()
                );
                if !exists {
                    failures.push(format!(
                        "{what}: ServiceAccount {namespace}/{account} is not created"
                    ));
                }
                let user = UserInfo::service_account(&namespace, &account);
                failures.extend(
                    judge
                        .refusals(identity, &user, "")
                        .map(|refusal| format!("{what}: {refusal}")),
                );
            }
        }
        // Calico's CNI plugin acts as calico-cni-plugin in calico-node's namespace, with the
        // token calico-node creates for that account.
        if network.contains(&"calico-node") {
            for workload in judge.workloads("calico-node") {
                let (namespace, _, _) = judge.service_account(workload);
                if !judge.has_service_account(&namespace, "calico-cni-plugin") {
                    failures.push(format!(
                        "{example}: ServiceAccount {namespace}/calico-cni-plugin is not created"
                    ));
                }
                let user = UserInfo::service_account(&namespace, "calico-cni-plugin");
                failures.extend(
                    judge
                        .refusals("calico-cni-plugin", &user, "")
                        .map(|refusal| format!("{example}: calico-cni-plugin: {refusal}")),
                );
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The static pods of the controllers (`static-manifests/`), as the kubelet reads them.
fn static_pods(rendered: &Rendered) -> Vec<(String, Value)> {
    rendered
        .manifests()
        .into_iter()
        .filter(|(_, object)| object["kind"] == "Pod")
        .collect()
}

/// A static pod's `--kubeconfig`, read from the controller's disk as loko leaves it (through the
/// pod's hostPath volumes): (the flag's path, the kubeconfig's text), or why it has none.
fn static_pod_kubeconfig(rendered: &Rendered, pod: &Value) -> Result<(String, String), String> {
    let spec = &pod["spec"];
    let on_disk = rendered.controller_files();
    for container in sim::judge::pod::containers(spec) {
        let Some(path) = container_kubeconfig(&container) else {
            continue;
        };
        let host = sim::judge::pod::pod_host_path(spec, &container, &path)
            .ok_or_else(|| format!("--kubeconfig={path} is under no hostPath volume"))?;
        let (contents, _) = on_disk
            .get(&host)
            .ok_or_else(|| format!("--kubeconfig={path} is the host's {host}, which loko does not put on the controllers"))?;
        return Ok((path, String::from_utf8_lossy(contents).into_owned()));
    }
    Err("no --kubeconfig".to_owned())
}

/// The static scheduler and controller-manager act as the users of their kubeconfigs'
/// certificates; Kubernetes' bootstrap policy (and what loko applies) must let each make every
/// request its upstream role holds.
#[test]
fn the_static_control_planes_identities_may_do_what_their_roles_grant() {
    let mut failures = Vec::new();
    for example in EXAMPLES {
        let judge = Judge::new(example);
        let mut seen = Vec::new();
        for (file, pod) in static_pods(&judge.rendered) {
            let image = sim::judge::pod::containers(&pod["spec"])
                .first()
                .and_then(|c| c["image"].as_str().map(str::to_owned))
                .unwrap_or_default();
            let Some(identity) = ["kube-scheduler", "kube-controller-manager"]
                .into_iter()
                .find(|c| {
                    image
                        .split([':', '@'])
                        .next()
                        .is_some_and(|r| r.ends_with(&format!("/{c}")))
                })
            else {
                continue;
            };
            seen.push(identity);
            let (path, kubeconfig) = match static_pod_kubeconfig(&judge.rendered, &pod) {
                Ok(found) => found,
                Err(problem) => {
                    failures.push(format!("{example}: {file}: {problem}"));
                    continue;
                }
            };
            let Some(pem) = kubeconfig_certificate(&kubeconfig) else {
                failures.push(format!(
                    "{example}: {file}: {path} has no client certificate"
                ));
                continue;
            };
            let user = UserInfo::from_certificate_pem(&pem)
                .unwrap_or_else(|e| panic!("{example}: {file}: {path}: {e}"));
            if user.groups.iter().any(|g| g == "system:masters") {
                failures.push(format!(
                    "{example}: {file}: {identity} acts as {}, a member of system:masters: it may do anything, far beyond its role",
                    user.describe()
                ));
            }
            failures.extend(
                judge
                    .refusals(identity, &user, "")
                    .map(|refusal| format!("{example}: {file}: {identity}: {refusal}")),
            );
        }
        for identity in ["kube-scheduler", "kube-controller-manager"] {
            if !seen.contains(&identity) {
                failures.push(format!("{example}: no static pod runs {identity}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A pod container's `--kubeconfig` (in its `command` or `args`).
fn container_kubeconfig(container: &Value) -> Option<String> {
    let args: Vec<&str> = ["command", "args"]
        .into_iter()
        .flat_map(|k| container[k].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .collect();
    kubeconfig_flag(&args.join(" "))
}

/// `--kubeconfig=PATH` (or `--kubeconfig PATH`) in a unit's command lines.
fn kubeconfig_flag(text: &str) -> Option<String> {
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c == '\'' || c == '"')
        .filter(|w| !w.is_empty())
        .collect();
    words.iter().enumerate().find_map(|(i, word)| {
        if let Some(path) = word.strip_prefix("--kubeconfig=") {
            Some(path.to_owned())
        } else if *word == "--kubeconfig" {
            words.get(i + 1).map(|p| (*p).to_owned())
        } else {
            None
        }
    })
}

#[test]
fn delete_node_may_delete_its_own_node_with_the_identity_its_unit_uses() {
    let mut failures = Vec::new();
    for example in EXAMPLES {
        let judge = Judge::new(example);
        for node in &judge.rendered.cluster.nodes {
            if node.role != specs::Role::Worker {
                continue;
            }
            let units = judge.rendered.units(&node.hostname);
            let Some((_, _, _, contents)) = units.iter().find(|u| u.0 == "delete-node.service")
            else {
                failures.push(format!(
                    "{example}: worker {} has no delete-node.service",
                    node.hostname
                ));
                continue;
            };
            let contents = contents.clone().unwrap_or_default();
            // The unit may run a script the Ignition writes; its kubeconfig flag is there then.
            let flag = kubeconfig_flag(&contents).or_else(|| {
                contents
                    .lines()
                    .filter_map(|l| l.strip_prefix("ExecStop="))
                    .flat_map(|l| l.split_whitespace())
                    .filter(|w| w.starts_with('/'))
                    .find_map(|path| {
                        let script = judge.rendered.file(&node.hostname, path)?;
                        kubeconfig_flag(&String::from_utf8_lossy(&script))
                    })
            });
            // kubectl's own default when no flag is given is not a file the node has.
            let Some(path) = flag else {
                failures.push(format!(
                    "{example}: {}: delete-node passes no --kubeconfig",
                    node.hostname
                ));
                continue;
            };
            // With TLS bootstrap the only kubeconfig naming this node's own identity is the
            // one its kubelet writes (its `--kubeconfig`), mounted into kubectl's container.
            let kubelet_unit = units
                .iter()
                .find(|u| u.0 == "kubelet.service")
                .and_then(|u| u.3.clone())
                .unwrap_or_default();
            let kubelet_kubeconfig = kubeconfig_flag(&kubelet_unit);
            if kubelet_kubeconfig.as_deref() != Some(path.as_str())
                || !contents.contains("-v /var/lib/kubelet:/var/lib/kubelet")
            {
                failures.push(format!(
                    "{example}: {}: delete-node's --kubeconfig {path} is not the kubelet's own ({kubelet_kubeconfig:?}) mounted into its container",
                    node.hostname
                ));
                continue;
            }
            let user = node_user(&node.hostname);
            if let Some(refusal) = judge.refusals("delete-node", &user, &node.hostname) {
                failures.push(format!(
                    "{example}: delete-node on {} (and any other worker with that identity): {refusal}",
                    node.hostname
                ));
                break;
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn calico_gets_every_crd_its_version_ships() {
    let expected: std::collections::BTreeSet<String> =
        include_str!("../../../sim/data/calico-v3.29-crds.txt")
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
            .collect();
    let mut checked = 0;
    for example in EXAMPLES {
        let judge = Judge::new(example);
        if judge.rendered.cluster.settings.networking != specs::Networking::Calico {
            continue;
        }
        checked += 1;
        let rendered: std::collections::BTreeSet<String> = judge
            .objects
            .iter()
            .filter(|o| o["kind"] == "CustomResourceDefinition")
            .filter_map(|o| o["metadata"]["name"].as_str())
            .filter(|name| {
                name.ends_with(".crd.projectcalico.org")
                    || name.ends_with(".policy.networking.k8s.io")
            })
            .map(str::to_owned)
            .collect();
        let missing: Vec<_> = expected.difference(&rendered).collect();
        let extra: Vec<_> = rendered.difference(&expected).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{example}: Calico v3.29's CRDs (calico-v3.29-crds.txt) differ from the rendered ones: missing {missing:?}, not in v3.29 {extra:?}"
        );
    }
    assert!(checked > 0, "no example uses Calico");
}

#[test]
fn host_network_kubeconfigs_name_a_server_the_host_resolves() {
    let mut failures = Vec::new();
    for example in EXAMPLES {
        let judge = Judge::new(example);
        let resolvable = judge.host_resolvable_api_names();
        let check = |what: String, kubeconfig: &str| match kubeconfig_server_host(kubeconfig) {
            Some(host) if resolvable.contains(&host) => None,
            other => Some(format!(
                "{example}: {what} names server host {other:?}, which a node cannot resolve before service IPs route (expected one of {resolvable:?})"
            )),
        };
        for node in &judge.rendered.cluster.nodes {
            let kubeconfig = judge
                .rendered
                .file(&node.hostname, NODE_KUBECONFIG)
                .unwrap_or_default();
            failures.extend(check(
                format!("the kubelet on {}", node.hostname),
                &String::from_utf8_lossy(&kubeconfig),
            ));
        }
        // A static pod's kubeconfig may name its own controller's apiserver by loopback: the
        // static apiserver beside it listens on every address, and its certificate names
        // 127.0.0.1 (checked by the simulator's TLS when it serves).
        for (file, pod) in static_pods(&judge.rendered) {
            let Ok((path, kubeconfig)) = static_pod_kubeconfig(&judge.rendered, &pod) else {
                continue;
            };
            match kubeconfig_server_host(&kubeconfig) {
                Some(host) if host == "127.0.0.1" || resolvable.contains(&host) => {}
                other => failures.push(format!(
                    "{example}: {file} ({path}) names server host {other:?}, which a controller cannot reach before service IPs route"
                )),
            }
        }
        for workload in &judge.objects {
            let pod = &workload["spec"]["template"]["spec"];
            if pod["hostNetwork"] != true {
                continue;
            }
            let name = workload["metadata"]["name"].as_str().unwrap_or_default();
            for container in containers(pod) {
                let Some(path) = container_kubeconfig(container) else {
                    continue;
                };
                let namespace = workload["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or("default");
                match configmap_file(&judge, namespace, pod, container, &path) {
                    Some(Ok(kubeconfig)) => {
                        failures.extend(check(format!("{name} ({path})"), &kubeconfig))
                    }
                    Some(Err(problem)) => failures.push(format!("{example}: {name}: {problem}")),
                    // A hostPath kubeconfig is the node's own.
                    None => {}
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The text of `path` when a ConfigMap volume provides it, `None` when no ConfigMap does.
fn configmap_file(
    judge: &Judge,
    namespace: &str,
    pod: &Value,
    container: &Value,
    path: &str,
) -> Option<Result<String, String>> {
    let path = Path::new(path);
    let mount = container["volumeMounts"].as_array()?.iter().find(|m| {
        m["mountPath"]
            .as_str()
            .is_some_and(|mp| path.starts_with(mp))
    })?;
    let volume = pod["volumes"]
        .as_array()?
        .iter()
        .find(|v| v["name"] == mount["name"])?;
    let configmap = volume["configMap"]["name"].as_str()?;
    let relative = path
        .strip_prefix(mount["mountPath"].as_str().unwrap_or_default())
        .ok()?
        .to_string_lossy()
        .into_owned();
    // `items` map keys to paths; without them each key is a file of its own name.
    let key = volume["configMap"]["items"]
        .as_array()
        .and_then(|items| items.iter().find(|i| i["path"] == relative.as_str()))
        .and_then(|i| i["key"].as_str())
        .unwrap_or(&relative)
        .to_owned();
    let object = judge.objects.iter().find(|o| {
        o["kind"] == "ConfigMap"
            && o["metadata"]["name"] == configmap
            && o["metadata"]["namespace"].as_str().unwrap_or("default") == namespace
    });
    Some(match object.and_then(|o| o["data"][&key].as_str()) {
        Some(text) => Ok(text.to_owned()),
        None => Err(format!("ConfigMap {configmap} has no key {key}")),
    })
}

#[test]
fn a_missing_binding_is_caught() {
    // The judge itself: without the manifests' bindings nothing a component needs is allowed,
    // so the tests above cannot pass by accident.
    let policy = Policy::bootstrap().expect("bootstrap policy");
    let requirements = Requirements::load().expect("requirements");
    let kubelet = UserInfo::authenticated("kubelet", &["system:nodes"]);
    let needs: Vec<Request> = requirements
        .identity("kubelet")
        .expect("kubelet")
        .requests("n1");
    assert!(
        needs
            .iter()
            .any(|r| !policy.authorize(&kubelet, r).is_allowed())
    );
}
