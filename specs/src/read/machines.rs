//! `machines` of a `provider: redfish` spec: each machine read and checked, then the list as a
//! whole (names, MACs, addresses and BMC systems unique; roles naming the controllers or a pool).
//!
//! Every error names the machine as well as the field, since a rack's list is long and a user
//! fixes it machine by machine.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::values::dns_label;
use crate::document::{Errors, Node, closest};
use crate::names::{MachineName, PoolName};
use crate::rack::{BmcSystem, MacAddress, Machine, MachineRole};

/// The role that makes a machine a controller; any other role names a worker pool.
const CONTROLLER: &str = "controller";
/// Where a Redfish service lists its systems (DSP0266, the ComputerSystemCollection).
const SYSTEMS: &str = "/redfish/v1/Systems/";

/// The machines as read, with what the controller count and the pools are checked against.
pub(super) struct Listed<'a, 'i> {
    pub(super) machines: Vec<Machine>,
    /// The machines' names per role as written (`controller` or a pool's name), in list order.
    pub(super) by_role: BTreeMap<String, Vec<String>>,
    /// Each machine's role node, for an unknown pool.
    roles: Vec<(String, String, Node<'a, 'i>)>,
    /// The `machines` list itself, for errors about the list as a whole.
    pub(super) node: Node<'a, 'i>,
}

impl Listed<'_, '_> {
    /// The machines listed with `role`.
    pub(super) fn count(&self, role: &str) -> u32 {
        self.by_role
            .get(role)
            .map_or(0, |names| u32::try_from(names.len()).unwrap_or(u32::MAX))
    }

    /// `a, b and c`, or `none`.
    pub(super) fn names(&self, role: &str) -> String {
        match self.by_role.get(role).map(Vec::as_slice) {
            None | Some([]) => "none".into(),
            Some(names) => names.join(", "),
        }
    }

    /// Each machine's role must be `controller` or one of `pools`.
    pub(super) fn check_roles(&self, pools: &[&PoolName], errors: &mut Errors) {
        let names: Vec<&str> = pools.iter().map(|p| p.as_str()).collect();
        for (machine, role, at) in &self.roles {
            if role == CONTROLLER || names.contains(&role.as_str()) {
                continue;
            }
            let mut known = names.clone();
            known.push(CONTROLLER);
            let hint = closest(role, &known)
                .map(|near| format!("; did you mean {near:?}?"))
                .unwrap_or_default();
            errors.at(
                at,
                format!(
                    "machine {machine}: role {role:?} is neither `controller` nor a worker pool's name (pools: {}){hint}",
                    if names.is_empty() { "none".into() } else { names.join(", ") }
                ),
            );
        }
    }
}

/// Reads `machines`; `private_cidr` is the spec's `node_private_cidr`, when it was readable.
pub(super) fn machines<'a, 'i>(
    n: &Node<'a, 'i>,
    private_cidr: Option<Ipv4Net>,
    errors: &mut Errors,
) -> Option<Listed<'a, 'i>> {
    let items = n.list(errors)?;
    if items.is_empty() {
        errors.at(
            n,
            "must list the rack's machines: at least one controller and the workers of each pool",
        );
        return None;
    }
    let mut listed = Listed {
        machines: Vec::new(),
        by_role: BTreeMap::new(),
        roles: Vec::new(),
        node: n.clone(),
    };
    let mut seen = Seen::default();
    let mut all_read = true;
    for item in &items {
        match machine(item, private_cidr, &mut seen, errors) {
            Some((machine, role_node)) => {
                let role = machine.role.as_str().to_owned();
                listed
                    .by_role
                    .entry(role.clone())
                    .or_default()
                    .push(machine.name.to_string());
                listed
                    .roles
                    .push((machine.name.to_string(), role, role_node));
                listed.machines.push(machine);
            }
            None => all_read = false,
        }
    }
    all_read.then_some(listed)
}

/// What earlier machines took, to name the first holder of a duplicate.
#[derive(Default)]
struct Seen {
    names: HashMap<String, String>,
    macs: HashMap<MacAddress, String>,
    addresses: HashMap<Ipv4Addr, (String, &'static str)>,
    systems: HashMap<(String, String), String>,
}

fn machine<'a, 'i>(
    n: &Node<'a, 'i>,
    private_cidr: Option<Ipv4Net>,
    seen: &mut Seen,
    errors: &mut Errors,
) -> Option<(Machine, Node<'a, 'i>)> {
    let mut f = n.fields(errors)?;
    let name = f.required(errors, "name").and_then(|at| {
        let text = at.string(errors)?;
        dns_label(&text).map_err(|m| errors.at(&at, m)).ok()?;
        if let Some(first) = seen.names.get(&text) {
            errors.at(
                &at,
                format!("machine name {text:?} is already used by {first}; names must be unique"),
            );
            return None;
        }
        seen.names.insert(text.clone(), n.path.clone());
        Some(text)
    });
    // Errors below name the machine; one without a readable name is named by its place.
    let who = name.clone().unwrap_or_else(|| n.path.clone());
    let role = f.required(errors, "role").and_then(|at| {
        let text = at.string(errors)?;
        if text == CONTROLLER {
            return Some((MachineRole::Controller, at));
        }
        dns_label(&text)
            .map_err(|m| errors.at(&at, format!("machine {who}: role {m}")))
            .ok()?;
        Some((MachineRole::Worker(PoolName(text)), at))
    });
    let mac = f.required(errors, "mac").and_then(|at| {
        let mac = MacAddress::parse(&at.string(errors)?)
            .map_err(|m| errors.at(&at, format!("machine {who}: {m}")))
            .ok()?;
        if let Some(first) = seen.macs.insert(mac, who.clone()) {
            errors.at(&at, format!("machine {who}: MAC {mac} is already machine {first}'s; each machine boots from its own NIC"));
            return None;
        }
        Some(mac)
    });
    let bmc = f
        .required(errors, "bmc")
        .and_then(|at| bmc(&at, &who, seen, errors));
    let install_disk = f.required(errors, "install_disk").and_then(|at| {
        let text = at.string(errors)?;
        let ok = text.len() > "/dev/".len()
            && text.starts_with("/dev/")
            && !text.contains("/../")
            && !text.chars().any(char::is_whitespace);
        if !ok {
            errors.at(&at, format!("machine {who}: {text:?} is not a disk's device path (like /dev/sda or /dev/disk/by-id/...)"));
            return None;
        }
        Some(text)
    });
    let mut address = |field: &'static str, errors: &mut Errors| {
        let at = f.required(errors, field)?;
        let text = at.string(errors)?;
        let Ok(ip) = text.parse::<Ipv4Addr>() else {
            errors.at(
                &at,
                format!("machine {who}: {text:?} is not an IPv4 address"),
            );
            return None;
        };
        if ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() || ip.is_broadcast() {
            errors.at(
                &at,
                format!("machine {who}: {ip} cannot be a node's address"),
            );
            return None;
        }
        // One machine may use one address for both; two machines never share one.
        match seen.addresses.get(&ip) {
            Some((first, first_field)) if *first != who => {
                errors.at(
                    &at,
                    format!("machine {who}: {ip} is already machine {first}'s {first_field}"),
                );
                return None;
            }
            _ => {
                seen.addresses.insert(ip, (who.clone(), field));
            }
        }
        Some((ip, at))
    };
    let public_ipv4 = address("public_ipv4", errors);
    let private_ipv4 = address("private_ipv4", errors);
    if let (Some((ip, at)), Some(net)) = (&private_ipv4, private_cidr)
        && !net.contains(ip)
    {
        errors.at(
            at,
            format!("machine {who}: private_ipv4 {ip} is outside node_private_cidr {net}, which the nodes' firewall and the pod network take for the nodes' network"),
        );
    }
    f.finish(errors);
    let (role, role_node) = role?;
    Some((
        Machine {
            name: MachineName(name?),
            role,
            mac: mac?,
            bmc: bmc?,
            install_disk: install_disk?,
            public_ipv4: public_ipv4?.0,
            private_ipv4: private_ipv4
                .filter(|(ip, _)| private_cidr.is_none_or(|net| net.contains(ip)))?
                .0,
        },
        role_node,
    ))
}

/// `bmc: {url, system}`: the service's base URL (no credentials, no path) and the system.
fn bmc(n: &Node<'_, '_>, who: &str, seen: &mut Seen, errors: &mut Errors) -> Option<BmcSystem> {
    let mut f = n.fields(errors)?;
    let url = f.required(errors, "url").and_then(|at| {
        let text = at.string(errors)?;
        let parsed = match url::Url::parse(&text) {
            Ok(u) => u,
            Err(e) => {
                errors.at(&at, format!("machine {who}: not a URL ({e})"));
                return None;
            }
        };
        // Never echo a URL holding a password: errors end up in logs.
        if !parsed.username().is_empty() || parsed.password().is_some() {
            errors.at(&at, format!("machine {who}: the BMC's URL holds credentials; remove them, loko reads LOKO_BMC_USERNAME and LOKO_BMC_PASSWORD (or LOKO_BMC_CREDENTIALS_FILE)"));
            return None;
        }
        let base_only = matches!(parsed.path(), "" | "/")
            && parsed.query().is_none()
            && parsed.fragment().is_none();
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() || !base_only {
            errors.at(&at, format!("machine {who}: {text:?} is not a BMC's base URL (like https://10.0.9.11); the system goes in bmc.system"));
            return None;
        }
        Some(parsed.as_str().trim_end_matches('/').to_owned())
    });
    let system = f.required(errors, "system").and_then(|at| {
        let text = at.string(errors)?;
        let id = text
            .strip_prefix(SYSTEMS)
            .unwrap_or(&text)
            .trim_end_matches('/');
        let ok = !id.is_empty()
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.~".contains(c));
        if !ok {
            errors.at(&at, format!("machine {who}: {text:?} is not a Redfish system (an id like 1, or {SYSTEMS}<id>)"));
            return None;
        }
        Some(format!("{SYSTEMS}{id}"))
    });
    f.finish(errors);
    let (url, system) = (url?, system?);
    if let Some(first) = seen
        .systems
        .insert((url.clone(), system.clone()), who.to_owned())
    {
        errors.at(n, format!("machine {who}: system {system} of {url} is already machine {first}'s; each machine has its own"));
        return None;
    }
    Some(BmcSystem { url, system })
}
