//! systemd unit files as systemd reads them: sections, `\` line continuations, quoting of
//! `Exec*=` and `Environment=`, and variable expansion (systemd.service(5), "Command lines";
//! systemd.exec(5), `Environment=`, `EnvironmentFile=`).

use std::collections::{BTreeMap, BTreeSet};

/// A parsed unit (its text and drop-ins concatenated, in order).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unit {
    /// Unit name, e.g. `kubelet.service`.
    pub name: String,
    /// `(section, key, value)` in file order.
    pub entries: Vec<(String, String, String)>,
}

/// One `EnvironmentFile=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentFile {
    /// The file.
    pub path: String,
    /// `-` prefix: a missing file is not an error.
    pub optional: bool,
}

/// One `ExecStart=`-like command line, split into words, variables not yet expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecLine {
    /// `-` prefix: a failing exit status is ignored.
    pub ignore_failure: bool,
    /// The words.
    pub words: Vec<Word>,
}

/// A word of a command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    /// Text after unquoting, with `${VAR}`/`$VAR` references still in it.
    pub text: String,
    /// The whole word was an unquoted `$VAR` (split at whitespace when expanded).
    pub bare_variable: Option<String>,
}

impl Unit {
    /// Parses a unit's text.
    pub fn parse(name: &str, text: &str) -> Unit {
        let mut entries = Vec::new();
        let mut section = String::new();
        let mut pending: Option<(String, String)> = None;
        for raw in text.lines() {
            if let Some((key, mut value)) = pending.take() {
                // A continued line; comment lines inside a continuation are skipped by systemd.
                let trimmed = raw.trim_start();
                if trimmed.starts_with('#') || trimmed.starts_with(';') {
                    pending = Some((key, value));
                    continue;
                }
                value.push(' ');
                match raw.strip_suffix('\\') {
                    Some(more) => {
                        value.push_str(more);
                        pending = Some((key, value));
                    }
                    None => {
                        value.push_str(raw);
                        entries.push((section.clone(), key, value.trim().to_owned()));
                    }
                }
                continue;
            }
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if line.starts_with('[') && line.ends_with(']') {
                section = line[1..line.len() - 1].to_owned();
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let key = key.trim().to_owned();
            let value = value.trim_start();
            match value.strip_suffix('\\') {
                Some(more) => pending = Some((key, more.to_owned())),
                None => entries.push((section.clone(), key, value.trim().to_owned())),
            }
        }
        if let Some((key, value)) = pending {
            entries.push((section, key, value.trim().to_owned()));
        }
        Unit {
            name: name.to_owned(),
            entries,
        }
    }

    /// Every value of `key` in `section`, after the last empty assignment (which resets a list).
    pub fn values(&self, section: &str, key: &str) -> Vec<&str> {
        let mut values = Vec::new();
        for (s, k, v) in &self.entries {
            if s == section && k == key {
                if v.is_empty() {
                    values.clear();
                } else {
                    values.push(v.as_str());
                }
            }
        }
        values
    }

    /// A space-separated list setting (`Requires=`, `After=`, `WantedBy=`…), all values joined.
    pub fn list(&self, section: &str, key: &str) -> Vec<String> {
        self.values(section, key)
            .iter()
            .flat_map(|v| v.split_whitespace())
            .map(str::to_owned)
            .collect()
    }

    /// `Environment=` assignments in order (later ones win).
    pub fn environment(&self) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        for value in self.values("Service", "Environment") {
            for word in split_words(value) {
                if let Some((k, v)) = word.text.split_once('=') {
                    env.insert(k.to_owned(), v.to_owned());
                }
            }
        }
        env
    }

    /// `EnvironmentFile=` entries in order.
    pub fn environment_files(&self) -> Vec<EnvironmentFile> {
        self.values("Service", "EnvironmentFile")
            .into_iter()
            .map(|value| match value.strip_prefix('-') {
                Some(path) => EnvironmentFile {
                    path: path.trim().to_owned(),
                    optional: true,
                },
                None => EnvironmentFile {
                    path: value.to_owned(),
                    optional: false,
                },
            })
            .collect()
    }

    /// The command lines of `key` (`ExecStart`, `ExecStartPre`, …) in order.
    pub fn exec(&self, key: &str) -> Vec<ExecLine> {
        self.values("Service", key)
            .into_iter()
            .map(parse_exec)
            .collect()
    }
}

/// Splits an `Exec*=` value: its prefixes, then its words.
fn parse_exec(value: &str) -> ExecLine {
    let mut rest = value;
    let mut ignore_failure = false;
    while let Some(c) = rest.chars().next() {
        match c {
            '-' => ignore_failure = true,
            '@' | ':' | '+' | '!' => {}
            _ => break,
        }
        rest = &rest[1..];
    }
    ExecLine {
        ignore_failure,
        words: split_words(rest),
    }
}

/// Splits at unquoted whitespace; handles `"…"`, `'…'` and backslash escapes as systemd does.
pub fn split_words(text: &str) -> Vec<Word> {
    let mut words = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut word = String::new();
        let mut quoted = false;
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() {
                break;
            }
            chars.next();
            match c {
                '"' | '\'' => {
                    quoted = true;
                    while let Some(inner) = chars.next() {
                        if inner == c {
                            break;
                        }
                        if inner == '\\' && c == '"' {
                            if let Some(escaped) = chars.next() {
                                word.push(escaped);
                            }
                        } else {
                            word.push(inner);
                        }
                    }
                }
                '\\' => {
                    if let Some(escaped) = chars.next() {
                        word.push(escaped);
                    }
                }
                _ => word.push(c),
            }
        }
        let bare_variable = (!quoted)
            .then(|| word.strip_prefix('$'))
            .flatten()
            .filter(|name| is_variable_name(name))
            .map(str::to_owned);
        words.push(Word {
            text: word,
            bare_variable,
        });
    }
    words
}

fn is_variable_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
}

/// Expands a command line: `$VAR` as a whole word splits into words, `${VAR}` is replaced in
/// place, `$$` is a `$`. Unset variables expand to nothing, as systemd does; the names used are
/// returned so that callers can say which were unset.
pub fn expand(words: &[Word], env: &BTreeMap<String, String>) -> (Vec<String>, BTreeSet<String>) {
    let mut argv = Vec::new();
    let mut used = BTreeSet::new();
    for word in words {
        if let Some(name) = &word.bare_variable {
            used.insert(name.clone());
            if let Some(value) = env.get(name) {
                argv.extend(value.split_whitespace().map(str::to_owned));
            }
            continue;
        }
        let mut out = String::new();
        let mut rest = word.text.as_str();
        while let Some(at) = rest.find('$') {
            out.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            if let Some(tail) = after.strip_prefix('$') {
                out.push('$');
                rest = tail;
            } else if let Some(inner) = after.strip_prefix('{')
                && let Some(end) = inner.find('}')
            {
                let name = &inner[..end];
                used.insert(name.to_owned());
                out.push_str(env.get(name).map_or("", String::as_str));
                rest = &inner[end + 1..];
            } else {
                out.push('$');
                rest = after;
            }
        }
        out.push_str(rest);
        argv.push(out);
    }
    (argv, used)
}

/// Parses an environment file's `KEY=value` lines (comments and blank lines skipped, quotes
/// removed).
pub fn parse_environment_file(text: &str) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            env.insert(k.trim().to_owned(), v.to_owned());
        }
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNIT: &str = "[Unit]\nDescription=Kubelet\nRequires=docker.service coreos-metadata.service\n\
After=docker.service\nAfter=coreos-metadata.service\n[Service]\n\
Environment=\"A=one two\" B=3\nEnvironmentFile=-/run/metadata/flatcar\nEnvironmentFile=/etc/x.env\n\
ExecStartPre=-/usr/bin/docker rm -f kubelet\n\
ExecStart=/usr/bin/docker run --rm \\\n  image \\\n# a comment\n  --node-ip=${IP} $A \"--x=$B\"\n\
[Install]\nWantedBy=multi-user.target\n";

    #[test]
    fn reads_sections_lists_environment_and_continuations() {
        let unit = Unit::parse("kubelet.service", UNIT);
        assert_eq!(
            unit.list("Unit", "Requires"),
            ["docker.service", "coreos-metadata.service"]
        );
        assert_eq!(
            unit.list("Unit", "After"),
            ["docker.service", "coreos-metadata.service"]
        );
        assert_eq!(unit.list("Install", "WantedBy"), ["multi-user.target"]);
        let env = unit.environment();
        assert_eq!(env["A"], "one two");
        assert_eq!(env["B"], "3");
        assert_eq!(
            unit.environment_files(),
            [
                EnvironmentFile {
                    path: "/run/metadata/flatcar".into(),
                    optional: true
                },
                EnvironmentFile {
                    path: "/etc/x.env".into(),
                    optional: false
                },
            ]
        );
        let pre = unit.exec("ExecStartPre");
        assert!(pre[0].ignore_failure);
        let start = unit.exec("ExecStart");
        assert_eq!(start.len(), 1);
        let mut vars = env.clone();
        vars.insert("IP".into(), "10.0.0.1".into());
        let (argv, used) = expand(&start[0].words, &vars);
        assert_eq!(
            argv,
            [
                "/usr/bin/docker",
                "run",
                "--rm",
                "image",
                "--node-ip=10.0.0.1",
                "one",
                "two",
                "--x=$B"
            ]
        );
        assert_eq!(used, BTreeSet::from(["A".to_owned(), "IP".to_owned()]));
    }

    #[test]
    fn unset_variables_expand_to_nothing_and_dollar_dollar_is_a_dollar() {
        let words = split_words("a ${NOPE}x $$y $NOPE");
        let (argv, used) = expand(&words, &BTreeMap::new());
        assert_eq!(argv, ["a", "x", "$y"]);
        assert!(used.contains("NOPE"));
    }

    #[test]
    fn an_empty_assignment_resets_a_list() {
        let unit = Unit::parse("x", "[Unit]\nAfter=a\nAfter=\nAfter=b\n");
        assert_eq!(unit.list("Unit", "After"), ["b"]);
    }

    #[test]
    fn environment_files_parse() {
        let env = parse_environment_file("# c\nA=1\nB=\"two words\"\n\n");
        assert_eq!(env["A"], "1");
        assert_eq!(env["B"], "two words");
    }
}
