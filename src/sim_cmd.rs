//! `loko sim`: the simulator as a standalone server, and what to paste to point loko at it.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use crate::cli::SimArgs;
use crate::output::outln;
use crate::spec_cmd::load_spec;

pub async fn run(args: &SimArgs) -> anyhow::Result<ExitCode> {
    let node_root = match (&args.node_root, &args.state) {
        (Some(dir), _) => dir.clone(),
        (None, Some(state)) => state.with_extension("nodes"),
        (None, None) => std::env::temp_dir().join(format!("loko-sim-{}", std::process::id())),
    };
    let backend = if args.openssh {
        sim::nodes::SshBackend::OpenSsh {
            sshd_path: "/usr/sbin/sshd".into(),
        }
    } else {
        sim::nodes::SshBackend::Embedded
    };
    let nodes = sim::nodes::Nodes::new(sim::nodes::NodesConfig {
        root_dir: node_root.clone(),
        ssh_port: args.ssh_port,
        backend,
    })
    .with_context(|| format!("cannot prepare the nodes' roots in {}", node_root.display()))?;
    let user = nodes.ssh_login_user();
    let mut config = sim::SimConfig::new(node_root);
    config.listen = args.listen;
    config.time_scale = args.time_scale;
    config.state_file = args.state.clone();
    config.ssh_port = args.ssh_port;
    config.hosted_zone = args.zone.clone();
    config.nodes = Arc::new(nodes);
    // With a spec: its project, hosted zone, hardware reservations and private network, as
    // `--sim` seeds them.
    let spec = match &args.spec {
        Some(path) => {
            let desired = load_spec(path)?.desired();
            let settings = &desired.settings;
            let project = settings.packet_project()?;
            config.project_id = Some(
                project
                    .as_str()
                    .parse()
                    .with_context(|| format!("the project_id {project} is not a UUID"))?,
            );
            config.hosted_zone = settings.dns_zone.as_str().to_owned();
            config.hosted_zone_id = Some(settings.dns_zone_id.as_str().to_owned());
            crate::sim_session::seed_project(&mut config, &desired)?;
            Some(path.display().to_string())
        }
        None => None,
    };
    if let Some(path) = &args.faults {
        config.faults = sim::FaultPlan::from_file(path)?;
    }
    let handle = sim::start(config)
        .await
        .context("cannot start the simulator")?;
    // Listening before "Serving until Ctrl-C." is printed: a Ctrl-C (or a script's SIGINT)
    // right after that line stops the simulator cleanly instead of killing it.
    let interrupted = interrupt_listener()?;
    let mut out = std::io::stdout();
    handle
        .write_endpoints(&mut out)
        .context("cannot print the endpoints")?;
    print_paste(&handle, args, &user, spec.as_deref());
    let waited = interrupted.await;
    handle.shutdown().await?;
    waited?;
    Ok(ExitCode::SUCCESS)
}

/// What to put into the spec and the shell to run loko against this simulator.
fn print_paste(handle: &sim::SimHandle, args: &SimArgs, user: &str, spec: Option<&str>) {
    let zone = handle.hosted_zone_id();
    outln!();
    match spec {
        Some(spec) => outln!("Add to {spec} (its project and hosted zone exist here):"),
        None => {
            outln!("Put into your spec:");
            outln!("project_id: {}", handle.project_id());
            outln!("dns_zone: {}", args.zone);
            outln!("dns_zone_id: {zone}");
        }
    }
    outln!("endpoints:");
    outln!("  packet_api_url: {}", handle.packet_url());
    outln!("  route53_endpoint_url: {}", handle.route53_url());
    outln!();
    outln!("In the shell that runs loko (any AWS credentials do):");
    outln!("export PACKET_AUTH_TOKEN={}", handle.token());
    outln!("export AWS_ACCESS_KEY_ID=loko-sim AWS_SECRET_ACCESS_KEY=loko-sim-secret");
    let mut run = format!(
        "loko run SPEC --ssh-port {} --time-scale {}",
        args.ssh_port, args.time_scale
    );
    if user != "core" {
        run.push_str(&format!(" --ssh-user {user}"));
    }
    outln!("and run, with an ssh-agent holding a key of ssh_keys:");
    outln!("{run}");
    outln!();
    outln!("Serving until Ctrl-C.");
}

/// Listens for Ctrl-C and SIGTERM from now on; the future ends at the first of them.
fn interrupt_listener() -> anyhow::Result<impl std::future::Future<Output = anyhow::Result<()>>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for Ctrl-C")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        Ok(())
    })
}
