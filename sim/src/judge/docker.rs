//! `docker run` command lines as the docker CLI reads them, and the argv of the process a
//! container starts, for docker and for Kubernetes pods.
//!
//! Docker parses `run` with pflag and `SetInterspersed(false)` (docker/cli
//! `cli/command/container/run.go`): options come first, the first word that is not an option is
//! the image, and every word after it is the container's arguments, even ones that look like
//! options. The arguments replace the image's CMD; its ENTRYPOINT stays unless `--entrypoint` is
//! given (which also drops CMD). In a pod, `command` replaces ENTRYPOINT and `args` replaces CMD;
//! `command` without `args` runs without CMD.

use super::data::{DockerRunOptions, Image};

/// A parsed `docker run`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerRun {
    /// Options by long name, in order, with their values (`None` for booleans given bare).
    pub options: Vec<(String, Option<String>)>,
    /// The image reference.
    pub image: String,
    /// The words after the image.
    pub args: Vec<String>,
}

impl DockerRun {
    /// Parses `argv` of a command (`/usr/bin/docker run …` or `docker container run …`).
    pub fn parse(argv: &[String], options: &DockerRunOptions) -> Result<DockerRun, String> {
        let Some(program) = argv.first() else {
            return Err("empty command line".to_owned());
        };
        if program.rsplit('/').next() != Some("docker") {
            return Err(format!("{program} is not docker"));
        }
        let rest = match argv.get(1).map(String::as_str) {
            Some("run") => &argv[2..],
            Some("container") if argv.get(2).map(String::as_str) == Some("run") => &argv[3..],
            Some(other) => return Err(format!("docker {other} is not `docker run`")),
            None => return Err("docker without a command".to_owned()),
        };
        let mut parsed = Vec::new();
        let mut i = 0;
        while i < rest.len() {
            let word = &rest[i];
            if word == "--" {
                i += 1;
                break;
            }
            if let Some(long) = word.strip_prefix("--") {
                let (name, inline) = match long.split_once('=') {
                    Some((n, v)) => (n, Some(v.to_owned())),
                    None => (long, None),
                };
                if options.boolean.contains(name) {
                    parsed.push((name.to_owned(), inline));
                } else if options.with_value.contains(name) {
                    let value = match inline {
                        Some(v) => v,
                        None => {
                            i += 1;
                            rest.get(i)
                                .cloned()
                                .ok_or_else(|| format!("flag needs an argument: --{name}"))?
                        }
                    };
                    parsed.push((name.to_owned(), Some(value)));
                } else {
                    return Err(format!("unknown flag: --{name}"));
                }
            } else if let Some(short) = word.strip_prefix('-').filter(|s| !s.is_empty()) {
                // Shorthands combine (`-it`); a shorthand with a value takes the rest of the
                // word, or the next word.
                for (at, c) in short.char_indices() {
                    let Some(name) = options.shorthands.get(&c.to_string()) else {
                        return Err(format!("unknown shorthand flag: '{c}' in {word}"));
                    };
                    if options.boolean.contains(name) {
                        parsed.push((name.clone(), None));
                        continue;
                    }
                    let tail = &short[at + c.len_utf8()..];
                    let value = if let Some(v) = tail.strip_prefix('=') {
                        v.to_owned()
                    } else if !tail.is_empty() {
                        tail.to_owned()
                    } else {
                        i += 1;
                        rest.get(i)
                            .cloned()
                            .ok_or_else(|| format!("flag needs an argument: '{c}' in -{c}"))?
                    };
                    parsed.push((name.clone(), Some(value)));
                    break;
                }
            } else {
                break;
            }
            i += 1;
        }
        let Some(image) = rest.get(i) else {
            return Err("\"docker run\" requires at least 1 argument (the image)".to_owned());
        };
        Ok(DockerRun {
            options: parsed,
            image: image.clone(),
            args: rest[i + 1..].to_vec(),
        })
    }

    /// Every value of option `name` (long form).
    pub fn values(&self, name: &str) -> Vec<&str> {
        self.options
            .iter()
            .filter(|(n, _)| n == name)
            .filter_map(|(_, v)| v.as_deref())
            .collect()
    }

    /// Whether boolean option `name` is on.
    pub fn flag(&self, name: &str) -> bool {
        self.options
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .is_some_and(|(_, v)| v.as_deref().is_none_or(|v| v == "true"))
    }

    /// The argv the container's process starts with, given the image's facts.
    pub fn process_argv(&self, image: &Image) -> Vec<String> {
        let entrypoint = self
            .values("entrypoint")
            .last()
            .map(|e| {
                if e.is_empty() {
                    Vec::new()
                } else {
                    vec![(*e).to_owned()]
                }
            })
            .unwrap_or_else(|| image.entrypoint.clone());
        let overridden = !self.values("entrypoint").is_empty();
        let cmd = if !self.args.is_empty() {
            self.args.clone()
        } else if overridden {
            Vec::new()
        } else {
            image.cmd.clone()
        };
        entrypoint.into_iter().chain(cmd).collect()
    }

    /// The bind mount (`-v /host:/container[:opts]`) a container path is under: the one with
    /// the longest target, as the mounts stack.
    pub fn mount_for(&self, container_path: &str) -> Option<BindMount> {
        let mut best: Option<(usize, BindMount)> = None;
        for volume in self.values("volume") {
            let mut parts = volume.split(':');
            let (Some(host), Some(target)) = (parts.next(), parts.next()) else {
                continue;
            };
            if !host.starts_with('/') {
                continue;
            }
            let read_only = parts
                .next()
                .is_some_and(|options| options.split(',').any(|o| o == "ro"));
            let target = target.trim_end_matches('/');
            let rest = if container_path == target {
                Some("")
            } else {
                container_path
                    .strip_prefix(target)
                    .filter(|r| r.starts_with('/'))
            };
            if let Some(rest) = rest
                && best.as_ref().is_none_or(|(len, _)| target.len() > *len)
            {
                let mount = BindMount {
                    spec: volume.to_owned(),
                    host_path: format!("{}{rest}", host.trim_end_matches('/')),
                    read_only,
                };
                best = Some((target.len(), mount));
            }
        }
        best.map(|(_, mount)| mount)
    }

    /// The host path a container path is bind-mounted from.
    pub fn host_path(&self, container_path: &str) -> Option<String> {
        self.mount_for(container_path).map(|mount| mount.host_path)
    }
}

/// A bind mount as it applies to one container path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    /// The `-v` value.
    pub spec: String,
    /// The host path of the container path asked about.
    pub host_path: String,
    /// `:ro`.
    pub read_only: bool,
}

/// The argv a pod container starts with: `command` replaces ENTRYPOINT, `args` replaces CMD.
pub fn pod_argv(image: &Image, command: Option<&[String]>, args: Option<&[String]>) -> Vec<String> {
    match (command, args) {
        (Some(command), Some(args)) => command.iter().chain(args).cloned().collect(),
        (Some(command), None) => command.to_vec(),
        (None, Some(args)) => image.entrypoint.iter().chain(args).cloned().collect(),
        (None, None) => image.entrypoint.iter().chain(&image.cmd).cloned().collect(),
    }
}

/// The `docker run` command lines of a shell script or `sh -c` text: backslash-newlines joined,
/// words split with quotes removed, each from the `docker` word on; `"$@"` (the script's own
/// arguments, none when systemd runs it) is dropped.
pub fn docker_runs_in_shell(script: &str) -> Vec<Vec<String>> {
    let joined = script.replace("\\\n", " ");
    let mut runs = Vec::new();
    for line in joined.lines() {
        let words: Vec<String> = super::systemd::split_words(line)
            .into_iter()
            .map(|word| word.text)
            .filter(|word| word != "$@")
            .collect();
        let start = words
            .windows(2)
            .position(|pair| pair[0].rsplit('/').next() == Some("docker") && pair[1] == "run");
        if let Some(start) = start {
            let end = words[start..]
                .iter()
                .position(|w| matches!(w.as_str(), ";" | "&&" | "||" | "|"))
                .map_or(words.len(), |end| start + end);
            runs.push(words[start..end].to_vec());
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::data::facts;

    fn argv(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn options_end_at_the_image_and_arguments_replace_cmd() {
        let facts = facts();
        let run = DockerRun::parse(
            &argv("/usr/bin/docker run --rm --name kubelet --privileged --pid host --network=host -v /etc/kubernetes:/etc/kubernetes:ro -e A=1 -it quay.io/poseidon/kubelet:v1.32.3 --rm --kubeconfig=/k"),
            &facts.docker_run,
        )
        .expect("parses");
        assert_eq!(run.image, "quay.io/poseidon/kubelet:v1.32.3");
        assert_eq!(run.args, ["--rm", "--kubeconfig=/k"]);
        assert_eq!(run.values("name"), ["kubelet"]);
        assert_eq!(run.values("network"), ["host"]);
        assert_eq!(run.values("env"), ["A=1"]);
        assert!(run.flag("privileged") && run.flag("interactive") && run.flag("tty"));
        let image = facts.image(&run.image).expect("kubelet image");
        assert_eq!(
            run.process_argv(image),
            ["/usr/local/bin/kubelet", "--rm", "--kubeconfig=/k"]
        );
        assert_eq!(
            run.host_path("/etc/kubernetes/kubeconfig").as_deref(),
            Some("/etc/kubernetes/kubeconfig")
        );
        assert_eq!(run.host_path("/var/lib/kubelet"), None);
    }

    #[test]
    fn entrypoint_overrides_drop_cmd() {
        let facts = facts();
        let etcd = facts.image("quay.io/coreos/etcd:v3.5.17").expect("etcd");
        let run = DockerRun::parse(
            &argv("docker run quay.io/coreos/etcd:v3.5.17"),
            &facts.docker_run,
        )
        .expect("parses");
        assert_eq!(run.process_argv(etcd), ["/usr/local/bin/etcd"]);
        let run = DockerRun::parse(
            &argv("docker run --entrypoint /usr/local/bin/etcdctl quay.io/coreos/etcd:v3.5.17"),
            &facts.docker_run,
        )
        .expect("parses");
        assert_eq!(run.process_argv(etcd), ["/usr/local/bin/etcdctl"]);
    }

    #[test]
    fn unknown_options_and_missing_images_are_errors() {
        let facts = facts();
        let error = DockerRun::parse(&argv("docker run --bogus x"), &facts.docker_run)
            .expect_err("unknown");
        assert!(error.contains("unknown flag: --bogus"), "{error}");
        assert!(DockerRun::parse(&argv("docker run --rm"), &facts.docker_run).is_err());
        assert!(DockerRun::parse(&argv("podman run x"), &facts.docker_run).is_err());
    }

    #[test]
    fn docker_runs_are_found_in_scripts() {
        let script = "#!/bin/bash\nset -e\nexec /usr/bin/docker run --rm \\\n  -v /a:/b:ro \\\n  img:1 /bootkube start --asset-dir=/assets \"$@\"\n";
        assert_eq!(
            docker_runs_in_shell(script),
            [argv(
                "/usr/bin/docker run --rm -v /a:/b:ro img:1 /bootkube start --asset-dir=/assets"
            )]
        );
        let sh = "/usr/bin/docker run --rm --entrypoint /kubectl img:1 delete node $(hostname) && echo done";
        assert_eq!(
            docker_runs_in_shell(sh),
            [argv(
                "/usr/bin/docker run --rm --entrypoint /kubectl img:1 delete node $(hostname)"
            )]
        );
    }

    #[test]
    fn pods_replace_entrypoint_with_command_and_cmd_with_args() {
        let facts = facts();
        let coredns = facts
            .image("registry.k8s.io/coredns/coredns:v1.11.4")
            .expect("coredns");
        let args = argv("-conf /etc/coredns/Corefile");
        assert_eq!(
            pod_argv(coredns, None, Some(&args)),
            ["/coredns", "-conf", "/etc/coredns/Corefile"]
        );
        let command = argv("kube-proxy --v=2");
        let proxy = facts
            .image("registry.k8s.io/kube-proxy:v1.32.3")
            .expect("proxy");
        assert_eq!(pod_argv(proxy, Some(&command), None), command);
    }
}
