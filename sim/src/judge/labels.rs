//! The kubelet's rule for the labels it may set on its own Node (`--node-labels`), from
//! `sim/data/kubelet-node-label-rule.json`.

use std::collections::BTreeMap;

use super::data::LabelRule;

/// Parses a `--node-labels` value: `k=v` or bare `k`, comma-separated.
pub fn parse_node_labels(value: &str) -> BTreeMap<String, String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|label| !label.is_empty())
        .map(|label| {
            let (key, value) = label.split_once('=').unwrap_or((label, ""));
            (key.to_owned(), value.to_owned())
        })
        .collect()
}

fn namespace(key: &str) -> &str {
    key.split_once('/').map_or("", |(ns, _)| ns)
}

fn in_namespace(namespace: &str, of: &str) -> bool {
    namespace == of || namespace.ends_with(&format!(".{of}"))
}

impl LabelRule {
    /// Whether the kubelet may set `key` on itself (`IsKubeletLabel` or not a Kubernetes label),
    /// and NodeRestriction lets it through.
    pub fn allows(&self, key: &str) -> bool {
        let ns = namespace(key);
        if self
            .node_restriction_forbidden_namespaces
            .iter()
            .any(|forbidden| in_namespace(ns, forbidden))
        {
            return false;
        }
        let kubernetes = self
            .kubernetes_namespaces
            .iter()
            .any(|k8s| in_namespace(ns, k8s));
        !kubernetes
            || self.allowed_keys.contains(key)
            || self
                .allowed_namespaces
                .iter()
                .any(|allowed| in_namespace(ns, allowed))
    }

    /// The keys of `labels` the kubelet refuses, with the kubelet's message; `None` when all pass.
    pub fn refuse(&self, labels: &BTreeMap<String, String>) -> Option<String> {
        let refused: Vec<&str> = labels
            .keys()
            .filter(|key| !self.allows(key))
            .map(String::as_str)
            .collect();
        if refused.is_empty() {
            return None;
        }
        Some(format!(
            "{}: [{}]; a kubelet may set only keys in {} (or their subdomains) or one of {}",
            self.kubelet_error,
            refused.join(" "),
            self.allowed_namespaces.join(", "),
            self.allowed_keys
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::data::facts;

    #[test]
    fn the_rule_matches_the_reference_table() {
        let rule = &facts().label_rule;
        for allowed in [
            "node.kubernetes.io/master",
            "node.kubernetes.io/controller",
            "foo.node.kubernetes.io/x",
            "kubelet.kubernetes.io/x",
            "kubernetes.io/hostname",
            "topology.kubernetes.io/zone",
            "lokomotive.alpha.kinvolk.io/public-ipv4",
            "example.com/x",
            "plain",
        ] {
            assert!(rule.allows(allowed), "{allowed}");
        }
        for refused in [
            "node-role.kubernetes.io/master",
            "node-role.kubernetes.io/controller",
            "kubernetes.io/role",
            "k8s.io/anything",
            "foo.k8s.io/x",
            "node-restriction.kubernetes.io/x",
        ] {
            assert!(!rule.allows(refused), "{refused}");
        }
    }

    #[test]
    fn refusals_name_the_keys() {
        let rule = &facts().label_rule;
        let labels =
            parse_node_labels("node-role.kubernetes.io/master,node.kubernetes.io/controller=true");
        assert_eq!(labels["node.kubernetes.io/controller"], "true");
        let message = rule.refuse(&labels).expect("refused");
        assert!(message.starts_with("unknown 'kubernetes.io' or 'k8s.io' labels specified with --node-labels: [node-role.kubernetes.io/master]"), "{message}");
        assert!(
            rule.refuse(&parse_node_labels("node.kubernetes.io/node"))
                .is_none()
        );
    }
}
