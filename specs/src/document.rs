//! Reading typed values out of a YAML tree that remembers where every node came from.
//!
//! serde would stop at the first error and forget positions, so the spec is parsed with saphyr's
//! marked tree and converted by hand: each read records what went wrong, with the field path and
//! line:column, and carries on so that one run reports every mistake.

use std::collections::HashSet;

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};

use crate::error::SpecError;

/// Parses YAML text into its single document. Syntax errors come back located.
pub(crate) fn parse_document(text: &str) -> Result<MarkedYaml<'_>, SpecError> {
    let mut docs = MarkedYaml::load_from_str(text).map_err(|e| SpecError {
        path: String::new(),
        line: e.marker().line(),
        column: e.marker().col() + 1,
        message: format!("YAML syntax error: {}", e.info()),
    })?;
    match docs.len() {
        0 => Err(SpecError {
            path: String::new(),
            line: 1,
            column: 1,
            message: "the spec is empty; see examples/tutorial.yaml for a complete spec".into(),
        }),
        1 => Ok(docs.remove(0)),
        _ => Err(SpecError {
            path: String::new(),
            line: docs[1].span.start.line(),
            column: docs[1].span.start.col() + 1,
            message: "a spec holds one YAML document; remove the second `---`".into(),
        }),
    }
}

/// The errors found so far.
#[derive(Default)]
pub(crate) struct Errors(pub(crate) Vec<SpecError>);

impl Errors {
    pub(crate) fn at(&mut self, node: &Node<'_, '_>, message: impl Into<String>) {
        self.0.push(SpecError {
            path: node.path.clone(),
            line: node.yaml.span.start.line(),
            column: node.yaml.span.start.col() + 1,
            message: message.into(),
        });
    }
}

/// A node of the tree with its field path.
#[derive(Clone)]
pub(crate) struct Node<'a, 'i> {
    pub(crate) yaml: &'a MarkedYaml<'i>,
    pub(crate) path: String,
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

fn describe(yaml: &MarkedYaml<'_>) -> String {
    match &yaml.data {
        YamlData::Value(Scalar::Null) => "nothing".into(),
        YamlData::Value(Scalar::Boolean(b)) => format!("the boolean {b}"),
        YamlData::Value(Scalar::Integer(i)) => format!("the number {i}"),
        YamlData::Value(Scalar::FloatingPoint(f)) => format!("the number {f}"),
        YamlData::Value(Scalar::String(s)) => format!("the string {s:?}"),
        YamlData::Sequence(_) => "a list".into(),
        YamlData::Mapping(_) => "a mapping".into(),
        YamlData::Alias(_) => "an alias".into(),
        YamlData::Tagged(tag, _) => format!("a value tagged {tag}"),
        YamlData::Representation(s, _, _) => format!("{s:?}"),
        YamlData::BadValue => "an invalid value".into(),
    }
}

impl<'a, 'i> Node<'a, 'i> {
    pub(crate) fn root(yaml: &'a MarkedYaml<'i>) -> Self {
        Node {
            yaml,
            path: String::new(),
        }
    }

    pub(crate) fn is_null(&self) -> bool {
        matches!(self.yaml.data, YamlData::Value(Scalar::Null))
    }

    /// A string scalar. Integers are taken as written (`os_version: 2191` is the string "2191").
    pub(crate) fn string(&self, errors: &mut Errors) -> Option<String> {
        match &self.yaml.data {
            YamlData::Value(Scalar::String(s)) => Some(s.to_string()),
            YamlData::Value(Scalar::Integer(i)) => Some(i.to_string()),
            _ => {
                errors.at(
                    self,
                    format!("must be a string, got {}", describe(self.yaml)),
                );
                None
            }
        }
    }

    /// An integer within `min..=max`. A quoted number (`"8760"`, as the Terraform variables were
    /// written) is accepted, since Terraform converted it too.
    pub(crate) fn integer(&self, errors: &mut Errors, min: i64, max: i64) -> Option<i64> {
        let value = match &self.yaml.data {
            YamlData::Value(Scalar::Integer(i)) => Some(*i),
            YamlData::Value(Scalar::String(s)) => s.trim().parse::<i64>().ok(),
            _ => None,
        };
        let Some(value) = value else {
            errors.at(
                self,
                format!("must be an integer, got {}", describe(self.yaml)),
            );
            return None;
        };
        if value < min {
            errors.at(self, format!("must be >= {min} (got {value})"));
            None
        } else if value > max {
            errors.at(self, format!("must be <= {max} (got {value})"));
            None
        } else {
            Some(value)
        }
    }

    /// A count or size: an integer within `min..=max` that fits a `u32`.
    pub(crate) fn count(&self, errors: &mut Errors, min: u32, max: u32) -> Option<u32> {
        self.integer(errors, i64::from(min), i64::from(max))
            .and_then(|v| u32::try_from(v).ok())
    }

    /// A boolean. `"true"` and `"false"` in quotes are accepted, as Terraform accepted them.
    pub(crate) fn boolean(&self, errors: &mut Errors) -> Option<bool> {
        match &self.yaml.data {
            YamlData::Value(Scalar::Boolean(b)) => Some(*b),
            YamlData::Value(Scalar::String(s)) if s.as_ref() == "true" => Some(true),
            YamlData::Value(Scalar::String(s)) if s.as_ref() == "false" => Some(false),
            _ => {
                errors.at(
                    self,
                    format!("must be true or false, got {}", describe(self.yaml)),
                );
                None
            }
        }
    }

    /// The items of a list, each with its path `field[i]`.
    pub(crate) fn list(&self, errors: &mut Errors) -> Option<Vec<Node<'a, 'i>>> {
        match &self.yaml.data {
            YamlData::Sequence(items) => Some(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, yaml)| Node {
                        yaml,
                        path: format!("{}[{i}]", self.path),
                    })
                    .collect(),
            ),
            _ => {
                errors.at(self, format!("must be a list, got {}", describe(self.yaml)));
                None
            }
        }
    }

    pub(crate) fn is_list(&self) -> bool {
        matches!(self.yaml.data, YamlData::Sequence(_))
    }

    pub(crate) fn is_mapping(&self) -> bool {
        matches!(self.yaml.data, YamlData::Mapping(_))
    }

    /// The entries of a mapping whose keys are free-form (labels, reservation ids), each value
    /// with its path `field.key`, and the key's own node for errors about the key.
    pub(crate) fn entries(
        &self,
        errors: &mut Errors,
    ) -> Option<Vec<(String, Node<'a, 'i>, Node<'a, 'i>)>> {
        let YamlData::Mapping(map) = &self.yaml.data else {
            errors.at(
                self,
                format!("must be a mapping, got {}", describe(self.yaml)),
            );
            return None;
        };
        let mut out = Vec::with_capacity(map.len());
        for (key, value) in map {
            let key_node = Node {
                yaml: key,
                path: self.path.clone(),
            };
            let Some(name) = key_node.string(errors) else {
                continue;
            };
            let path = join(&self.path, &name);
            out.push((
                name,
                Node {
                    yaml: key,
                    path: path.clone(),
                },
                Node { yaml: value, path },
            ));
        }
        Some(out)
    }

    /// Opens a mapping of known fields; unknown ones are reported by [`Fields::finish`].
    pub(crate) fn fields(&self, errors: &mut Errors) -> Option<Fields<'a, 'i>> {
        let entries = self.entries(errors)?;
        Some(Fields {
            node: self.clone(),
            entries,
            known: Vec::new(),
            used: HashSet::new(),
        })
    }
}

/// The fields of a mapping, read by name; whatever is never asked for is unknown.
pub(crate) struct Fields<'a, 'i> {
    node: Node<'a, 'i>,
    entries: Vec<(String, Node<'a, 'i>, Node<'a, 'i>)>,
    known: Vec<&'static str>,
    used: HashSet<String>,
}

impl<'a, 'i> Fields<'a, 'i> {
    /// The value of an optional field; an explicit null (`field:` with nothing) counts as absent.
    pub(crate) fn optional(&mut self, name: &'static str) -> Option<Node<'a, 'i>> {
        self.known.push(name);
        self.used.insert(name.to_owned());
        self.entries
            .iter()
            .find(|(key, _, _)| key == name)
            .map(|(_, _, value)| value.clone())
            .filter(|value| !value.is_null())
    }

    /// The value of a required field, or an error at the mapping that lacks it.
    pub(crate) fn required(
        &mut self,
        errors: &mut Errors,
        name: &'static str,
    ) -> Option<Node<'a, 'i>> {
        let value = self.optional(name);
        if value.is_none() {
            match self.entries.iter().find(|(key, _, _)| key == name) {
                Some((_, _, present)) => errors.at(
                    present,
                    format!("`{name}` is required and must have a value"),
                ),
                None => self.missing(errors, name, format!("missing required field `{name}`")),
            }
        }
        value
    }

    /// An error about field `name`, which the mapping lacks: at the mapping, under the field's
    /// path.
    pub(crate) fn missing(&self, errors: &mut Errors, name: &str, message: impl Into<String>) {
        let at = Node {
            yaml: self.node.yaml,
            path: join(&self.node.path, name),
        };
        errors.at(&at, message);
    }

    /// A field the spec does not take here although Terraform did: reported with `why` instead
    /// of as an unknown field.
    pub(crate) fn refuse(&mut self, errors: &mut Errors, name: &'static str, why: &str) {
        self.used.insert(name.to_owned());
        if let Some(key) = self.key(name) {
            errors.at(&key, format!("`{name}` does not belong here: {why}"));
        }
    }

    /// The key's node of a field that is present, for errors about the field as a whole.
    pub(crate) fn key(&self, name: &str) -> Option<Node<'a, 'i>> {
        self.entries
            .iter()
            .find(|(key, _, _)| key == name)
            .map(|(_, key, _)| key.clone())
    }

    /// Reports every field that was never asked for, with the closest known name.
    pub(crate) fn finish(mut self, errors: &mut Errors) {
        self.known.dedup();
        for (name, key, _) in &self.entries {
            if self.used.contains(name) {
                continue;
            }
            if let Some(message) = credential_refusal(name) {
                errors.at(key, message);
                continue;
            }
            let message = match closest(name, &self.known) {
                Some(near) => format!("unknown field `{name}`, did you mean `{near}`?"),
                None => format!(
                    "unknown field `{name}`; valid fields are: {}",
                    self.known.join(", ")
                ),
            };
            errors.at(key, message);
        }
    }
}

/// Credentials never belong in a spec (it is recorded in the journal and often committed), so a
/// field that looks like one is refused with where loko reads it from instead.
fn credential_refusal(name: &str) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    let looks_secret = [
        "token",
        "secret",
        "password",
        "access_key",
        "api_key",
        "apikey",
        "credential",
    ]
    .iter()
    .any(|word| lower.contains(word));
    looks_secret.then(|| {
        format!(
            "credentials are never read from the spec (remove `{name}`): the Packet API token comes \
             from PACKET_AUTH_TOKEN or METAL_AUTH_TOKEN, and AWS credentials from the AWS credential \
             chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ~/.aws/credentials)"
        )
    })
}

/// The known name closest to `name`, when it is close enough to be a likely typo.
pub(crate) fn closest<'k>(name: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(name, k), *k))
        .filter(|(distance, k)| *distance <= (k.len().max(name.len()) / 4).max(2))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, k)| k)
        .or_else(|| {
            // A word of the name that is a word of exactly one field (`count` → `controller_count`)
            // is also a good hint.
            let hits: Vec<&str> = known
                .iter()
                .copied()
                .filter(|k| {
                    name.split('_')
                        .any(|w| w.len() > 3 && k.split('_').any(|kw| kw == w))
                })
                .collect();
            (hits.len() == 1).then(|| hits[0])
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_finds_typos_and_shared_words() {
        let known = ["controller_count", "controller_type", "cluster_name"];
        assert_eq!(closest("controler_count", &known), Some("controller_count"));
        assert_eq!(closest("clustername", &known), Some("cluster_name"));
        assert_eq!(closest("name", &known), Some("cluster_name"));
        // A word shared with several fields is no hint.
        assert_eq!(closest("controller", &known), None);
        assert_eq!(closest("zzzzzzzz", &known), None);
    }

    #[test]
    fn syntax_errors_are_located() {
        let err = parse_document("a: [1, 2\nb: 3\n").err();
        let err = err
            .as_ref()
            .map(|e| (e.line, e.message.starts_with("YAML syntax error")));
        assert_eq!(err.map(|(_, s)| s), Some(true));
    }

    #[test]
    fn credentials_are_refused_by_name() {
        assert!(credential_refusal("auth_token").is_some_and(|m| m.contains("PACKET_AUTH_TOKEN")));
        assert!(credential_refusal("aws_secret_access_key").is_some());
        assert!(credential_refusal("facility").is_none());
    }
}
