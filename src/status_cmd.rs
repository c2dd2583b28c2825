//! `loko status`: the cloud as it is, compared with the spec.

use std::process::ExitCode;

use anyhow::Context as _;
use steps::packet::cluster_tag;

use crate::cli::{Global, StatusArgs};
use crate::failure::EXIT_DIFFERS;
use crate::output::outln;
use crate::sim_session::SimView;
use crate::target::target;
use crate::wiring::connect;

pub async fn status(global: &Global, args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let target = target(global, &args.spec)?;
    // A read-only command: it never starts the demo's agent or nodes, nor writes its state.
    let sim = match args.sim.sim {
        true => Some(SimView::start(&target, &args.sim).await?),
        false => None,
    };
    let (packet, route53) = connect(&target, sim.as_ref().map(|s| &s.handle), Vec::new()).await?;
    let settings = &target.desired.settings;
    let devices = packet
        .list_devices(&cluster_tag(settings.cluster_name.as_str()))
        .await
        .context("cannot list the cluster's devices")?;
    let mut differences = Vec::new();
    let mut nodes = Vec::new();
    for node in &target.desired.nodes {
        let tag = steps::packet::node_tag(&node.hostname);
        let mine: Vec<_> = devices.iter().filter(|d| d.has_tag(&tag)).collect();
        match mine.as_slice() {
            [] => {
                nodes.push(
                    serde_json::json!({"node": node.hostname, "device": null, "state": "missing"}),
                );
                differences.push(format!("{} has no device", node.hostname));
            }
            [device, rest @ ..] => {
                nodes.push(serde_json::json!({
                    "node": node.hostname,
                    "device": device.id,
                    "state": device.state.to_string(),
                    "public_ipv4": device.public_ipv4().map(|ip| ip.to_string()),
                    "private_ipv4": device.private_ipv4().map(|ip| ip.to_string()),
                }));
                if !rest.is_empty() {
                    differences.push(format!("{} has {} devices", node.hostname, mine.len()));
                }
                if device.plan_slug().is_some_and(|p| p != node.plan.as_str()) {
                    differences.push(format!(
                        "{} is a {} (the spec says {})",
                        node.hostname,
                        device.plan_slug().unwrap_or_default(),
                        node.plan
                    ));
                }
                if device.state.to_string() != "active" {
                    differences.push(format!("{} is {}, not active", node.hostname, device.state));
                }
            }
        }
    }
    for device in &devices {
        if !target
            .desired
            .nodes
            .iter()
            .any(|n| device.has_tag(&steps::packet::node_tag(&n.hostname)))
        {
            differences.push(format!(
                "device {} ({}) is tagged with the cluster but no node of the spec",
                device.id, device.hostname
            ));
        }
    }
    let mut records = Vec::new();
    for record in &target.desired.dns_records {
        let current = route53
            .a_record(record.zone_id.as_str(), &record.name)
            .await
            .with_context(|| format!("cannot read record {}", record.name))?;
        let values: Option<Vec<String>> =
            current.map(|r| r.values.iter().map(|v| v.to_string()).collect());
        if values.is_none() {
            differences.push(format!("record {} is missing", record.name));
        }
        records.push(serde_json::json!({"name": record.name, "values": values}));
    }
    if let Some(sim) = sim {
        sim.handle.shutdown().await?;
    }
    if args.json {
        outln!(
            "{}",
            serde_json::json!({
                "cluster": settings.cluster_name.as_str(),
                "matches": differences.is_empty(),
                "nodes": nodes,
                "records": records,
                "differences": differences,
            })
        );
    } else {
        print_status(&nodes, &records, &differences);
    }
    Ok(if differences.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_DIFFERS)
    })
}

/// The tables of `loko status`.
fn print_status(
    nodes: &[serde_json::Value],
    records: &[serde_json::Value],
    differences: &[String],
) {
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_owned();
    outln!(
        "{:<41} {:<37} {:<13} {:<16} PRIVATE IPV4",
        "NODE",
        "DEVICE",
        "STATE",
        "PUBLIC IPV4"
    );
    for n in nodes {
        outln!(
            "{:<41} {:<37} {:<13} {:<16} {}",
            text(&n["node"]),
            text(&n["device"]),
            text(&n["state"]),
            text(&n["public_ipv4"]),
            text(&n["private_ipv4"])
        );
    }
    outln!("\n{:<51} VALUES", "RECORD");
    for r in records {
        let values = match r["values"].as_array() {
            Some(values) => values.iter().map(text).collect::<Vec<_>>().join(", "),
            None => "missing".to_owned(),
        };
        outln!("{:<51} {values}", text(&r["name"]));
    }
    if differences.is_empty() {
        outln!("\nThe cluster matches the spec.");
    } else {
        outln!("\nDifferences from the spec:");
        for d in differences {
            outln!("  {d}");
        }
    }
}
