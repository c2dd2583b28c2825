//! Which program a process is, and whether it accepts its arguments.
//!
//! Flag types are not in the data, so a flag written `--name value` is read as taking `value`;
//! every flag loko and upstream write is `--name=value` or a boolean, and a positional argument
//! right after the program (the usual mistake: naming the binary again) is always caught.

use super::data::{Component, Facts, Image, Parser};
use super::problem::Problem;

/// A process's arguments as its program reads them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedArgs {
    /// The component (a key of [`Facts::components`], or a plain tool's name).
    pub component: String,
    /// The binary's path in the image.
    pub binary: String,
    /// The subcommand, for programs that have them.
    pub subcommand: Option<String>,
    /// Flags by name without dashes (underscores normalized where the program does), in order.
    pub flags: Vec<(String, Option<String>)>,
    /// Words that are not flags (after the subcommand).
    pub positionals: Vec<String>,
}

impl ParsedArgs {
    /// The last value of flag `name`.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.flags
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_deref())
    }

    /// Every value of flag `name`, in order (map and list flags add up).
    pub fn values(&self, name: &str) -> Vec<&str> {
        self.flags
            .iter()
            .filter(|(n, _)| n == name)
            .filter_map(|(_, v)| v.as_deref())
            .collect()
    }

    /// Whether flag `name` is given.
    pub fn has(&self, name: &str) -> bool {
        self.flags.iter().any(|(n, _)| n == name)
    }

    /// A boolean flag as Go's pflag reads it: given without a value is true, else its last
    /// value by `strconv.ParseBool` (`1`, `t`, `T`, `true`, `TRUE`, `True`).
    pub fn bool_flag(&self, name: &str) -> bool {
        match self.flags.iter().rev().find(|(n, _)| n == name) {
            None => false,
            Some((_, None)) => true,
            Some((_, Some(value))) => {
                matches!(value.as_str(), "1" | "t" | "T" | "true" | "TRUE" | "True")
            }
        }
    }

    /// The comma-separated items of every value of flag `name` (a string-slice flag).
    pub fn list(&self, name: &str) -> Vec<&str> {
        self.values(name)
            .into_iter()
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .collect()
    }
}

/// Judges the argv of a process started from `image`: the program argv[0] names there, and every
/// argument against that program's flags. `None` when argv[0] is not a program of the image.
pub fn judge_process(
    subject: &str,
    image: &Image,
    argv: &[String],
    facts: &Facts,
) -> (Option<ParsedArgs>, Vec<Problem>) {
    let Some(argv0) = argv.first() else {
        return (
            None,
            vec![Problem::new(
                subject,
                format!(
                    "nothing to run: the image has neither ENTRYPOINT nor CMD and none is given ({})",
                    image.source
                ),
            )],
        );
    };
    let Some((binary, component)) = image.resolve(argv0) else {
        let held: Vec<&str> = image.binaries.keys().map(String::as_str).collect();
        return (
            None,
            vec![Problem::new(
                subject,
                format!(
                    "argv[0] {argv0:?} is not a program of image {}: it holds {} (argv: {}; {})",
                    image.repositories.join(" / "),
                    held.join(", "),
                    shown(argv),
                    image.source
                ),
            )],
        );
    };
    let Some(spec) = facts.components.get(component) else {
        return (
            Some(ParsedArgs {
                component: component.to_owned(),
                binary: binary.to_owned(),
                positionals: argv[1..].to_vec(),
                ..ParsedArgs::default()
            }),
            Vec::new(),
        );
    };
    let (mut parsed, mut problems) = check_args(subject, component, spec, &argv[1..]);
    parsed.binary = binary.to_owned();
    // go-runner runs the program named after its own flags.
    if component == "go-runner" && !parsed.positionals.is_empty() {
        let inner = parsed.positionals.clone();
        let (inner_parsed, inner_problems) = judge_process(subject, image, &inner, facts);
        problems.extend(inner_problems);
        if let Some(inner_parsed) = inner_parsed {
            return (Some(inner_parsed), problems);
        }
    }
    (Some(parsed), problems)
}

/// Checks `args` (argv without argv[0]) against `spec`.
pub fn check_args(
    subject: &str,
    name: &str,
    spec: &Component,
    args: &[String],
) -> (ParsedArgs, Vec<Problem>) {
    let mut parsed = ParsedArgs {
        component: name.to_owned(),
        ..ParsedArgs::default()
    };
    let mut problems = Vec::new();
    let mut i = 0;
    let mut only_positionals = false;
    while i < args.len() {
        let word = &args[i];
        i += 1;
        let flag = if only_positionals {
            None
        } else if word == "--" {
            only_positionals = true;
            continue;
        } else if let Some(long) = word.strip_prefix("--") {
            Some(long)
        } else if let Some(short) = word.strip_prefix('-').filter(|s| !s.is_empty()) {
            match spec.parser {
                Parser::GoFlag => Some(short),
                // pflag: single-dash words are shorthands; the components judged here define
                // only klog's -v and help's -h.
                Parser::Pflag => {
                    let letter = short.split('=').next().unwrap_or(short);
                    if letter != "v" && letter != "h" {
                        problems.push(Problem::new(
                            subject,
                            format!("{name}: unknown shorthand flag: {word:?}"),
                        ));
                    }
                    Some(short)
                }
            }
        } else {
            None
        };
        let Some(flag) = flag else {
            if !spec.subcommands.is_empty() && parsed.subcommand.is_none() {
                if spec.subcommands.contains_key(word.as_str()) {
                    parsed.subcommand = Some(word.clone());
                } else {
                    problems.push(Problem::new(
                        subject,
                        format!(
                            "{name}: unknown command {word:?} (it has: {})",
                            spec.subcommands
                                .keys()
                                .cloned()
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
                continue;
            }
            if !spec.positional_arguments && parsed.positionals.is_empty() {
                let consequence = match spec.parser {
                    Parser::GoFlag => {
                        "; Go's flag package stops at it, so every flag after it is ignored"
                    }
                    Parser::Pflag => "; the program exits",
                };
                problems.push(Problem::new(
                    subject,
                    format!(
                        "{name}: positional argument {word:?} is not accepted ({name} takes only flags{consequence})"
                    ),
                ));
            }
            parsed.positionals.push(word.clone());
            // Go's flag package stops at the first word that is not a flag.
            if spec.parser == Parser::GoFlag {
                only_positionals = true;
            }
            continue;
        };
        let (flag_name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (flag, None),
        };
        let normalized = if spec.normalize_underscores {
            flag_name.replace('_', "-")
        } else {
            flag_name.to_owned()
        };
        let value = inline.or_else(|| {
            let next = args.get(i)?;
            if next.starts_with('-') {
                return None;
            }
            i += 1;
            Some(next.clone())
        });
        let known = spec.accepts(parsed.subcommand.as_deref(), &normalized)
            || (spec.parser == Parser::Pflag && (normalized == "v" || normalized == "h"));
        if !known {
            let why = spec
                .removed
                .get(&normalized)
                .map(|why| format!(" ({why})"))
                .unwrap_or_default();
            problems.push(Problem::new(
                subject,
                format!("{name}: unknown flag: --{flag_name}{why}"),
            ));
        }
        parsed.flags.push((normalized, value));
    }
    if !spec.subcommands.is_empty() && parsed.subcommand.is_none() {
        problems.push(Problem::new(
            subject,
            format!(
                "{name}: no command given (it needs one of: {})",
                spec.subcommands
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    if let Some(sub) = &parsed.subcommand
        && let Some(required) = spec.required_flags.get(sub)
    {
        for flag in required {
            if !parsed.has(flag) {
                problems.push(Problem::new(
                    subject,
                    format!("{name} {sub}: required flag --{flag} is missing"),
                ));
            }
        }
    }
    (parsed, problems)
}

fn shown(argv: &[String]) -> String {
    let mut text = argv.iter().take(4).cloned().collect::<Vec<_>>().join(" ");
    if argv.len() > 4 {
        text.push_str(" …");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::data::facts;

    fn words(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn a_correct_kubelet_command_passes() {
        let facts = facts();
        let image = facts
            .image("quay.io/poseidon/kubelet:v1.32.3")
            .expect("image");
        let (parsed, problems) = judge_process(
            "kubelet.service",
            image,
            &words(
                "/usr/local/bin/kubelet --kubeconfig=/etc/kubernetes/kubeconfig --pod-manifest-path=/etc/kubernetes/manifests --cluster_dns=10.3.0.10 --read-only-port=0 -v=2",
            ),
            facts,
        );
        assert!(problems.is_empty(), "{problems:?}");
        let parsed = parsed.expect("a kubelet");
        assert_eq!(parsed.component, "kubelet");
        assert_eq!(parsed.value("cluster-dns"), Some("10.3.0.10"));
    }

    #[test]
    fn a_doubled_entrypoint_and_an_unknown_flag_are_reported() {
        let facts = facts();
        let image = facts
            .image("quay.io/poseidon/kubelet:v1.32.3")
            .expect("image");
        let (_, problems) = judge_process(
            "kubelet.service",
            image,
            &words("/usr/local/bin/kubelet /kubelet --static-pod-path=/etc/kubernetes/manifests"),
            facts,
        );
        let text = crate::judge::problem::lines(&problems);
        assert!(text.contains("positional argument \"/kubelet\""), "{text}");
        assert!(text.contains("unknown flag: --static-pod-path"), "{text}");
        assert!(text.contains("--pod-manifest-path"), "{text}");
    }

    #[test]
    fn argv0_must_be_in_the_image() {
        let facts = facts();
        let image = facts
            .image("quay.io/poseidon/kubelet:v1.32.3")
            .expect("image");
        let (parsed, problems) = judge_process("x", image, &words("/kubelet --v=2"), facts);
        assert!(parsed.is_none());
        assert!(
            problems[0].message.contains("not a program of image"),
            "{problems:?}"
        );
    }

    #[test]
    fn subcommands_go_runner_and_go_flags() {
        let facts = facts();
        let bootkube = facts
            .image("quay.io/kinvolk/bootkube:v0.14.0-helm4")
            .expect("bootkube");
        let (_, problems) = judge_process(
            "bootkube",
            bootkube,
            &words("/bootkube start --asset-dir=/assets"),
            facts,
        );
        assert!(problems.is_empty(), "{problems:?}");
        let (_, problems) = judge_process("bootkube", bootkube, &words("/bootkube start"), facts);
        assert!(problems[0].message.contains("--asset-dir"), "{problems:?}");
        let apiserver = facts
            .image("registry.k8s.io/kube-apiserver:v1.32.3")
            .expect("apiserver");
        let (parsed, problems) = judge_process(
            "apiserver",
            apiserver,
            &words("/go-runner --log-file=/x kube-apiserver --secure-port=6443 --insecure-port=0"),
            facts,
        );
        assert_eq!(parsed.expect("parsed").component, "kube-apiserver");
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0]
                .message
                .contains("unknown flag: --insecure-port (removed")
        );
        let coredns = facts
            .image("registry.k8s.io/coredns/coredns:v1.11.4")
            .expect("coredns");
        let (_, problems) = judge_process(
            "coredns",
            coredns,
            &words("/coredns -conf /etc/coredns/Corefile extra -dns.port=53"),
            facts,
        );
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0]
                .message
                .contains("every flag after it is ignored")
        );
    }
}
