//! Single values of the spec (names, DNS, URLs, keys, paths, CIDRs) and the overlap check of
//! the cluster's CIDRs, each error placed at its node.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;

use crate::document::{Errors, Fields, Node};
use crate::names::{DnsZone, MachinePlan, SshPublicKey};
use crate::spec::Endpoints;

/// Hostnames are DNS labels.
pub(super) const MAX_LABEL: usize = 63;

pub(super) fn endpoints(n: &Node<'_, '_>, redfish: bool, errors: &mut Errors) -> Option<Endpoints> {
    let mut f = n.fields(errors)?;
    if redfish {
        f.refuse(
            errors,
            "packet_api_url",
            "provider is redfish: no Packet API is called",
        );
    }
    let mut url = |name: &'static str, f: &mut Fields<'_, '_>| match f.optional(name) {
        Some(u) => u
            .string(errors)
            .and_then(|text| http_url(&u, &text, errors))
            .map(Some),
        None => Some(None),
    };
    let packet_api_url = if redfish {
        None
    } else {
        url("packet_api_url", &mut f)
    };
    let route53_endpoint_url = url("route53_endpoint_url", &mut f);
    f.finish(errors);
    Some(Endpoints {
        packet_api_url: if redfish { None } else { packet_api_url? },
        route53_endpoint_url: route53_endpoint_url?,
    })
}

pub(super) fn http_url(n: &Node<'_, '_>, text: &str, errors: &mut Errors) -> Option<String> {
    match url::Url::parse(text) {
        Ok(u) if (u.scheme() == "http" || u.scheme() == "https") && u.host().is_some() => {
            Some(text.to_owned())
        }
        Ok(u) => {
            errors.at(
                n,
                format!(
                    "{text:?} must be an http or https URL (got scheme {:?})",
                    u.scheme()
                ),
            );
            None
        }
        Err(e) => {
            errors.at(n, format!("{text:?} is not a URL: {e}"));
            None
        }
    }
}

pub(super) fn optional_bool(
    f: &mut Fields<'_, '_>,
    name: &'static str,
    default: bool,
    errors: &mut Errors,
) -> Option<bool> {
    match f.optional(name) {
        Some(n) => n.boolean(errors),
        None => Some(default),
    }
}

pub(super) fn one_of<T>(
    n: &Node<'_, '_>,
    errors: &mut Errors,
    names: &[&str],
    parse: fn(&str) -> Option<T>,
) -> Option<T> {
    let text = n.string(errors)?;
    let value = parse(&text);
    if value.is_none() {
        let hint = crate::document::closest(&text.to_ascii_lowercase(), names)
            .map(|near| format!("; did you mean {near:?}?"))
            .unwrap_or_default();
        errors.at(
            n,
            format!("must be one of {} (got {text:?}){hint}", names.join(", ")),
        );
    }
    value
}

/// A DNS label as Kubernetes and Packet hostnames need it: lowercase letters, digits, `-`.
pub(super) fn dns_label(text: &str) -> Result<(), String> {
    if text.is_empty() || text.len() > MAX_LABEL {
        return Err(format!("{text:?} must be 1 to {MAX_LABEL} characters long"));
    }
    if !text
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(format!(
            "{text:?} is not a DNS label: use lowercase letters, digits and '-'"
        ));
    }
    if text.starts_with('-') || text.ends_with('-') {
        return Err(format!(
            "{text:?} is not a DNS label: it must start and end with a letter or digit"
        ));
    }
    Ok(())
}

pub(super) fn dns_name(text: &str, min_labels: usize) -> Result<(), String> {
    if text.len() > 253 {
        return Err(format!("{text:?} is longer than 253 characters"));
    }
    let labels: Vec<&str> = text.split('.').collect();
    if labels.len() < min_labels {
        return Err(format!(
            "{text:?} is not a fully qualified domain name (like packet.example.com)"
        ));
    }
    labels
        .iter()
        .try_for_each(|l| dns_label(l).map_err(|m| format!("in {text:?}: {m}")))
}

pub(super) fn dns_zone(n: &Node<'_, '_>, errors: &mut Errors) -> Option<DnsZone> {
    let text = n.string(errors)?;
    // Route53 prints zones with the root's trailing dot; records are built by appending the zone.
    let zone = text.strip_suffix('.').unwrap_or(&text).to_ascii_lowercase();
    dns_name(&zone, 2).map_err(|m| errors.at(n, m)).ok()?;
    Some(DnsZone(zone))
}

pub(super) fn domain_suffix(n: &Node<'_, '_>, errors: &mut Errors) -> Option<String> {
    let text = n.string(errors)?;
    dns_name(&text, 1).map_err(|m| errors.at(n, m)).ok()?;
    Some(text)
}

pub(super) fn plan(n: &Node<'_, '_>, errors: &mut Errors) -> Option<MachinePlan> {
    let text = n.string(errors)?;
    let ok = !text.is_empty()
        && text.len() <= 64
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c));
    if !ok {
        errors.at(
            n,
            format!("{text:?} is not a Packet plan (like t1.small.x86 or c2.large.arm)"),
        );
        return None;
    }
    Some(MachinePlan(text))
}

pub(super) fn ssh_keys(n: &Node<'_, '_>, errors: &mut Errors) -> Option<Vec<SshPublicKey>> {
    let items = n.list(errors)?;
    if items.is_empty() {
        errors.at(n, "must list at least one SSH public key: loko logs into the nodes as user core with ssh-agent");
        return None;
    }
    let keys: Vec<Option<SshPublicKey>> = items
        .iter()
        .map(|item| {
            let text = item.string(errors)?;
            // Never echo the text: a pasted private key must not end up in logs.
            if text.contains("PRIVATE KEY") {
                errors.at(item, "this is a private key; put the public key here (the .pub file, or `ssh-add -L`)");
                return None;
            }
            match SshPublicKey::parse(&text) {
                Ok(key) => Some(key),
                Err(e) => {
                    errors.at(item, format!("is {e}; expected a line like `ssh-ed25519 AAAA... user@host`"));
                    None
                }
            }
        })
        .collect();
    keys.into_iter().collect()
}

/// The `recipients` of the cluster's secrets, each checked as [`vault::Recipients::parse`] does.
pub(super) fn recipients(n: &Node<'_, '_>, errors: &mut Errors) -> Option<Vec<String>> {
    let items = n.list(errors)?;
    if items.is_empty() {
        errors.at(n, "must list at least one age recipient (age1...) or SSH public key; leave it out to encrypt to ssh_keys");
        return None;
    }
    let entries: Vec<Option<String>> = items
        .iter()
        .map(|item| {
            let text = item.string(errors)?.trim().to_owned();
            match vault::Recipients::parse(std::slice::from_ref(&text)) {
                Ok(_) => Some(text),
                // The field path and line:column locate the entry, so the reason is enough (and
                // never echoes a private key pasted by mistake).
                Err(vault::VaultError::InvalidRecipient { reason, .. }) => {
                    errors.at(item, reason);
                    None
                }
                Err(e) => {
                    errors.at(item, e.to_string());
                    None
                }
            }
        })
        .collect();
    entries.into_iter().collect()
}

pub(super) fn asset_dir(n: &Node<'_, '_>, base_dir: &Path, errors: &mut Errors) -> Option<PathBuf> {
    let text = n.string(errors)?;
    if text.trim().is_empty() {
        errors.at(n, "must be a directory path");
        return None;
    }
    if text.starts_with('~') {
        errors.at(n, format!("{text:?}: `~` is not expanded; write an absolute path or one relative to the spec file"));
        return None;
    }
    let path = Path::new(&text);
    if path.parent().is_none() {
        errors.at(
            n,
            "must not be the root directory: loko writes secrets and its journal there",
        );
        return None;
    }
    // `./assets` and `assets` are the same directory; keeping the `.` would only clutter messages.
    let path: PathBuf = path
        .components()
        .filter(|c| *c != std::path::Component::CurDir)
        .collect();
    Some(if path.is_absolute() {
        path
    } else {
        base_dir.join(path)
    })
}

pub(super) fn cidr(n: &Node<'_, '_>, errors: &mut Errors) -> Option<Ipv4Net> {
    let text = n.string(errors)?;
    match text.parse::<Ipv4Net>() {
        Ok(net) => Some(net),
        Err(_) if text.parse::<Ipv4Addr>().is_ok() => {
            errors.at(
                n,
                format!("{text:?} is an address, not a CIDR; write {text}/32 for a single address"),
            );
            None
        }
        Err(_) => {
            errors.at(
                n,
                format!("{text:?} is not an IPv4 CIDR (like 10.2.0.0/16)"),
            );
            None
        }
    }
}

/// pod_cidr and service_cidr: network addresses, large enough for what the cluster puts in them.
pub(super) fn cluster_cidr(
    n: &Node<'_, '_>,
    errors: &mut Errors,
    max_prefix: u8,
) -> Option<Ipv4Net> {
    let net = cidr(n, errors)?;
    if net.addr() != net.network() {
        errors.at(
            n,
            format!("{net} has host bits set; did you mean {}?", net.trunc()),
        );
        return None;
    }
    if net.prefix_len() > max_prefix {
        errors.at(
            n,
            format!("{net} is too small: the prefix must be /{max_prefix} or shorter"),
        );
        return None;
    }
    Some(net)
}

type Located<'a, 'i> = Option<(Ipv4Net, Node<'a, 'i>)>;
type Defaulted<'a, 'i> = Option<(Ipv4Net, Option<Node<'a, 'i>>)>;

/// pod_cidr, service_cidr and node_private_cidr must be disjoint: a pod or service address inside
/// the nodes' network would be routed to the wrong place. The error is put on the later field, or
/// on the document when that field is a default.
pub(super) fn check_overlaps<'a, 'i>(
    root: &Node<'a, 'i>,
    node_private: &Located<'a, 'i>,
    pod: &Defaulted<'a, 'i>,
    service: &Defaulted<'a, 'i>,
    errors: &mut Errors,
) {
    let at = |name: &str, node: &Option<Node<'a, 'i>>| -> Node<'a, 'i> {
        node.clone().unwrap_or_else(|| Node {
            yaml: root.yaml,
            path: name.to_owned(),
        })
    };
    let mut ranges = Vec::new();
    if let Some((net, n)) = node_private {
        ranges.push(("node_private_cidr", *net, Some(n.clone())));
    }
    if let Some((net, n)) = pod {
        ranges.push(("pod_cidr", *net, n.clone()));
    }
    if let Some((net, n)) = service {
        ranges.push(("service_cidr", *net, n.clone()));
    }
    let shown = |name: &str, net: Ipv4Net, node: &Option<Node<'a, 'i>>| {
        format!(
            "{name} {net}{}",
            if node.is_none() { " (the default)" } else { "" }
        )
    };
    for (i, (name_a, a, node_a)) in ranges.iter().enumerate() {
        for (name_b, b, node_b) in &ranges[i + 1..] {
            if a.contains(&b.network()) || b.contains(&a.network()) {
                // The error goes on a field the user wrote, the later one if both are written.
                let (name, node) = if node_b.is_some() {
                    (name_b, node_b)
                } else {
                    (name_a, node_a)
                };
                errors.at(
                    &at(name, node),
                    format!(
                        "{} overlaps {}; the ranges must be disjoint",
                        shown(name_b, *b, node_b),
                        shown(name_a, *a, node_a)
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        assert!(dns_label("supernova").is_ok());
        assert!(dns_label("a-1").is_ok());
        assert!(dns_label("Supernova").is_err());
        assert!(dns_label("-a").is_err());
        assert!(dns_label(&"a".repeat(64)).is_err());
    }
}
