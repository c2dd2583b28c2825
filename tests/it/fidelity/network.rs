//! The pod network: every CNI plugin a node's network configuration runs is a binary some pod
//! installs into the directory the container runtime reads, as the images' own installers do.

use std::collections::{BTreeMap, BTreeSet};

use loko_tests::rendered::{Rendered, render_example};
use serde_json::Value;
use sim::judge::data::{Facts, Image, facts};
use sim::judge::docker::pod_argv;

const EXAMPLES: [&str; 3] = ["tutorial.yaml", "flannel.yaml", "hybrid.yaml"];

/// What a network's pods put on each node.
#[derive(Default)]
struct Installed {
    /// Host path of a plugin binary → the pod container that installs it.
    plugins: BTreeMap<String, String>,
    /// CNI configurations the installers write, with who writes them.
    configs: Vec<(String, Value)>,
    problems: Vec<String>,
}

fn string_list(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|item| item.as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// ConfigMaps by `namespace/name`.
fn config_maps(rendered: &Rendered) -> BTreeMap<String, Value> {
    let mut maps = BTreeMap::new();
    for (_, object) in rendered.manifests() {
        if object["kind"] == "ConfigMap" {
            let namespace = object["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default");
            let name = object["metadata"]["name"].as_str().unwrap_or_default();
            maps.insert(format!("{namespace}/{name}"), object["data"].clone());
        }
    }
    maps
}

/// The host path a container path lands on, through the container's hostPath mounts.
fn host_path(spec: &Value, container: &Value, path: &str) -> Option<String> {
    let path = path.trim_end_matches('/');
    container["volumeMounts"]
        .as_array()?
        .iter()
        .find_map(|mount| {
            let at = mount["mountPath"].as_str()?.trim_end_matches('/');
            let rest = path.strip_prefix(at)?;
            if !(rest.is_empty() || rest.starts_with('/')) {
                return None;
            }
            let volume = spec["volumes"]
                .as_array()?
                .iter()
                .find(|v| v["name"] == mount["name"])?;
            let host = volume["hostPath"]["path"].as_str()?.trim_end_matches('/');
            Some(format!("{host}{rest}"))
        })
}

/// The text of a file a container reads from a ConfigMap volume.
fn config_map_file(
    spec: &Value,
    container: &Value,
    path: &str,
    namespace: &str,
    maps: &BTreeMap<String, Value>,
) -> Option<String> {
    container["volumeMounts"]
        .as_array()?
        .iter()
        .find_map(|mount| {
            let at = mount["mountPath"].as_str()?.trim_end_matches('/');
            let key = path.strip_prefix(at)?.strip_prefix('/')?;
            let volume = spec["volumes"]
                .as_array()?
                .iter()
                .find(|v| v["name"] == mount["name"])?;
            let map = maps.get(&format!(
                "{namespace}/{}",
                volume["configMap"]["name"].as_str()?
            ))?;
            map[key].as_str().map(str::to_owned)
        })
}

/// A variable's value, resolved through `configMapKeyRef`.
fn env_value(
    container: &Value,
    name: &str,
    namespace: &str,
    maps: &BTreeMap<String, Value>,
) -> Option<String> {
    let var = container["env"]
        .as_array()?
        .iter()
        .find(|var| var["name"] == name)?;
    if let Some(value) = var["value"].as_str() {
        return Some(value.to_owned());
    }
    let reference = &var["valueFrom"]["configMapKeyRef"];
    let map = maps.get(&format!(
        "{namespace}/{}",
        reference["name"].as_str().unwrap_or_default()
    ))?;
    map[reference["key"].as_str()?].as_str().map(str::to_owned)
}

/// What one init container installs, judged by its image's facts.
fn install(
    subject: &str,
    spec: &Value,
    container: &Value,
    image: &Image,
    namespace: &str,
    maps: &BTreeMap<String, Value>,
    installed: &mut Installed,
) {
    let command = container["command"]
        .as_array()
        .map(|_| string_list(&container["command"]));
    let args = container["args"]
        .as_array()
        .map(|_| string_list(&container["args"]));
    let argv = pod_argv(image, command.as_deref(), args.as_deref());
    let Some(argv0) = argv.first() else { return };
    let Some((binary, program)) = image.resolve(argv0) else {
        return;
    };
    let cni = image.cni.as_ref();
    if let Some(cni) = cni.filter(|cni| cni.installer.as_deref() == Some(binary)) {
        for var in &cni.required_env {
            if env_value(container, var, namespace, maps).is_none() {
                installed.problems.push(format!(
                    "{subject}: the installer fails without {var} ({})",
                    cni.source
                ));
            }
        }
        if let Some(to) = &cni.copies_to {
            match host_path(spec, container, to) {
                Some(dir) => {
                    for plugin in cni.plugins.values() {
                        installed
                            .plugins
                            .insert(format!("{dir}/{plugin}"), subject.to_owned());
                    }
                }
                None => installed.problems.push(format!(
                    "{subject}: the installer copies plugins to {to}, where no host directory is mounted"
                )),
            }
        }
        if let (Some(var), Some(to)) = (&cni.config_env, &cni.writes_config_to)
            && let Some(text) = env_value(container, var, namespace, maps)
        {
            match (
                host_path(spec, container, to),
                serde_json::from_str::<Value>(&text),
            ) {
                (Some(dir), Ok(config)) => installed
                    .configs
                    .push((format!("{subject} into {dir}"), config)),
                (None, _) => installed.problems.push(format!(
                    "{subject}: the installer writes {var} to {to}, where no host directory is mounted"
                )),
                (_, Err(error)) => installed
                    .problems
                    .push(format!("{subject}: {var} is not JSON: {error}")),
            }
        }
    } else if program == "cp" {
        // `cp [-f] SOURCE... DEST`: the image's plugin binaries among the sources.
        let operands: Vec<&String> = argv[1..].iter().filter(|a| !a.starts_with('-')).collect();
        let Some((dest, sources)) = operands.split_last() else {
            return;
        };
        for source in sources {
            // A network configuration copied out of a ConfigMap volume.
            if let Some(text) = config_map_file(spec, container, source, namespace, maps) {
                let name = source.rsplit('/').next().unwrap_or_default();
                let target = if dest.ends_with('/') {
                    format!("{dest}{name}")
                } else {
                    (*dest).clone()
                };
                if let (Some(on_host), Ok(config)) = (
                    host_path(spec, container, &target),
                    serde_json::from_str::<Value>(&text),
                ) {
                    let dir = on_host.rsplit_once('/').map_or("", |(dir, _)| dir);
                    installed
                        .configs
                        .push((format!("{subject} into {dir}"), config));
                }
                continue;
            }
            let Some(plugin) = cni.and_then(|cni| cni.plugins.get(source.as_str())) else {
                continue;
            };
            let target = if sources.len() == 1 && !dest.ends_with('/') {
                (*dest).clone()
            } else {
                format!("{}/{plugin}", dest.trim_end_matches('/'))
            };
            let Some(on_host) = host_path(spec, container, &target) else {
                continue;
            };
            // Installed under the plugin's name only if the copy keeps it.
            let name = on_host.rsplit('/').next().unwrap_or_default();
            if name == plugin {
                installed.plugins.insert(on_host, subject.to_owned());
            }
        }
    }
}

/// Everything the network's DaemonSets install on a node.
fn installed_by_daemonsets(rendered: &Rendered, facts: &Facts) -> Installed {
    let maps = config_maps(rendered);
    let mut installed = Installed::default();
    for (rel, object) in rendered.manifests() {
        if object["kind"] != "DaemonSet" {
            continue;
        }
        let namespace = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default");
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        let spec = &object["spec"]["template"]["spec"];
        for container in spec["initContainers"].as_array().into_iter().flatten() {
            let subject = format!(
                "{rel}: DaemonSet {name}: init container {}",
                container["name"].as_str().unwrap_or_default()
            );
            let Some(image) = facts.image(container["image"].as_str().unwrap_or_default()) else {
                continue;
            };
            install(
                &subject,
                spec,
                container,
                image,
                namespace,
                &maps,
                &mut installed,
            );
        }
    }
    installed
}

/// The plugin binaries a CNI configuration list runs, with the delegates' defaults.
fn plugins_run(config: &Value, facts: &Facts) -> BTreeSet<String> {
    let mut needed: BTreeSet<String> = facts.cni.runtime.always_needs.iter().cloned().collect();
    let entries = config["plugins"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| vec![config.clone()]);
    for entry in entries {
        let Some(kind) = entry["type"].as_str() else {
            continue;
        };
        needed.insert(kind.to_owned());
        if let Some(ipam) = entry["ipam"]["type"].as_str() {
            needed.insert(ipam.to_owned());
        }
        if let Some(delegating) = facts.cni.delegating_plugins.get(kind) {
            let delegate = &entry["delegate"];
            needed.insert(
                delegate["type"]
                    .as_str()
                    .unwrap_or(&delegating.delegate_default_type)
                    .to_owned(),
            );
            needed.insert(
                delegate["ipam"]["type"]
                    .as_str()
                    .unwrap_or(&delegating.ipam_default_type)
                    .to_owned(),
            );
        }
    }
    needed
}

/// Problems of one rendered cluster's pod network.
fn network_problems(rendered: &Rendered, facts: &Facts) -> Vec<String> {
    let runtime = &facts.cni.runtime;
    let installed = installed_by_daemonsets(rendered, facts);
    let mut problems = installed.problems.clone();
    let configs: Vec<_> = installed
        .configs
        .iter()
        .filter(|(writer, _)| writer.ends_with(&format!(" into {}", runtime.conf_dir)))
        .collect();
    if configs.is_empty() {
        problems.push(format!(
            "no pod writes a CNI configuration into {}, where the runtime reads it ({}): pods get no network",
            runtime.conf_dir, runtime.source
        ));
    }
    for (writer, config) in configs {
        for plugin in plugins_run(config, facts) {
            let path = format!("{}/{plugin}", runtime.bin_dir);
            if !installed.plugins.contains_key(&path) {
                problems.push(format!(
                    "{writer}: the configuration runs the CNI plugin {plugin:?}, but no pod installs {path}"
                ));
            }
        }
    }
    problems
}

#[test]
fn every_cni_plugin_the_network_runs_is_installed_where_the_runtime_reads_it() {
    let facts = facts();
    let mut problems = Vec::new();
    for example in EXAMPLES {
        let rendered = render_example(example);
        for problem in network_problems(&rendered, facts) {
            problems.push(format!("[{example}] {problem}"));
        }
    }
    let sources: Vec<&str> = std::iter::once(facts.cni.runtime.source.as_str())
        .chain(
            facts
                .cni
                .delegating_plugins
                .values()
                .map(|d| d.source.as_str()),
        )
        .collect();
    assert!(
        problems.is_empty(),
        "pod networks a real node would not bring up: {} problem(s)\n{}\nfacts: {}",
        problems.len(),
        problems.join("\n"),
        sources.join("; ")
    );
}

/// `sim/data/xtables-lock.json`: the programs that take iptables' lock from a host-network pod.
const XTABLES_LOCK_JSON: &str = include_str!("../../../sim/data/xtables-lock.json");

#[test]
fn every_iptables_writer_shares_the_hosts_xtables_lock() {
    let facts: Value = serde_json::from_str(XTABLES_LOCK_JSON).expect("xtables-lock.json");
    let lock = facts["lock"].as_str().expect("lock");
    let mut failures = Vec::new();
    for example in EXAMPLES {
        let rendered = render_example(example);
        for (rel, object) in rendered.manifests() {
            let spec = match object["kind"].as_str() {
                Some("DaemonSet" | "Deployment") => &object["spec"]["template"]["spec"],
                Some("Pod") => &object["spec"],
                _ => continue,
            };
            for container in sim::judge::pod::containers(spec) {
                let name = container["name"].as_str().unwrap_or_default();
                let (parsed, _) = sim::judge::pod::judge_container(name, &container);
                let Some(component) = parsed.map(|p| p.component) else {
                    continue;
                };
                let Some(source) = facts["components"][&component].as_str() else {
                    continue;
                };
                if sim::judge::pod::pod_host_path(spec, &container, lock).as_deref() != Some(lock) {
                    failures.push(format!(
                        "{example}: {rel}: container {name} runs {component}, which writes iptables rules, without the host's {lock} ({source})"
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
