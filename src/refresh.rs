//! The refresh before `loko run` and `loko plan` decide: what exists (Packet's devices, a
//! rack's machines' power, the records) against what the journal recorded; what contradicts it
//! is printed, and the run journals it and does those steps again ([`steps::refresh`]).

use std::sync::Arc;

use journal::Journal;
use specs::DesiredCluster;
use steps::history::History;
use steps::refresh::{Contradictions, Recorded};
use steps::run_context::Machines;

use crate::output::errln;

/// Refreshes `history` with what exists: the run's first device listing (its poller's, which
/// the device steps' lookups share, so the refresh costs no call of its own) and the records,
/// compared with the journal's ledger. Prints what contradicts the journal; the run journals
/// it and does those steps again.
pub(crate) async fn refresh(
    journal: &Journal,
    location: &journal::Location,
    desired: &DesiredCluster,
    wiring: &crate::wiring::Wiring,
    history: &mut History,
    adoption: &crate::adopt::Adoption,
) -> anyhow::Result<Contradictions> {
    let poller = match &wiring.clients.machines {
        Machines::Packet { poller, .. } => poller,
        Machines::Rack(rack) => {
            let recorded = journal.with_state(Recorded::read);
            let route53 = &wiring.clients.route53;
            return refresh_rack(&recorded, desired, &rack.provider, route53, history).await;
        }
    };
    // The poller retries on its own; a listing refused for a passing reason (429, 5xx) is
    // waited out as long as a device may take to provision, as the device steps would.
    let patience = wiring.timings.device.provision_deadline;
    let listing = |since| async move {
        let started = std::time::Instant::now();
        loop {
            match poller.listing_since(since).await {
                Some(Ok(listing)) => return Ok(listing),
                Some(Err(e)) if e.is_retryable() && started.elapsed() < patience => continue,
                Some(Err(e)) => {
                    return Err(anyhow::Error::from(e).context("cannot list the cluster's devices"));
                }
                None => return Err(anyhow::anyhow!("the device poller stopped")),
            }
        }
    };
    let first = listing(std::time::Instant::now()).await?;
    let mut devices = (*first.devices).clone();
    if first.may_skip() {
        // Packet pages by offset: a device that went away between two page calls made the
        // next page skip one. A device gone for real is missing from the next listing too.
        let second = listing(std::time::Instant::now()).await?;
        devices.extend(
            second
                .devices
                .iter()
                .map(|(id, d)| (id.clone(), Arc::clone(d))),
        );
    }
    let recorded = journal.with_state(Recorded::read);
    let foreign = steps::refresh::foreign(&recorded, history, devices.values().map(|d| &**d));
    crate::adopt::admit(&foreign, desired, location, adoption)?;
    let mut drift = steps::drift::Drift::of_devices(desired, devices.values().map(|d| &**d));
    crate::status_cmd::read_records(desired, &wiring.clients.route53, &mut drift).await?;
    let found = Contradictions::find(&recorded, &drift);
    print_contradictions(&found);
    found.apply(history);
    Ok(found)
}

/// A rack's refresh: each recorded machine's power state from its BMC (an unreadable BMC is
/// not compared, and said so: the machine step reads it again), and the records.
async fn refresh_rack(
    recorded: &Recorded,
    desired: &DesiredCluster,
    provider: &steps::provider::rack::RedfishProvider,
    route53: &steps::dns::Route53,
    history: &mut History,
) -> anyhow::Result<Contradictions> {
    let nodes: Vec<(&str, &specs::Machine)> = desired
        .nodes
        .iter()
        .filter(|node| recorded.devices.contains_key(&node.hostname))
        .filter_map(|node| Some((node.hostname.as_str(), node.machine.as_ref()?)))
        .collect();
    let machines: Vec<specs::Machine> = nodes.iter().map(|(_, m)| (*m).clone()).collect();
    let mut power = Vec::new();
    for ((host, machine), state) in nodes.iter().zip(provider.power_states(&machines).await) {
        match state {
            Ok(state) => power.push((*host, machine.name.as_str(), state)),
            Err(e) => errln!("note: {host}: not compared with the journal: {e}"),
        }
    }
    let mut drift = steps::drift::Drift::default();
    crate::status_cmd::read_records(desired, route53, &mut drift).await?;
    let mut found = Contradictions::find(recorded, &drift);
    found.of_rack(recorded, power.iter().map(|(h, m, s)| (*h, *m, s.as_str())));
    print_contradictions(&found);
    found.apply(history);
    Ok(found)
}

/// What the cloud contradicts in the journal, on stderr (stdout may be JSON lines).
pub(crate) fn print_contradictions(found: &Contradictions) {
    if found.is_empty() {
        return;
    }
    errln!(
        "The cloud differs from the journal; what is gone is done again:{}",
        found
            .found
            .iter()
            .map(|f| format!("\n  - {f}"))
            .collect::<String>()
    );
}

/// `loko plan`'s refresh of a rack: as `loko run`'s ([`refresh_rack`]), with the BMC
/// credentials of the environment; without them, as the journal knows the rack.
pub(crate) async fn refresh_plan_of_rack(
    target: &crate::target::Target,
    recorded: &Recorded,
    history: &mut History,
    redactor: &journal::Redactor,
) -> anyhow::Result<()> {
    if let Err(e) = steps::redfish::BmcCredentials::from_env(redactor) {
        errln!(
            "note: not refreshed: {e}; without them the machines' power cannot be read, so this is as the journal knows the rack"
        );
        return Ok(());
    }
    let config = crate::rack_run::RackConfig {
        sim: None,
        rack: None,
        time_scale: None,
        boots: false,
    };
    let (rack, route53) = crate::rack_run::prepare(target, config, Vec::new(), redactor).await?;
    refresh_rack(recorded, &target.desired, &rack.provider, &route53, history).await?;
    Ok(())
}
