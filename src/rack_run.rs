//! A rack's run (`provider: redfish`): its setup checked before any step, as Packet's is (the
//! BMC credentials, each BMC and its system's MAC, Route53 unless the spec names its API address
//! itself), and the run's boot server started
//! with the machines' provider, handed to the demo's rack under `--sim`.

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
use crate::wiring::{route53, route53_check, setup_error};
use steps::dns::Route53;
use steps::preflight::Problem;

/// How long a powered machine may take to fetch its node's Ignition (a server's POST and
/// firmware take minutes), in simulated time under `--sim`.
const INSTALL_DEADLINE: Duration = Duration::from_secs(15 * 60);

/// The rack's provider and boot server, and the Route53 client, once every check passed;
/// every problem found (with `problems`, those the caller found already) is one usage error
/// listing them all. `time_scale` is that of a simulator started elsewhere.
pub(crate) async fn prepare(
    target: &Target,
    sim: Option<&SimSession>,
    time_scale: Option<f64>,
    mut problems: Vec<Problem>,
    redactor: &Redactor,
) -> anyhow::Result<(NetbootedRack, Route53)> {
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
    let (bmcs, dns) = tokio::join!(
        steps::preflight::check_rack(&credentials, &machines, &timeouts),
        steps::preflight::check(None, route53_check(target, &route53, &route53_url)),
    );
    problems.extend(bmcs);
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
    let scale = sim.map(|s| s.time_scale).or(time_scale).unwrap_or(1.0);
    let polling = Polling::default();
    let scaled = |d: Duration, floor_ms: u64| d.mul_f64(scale).max(Duration::from_millis(floor_ms));
    let rack = NetbootedRack {
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
    };
    Ok((rack, route53))
}
