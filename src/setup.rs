//! What the setup checks of every provider share (Packet's in `wiring`, a rack's in
//! `rack_run`): the Route53 client they check, and the one usage error listing every problem
//! found. Apart from both, so that neither imports the other for them.

use journal::Redactor;
use steps::dns::Route53;
use steps::preflight::Problem;

use crate::failure::{EXIT_USAGE, UserError};
use crate::target::Target;

/// The Route53 client and its URL: the simulator's, or what the spec and environment name.
pub(crate) async fn route53(
    target: &Target,
    sim: Option<&sim::SimHandle>,
    redactor: &Redactor,
) -> (Route53, String) {
    if let Some(sim) = sim {
        let url = sim.route53_url();
        let client =
            Route53::with_static_credentials(&url, "loko-sim", "loko-sim-secret", redactor).await;
        return (client, url);
    }
    let endpoint = target
        .endpoints
        .route53_endpoint_url
        .clone()
        .or_else(|| std::env::var(steps::dns::ENDPOINT_ENV).ok());
    let client = Route53::from_env(endpoint.as_deref(), redactor).await;
    (
        client,
        endpoint.unwrap_or_else(|| "https://route53.amazonaws.com".into()),
    )
}

/// The problems of the setup as one error: every one on its line with what to do.
pub(crate) fn setup_error(problems: &[Problem]) -> UserError {
    let list: String = problems
        .iter()
        .map(|p| format!("\n  - {}\n    ({})", p.what, p.hint))
        .collect();
    UserError {
        message: format!(
            "{} problem(s) with the setup; nothing was changed:{list}",
            problems.len()
        ),
        code: EXIT_USAGE,
        hint: Some("fix them and run the same command again".into()),
    }
}

/// What the preflight checks of Route53 (the client, its URL, the zone id), for a cluster with
/// a zone; none for a spec that names its API address itself, so that no AWS credential is
/// asked for.
pub(crate) fn route53_check<'a>(
    target: &'a Target,
    route53: &'a Route53,
    url: &'a str,
) -> Option<(&'a Route53, &'a str, &'a str)> {
    let (_, zone_id) = target.desired.settings.route53()?;
    Some((route53, url, zone_id.as_str()))
}
