//! `loko sim`: the simulator as a standalone server.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use crate::cli::SimArgs;

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
    let mut config = sim::SimConfig::new(node_root);
    config.listen = args.listen;
    config.time_scale = args.time_scale;
    config.state_file = args.state.clone();
    config.ssh_port = args.ssh_port;
    config.hosted_zone = args.zone.clone();
    config.nodes = Arc::new(nodes);
    if let Some(path) = &args.faults {
        config.faults = sim::FaultPlan::from_file(path)?;
    }
    let mut out = std::io::stdout();
    sim::serve_until_interrupted(config, &mut out).await?;
    Ok(ExitCode::SUCCESS)
}
