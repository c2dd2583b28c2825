//! From the located YAML tree to a [`Spec`]: every field read, checked and defaulted, every
//! mistake recorded with its place.
//!
//! Checks that involve several fields (CIDR overlaps, plan against arch, reservation keys against
//! counts) are made here too, while the nodes of both fields are at hand for the error location.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use ipnet::Ipv4Net;

use crate::document::{Errors, Fields, Node};
use crate::names::{ClusterName, Facility, MachinePlan, PoolName, ProjectId};
use crate::rack::Provider;
use crate::spec::{
    Endpoints, Networking, OsArch, OsChannel, OsSettings, Role, Spec, WorkerPool, defaults,
};
use labels::{labels, taints};

mod api_naming;
mod boot_server;
mod labels;
mod machines;
mod reservation_ids;
mod values;

use api_naming::api_naming;
use boot_server::boot_server;
use machines::{Listed, machines};
use reservation_ids::{is_full_uuid, reservations};
use values::{
    MAX_LABEL, asset_dir, check_overlaps, cidr, cluster_cidr, dns_label, domain_suffix, endpoints,
    http_url, one_of, optional_bool, plan, recipients, ssh_keys,
};

/// Largest controller count accepted: etcd runs on every controller, and beyond this a quorum is
/// slower, not safer.
const MAX_CONTROLLERS: u32 = 9;
/// Largest pool accepted: Kubernetes supports clusters of at most 5,000 nodes
/// (kubernetes/website, content/en/docs/setup/best-practices/cluster-large.md). The Terraform
/// modules had no limit; that a large count is no typo, `loko run` asks before creating it.
const MAX_POOL_COUNT: u32 = 5000;

pub(crate) fn read_spec(root: &Node<'_, '_>, base_dir: &Path, errors: &mut Errors) -> Option<Spec> {
    let mut f = root.fields(errors)?;

    let provider = match f.optional("provider") {
        Some(n) => one_of(&n, errors, Provider::NAMES, Provider::from_name),
        None => Some(Provider::Packet),
    };
    // An unreadable provider is reported; the rest is read as Packet's, as a spec without one.
    let redfish = provider == Some(Provider::Redfish);
    let cluster_name = f.required(errors, "cluster_name").and_then(|n| {
        let text = n.string(errors)?;
        dns_label(&text).map_err(|m| errors.at(&n, m)).ok()?;
        Some(ClusterName(text))
    });
    let naming = api_naming(&mut f, redfish, errors);
    let ssh_keys = f
        .required(errors, "ssh_keys")
        .and_then(|n| ssh_keys(&n, errors));
    let recipients = match f.optional("recipients") {
        Some(n) => recipients(&n, errors).map(Some),
        None => Some(None),
    };
    let asset_dir = f
        .required(errors, "asset_dir")
        .and_then(|n| asset_dir(&n, base_dir, errors));
    let project_id = packet_only(&mut f, redfish, "project_id", errors).and_then(|n| {
        let text = n.string(errors)?;
        if !is_full_uuid(&text) {
            errors.at(&n, format!("{text:?} is not a Packet project id (a UUID like 93fa1e81-0f3c-4b2e-9d8a-2c6e5f0a1b2c, from Project Settings)"));
            return None;
        }
        Some(ProjectId(text.to_ascii_lowercase()))
    });
    let facility = packet_only(&mut f, redfish, "facility", errors).and_then(|n| {
        let text = n.string(errors)?;
        let ok = (2..=16).contains(&text.len())
            && text
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if !ok {
            errors.at(
                &n,
                format!("{text:?} is not a Packet facility code (like ams1)"),
            );
            return None;
        }
        Some(Facility(text))
    });
    let management_cidrs = f.required(errors, "management_cidrs").and_then(|n| {
        let items = n.list(errors)?;
        if items.is_empty() {
            errors.at(&n, "must list at least one CIDR allowed to SSH into the nodes (0.0.0.0/0 for anywhere)");
            return None;
        }
        let cidrs: Vec<Option<Ipv4Net>> = items.iter().map(|item| cidr(item, errors)).collect();
        cidrs.into_iter().collect()
    });
    let node_private_cidr = f.required(errors, "node_private_cidr").and_then(|n| {
        let net = cidr(&n, errors)?;
        if !net.network().is_private() {
            errors.at(&n, format!("{net} is not a private range; use the private IPv4 block Packet assigned to the project in this facility (IPs & Networks)"));
            return None;
        }
        Some((net, n))
    });

    let listed = if redfish {
        f.required(errors, "machines")
            .and_then(|n| machines(&n, node_private_cidr.as_ref().map(|(net, _)| *net), errors))
    } else {
        f.refuse(
            errors,
            "machines",
            "machines are listed with provider: redfish only; Packet creates a device per node",
        );
        None
    };
    let boot_server = if redfish {
        f.required(errors, "boot_server")
            .and_then(|n| boot_server(&n, errors))
            .map(Some)
    } else {
        f.refuse(
            errors,
            "boot_server",
            "loko serves the network boot of listed machines only (provider: redfish)",
        );
        Some(None)
    };
    let controller_count = match (f.optional("controller_count"), &listed) {
        (_, Some(listed)) => listed_controllers(f.optional("controller_count"), listed, errors),
        // The machines could not be read: their errors say why, and no count can be checked.
        (_, None) if redfish => None,
        (Some(n), None) => n.count(errors, 1, MAX_CONTROLLERS),
        (None, None) => Some(defaults::controller_count()),
    };
    if let (Some(name), Some(count), Some(at)) =
        (&cluster_name, controller_count, f.key("cluster_name"))
    {
        let longest = crate::desired::controller_hostname(name, count.saturating_sub(1));
        if longest.len() > MAX_LABEL {
            errors.at(&at, format!("hostname {longest:?} would be longer than {MAX_LABEL} characters; shorten cluster_name"));
        }
    }
    let controller_type_node = packet_only(&mut f, redfish, "controller_type", errors);
    let controller_type = match &controller_type_node {
        Some(n) => plan(n, errors),
        None => Some(defaults::plan()),
    };
    let os = os_settings(
        &mut f,
        root,
        controller_type.as_ref(),
        controller_type_node.as_ref(),
        "controller_type",
        redfish,
        errors,
    );

    let networking = match f.optional("networking") {
        Some(n) => one_of(&n, errors, Networking::NAMES, Networking::from_name),
        None => Some(defaults::networking()),
    };
    let network_mtu = match f.optional("network_mtu") {
        Some(n) => {
            let mtu = n.count(errors, 576, 9000);
            // Only a value that would be silently ignored is refused; the default is harmless, and
            // the recorded spec (which writes every field) must parse again.
            if networking == Some(Networking::Flannel)
                && mtu.is_some_and(|m| m != defaults::network_mtu())
            {
                errors.at(
                    &n,
                    "network_mtu applies to calico only; remove it or use networking: calico",
                );
            }
            mtu
        }
        None => Some(defaults::network_mtu()),
    };
    let pod_cidr = match f.optional("pod_cidr") {
        Some(n) => cluster_cidr(&n, errors, 24).map(|c| (c, Some(n))),
        None => Some((defaults::pod_cidr(), None)),
    };
    let service_cidr = match f.optional("service_cidr") {
        // The cluster DNS service is the 10th host, so the range needs at least 16 addresses.
        Some(n) => cluster_cidr(&n, errors, 28).map(|c| (c, Some(n))),
        None => Some((defaults::service_cidr(), None)),
    };
    check_overlaps(root, &node_private_cidr, &pod_cidr, &service_cidr, errors);

    let cluster_domain_suffix = match f.optional("cluster_domain_suffix") {
        Some(n) => domain_suffix(&n, errors),
        None => Some(defaults::cluster_domain_suffix()),
    };
    let enable_reporting = optional_bool(&mut f, "enable_reporting", false, errors);
    let enable_aggregation = optional_bool(&mut f, "enable_aggregation", false, errors);
    let reservations = if redfish {
        refuse_reservations(&mut f, errors);
        Some(Default::default())
    } else {
        reservations(&mut f, Role::Controller, controller_count, errors)
    };
    let certs_validity_period_hours = match f.optional("certs_validity_period_hours") {
        Some(n) => n.count(errors, 1, u32::MAX),
        None => Some(defaults::certs_validity_period_hours()),
    };
    let inherited = Inherited {
        listed: redfish.then_some(listed.as_ref()),
        cluster_name: cluster_name.as_ref(),
        service_cidr: service_cidr.as_ref().map(|(c, _)| *c),
        cluster_domain_suffix: cluster_domain_suffix.as_deref(),
    };
    let worker_pools = f
        .required(errors, "worker_pools")
        .and_then(|n| worker_pools(&n, &inherited, errors));
    if let (Some(listed), Some(pools)) = (&listed, &worker_pools) {
        listed.check_roles(
            &pools.iter().map(|p| &p.pool_name).collect::<Vec<_>>(),
            errors,
        );
    }
    let endpoints = match f.optional("endpoints") {
        Some(n) => endpoints(&n, redfish, errors),
        None => Some(Endpoints::default()),
    };
    f.finish(errors);

    if !errors.0.is_empty() {
        return None;
    }
    Some(Spec {
        cluster_name: cluster_name?,
        dns_zone: naming.dns_zone?,
        dns_zone_id: naming.dns_zone_id?,
        api_address: naming.api_address?,
        ssh_keys: ssh_keys?,
        recipients: recipients?,
        asset_dir: asset_dir?,
        provider: provider?,
        project_id: if redfish { None } else { Some(project_id?) },
        facility: if redfish { None } else { Some(facility?) },
        machines: listed.map(|l| l.machines).unwrap_or_default(),
        boot_server: boot_server?,
        management_cidrs: management_cidrs?,
        node_private_cidr: node_private_cidr?.0,
        controller_count: controller_count?,
        controller_type: controller_type?,
        os: os?,
        networking: networking?,
        network_mtu: network_mtu?,
        pod_cidr: pod_cidr?.0,
        service_cidr: service_cidr?.0,
        cluster_domain_suffix: cluster_domain_suffix?,
        enable_reporting: enable_reporting?,
        enable_aggregation: enable_aggregation?,
        reservations: reservations?,
        certs_validity_period_hours: certs_validity_period_hours?,
        worker_pools: worker_pools?,
        endpoints: endpoints?,
    })
}

/// A field of Packet's: required with Packet, refused with `provider: redfish`.
fn packet_only<'a, 'i>(
    f: &mut Fields<'a, 'i>,
    redfish: bool,
    name: &'static str,
    errors: &mut Errors,
) -> Option<Node<'a, 'i>> {
    if !redfish {
        return match name {
            "controller_type" => f.optional(name),
            _ => f.required(errors, name),
        };
    }
    f.refuse(
        errors,
        name,
        "it is Packet's, and provider is redfish (the machines are listed under machines)",
    );
    None
}

/// `reservation_ids` and `reservation_ids_default`, Packet's hardware reservations.
fn refuse_reservations(f: &mut Fields<'_, '_>, errors: &mut Errors) {
    for name in ["reservation_ids", "reservation_ids_default"] {
        f.refuse(
            errors,
            name,
            "hardware reservations are Packet's, and provider is redfish",
        );
    }
}

/// The controller count of a rack: the controllers listed, which `controller_count`, if
/// written, must equal.
fn listed_controllers(
    written: Option<Node<'_, '_>>,
    listed: &Listed<'_, '_>,
    errors: &mut Errors,
) -> Option<u32> {
    let count = listed.count("controller");
    if let Some(n) = written
        && let Some(given) = n.count(errors, 1, MAX_CONTROLLERS)
        && given != count
    {
        errors.at(&n, format!("controller_count is {given} but machines lists {count} controllers ({}); remove controller_count, the list decides", listed.names("controller")));
        return None;
    }
    if count == 0 {
        errors.at(
            &listed.node,
            "machines lists no controller: give at least one machine role: controller",
        );
        return None;
    }
    if count > MAX_CONTROLLERS {
        errors.at(&listed.node, format!("machines lists {count} controllers; at most {MAX_CONTROLLERS} are accepted (etcd runs on each)"));
        return None;
    }
    Some(count)
}

/// The worker count of a pool in a rack: its machines listed, which `count`, if written, must
/// equal. `None` when the machines or the pool's name could not be read (reported already).
fn listed_workers(
    written: Option<Node<'_, '_>>,
    listed: Option<&Listed<'_, '_>>,
    pool: Option<&PoolName>,
    errors: &mut Errors,
) -> Option<u32> {
    let (listed, pool) = (listed?, pool?);
    let count = listed.count(pool.as_str());
    if let Some(n) = written
        && let Some(given) = n.count(errors, 0, MAX_POOL_COUNT)
        && given != count
    {
        errors.at(&n, format!("count is {given} but machines lists {count} machines of pool {pool} ({}); remove count, the list decides", listed.names(pool.as_str())));
        return None;
    }
    Some(count)
}

/// Cluster values a pool may repeat (the worker module had them as variables) but not change.
struct Inherited<'a> {
    /// With `provider: redfish`, the machines (`None` inside when they could not be read).
    listed: Option<Option<&'a Listed<'a, 'a>>>,
    cluster_name: Option<&'a ClusterName>,
    service_cidr: Option<Ipv4Net>,
    cluster_domain_suffix: Option<&'a str>,
}

fn worker_pools(
    n: &Node<'_, '_>,
    inherited: &Inherited<'_>,
    errors: &mut Errors,
) -> Option<Vec<WorkerPool>> {
    let items = n.list(errors)?;
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut pools = Vec::new();
    let mut total: u64 = 0;
    let mut counts_known = true;
    for item in &items {
        let pool = worker_pool(item, inherited, &mut seen, errors);
        match &pool {
            Some(p) => total += u64::from(p.count),
            None => counts_known = false,
        }
        pools.push(pool);
    }
    if counts_known && total == 0 {
        errors.at(
            n,
            "the cluster needs at least one worker: add a pool, or give a pool a count > 0 (the total of worker_pools[*].count must be > 0)",
        );
    }
    pools.into_iter().collect()
}

fn worker_pool(
    n: &Node<'_, '_>,
    inherited: &Inherited<'_>,
    seen: &mut HashMap<String, String>,
    errors: &mut Errors,
) -> Option<WorkerPool> {
    let mut f = n.fields(errors)?;
    let pool_name = f.required(errors, "pool_name").and_then(|name| {
        let text = name.string(errors)?;
        dns_label(&text).map_err(|m| errors.at(&name, m)).ok()?;
        if let Some(first) = seen.get(&text) {
            errors.at(
                &name,
                format!("pool name {text:?} is already used by {first}; pool names must be unique"),
            );
            return None;
        }
        seen.insert(text.clone(), n.path.clone());
        Some((PoolName(text), name))
    });
    let count = match (f.optional("count"), inherited.listed) {
        (written, Some(listed)) => {
            listed_workers(written, listed, pool_name.as_ref().map(|(p, _)| p), errors)
        }
        (Some(c), None) => c.count(errors, 0, MAX_POOL_COUNT),
        (None, None) => Some(defaults::worker_count()),
    };
    if let (Some(_), Some((name, at))) = (inherited.listed, &pool_name)
        && name.as_str() == "controller"
    {
        errors.at(at, "a pool cannot be named controller with provider: redfish: machines' role controller means the controllers");
    }
    if let (Some(cluster), Some((pool, at)), Some(count)) =
        (inherited.cluster_name, &pool_name, count)
    {
        let longest = format!("{cluster}-{pool}-worker-{}", count.saturating_sub(1));
        if longest.len() > MAX_LABEL {
            errors.at(at, format!("hostname {longest:?} would be longer than {MAX_LABEL} characters; shorten pool_name or cluster_name"));
        }
    }
    let redfish = inherited.listed.is_some();
    let plan_node = if redfish {
        f.refuse(
            errors,
            "type",
            "a Packet plan, and provider is redfish: a listed machine is what it is",
        );
        None
    } else {
        f.optional("type")
    };
    let pool_plan = match &plan_node {
        Some(p) => plan(p, errors),
        None => Some(defaults::plan()),
    };
    let labels = f
        .optional("labels")
        .map_or(Some(BTreeMap::new()), |l| labels(&l, errors));
    let taints = f
        .optional("taints")
        .map_or(Some(Vec::new()), |t| taints(&t, errors));
    let os = os_settings(
        &mut f,
        n,
        pool_plan.as_ref(),
        plan_node.as_ref(),
        "type",
        redfish,
        errors,
    );
    if let Some(suffix) = f.optional("cluster_domain_suffix")
        && let (Some(text), Some(cluster)) =
            (suffix.string(errors), inherited.cluster_domain_suffix)
        && text != cluster
    {
        errors.at(&suffix, format!("must equal the cluster's cluster_domain_suffix {cluster:?} (got {text:?}); remove it, pools inherit it"));
    }
    if let Some(service) = f.optional("service_cidr")
        && let (Some(net), Some(cluster)) = (cidr(&service, errors), inherited.service_cidr)
        && net != cluster
    {
        errors.at(&service, format!("must equal the cluster's service_cidr {cluster} (got {net}); remove it, pools inherit it"));
    }
    let setup_raid = optional_bool(&mut f, "setup_raid", false, errors);
    let setup_raid_hdd = optional_bool(&mut f, "setup_raid_hdd", false, errors);
    let setup_raid_ssd = optional_bool(&mut f, "setup_raid_ssd", false, errors);
    let setup_raid_ssd_fs = optional_bool(
        &mut f,
        "setup_raid_ssd_fs",
        defaults::setup_raid_ssd_fs(),
        errors,
    );
    // The RAID flags are exclusive in the module (the first set wins); a second flag set would
    // silently do nothing, so it is refused.
    if setup_raid == Some(true) {
        for other in ["setup_raid_hdd", "setup_raid_ssd"] {
            if let (Some(key), Some(v)) = (f.key(other), f.optional(other))
                // The value itself was checked when read; a wrong one is already reported.
                && v.boolean(&mut Errors::default()) == Some(true)
            {
                errors.at(&key, format!("{other} has no effect when setup_raid is true (setup_raid already uses every extra disk); remove one of them"));
            }
        }
    } else if setup_raid_hdd == Some(true)
        && setup_raid_ssd == Some(true)
        && let Some(key) = f.key("setup_raid_ssd")
    {
        errors.at(&key, "setup_raid_hdd and setup_raid_ssd are exclusive (the HDD RAID would win); use setup_raid for both kinds of disks");
    }
    if setup_raid_ssd != Some(true)
        && setup_raid_ssd_fs == Some(false)
        && let Some(key) = f.key("setup_raid_ssd_fs")
    {
        errors.at(
            &key,
            "setup_raid_ssd_fs only applies with setup_raid_ssd: true",
        );
    }
    let reservations = if redfish {
        refuse_reservations(&mut f, errors);
        Some(Default::default())
    } else {
        reservations(&mut f, Role::Worker, count, errors)
    };
    // The worker module's other variables, which a user moving from Terraform would copy.
    for name in ["cluster_name", "project_id", "facility", "ssh_keys"] {
        f.refuse(
            errors,
            name,
            "pools use the cluster's value; remove it from the pool",
        );
    }
    f.refuse(
        errors,
        "kubeconfig",
        "loko passes the generated kubelet kubeconfig to the workers; remove it",
    );
    f.finish(errors);
    Some(WorkerPool {
        pool_name: pool_name?.0,
        count: count?,
        plan: pool_plan?,
        labels: labels?,
        taints: taints?,
        os: os?,
        setup_raid: setup_raid?,
        setup_raid_hdd: setup_raid_hdd?,
        setup_raid_ssd: setup_raid_ssd?,
        setup_raid_ssd_fs: setup_raid_ssd_fs?,
        reservations: reservations?,
    })
}

/// The `os_*` and `ipxe_script_url` fields of the cluster or a pool, checked against the plan.
fn os_settings(
    f: &mut Fields<'_, '_>,
    owner: &Node<'_, '_>,
    plan: Option<&MachinePlan>,
    plan_node: Option<&Node<'_, '_>>,
    plan_field: &str,
    redfish: bool,
    errors: &mut Errors,
) -> Option<OsSettings> {
    let channel_node = f.optional("os_channel");
    let os_channel = match &channel_node {
        Some(n) => one_of(n, errors, OsChannel::NAMES, OsChannel::from_name),
        None => Some(defaults::os_channel()),
    };
    let arch_node = f.optional("os_arch");
    let os_arch = match &arch_node {
        Some(n) => one_of(n, errors, OsArch::NAMES, OsArch::from_name),
        None => Some(defaults::os_arch()),
    };
    if redfish {
        f.refuse(errors, "ipxe_script_url", "Packet's custom_ipxe, and provider is redfish: loko serves each machine's iPXE script itself");
    }
    let ipxe_script_url = match f.optional("ipxe_script_url").filter(|_| !redfish) {
        Some(n) => match n.string(errors) {
            Some(text) if text.is_empty() => Some(None),
            Some(text) => http_url(&n, &text, errors).map(Some),
            None => None,
        },
        None => Some(None),
    };
    let os_version = match f.optional("os_version") {
        Some(n) => {
            let text = n.string(errors)?;
            let is_version = text
                .split('.')
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
            if text != "current" && !is_version {
                errors.at(
                    &n,
                    format!("{text:?} is not a Flatcar version (like 2191.5.0) or \"current\""),
                );
                None
            } else if text != "current" && ipxe_script_url == Some(None) && !redfish {
                errors.at(&n, "os_version only applies when booting from ipxe_script_url; Packet's Flatcar image installs the channel's current version");
                None
            } else {
                Some(text)
            }
        }
        None => Some(defaults::os_version()),
    };
    if let (Some(plan), Some(arch)) = (plan, os_arch)
        && let Some(plan_arch) = plan.arch().filter(|a| *a != arch)
    {
        let message = format!(
            "plan {plan} is {plan_arch} but os_arch is {arch}{}; set os_arch: {plan_arch} or choose a plan for {arch}",
            if arch_node.is_none() {
                " (the default)"
            } else {
                ""
            }
        );
        let at = arch_node.clone().or_else(|| plan_node.cloned());
        let at = at.unwrap_or_else(|| Node {
            yaml: owner.yaml,
            path: format!("{}{plan_field}", prefix(&owner.path)),
        });
        errors.at(&at, message);
    }
    Some(OsSettings {
        os_channel: os_channel?,
        os_arch: os_arch?,
        os_version: os_version?,
        ipxe_script_url: ipxe_script_url?,
    })
}

fn prefix(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!("{path}.")
    }
}
