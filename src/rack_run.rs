//! A rack's run (`provider: redfish`): its setup checked before any step, as Packet's is (the
//! BMC credentials, each BMC and its system's MAC, Route53), and the run's boot server started
//! with the machines' provider, handed to the demo's rack under `--sim`.
//!
//! The machine steps are not in the DAG yet (issue 29): after the checks pass, the run stops
//! with a usage error saying so, having changed nothing.

use std::time::Duration;

use journal::Redactor;
use steps::netboot::BootServer;
use steps::packet::Timeouts;
use steps::provider::netbooted::{NetbootedRack, netboot_config};
use steps::provider::rack::RedfishProvider;
use steps::redfish::{BmcCredentials, Polling};

use crate::failure::{EXIT_USAGE, UserError};
use crate::sim_session::SimSession;
use crate::target::Target;
use crate::wiring::{route53, setup_error};

/// How long a powered machine may take to fetch its node's Ignition (a server's POST and
/// firmware take minutes), in simulated time under `--sim`.
const INSTALL_DEADLINE: Duration = Duration::from_secs(15 * 60);

/// The rack's provider and boot server, once every check passed; every problem found is one
/// usage error listing them all.
pub(crate) async fn prepare(
    target: &Target,
    sim: Option<&SimSession>,
    redactor: &Redactor,
) -> anyhow::Result<NetbootedRack> {
    let Some(settings) = &target.boot_server else {
        anyhow::bail!("a rack's spec without boot_server passed validation");
    };
    let rack = sim.and_then(|s| s.rack.as_ref());
    let credentials = match rack {
        Some(rack) => Ok(rack.credentials.clone()),
        None => BmcCredentials::from_env(redactor),
    };
    let machines = target.machines();
    let timeouts = Timeouts::default();
    let (route53, route53_url) = route53(target, sim.map(|s| &s.handle), redactor).await;
    let (mut problems, dns) = tokio::join!(
        steps::preflight::check_rack(&credentials, &machines, &timeouts),
        steps::preflight::check(
            None,
            Some((&route53, route53_url.as_str())),
            target.desired.settings.dns_zone_id.as_str(),
        ),
    );
    problems.extend(dns);
    let credentials = match credentials {
        Ok(credentials) if problems.is_empty() => credentials,
        _ => return Err(setup_error(&problems).into()),
    };
    let ssh_keys = target
        .desired
        .settings
        .ssh_keys
        .iter()
        .map(|k| k.as_str().to_owned())
        .collect();
    let config = netboot_config(settings, ssh_keys);
    // The demo's machines reach a boot server on this host's loopback.
    let (listen, url) = match rack {
        Some(_) => ("127.0.0.1:0".parse()?, None),
        None => (settings.listen, settings.url.clone()),
    };
    let server = BootServer::start(listen, url, config, Vec::new())
        .await
        .map_err(|e| UserError {
            message: e.to_string(),
            code: EXIT_USAGE,
            hint: Some("check boot_server.listen in the spec".into()),
        })?;
    if let Some(rack) = rack {
        rack.boot_from(server.url());
    }
    let scale = sim.map_or(1.0, |s| s.time_scale);
    let polling = Polling::default();
    let scaled = |d: Duration, floor_ms: u64| d.mul_f64(scale).max(Duration::from_millis(floor_ms));
    Ok(NetbootedRack {
        provider: RedfishProvider {
            credentials,
            timeouts,
            polling: Polling {
                every: scaled(polling.every, 20),
                within: scaled(polling.within, 5_000),
            },
            machines,
        },
        server,
        install_deadline: scaled(INSTALL_DEADLINE, 10_000),
        poll: scaled(Duration::from_secs(2), 20),
    })
}

/// The machine steps are not in the DAG yet: a checked rack stops here.
pub(crate) fn not_provisioned_yet(rack: &NetbootedRack) -> UserError {
    UserError {
        message: format!(
            "provider: redfish: the setup is checked ({} machine(s) answer at their BMCs, the boot server listened at {}), but the machine steps are not in the DAG yet; nothing was changed",
            rack.provider.machines.len(),
            rack.server.url()
        ),
        code: EXIT_USAGE,
        hint: Some(
            "run, plan, destroy and status provision Packet clusters only for now (issue 29)"
                .into(),
        ),
    }
}
