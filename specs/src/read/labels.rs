//! Node labels and taints, as the kubelet takes them (`--node-labels`, `--register-with-taints`).
//!
//! A label or taint the kubelet refuses stops it from registering, which shows up only as a node
//! that never joins; checking them here turns that into an error on the spec's line.

use std::collections::BTreeMap;

use super::values::{MAX_LABEL, dns_name};
use crate::document::{Errors, Node};
use crate::spec::{Taint, TaintEffect};

pub(super) fn labels(n: &Node<'_, '_>, errors: &mut Errors) -> Option<BTreeMap<String, String>> {
    let pairs: Vec<(String, String)> = if n.is_mapping() {
        let entries = n.entries(errors)?;
        let mut pairs = Vec::new();
        for (key, _, value) in entries {
            // `role: true` is a natural way to write a label; the value is text either way.
            let text = match &value.yaml.data {
                saphyr::YamlData::Value(saphyr::Scalar::Boolean(b)) => Some(b.to_string()),
                _ => value.string(errors),
            };
            pairs.push((key, text?));
        }
        pairs
    } else {
        let text = n.string(errors)?;
        let mut pairs = Vec::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match item.split_once('=') {
                Some((k, v)) => pairs.push((k.trim().to_owned(), v.trim().to_owned())),
                None => {
                    errors.at(
                        n,
                        format!("label {item:?} has no value; write key=value (comma-separated)"),
                    );
                    return None;
                }
            }
        }
        pairs
    };
    let mut out = BTreeMap::new();
    let mut ok = true;
    for (key, value) in pairs {
        if let Err(m) = label_key(&key).and_then(|()| label_value(&value)) {
            errors.at(n, format!("label {key:?}: {m}"));
            ok = false;
        }
        out.insert(key, value);
    }
    ok.then_some(out)
}

fn label_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= MAX_LABEL
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && text.starts_with(|c: char| c.is_ascii_alphanumeric())
        && text.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// A label or taint key: `[prefix/]name`, the prefix a DNS subdomain.
fn label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if !label_name(name) {
        return Err("the name must be 1 to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit".into());
    }
    if let Some(prefix) = prefix {
        dns_name(prefix, 1).map_err(|m| format!("the prefix is not a DNS subdomain: {m}"))?;
        // The kubelet refuses to register labels in these namespaces (Kubernetes >= 1.16) except
        // under its own sub-prefixes, and a kubelet that refuses its flags never joins.
        let reserved = prefix.ends_with("kubernetes.io") || prefix.ends_with("k8s.io");
        let allowed =
            prefix.ends_with("kubelet.kubernetes.io") || prefix.ends_with("node.kubernetes.io");
        if reserved && !allowed && !["kubernetes.io", "beta.kubernetes.io"].contains(&prefix) {
            return Err(format!(
                "the kubelet may not set labels under {prefix}/; use your own prefix or node.kubernetes.io/"
            ));
        }
    }
    Ok(())
}

fn label_value(value: &str) -> Result<(), String> {
    if value.is_empty() || label_name(value) {
        Ok(())
    } else {
        Err(format!(
            "value {value:?} must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        ))
    }
}

pub(super) fn taints(n: &Node<'_, '_>, errors: &mut Errors) -> Option<Vec<Taint>> {
    let items: Vec<Option<Taint>> = if n.is_list() {
        n.list(errors)?
            .iter()
            .map(|item| {
                if item.is_mapping() {
                    taint_fields(item, errors)
                } else {
                    let text = item.string(errors)?;
                    parse_taint(text.trim())
                        .map_err(|m| errors.at(item, m))
                        .ok()
                }
            })
            .collect()
    } else {
        let text = n.string(errors)?;
        text.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|t| parse_taint(t).map_err(|m| errors.at(n, m)).ok())
            .collect()
    };
    items.into_iter().collect()
}

fn taint_effect(text: &str) -> Result<TaintEffect, String> {
    TaintEffect::from_name(text).ok_or_else(|| {
        format!(
            "taint effect {text:?} must be one of {}",
            TaintEffect::NAMES.join(", ")
        )
    })
}

/// `key=value:Effect` or `key:Effect`, as the kubelet's `--register-with-taints`.
fn parse_taint(text: &str) -> Result<Taint, String> {
    let Some((kv, effect)) = text.rsplit_once(':') else {
        return Err(format!(
            "taint {text:?} has no effect; write key=value:NoSchedule (or PreferNoSchedule, NoExecute)"
        ));
    };
    let (key, value) = kv.split_once('=').unwrap_or((kv, ""));
    let taint = Taint {
        key: key.to_owned(),
        value: value.to_owned(),
        effect: taint_effect(effect)?,
    };
    label_key(key)
        .and_then(|()| label_value(value))
        .map_err(|m| format!("taint {text:?}: {m}"))?;
    Ok(taint)
}

fn taint_fields(n: &Node<'_, '_>, errors: &mut Errors) -> Option<Taint> {
    let mut f = n.fields(errors)?;
    let key = f.required(errors, "key").and_then(|k| {
        let text = k.string(errors)?;
        label_key(&text).map_err(|m| errors.at(&k, m)).ok()?;
        Some(text)
    });
    let value = match f.optional("value") {
        Some(v) => v.string(errors).and_then(|text| {
            label_value(&text)
                .map_err(|m| errors.at(&v, m))
                .ok()
                .map(|()| text)
        }),
        None => Some(String::new()),
    };
    let effect = f.required(errors, "effect").and_then(|e| {
        let text = e.string(errors)?;
        taint_effect(&text).map_err(|m| errors.at(&e, m)).ok()
    });
    f.finish(errors);
    Some(Taint {
        key: key?,
        value: value?,
        effect: effect?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taints_parse_like_the_kubelet_flag() {
        let t = parse_taint("clusterType=staging:NoSchedule");
        assert_eq!(
            t.as_ref().map(ToString::to_string).ok(),
            Some("clusterType=staging:NoSchedule".to_owned())
        );
        assert_eq!(
            parse_taint("dedicated:NoExecute").map(|t| t.value).ok(),
            Some(String::new())
        );
        assert!(parse_taint("a=b").is_err());
        assert!(parse_taint("a=b:Never").is_err());
    }

    #[test]
    fn label_keys() {
        assert!(label_key("node.supernova.io/role").is_ok());
        assert!(label_key("node.kubernetes.io/pool").is_ok());
        assert!(label_key("node-role.kubernetes.io/worker").is_err());
        assert!(label_key("bad key").is_err());
    }
}
