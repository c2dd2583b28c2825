//! `loko run`, `loko plan`, `loko destroy` and `loko graph`: a spec, its journal, the DAG, the
//! engine.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use engine::{Actions, CancellationToken, Dag, Outcome, RunReport};
use journal::{Journal, RunKind};
use specs::DesiredCluster;
use steps::assets::AssetDir;
use steps::cluster;
use steps::history::History;
use steps::kinds::DeviceOutputs;
use steps::refresh::{Contradictions, Recorded};
use steps::step_name::StepName;

use crate::cli::{DestroyArgs, Global, GraphArgs, PlanArgs, RunArgs};
use crate::failure::{EXIT_FAILED, EXIT_USAGE, UserError};
use crate::journal_location::open_journal;
use crate::output::{errln, out, outln, short_id, table};
use crate::progress::Printer;
use crate::refresh::{print_contradictions, refresh, refresh_plan_of_rack};
use crate::sim_session::SimSession;
use crate::target::{as_demo_recorded, changes, history, read_history, sim_target, target};
use crate::wiring::{Login, WireConfig, actions, connect, engine, request, wire};

/// Exit code of an interrupted run.
const EXIT_INTERRUPTED: u8 = 130;

/// Ctrl-C or SIGTERM cancels the run: no new step starts, and the steps in flight stop at their
/// next safe point and record their outcome (the run ends `interrupted`, resumable). A second
/// signal stops at once: the journal already holds everything done, so that too resumes.
fn cancel_on_interrupt(printer: Arc<Printer>) -> anyhow::Result<CancellationToken> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt =
        signal(SignalKind::interrupt()).context("cannot listen for Ctrl-C (SIGINT)")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let cancel = CancellationToken::new();
    let token = cancel.clone();
    tokio::spawn(async move {
        let name = tokio::select! {
            Some(()) = interrupt.recv() => "interrupted (Ctrl-C)",
            Some(()) = terminate.recv() => "terminated (SIGTERM)",
            else => return,
        };
        let in_flight = printer.in_flight();
        let shown: Vec<&str> = in_flight.iter().take(5).map(String::as_str).collect();
        let more = match in_flight.len().saturating_sub(shown.len()) {
            0 => String::new(),
            n => format!(" and {n} more"),
        };
        let waiting = match in_flight.len() {
            0 => String::new(),
            n => format!(
                "; waiting for the {n} step(s) in flight to stop and record where they are ({}{more})",
                shown.join(", ")
            ),
        };
        crate::progress::suspended(|| {
            errln!(
                "{name}: no new step starts{waiting}. A second Ctrl-C stops at once; either way, \
                 run the same command again to resume"
            )
        });
        token.cancel();
        tokio::select! {
            Some(()) = interrupt.recv() => {}
            Some(()) = terminate.recv() => {}
            else => return,
        }
        crate::progress::suspended(|| {
            errln!(
                "stopped at once; the journal holds every step done: run the same command again to resume"
            )
        });
        std::process::exit(i32::from(EXIT_INTERRUPTED));
    });
    Ok(cancel)
}

/// What was found before a run, for the engine to journal after the run starts.
#[derive(Default)]
struct Before {
    drift: engine::Drift,
    resealed: Option<engine::Resealed>,
}

/// Runs `dag` to its end against `journal`, its progress on the terminal (JSON lines with
/// `json`), stopping at Ctrl-C or SIGTERM; then stops the demo's simulator, if one ran. What
/// `loko run` and `loko destroy` share once their DAG is built.
async fn execute(
    journal: Arc<Journal>,
    dag: &Dag,
    actions: &Actions,
    request: engine::RunRequest,
    json: bool,
    sim: Option<SimSession>,
    before: Before,
) -> anyhow::Result<RunReport> {
    let printer = Arc::new(Printer::new(
        json,
        &dag.step_ids(),
        journal.redactor().clone(),
    ));
    let report = engine(journal, Arc::clone(&printer) as _)
        .drift(before.drift)
        .resealed(before.resealed)
        .run(
            dag,
            actions,
            request,
            cancel_on_interrupt(Arc::clone(&printer))?,
        )
        .await;
    printer.finish();
    let report = report?;
    printer.ended(report.run, &report.outcome);
    if let Some(sim) = sim {
        sim.shutdown().await?;
    }
    Ok(report)
}

fn outcome_code(
    outcome: &Outcome,
    what: &str,
    redactor: &journal::Redactor,
) -> anyhow::Result<ExitCode> {
    match outcome {
        Outcome::UpToDate | Outcome::Succeeded => Ok(ExitCode::SUCCESS),
        Outcome::Interrupted => {
            errln!("{what} interrupted; run the same command again to resume");
            Ok(ExitCode::from(EXIT_INTERRUPTED))
        }
        Outcome::Failed { failed, skipped } => {
            for (step, error) in failed {
                errln!("failed: {step}: {}", redactor.redact(error));
            }
            if !skipped.is_empty() {
                errln!("skipped {} step(s) that depend on them", skipped.len());
            }
            Err(UserError {
                message: format!("{what} failed: {} step(s) failed", failed.len()),
                code: EXIT_FAILED,
                hint: Some(
                    "fix the cause and run the same command again: finished steps are not repeated (loko journal shows every attempt)"
                        .into(),
                ),
            }
            .into())
        }
    }
}

pub async fn run(
    global: &Global,
    args: &RunArgs,
    redactor: &journal::Redactor,
) -> anyhow::Result<ExitCode> {
    let target = sim_target(global, &args.cluster.spec, args.cluster.sim.sim)?;
    let journal = open_journal(&target.journal, redactor)?;
    let mut history = history(&journal)?;
    // Refused changes stop here, before any API is called, and so does a run that would
    // create too many devices by the journal's count alone.
    let journal_changes = changes(&target.desired, &history)?;
    let known = journal_changes.devices_to_create();
    crate::guard::new_devices(known, args.max_new_devices, args.yes)?;
    let provider = target.desired.settings.provider();
    crate::guard::deletions(
        &deletions(&journal, &journal_changes, provider),
        args.yes || args.allow_delete,
        provider,
    )?;
    let sim = match args.cluster.sim.sim {
        true => Some(SimSession::start(&target, &args.cluster.sim, redactor).await?),
        false => None,
    };
    let login = Some(Login {
        port: args.ssh_port,
        user: args.ssh_user.clone(),
    });
    let mut wiring = wire(
        &target,
        WireConfig {
            sim: sim.as_ref(),
            login,
            time_scale: args.cluster.sim.time_scale,
            take_over_dns: args.take_over_dns,
        },
        redactor,
    )
    .await?;
    wiring.timings.skip_drain = args.skip_drain;
    if let Some(timeout) = args.drain_timeout {
        wiring.timings.drain_timeout = timeout;
    }
    // The cloud is the truth: what the journal recorded and the cloud no longer has is done
    // again, and said so before anything changes.
    let assets = AssetDir::create(&target.assets)
        .map_err(|e| UserError {
            message: format!("asset_dir: {e}"),
            code: EXIT_USAGE,
            hint: Some(
                "asset_dir must be a writable directory; it holds the cluster's keys".into(),
            ),
        })?
        .redacting(redactor.clone());
    // Recorded once the setup passed its checks, so that a refused first try binds nothing.
    crate::team::bind(&journal, &target, &args.cluster.spec)?;
    let (assets, resealed) =
        crate::team::share_assets(&journal, assets, &target.desired, history.previous.as_ref())?;
    let adoption = crate::adopt::Adoption {
        asked: args.adopt,
        yes: args.yes,
        cluster_id: steps::assets::pki::cluster_id(&assets)?,
    };
    let found = refresh(
        &journal,
        &target.journal,
        &target.desired,
        &wiring,
        &mut history,
        &adoption,
    )
    .await?;
    let mut changes = changes(&target.desired, &history)?;
    changes.drain_skipped = args.skip_drain;
    if changes.devices_to_create() > known {
        // Devices gone from the cloud come on top of what the journal's count asked for.
        crate::guard::new_devices(changes.devices_to_create(), args.max_new_devices, args.yes)?;
    }
    if !args.json {
        outln!("{changes}");
    }
    let dag = cluster::apply_dag(
        &target.desired,
        &history,
        &wiring.timings.extra_authorized_keys,
    )?;
    let report = execute(
        Arc::clone(&journal),
        &dag,
        &actions(&target, assets, &wiring),
        request(RunKind::Apply, &target.desired)?,
        args.json,
        sim,
        Before {
            drift: found.to_engine(),
            resealed,
        },
    )
    .await?;
    if !args.json && matches!(report.outcome, Outcome::Succeeded | Outcome::UpToDate) {
        print_nodes(&journal, &target.desired);
    }
    if report.outcome == Outcome::UpToDate && !args.json {
        outln!("Nothing to do: the cluster matches the spec, and its nodes are ready now.");
    }
    if let Some(port) = wiring.clients.ssh.refused.verdict() {
        return Err(refused_port(port).into());
    }
    let code = outcome_code(&report.outcome, "the run", redactor)?;
    if !args.json && report.outcome != Outcome::Interrupted {
        let settings = &target.desired.settings;
        let spec = args.cluster.spec.display();
        if args.cluster.sim.sim {
            // The demo's apiserver lived in this process: a KUBECONFIG would point at nothing.
            outln!(
                "\nCluster {} is ready, in the simulator that ran inside this command; it stopped \
                 with it, and its cloud is kept in {} for the next --sim command.\n\
                 Next: loko status {spec} --sim · loko journal {spec} · loko destroy {spec} --sim --yes",
                settings.cluster_name,
                target.state_dir.join("sim").display()
            );
        } else {
            outln!(
                // `loko kubeconfig` picks the kubeconfig that reaches the cluster from here
                // (by address where the name does not resolve, as with the simulator).
                "\nCluster {} is ready: https://{}:6443\nexport KUBECONFIG=$(loko kubeconfig {spec})",
                settings.cluster_name,
                settings.apiserver_hosts().0,
            );
        }
    }
    Ok(code)
}

/// Every node refused SSH on `port`: a setup problem, said once with its fix.
fn refused_port(port: u16) -> UserError {
    UserError::usage(
        format!("the run stopped: no node accepts SSH on port {port}"),
        "pass the port the nodes' sshd listens on with --ssh-port (the simulator's nodes: the port `loko sim` printed, 2222 by default), then run the same command again",
    )
}

/// The nodes as the journal recorded them: what a user looks for after a run.
fn print_nodes(journal: &Journal, desired: &DesiredCluster) {
    let ledger = journal.with_state(|state| state.ledger.clone());
    let rows: Vec<Vec<String>> = desired
        .nodes
        .iter()
        .map(|node| {
            let device = ledger
                .get(&StepName::node_machine(node).id())
                .and_then(|r| DeviceOutputs::recorded(&r.outputs));
            let field = |read: fn(DeviceOutputs) -> Option<String>| {
                device.clone().and_then(read).unwrap_or_else(|| "-".into())
            };
            let role = match node.role {
                specs::Role::Controller => "controller",
                specs::Role::Worker => "worker",
            };
            vec![
                node.hostname.clone(),
                role.to_owned(),
                short_id(&field(|d| Some(d.device_id))),
                field(|d| d.public_ipv4),
                field(|d| d.private_ipv4),
            ]
        })
        .collect();
    outln!(
        "\n{}",
        table(
            &[
                "NODE",
                "ROLE",
                crate::status_cmd::machine_column(desired),
                "PUBLIC IPV4",
                "PRIVATE IPV4"
            ],
            &rows
        )
    );
}

pub async fn plan(
    global: &Global,
    args: &PlanArgs,
    redactor: &journal::Redactor,
) -> anyhow::Result<ExitCode> {
    let mut target = target(global, &args.spec)?;
    let (mut history, recorded) = read_history(&target)?;
    as_demo_recorded(&mut target, &history)?;
    changes(&target.desired, &history)?;
    if args.no_refresh {
        errln!("note: not refreshed (--no-refresh): as the journal knows the cloud");
    } else if target.boot_server.is_some() {
        refresh_plan_of_rack(&target, &recorded, &mut history, redactor).await?;
    } else if steps::packet::Token::from_env(redactor).is_err() {
        errln!(
            "note: not refreshed: without PACKET_AUTH_TOKEN (or METAL_AUTH_TOKEN) the cloud cannot be \
             listed; this is as the journal knows it"
        );
    } else {
        let (packet, route53) = connect(&target, None, None, Vec::new(), redactor).await?;
        let (drift, devices) =
            crate::status_cmd::observe(&target.desired, &packet, &route53).await?;
        let foreign = steps::refresh::foreign(&recorded, &history, &devices);
        if !foreign.is_empty() {
            let refusal = crate::adopt::refusal(&foreign, &target.desired, &target.journal);
            errln!(
                "note: loko run would stop before any change: {}",
                refusal.message
            );
        }
        let found = Contradictions::find(&recorded, &drift);
        print_contradictions(&found);
        found.apply(&mut history);
    }
    let changes = changes(&target.desired, &history)?;
    if args.json {
        let mut json = serde_json::to_value(&changes)?;
        json["devices_to_create"] = changes.devices_to_create().into();
        outln!("{json}");
    } else {
        outln!("{changes}");
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn destroy(
    global: &Global,
    args: &DestroyArgs,
    redactor: &journal::Redactor,
) -> anyhow::Result<ExitCode> {
    let target = sim_target(global, &args.cluster.spec, args.cluster.sim.sim)?;
    let journal = open_journal(&target.journal, redactor)?;
    let history = history(&journal)?;
    if !args.yes
        && !confirm(
            &target.desired,
            &doomed(&journal, &target.desired, &history),
        )?
    {
        errln!("destroy cancelled");
        return Ok(ExitCode::from(EXIT_USAGE));
    }
    let sim = match args.cluster.sim.sim {
        true => Some(SimSession::start(&target, &args.cluster.sim, redactor).await?),
        false => None,
    };
    // Destroying logs into no node: no agent needed.
    let config = WireConfig {
        sim: sim.as_ref(),
        time_scale: args.cluster.sim.time_scale,
        ..WireConfig::default()
    };
    let wiring = wire(&target, config, redactor).await?;
    let dag = cluster::destroy_dag(&target.desired, &history)?;
    // Destroying writes no asset; the directory holds the CA and keys a later run reuses.
    let assets = AssetDir::create(&target.assets)?.redacting(redactor.clone());
    // Recorded once the setup passed its checks, so that a refused first try binds nothing.
    crate::team::bind(&journal, &target, &args.cluster.spec)?;
    let (assets, resealed) =
        crate::team::share_assets(&journal, assets, &target.desired, history.previous.as_ref())?;
    let report = execute(
        journal,
        &dag,
        &actions(&target, assets, &wiring),
        request(RunKind::Destroy, &target.desired)?,
        args.json,
        sim,
        Before {
            resealed,
            ..Before::default()
        },
    )
    .await?;
    let code = outcome_code(&report.outcome, "destroy", redactor)?;
    if !args.json && report.outcome != Outcome::Interrupted {
        outln!(
            "Cluster {} destroyed: {}; {} keeps its CA and keys.",
            target.desired.settings.cluster_name,
            match target.boot_server {
                Some(_) => "its machines are powered off and its DNS records gone",
                None => "its devices and DNS records are gone",
            },
            target.assets.display()
        );
    }
    Ok(code)
}

/// The devices a run of `changes` deletes (a rack's machines it powers off), one line each,
/// as the journal knows them.
fn deletions(
    journal: &Journal,
    changes: &steps::changes::Changes,
    provider: specs::Provider,
) -> Vec<String> {
    if changes.replace.is_empty() && changes.delete.is_empty() {
        return Vec::new();
    }
    let recorded = journal.with_state(Recorded::read);
    let rack = provider == specs::Provider::Redfish;
    let machine = |host: &str| match (recorded.devices.get(host), rack) {
        (Some((_, id)), false) => format!("device {id} ({host})"),
        (None, false) => format!("the device of {host}, if it was created"),
        (Some((_, name)), true) if name == host => format!("machine {name}"),
        (Some((_, name)), true) => format!("machine {name} ({host})"),
        (None, true) => format!("the machine of {host}, if it was booted"),
    };
    let why_replaced = match rack {
        false => "its pool's type changed; a new one is created",
        true => "another machine is listed for it; the new one is booted",
    };
    let replaced = changes
        .replace
        .iter()
        .map(|h| format!("{}: {why_replaced}", machine(h)));
    let deleted = changes
        .delete
        .iter()
        .map(|h| format!("{}: its node left the spec", machine(h)));
    replaced.chain(deleted).collect()
}

/// What `loko destroy` deletes, as the journal knows it: one line per device and record; in a
/// rack, one per machine it powers off.
fn doomed(journal: &Journal, desired: &DesiredCluster, history: &History) -> Vec<String> {
    if desired.settings.provider() == specs::Provider::Redfish {
        return cluster::machines_to_retire(desired, history)
            .iter()
            .flat_map(|p| {
                [Some(&p.machine), p.replaces.as_ref()]
                    .into_iter()
                    .flatten()
                    .map(|m| (&p.hostname, m))
            })
            // A rack's node is named by its machine: its host is said only when it differs.
            .map(|(host, m)| {
                let of = match m.name.as_str() == host.as_str() {
                    true => String::new(),
                    false => format!(" of {host}"),
                };
                format!(
                    "machine {}{of} (MAC {}, BMC {}{})",
                    m.name, m.mac, m.bmc.url, m.bmc.system
                )
            })
            .chain(records(desired))
            .collect();
    }
    let ledger = journal.with_state(|state| state.ledger.clone());
    let mut lines: Vec<String> = history
        .known_nodes
        .iter()
        // A device loko deleted (a pool scaled down) is gone: its delete is recorded.
        .filter(|host| !StepName::removal_recorded(host, |id| ledger.contains_key(id)))
        .map(|host| {
            let device = ledger
                .get(&StepName::Device(host.to_string()).id())
                .and_then(|r| DeviceOutputs::recorded(&r.outputs))
                .map(|d| d.device_id);
            match device {
                Some(id) => format!("device {id} ({host})"),
                None => format!("the device of {host}, if it was created"),
            }
        })
        .collect();
    let name = desired.settings.cluster_name.as_str();
    if let Some(project) = &desired.settings.project_id {
        lines.push(format!(
            "any other device tagged loko:cluster={name} in project {project}"
        ));
    }
    lines.extend(records(desired));
    lines
}

/// The cluster's records, as `loko destroy` lists what it deletes.
fn records(desired: &DesiredCluster) -> impl Iterator<Item = String> {
    desired
        .dns_records
        .iter()
        .map(|r| format!("DNS record {} (zone {})", r.name, r.zone_id))
}

/// Lists what will be deleted and asks on a terminal; refuses without one (use `--yes`).
fn confirm(desired: &DesiredCluster, doomed: &[String]) -> anyhow::Result<bool> {
    use std::io::{BufRead as _, IsTerminal as _, Write as _};
    let name = desired.settings.cluster_name.as_str();
    let list: String = doomed.iter().map(|l| format!("\n  - {l}")).collect();
    // A rack's machines stay: they are powered off.
    let deletes = match desired.settings.provider() {
        specs::Provider::Packet => "deletes",
        specs::Provider::Redfish => "powers off and deletes",
    };
    if !std::io::stdin().is_terminal() {
        return Err(UserError {
            message: format!("destroy of cluster {name} needs confirmation; it {deletes}:{list}"),
            code: EXIT_USAGE,
            hint: Some("pass --yes when not on a terminal".into()),
        }
        .into());
    }
    outln!("Destroy cluster {name}? This {deletes}:{list}");
    out!("The asset directory (CA, keys) is kept. Type the cluster name to confirm: ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(answer.trim() == name)
}

pub async fn graph(global: &Global, args: &GraphArgs) -> anyhow::Result<ExitCode> {
    let mut target = target(global, &args.spec)?;
    let (history, _) = read_history(&target)?;
    as_demo_recorded(&mut target, &history)?;
    changes(&target.desired, &history)?;
    // The DAG is data: no client, no asset directory, no lock.
    let dag = cluster::apply_dag(&target.desired, &history, &[])?;
    out!("{}", dag.to_dot());
    Ok(ExitCode::SUCCESS)
}
