//! A rack's run (`provider: redfish`): its setup checked before any step, as Packet's is (the
//! BMC credentials, each BMC and its system's MAC, Route53 unless the spec names its API address
//! itself), and the run's boot server started with the machines' provider, handed to the demo's
//! rack under `--sim`. A command that boots nothing (`loko destroy`, `loko plan`, `loko status`)
//! starts no boot server (unless it wipes what it retires).

use std::time::Duration;

use journal::Redactor;
use steps::dns::Route53;
use steps::netboot::BootServer;
use steps::packet::Timeouts;
use steps::preflight::Problem;
use steps::provider::netbooted::{NetbootedRack, netboot_config};
use steps::provider::rack::RedfishProvider;
use steps::redfish::{BmcCredentials, Polling};

use crate::failure::{EXIT_USAGE, UserError};
use crate::setup::{route53, route53_check, setup_error};
use crate::sim_rack::SimRack;
use crate::target::Target;

/// How long a powered machine may take to fetch its node's Ignition (a server's POST and
/// firmware take minutes), in simulated time under `--sim`.
const INSTALL_DEADLINE: Duration = Duration::from_secs(15 * 60);

/// What a command asks of [`prepare`].
pub(crate) struct RackConfig<'a> {
    /// The simulator of `--sim` (its Route53).
    pub(crate) sim: Option<&'a sim::SimHandle>,
    /// The demo's rack (`--sim`): its BMCs' account, and its network boots' server.
    pub(crate) rack: Option<&'a SimRack>,
    /// `--time-scale` of a simulator started elsewhere (under `--sim`, the simulator's counts).
    pub(crate) time_scale: Option<f64>,
    /// Whether the command boots machines: only then is the boot server started.
    pub(crate) boots: bool,
}

/// The rack's provider and (when the command boots machines) boot server, and the Route53
/// client, once every check passed; every problem found (with `problems`, those the caller
/// found already) is one usage error listing them all.
pub(crate) async fn prepare(
    target: &Target,
    config: RackConfig<'_>,
    mut problems: Vec<Problem>,
    redactor: &Redactor,
) -> anyhow::Result<(NetbootedRack, Route53)> {
    let RackConfig {
        sim,
        rack,
        time_scale,
        boots,
    } = config;
    let Some(settings) = &target.boot_server else {
        anyhow::bail!("a rack's spec without boot_server passed validation");
    };
    let credentials = match rack {
        Some(rack) => Ok(rack.credentials.clone()),
        None => BmcCredentials::from_env(redactor),
    };
    let machines = target.machines();
    let timeouts = Timeouts::default();
    let (route53, route53_url) = route53(target, sim, redactor).await;
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
    // A wipe is a network boot too: a command that retires machines with `retire: wipe`
    // (a destroy) serves it.
    let server = match boots || settings.retire == specs::RetirePolicy::Wipe {
        true => Some(boot_server(target, settings, rack).await?),
        false => None,
    };
    let scale = sim.map(|s| s.time_scale()).or(time_scale).unwrap_or(1.0);
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
        retire: settings.retire,
        poll: scaled(Duration::from_secs(2), 20),
    };
    Ok((rack, route53))
}

/// The run's boot server, serving the spec's `boot_server` settings (under `--sim`, on this
/// host's loopback, handed to the demo's rack).
async fn boot_server(
    target: &Target,
    settings: &specs::BootServerSettings,
    rack: Option<&SimRack>,
) -> anyhow::Result<BootServer> {
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
    Ok(server)
}
