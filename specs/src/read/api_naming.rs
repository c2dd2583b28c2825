//! How clients name the cluster's API: Route53's `<cluster>.<dns_zone>` (`dns_zone` and
//! `dns_zone_id`), or the address the spec names itself (`api_address`), served by the user's
//! own DNS or VIP. Exactly one of the two.

use std::net::Ipv4Addr;

use super::values::dns_name;
use crate::document::{Errors, Fields, Node};
use crate::names::{ApiAddress, DnsZone, DnsZoneId};

/// The three fields as read: each `None` when it could not be read (its error is recorded),
/// `Some(None)` when the spec rightly leaves it out.
pub(super) struct ApiNaming {
    pub(super) api_address: Option<Option<ApiAddress>>,
    pub(super) dns_zone: Option<Option<DnsZone>>,
    pub(super) dns_zone_id: Option<Option<DnsZoneId>>,
}

/// Reads `api_address`, or `dns_zone` and `dns_zone_id`; both or neither is an error naming
/// them. `api_address` takes `provider: redfish`: without Route53, etcd's members are named by
/// their private addresses, which only listed machines have before their certificates and
/// Ignition are rendered (a Packet device gets its address once it exists).
pub(super) fn api_naming(f: &mut Fields<'_, '_>, redfish: bool, errors: &mut Errors) -> ApiNaming {
    let Some(n) = f.optional("api_address") else {
        if f.key("dns_zone").is_none() && f.key("dns_zone_id").is_none() {
            // Known to the spell checker, and reported once for the pair.
            f.optional("dns_zone");
            f.optional("dns_zone_id");
            f.missing(
                errors,
                "dns_zone",
                "missing `dns_zone` and `dns_zone_id` (the Route53 zone of the cluster's records) \
                 or `api_address` (the API's address, served by your own DNS or VIP; \
                 provider: redfish): name one of them",
            );
            return ApiNaming {
                api_address: Some(None),
                dns_zone: None,
                dns_zone_id: None,
            };
        }
        let dns_zone = f
            .required(errors, "dns_zone")
            .and_then(|n| super::values::dns_zone(&n, errors));
        let dns_zone_id = f
            .required(errors, "dns_zone_id")
            .and_then(|n| dns_zone_id(&n, errors));
        return ApiNaming {
            api_address: Some(None),
            dns_zone: dns_zone.map(Some),
            dns_zone_id: dns_zone_id.map(Some),
        };
    };
    for name in ["dns_zone", "dns_zone_id"] {
        f.refuse(
            errors,
            name,
            "the spec names `api_address`, and a cluster with it has no Route53 record; \
             keep either `api_address` or `dns_zone` with `dns_zone_id`",
        );
    }
    let api_address = if redfish {
        api_address(&n, errors).map(Some)
    } else {
        errors.at(
            &n,
            "api_address takes provider: redfish: on Packet, etcd's members are named by \
             Route53 records, since a device's private address is known only once it exists, \
             after the certificates and Ignition naming it; use dns_zone and dns_zone_id",
        );
        None
    };
    ApiNaming {
        api_address,
        dns_zone: Some(None),
        dns_zone_id: Some(None),
    }
}

/// A DNS name (two labels or more, lowercased, the trailing dot dropped) or an IPv4 address a
/// client can dial; no port (the apiserver's is 6443).
fn api_address(n: &Node<'_, '_>, errors: &mut Errors) -> Option<ApiAddress> {
    let text = n.string(errors)?;
    let text = text.strip_suffix('.').unwrap_or(&text).to_ascii_lowercase();
    if let Ok(ip) = text.parse::<Ipv4Addr>() {
        if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || ip.is_loopback() {
            errors.at(
                n,
                format!("{ip} is no address the nodes and loko can reach the API at"),
            );
            return None;
        }
        return Some(ApiAddress(text));
    }
    if text.contains(':') || text.contains('/') {
        errors.at(
            n,
            format!(
                "{text:?} must be a DNS name or an IPv4 address, without a scheme or port \
                 (the API is served on port 6443)"
            ),
        );
        return None;
    }
    if text
        .split('.')
        .all(|l| l.chars().all(|c| c.is_ascii_digit()))
    {
        errors.at(n, format!("{text:?} is not an IPv4 address"));
        return None;
    }
    dns_name(&text, 2).map_err(|m| errors.at(n, m)).ok()?;
    Some(ApiAddress(text))
}

/// A Route53 hosted zone id; a `/hostedzone/` prefix is dropped.
fn dns_zone_id(n: &Node<'_, '_>, errors: &mut Errors) -> Option<DnsZoneId> {
    let text = n.string(errors)?;
    let text = text
        .strip_prefix("/hostedzone/")
        .unwrap_or(&text)
        .to_owned();
    if text.is_empty()
        || text.len() > 32
        || !text
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    {
        errors.at(
            n,
            format!("{text:?} is not a Route53 hosted zone id (like Z3PAABBCFAKEC0)"),
        );
        return None;
    }
    Some(DnsZoneId(text))
}
