//! Calico's reading of its policy objects on the kubernetes datastore, as v3.29.2 reads them
//! (`sim/data/calico-felix.json` names the sources): which tier a stored policy is in, the name
//! libcalico-go's client stores a policy under, which GlobalNetworkPolicies Felix loads for a
//! HostEndpoint, and the failsafe ports Felix opens on one whatever the policies say.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// `sim/data/calico-felix.json`.
pub const CALICO_FELIX_JSON: &str = include_str!("../../data/calico-felix.json");

/// Why a Calico object cannot be read as Calico reads it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalicoError {
    /// A policy name libcalico-go's client refuses.
    #[error("policy {name:?}: {reason}")]
    PolicyName { name: String, reason: String },
    /// A selector term this reading does not evaluate.
    #[error("selector {selector:?}: cannot read {term:?}")]
    Selector { selector: String, term: String },
    /// A failsafe port entry that is not a port.
    #[error("{what}: failsafe port {entry}: {reason}")]
    Failsafe {
        what: &'static str,
        entry: String,
        reason: &'static str,
    },
}

/// Facts about Calico's datastore and Felix (`sim/data/calico-felix.json`).
#[derive(Debug, Clone, Deserialize)]
pub struct CalicoFacts {
    /// Tiers calico-node creates when it starts.
    pub tiers_created_at_start: CreatedTiers,
    /// Felix's `FailsafeInboundHostPorts` when no FelixConfiguration sets it.
    pub failsafe_inbound_host_ports: FailsafeDefault,
}

/// The tiers calico-node creates at start, and where that is said.
#[derive(Debug, Clone, Deserialize)]
pub struct CreatedTiers {
    pub tiers: Vec<String>,
    pub source: String,
}

/// Felix's default failsafe ports (`proto:port`), and where that is said.
#[derive(Debug, Clone, Deserialize)]
pub struct FailsafeDefault {
    pub default: Vec<String>,
    pub source: String,
}

/// The tier of a stored policy, as Felix's syncer reads it from the object's name
/// (libcalico-go `lib/names/policy.go` `TierFromPolicyName`, called by
/// `lib/backend/syncersv1/updateprocessors/globalnetworkpolicyprocessor.go`): `knp.default.` and
/// `ossg.` names are in `default`, `kanp.adminnetworkpolicy.` in `adminnetworkpolicy`, a name
/// without a dot in `default`, any other in the word before its first dot. `spec.tier` is not
/// read: the name alone decides.
pub fn tier_from_policy_name(name: &str) -> &str {
    if name.starts_with("knp.default.") || name.starts_with("ossg.") {
        return "default";
    }
    if name.starts_with("kanp.adminnetworkpolicy.") {
        return "adminnetworkpolicy";
    }
    match name.split_once('.') {
        Some((tier, _)) => tier,
        None => "default",
    }
}

/// The name libcalico-go's client (calicoctl, the Calico API server) stores a policy named
/// `name` with `spec.tier` `tier` under, and looks it up by (`lib/names/policy.go`
/// `BackendTieredPolicyName`: `TieredPolicyName` prefixes a name without a dot with `default.`,
/// then the name must start with its tier and a dot). An object stored under another name is
/// one that client neither finds nor deletes by the name a user gives.
pub fn backend_policy_name(name: &str, tier: Option<&str>) -> Result<String, CalicoError> {
    let formatted = ["knp.default.", "kanp.adminnetworkpolicy.", "ossg."]
        .iter()
        .any(|prefix| name.starts_with(prefix));
    if name.is_empty() {
        return Err(CalicoError::PolicyName {
            name: name.to_owned(),
            reason: "the name is empty".to_owned(),
        });
    }
    if formatted {
        return Ok(name.to_owned());
    }
    let tiered = if name.contains('.') {
        name.to_owned()
    } else {
        format!("default.{name}")
    };
    let tier = tier.filter(|t| !t.is_empty()).unwrap_or("default");
    if tiered.starts_with(&format!("{tier}.")) {
        Ok(tiered)
    } else {
        Err(CalicoError::PolicyName {
            name: name.to_owned(),
            reason: format!("stored as {tiered}, which is not in its tier {tier}"),
        })
    }
}

/// Whether a Calico selector selects an object with `labels`. Reads the forms host protection
/// uses: `all()`, `has(k)`, `!has(k)`, `k == 'v'`, `k != 'v'`, joined by `&&` or `||` (`&&`
/// binding tighter), without parentheses; any other form is an error naming it, never a guess.
pub fn selector_matches(
    selector: &str,
    labels: &BTreeMap<String, String>,
) -> Result<bool, CalicoError> {
    let mut any = false;
    for alternative in selector.split("||") {
        let mut all = true;
        for term in alternative.split("&&") {
            all &= term_matches(term.trim(), labels).ok_or_else(|| CalicoError::Selector {
                selector: selector.to_owned(),
                term: term.trim().to_owned(),
            })?;
        }
        any |= all;
    }
    Ok(any)
}

fn term_matches(term: &str, labels: &BTreeMap<String, String>) -> Option<bool> {
    if term == "all()" {
        return Some(true);
    }
    let has = |rest: &str| {
        rest.strip_prefix("has(")
            .and_then(|r| r.strip_suffix(')'))
            .map(|key| labels.contains_key(key.trim()))
    };
    if let Some(rest) = term.strip_prefix('!') {
        return has(rest.trim()).map(|found| !found);
    }
    if let Some(found) = has(term) {
        return Some(found);
    }
    let (key, value, equal) = if let Some((k, v)) = term.split_once("==") {
        (k, v, true)
    } else {
        let (k, v) = term.split_once("!=")?;
        (k, v, false)
    };
    let value = value.trim();
    let quoted = value
        .strip_prefix('\'')
        .and_then(|v| v.strip_suffix('\''))
        .or_else(|| value.strip_prefix('"').and_then(|v| v.strip_suffix('"')))?;
    let matches = labels.get(key.trim()).map(String::as_str) == Some(quoted);
    Some(matches == equal)
}

/// A HostEndpoint and what Felix makes of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEndpoint {
    /// The object's name.
    pub name: String,
    /// `spec.node`: the Calico node (the Kubernetes Node's name) whose Felix protects it.
    pub node: String,
    /// The GlobalNetworkPolicies Felix loads that select it, by stored name.
    pub policies: Vec<String>,
    /// Policies that select it but that Felix holds in a tier nobody creates (so in no valid
    /// tier), and selectors this reading cannot evaluate: why each is not counted.
    pub problems: Vec<String>,
}

/// Every applied HostEndpoint with the GlobalNetworkPolicies Felix would apply to it: a policy
/// counts when its tier (from its name) exists (created by calico-node at start, or applied as
/// a Tier) and its `spec.selector` selects the endpoint's labels.
pub fn host_endpoints(objects: &[Value], facts: &CalicoFacts) -> Vec<HostEndpoint> {
    let is = |o: &Value, kind: &str| {
        o["kind"] == kind
            && o["apiVersion"]
                .as_str()
                .is_some_and(|v| v.starts_with("crd.projectcalico.org/"))
    };
    let tiers: Vec<&str> = facts
        .tiers_created_at_start
        .tiers
        .iter()
        .map(String::as_str)
        .chain(
            objects
                .iter()
                .filter(|o| is(o, "Tier"))
                .filter_map(|o| o["metadata"]["name"].as_str()),
        )
        .collect();
    objects
        .iter()
        .filter(|o| is(o, "HostEndpoint"))
        .map(|endpoint| {
            let labels: BTreeMap<String, String> = endpoint["metadata"]["labels"]
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect();
            let mut policies = Vec::new();
            let mut problems = Vec::new();
            for policy in objects.iter().filter(|o| is(o, "GlobalNetworkPolicy")) {
                let name = policy["metadata"]["name"].as_str().unwrap_or_default();
                let selector = policy["spec"]["selector"].as_str().unwrap_or("all()");
                match selector_matches(selector, &labels) {
                    Ok(false) => {}
                    Ok(true) => {
                        let tier = tier_from_policy_name(name);
                        if tiers.contains(&tier) {
                            policies.push(name.to_owned());
                        } else {
                            problems.push(format!(
                                "GlobalNetworkPolicy {name} is in tier {tier} (from its name), which does not exist"
                            ));
                        }
                    }
                    Err(error) => problems.push(format!("GlobalNetworkPolicy {name}: {error}")),
                }
            }
            HostEndpoint {
                name: endpoint["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                node: endpoint["spec"]["node"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                policies,
                problems,
            }
        })
        .collect()
}

/// One failsafe port: Felix accepts `protocol` to `port` on a host endpoint from `net` (every
/// address when `None`), before any policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailsafePort {
    /// `tcp`, `udp` or `sctp`, lower case.
    pub protocol: String,
    pub port: u16,
    pub net: Option<String>,
}

/// Felix's inbound failsafe ports: the FelixConfiguration `default`'s
/// `spec.failsafeInboundHostPorts` when applied, else Felix's default.
pub fn failsafe_inbound(
    objects: &[Value],
    facts: &CalicoFacts,
) -> Result<Vec<FailsafePort>, CalicoError> {
    let configured = objects
        .iter()
        .find(|o| o["kind"] == "FelixConfiguration" && o["metadata"]["name"] == "default");
    match configured.map(|o| &o["spec"]["failsafeInboundHostPorts"]) {
        Some(Value::Array(ports)) => ports
            .iter()
            .map(|p| {
                let port = p["port"]
                    .as_u64()
                    .and_then(|n| u16::try_from(n).ok())
                    .ok_or_else(|| CalicoError::Failsafe {
                        what: "FelixConfiguration default spec.failsafeInboundHostPorts",
                        entry: p.to_string(),
                        reason: "no port from 0 to 65535",
                    })?;
                Ok(FailsafePort {
                    // Felix's default when a protocol is not given (felixconfig.go:393).
                    protocol: p["protocol"].as_str().unwrap_or("tcp").to_lowercase(),
                    port,
                    net: p["net"]
                        .as_str()
                        .filter(|n| !n.is_empty())
                        .map(str::to_owned),
                })
            })
            .collect(),
        _ => facts
            .failsafe_inbound_host_ports
            .default
            .iter()
            .map(|entry| {
                let (protocol, port) =
                    entry.split_once(':').ok_or_else(|| CalicoError::Failsafe {
                        what: "calico-felix.json",
                        entry: entry.clone(),
                        reason: "not proto:port",
                    })?;
                Ok(FailsafePort {
                    protocol: protocol.to_owned(),
                    port: port.parse().map_err(|_| CalicoError::Failsafe {
                        what: "calico-felix.json",
                        entry: entry.clone(),
                        reason: "no port from 0 to 65535",
                    })?,
                    net: None,
                })
            })
            .collect(),
    }
}

impl CalicoFacts {
    /// Parses the embedded `sim/data/calico-felix.json`.
    pub fn load() -> Result<CalicoFacts, serde_json::Error> {
        serde_json::from_str(CALICO_FELIX_JSON)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn facts() -> CalicoFacts {
        CalicoFacts::load().expect("calico-felix.json")
    }

    #[test]
    fn a_policys_tier_comes_from_its_name_as_libcalico_go_reads_it() {
        assert_eq!(tier_from_policy_name("allow-cluster"), "default");
        assert_eq!(tier_from_policy_name("default.allow-cluster"), "default");
        assert_eq!(tier_from_policy_name("security.allow-cluster"), "security");
        assert_eq!(tier_from_policy_name("knp.default.x"), "default");
        assert_eq!(
            backend_policy_name("allow-cluster", None).as_deref(),
            Ok("default.allow-cluster")
        );
        assert_eq!(
            backend_policy_name("default.allow-cluster", Some("default")).as_deref(),
            Ok("default.allow-cluster")
        );
        assert!(backend_policy_name("default.allow-cluster", Some("security")).is_err());
    }

    #[test]
    fn a_host_endpoint_gets_the_policies_of_existing_tiers_that_select_it() {
        let endpoint = json!({"apiVersion": "crd.projectcalico.org/v1", "kind": "HostEndpoint",
            "metadata": {"name": "c0-bond0", "labels": {"host-endpoint": "ingress"}},
            "spec": {"node": "c0", "interfaceName": "bond0"}});
        let policy = |name: &str, selector: &str| {
            json!({"apiVersion": "crd.projectcalico.org/v1", "kind": "GlobalNetworkPolicy",
                "metadata": {"name": name}, "spec": {"selector": selector}})
        };
        let objects = vec![
            endpoint,
            policy("default.allow-cluster", "host-endpoint == 'ingress'"),
            policy(
                "allow-management",
                "host-endpoint == 'ingress' && !has(other)",
            ),
            policy("default.elsewhere", "host-endpoint != 'ingress'"),
            policy("security.allow", "all()"),
        ];
        let endpoints = host_endpoints(&objects, &facts());
        assert_eq!(endpoints.len(), 1);
        assert_eq!(endpoints[0].node, "c0");
        assert_eq!(
            endpoints[0].policies,
            ["default.allow-cluster", "allow-management"]
        );
        assert_eq!(
            endpoints[0].problems,
            [
                "GlobalNetworkPolicy security.allow is in tier security (from its name), which does not exist"
            ]
        );
    }

    #[test]
    fn failsafe_ports_are_felixs_default_unless_configured() {
        let default = failsafe_inbound(&[], &facts()).expect("default");
        assert!(default.contains(&FailsafePort {
            protocol: "tcp".into(),
            port: 22,
            net: None
        }));
        let configured = vec![json!({"apiVersion": "crd.projectcalico.org/v1",
            "kind": "FelixConfiguration", "metadata": {"name": "default"},
            "spec": {"failsafeInboundHostPorts": [{"protocol": "TCP", "port": 22, "net": "10.0.0.0/8"}]}})];
        assert_eq!(
            failsafe_inbound(&configured, &facts()).expect("configured"),
            [FailsafePort {
                protocol: "tcp".into(),
                port: 22,
                net: Some("10.0.0.0/8".into())
            }]
        );
    }
}
