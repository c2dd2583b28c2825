//! `loko status`: the cloud as it is, compared with the spec.

use std::collections::HashMap;
use std::process::ExitCode;

use anyhow::Context as _;
use specs::DesiredCluster;
use steps::dns::Route53;
use steps::drift::Drift;
use steps::packet::{Device, PacketClient, cluster_tag};

use crate::cli::{Global, StatusArgs};
use crate::failure::EXIT_DIFFERS;
use crate::output::{outln, short_id, table};
use crate::rack_run::{RackConfig, prepare};
use crate::sim_rack::SimRack;
use crate::sim_session::SimView;
use crate::target::{Target, sim_target};
use crate::wiring::connect;

pub async fn status(
    global: &Global,
    args: &StatusArgs,
    redactor: &journal::Redactor,
) -> anyhow::Result<ExitCode> {
    let target = sim_target(global, &args.cluster.spec, args.cluster.sim.sim)?;
    // A read-only command: it never starts the demo's agent or nodes, nor writes its state.
    let sim = match args.cluster.sim.sim {
        true => Some(SimView::start(&target, &args.cluster.sim).await?),
        false => None,
    };
    let handle = sim.as_ref().map(|s| &s.handle);
    let time_scale = args.cluster.sim.time_scale;
    let drift = match target.boot_server {
        Some(_) => observe_rack(&target, handle, time_scale, redactor).await?,
        None => {
            let (packet, route53) =
                connect(&target, handle, time_scale, Vec::new(), redactor).await?;
            observe(&target.desired, &packet, &route53).await?.0
        }
    };
    let settings = &target.desired.settings;
    if let Some(sim) = sim {
        sim.handle.shutdown().await?;
    }
    if args.json {
        outln!(
            "{}",
            serde_json::json!({
                "cluster": settings.cluster_name.as_str(),
                "matches": drift.matches(),
                "nodes": drift.nodes,
                "records": drift.records,
                "differences": drift.differences,
            })
        );
    } else {
        print_status(&drift, machine_column(&target.desired));
    }
    Ok(if drift.matches() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_DIFFERS)
    })
}

/// The cluster as it is: one listing of its devices (a call per 1,000) and its records, each
/// compared with the spec: what `loko status` shows, and what `loko plan` refreshes the
/// journal with ([`steps::refresh`]).
pub(crate) async fn observe(
    desired: &DesiredCluster,
    packet: &PacketClient,
    route53: &Route53,
) -> anyhow::Result<(Drift, Vec<Device>)> {
    let devices = packet
        .list_devices(&cluster_tag(desired.settings.cluster_name.as_str()))
        .await
        .context("cannot list the cluster's devices")?;
    let mut drift = Drift::of_devices(desired, &devices);
    read_records(desired, route53, &mut drift).await?;
    Ok((drift, devices))
}

/// A rack as it is: each node's machine's power state from its BMC, and the records. Under
/// `--sim` (`sim`, the saved cloud's view), the demo's rack answers, its machines as it has
/// them; it boots nothing here.
async fn observe_rack(
    target: &Target,
    sim: Option<&sim::SimHandle>,
    time_scale: Option<f64>,
    redactor: &journal::Redactor,
) -> anyhow::Result<Drift> {
    let rack = match sim {
        Some(sim) => Some(
            SimRack::view(
                &target.desired,
                &target.state_dir,
                sim.time_scale(),
                redactor,
            )
            .await?,
        ),
        None => None,
    };
    let config = RackConfig {
        sim,
        rack: rack.as_ref(),
        time_scale,
        boots: false,
    };
    let (netbooted, route53) = prepare(target, config, Vec::new(), redactor).await?;
    let nodes: Vec<(&String, specs::Machine)> = target
        .desired
        .nodes
        .iter()
        .filter_map(|node| Some((&node.hostname, node.machine.clone()?)))
        .collect();
    let machines: Vec<specs::Machine> = nodes.iter().map(|(_, m)| m.clone()).collect();
    let states = netbooted.provider.power_states(&machines).await;
    let power: HashMap<String, Result<String, String>> = nodes
        .iter()
        .zip(states)
        .map(|((host, _), state)| ((*host).clone(), state.map_err(|e| e.to_string())))
        .collect();
    let mut drift = Drift::of_machines(&target.desired, &power);
    read_records(&target.desired, &route53, &mut drift).await?;
    if let Some(rack) = rack {
        rack.rack.shutdown().await;
    }
    Ok(drift)
}

/// The header of the column of each node's machine: Packet's device, or a rack's machine.
pub(crate) fn machine_column(desired: &DesiredCluster) -> &'static str {
    match desired.settings.provider() {
        specs::Provider::Packet => "DEVICE",
        specs::Provider::Redfish => "MACHINE",
    }
}

/// Adds the spec's records as they are to `drift`.
pub(crate) async fn read_records(
    desired: &DesiredCluster,
    route53: &Route53,
    drift: &mut Drift,
) -> anyhow::Result<()> {
    for record in &desired.dns_records {
        // A read outside any step has no engine to retry it: a throttled or failed read is
        // tried again a few times (0.2 s doubling), so that a passing 5xx does not stop a run.
        let mut pause = std::time::Duration::from_millis(200);
        let current = loop {
            match route53
                .a_record(record.zone_id.as_str(), &record.name)
                .await
            {
                Err(steps::dns::DnsError::Api {
                    retryable: true, ..
                }) if pause < std::time::Duration::from_secs(4) => {
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                other => {
                    break other.with_context(|| format!("cannot read record {}", record.name))?;
                }
            }
        };
        drift.record(&record.name, current.as_ref());
    }
    Ok(())
}

/// The tables of `loko status`; `machine` heads the column of the nodes' machines.
fn print_status(drift: &Drift, machine: &str) {
    let text = |v: Option<&String>| v.map_or("-", String::as_str).to_owned();
    let nodes: Vec<Vec<String>> = drift
        .nodes
        .iter()
        .map(|n| {
            vec![
                n.node.clone(),
                n.device.as_deref().map_or_else(|| "-".to_owned(), short_id),
                n.state.to_string(),
                text(n.public_ipv4.as_ref()),
                text(n.private_ipv4.as_ref()),
            ]
        })
        .collect();
    outln!(
        "{}",
        table(
            &["NODE", machine, "STATE", "PUBLIC IPV4", "PRIVATE IPV4"],
            &nodes
        )
    );
    let records: Vec<Vec<String>> = drift
        .records
        .iter()
        .map(|r| {
            let values = match &r.values {
                Some(values) => values.join(", "),
                None => "missing".to_owned(),
            };
            vec![r.name.clone(), values]
        })
        .collect();
    outln!("\n{}", table(&["RECORD", "VALUES"], &records));
    if drift.matches() {
        outln!("\nThe cluster matches the spec.");
    } else {
        outln!("\nDifferences from the spec:");
        for d in &drift.differences {
            outln!("  {d}");
        }
    }
}
