//! Pods as the kubelet runs them: a container's process (its `command` replaces the image's
//! ENTRYPOINT, `args` its CMD), its flags judged as for a unit, and, for a static pod, whether it
//! would start from the kubelet's `--pod-manifest-path`: a `v1` `Pod` with a name, on the host's
//! network (no pod network exists before the apiserver it may serve), and every file a flag names
//! there on the host through the pod's `hostPath` volumes.

use std::collections::BTreeMap;

use serde_json::Value;

use super::data::facts;
use super::docker::pod_argv;
use super::flags::{ParsedArgs, judge_process};
use super::problem::Problem;

/// Flags naming a file the component reads at start (it exits when the file is missing), from
/// each component's `--help` of v1.32 ("File containing…", "Path to…"). Only the flags whose
/// description names a file the process opens before it serves.
const FILE_FLAGS: [(&str, &[&str]); 3] = [
    (
        "kube-apiserver",
        &[
            "client-ca-file",
            "etcd-cafile",
            "etcd-certfile",
            "etcd-keyfile",
            "kubelet-certificate-authority",
            "kubelet-client-certificate",
            "kubelet-client-key",
            "proxy-client-cert-file",
            "proxy-client-key-file",
            "requestheader-client-ca-file",
            "service-account-key-file",
            "service-account-signing-key-file",
            "tls-cert-file",
            "tls-private-key-file",
        ],
    ),
    (
        "kube-controller-manager",
        &[
            "authentication-kubeconfig",
            "authorization-kubeconfig",
            "client-ca-file",
            "cluster-signing-cert-file",
            "cluster-signing-key-file",
            "kubeconfig",
            "root-ca-file",
            "service-account-private-key-file",
            "tls-cert-file",
            "tls-private-key-file",
        ],
    ),
    (
        "kube-scheduler",
        &[
            "authentication-kubeconfig",
            "authorization-kubeconfig",
            "client-ca-file",
            "config",
            "kubeconfig",
            "tls-cert-file",
            "tls-private-key-file",
        ],
    ),
];

/// A string array of a container field (`command`, `args`), if present.
fn string_list(value: &Value) -> Option<Vec<String>> {
    value.as_array().map(|items| {
        items
            .iter()
            .map(|item| item.as_str().unwrap_or_default().to_owned())
            .collect()
    })
}

/// The containers (init containers first) of a pod spec.
pub fn containers(spec: &Value) -> Vec<Value> {
    ["initContainers", "containers"]
        .iter()
        .filter_map(|key| spec[*key].as_array())
        .flatten()
        .cloned()
        .collect()
}

/// The judged process of a pod container: its image's program and flags.
pub fn judge_container(subject: &str, container: &Value) -> (Option<ParsedArgs>, Vec<Problem>) {
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

/// The host path a container path of a pod comes from (its `hostPath` volumes and mounts; the
/// deepest mount wins), or `None` when no host directory is mounted there.
pub fn pod_host_path(spec: &Value, container: &Value, path: &str) -> Option<String> {
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

/// A static pod the kubelet would start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticPod {
    /// `metadata.name`.
    pub name: String,
    /// Its (first) container's process.
    pub args: ParsedArgs,
    /// The host path of each file flag (see [`FILE_FLAGS`]), by flag name.
    pub files: BTreeMap<String, String>,
}

/// Judges a file of the kubelet's `--pod-manifest-path`. `exists` says whether a host path
/// holds a file (on the node being judged).
pub fn judge_static_pod(
    subject: &str,
    pod: &Value,
    exists: &dyn Fn(&str) -> bool,
) -> Result<StaticPod, Vec<Problem>> {
    let mut problems = Vec::new();
    if pod["apiVersion"] != "v1" || pod["kind"] != "Pod" {
        problems.push(Problem::new(
            subject,
            format!(
                "the kubelet reads only v1 Pods from its manifest path, not {} {}",
                pod["apiVersion"], pod["kind"]
            ),
        ));
        return Err(problems);
    }
    let name = pod["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if name.is_empty() {
        problems.push(Problem::new(subject, "a static pod without metadata.name"));
    }
    let spec = &pod["spec"];
    if spec["hostNetwork"] != true {
        problems.push(Problem::new(
            subject,
            "not hostNetwork: its sandbox waits for the pod network (CNI), which the cluster gets only once an apiserver runs",
        ));
    }
    let mut started = None;
    for container in containers(spec) {
        let subject = format!(
            "{subject}: container {}",
            container["name"].as_str().unwrap_or_default()
        );
        let (args, found) = judge_container(&subject, &container);
        problems.extend(found);
        let Some(args) = args else { continue };
        let file_flags = FILE_FLAGS
            .iter()
            .find(|(component, _)| *component == args.component)
            .map_or(&[][..], |(_, flags)| *flags);
        let mut files = BTreeMap::new();
        for flag in file_flags {
            let Some(path) = args.value(flag) else {
                continue;
            };
            match pod_host_path(spec, &container, path) {
                None => problems.push(Problem::new(
                    &subject,
                    format!(
                        "--{flag}={path} is under no hostPath volume: {} exits, the file is not in its container",
                        args.component
                    ),
                )),
                Some(host) if !exists(&host) => problems.push(Problem::new(
                    &subject,
                    format!(
                        "--{flag}={path} is the host's {host}, which does not exist: {} exits",
                        args.component
                    ),
                )),
                Some(host) => {
                    files.insert((*flag).to_owned(), host);
                }
            }
        }
        started.get_or_insert((args, files));
    }
    match started {
        Some((args, files)) if problems.is_empty() => Ok(StaticPod { name, args, files }),
        None if problems.is_empty() => Err(vec![Problem::new(subject, "a pod without containers")]),
        _ => Err(problems),
    }
}
