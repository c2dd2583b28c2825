//! Before any step: what a run needs from outside, checked at once, every problem reported in one
//! list. A wrong token, a project or hosted zone that does not exist, an endpoint that does not
//! answer and missing AWS credentials are configuration errors: found in seconds, together,
//! rather than one per run after minutes of retries.

use std::time::Duration;

use crate::dns::{DnsError, Route53};
use crate::packet::{PacketClient, PacketError, PacketErrorKind, Timeouts};
use crate::redfish::{
    BmcCredentials, CredentialsError, RedfishClient, RedfishError, RedfishErrorKind,
};

/// How long each check may take: an endpoint that does not answer by then is reported.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// One thing wrong with the setup, and what to do about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub what: String,
    pub hint: String,
}

/// Checks the Packet token and project (one call), and the AWS credentials and the hosted zone
/// (one call: `route53` is the client, its URL and the zone id; `None` for a cluster without a
/// zone), concurrently, each within [`CHECK_TIMEOUT`].
pub async fn check(
    packet: Option<(&PacketClient, &str)>,
    route53: Option<(&Route53, &str, &str)>,
) -> Vec<Problem> {
    let packet_check = async {
        let (client, url) = packet?;
        let result = tokio::time::timeout(CHECK_TIMEOUT, client.check_project()).await;
        match result {
            Ok(Ok(())) => None,
            Ok(Err(e)) => packet_problem(&e, client.project(), url),
            Err(_) => Some(not_answering(
                "the Packet API",
                url,
                "endpoints.packet_api_url",
            )),
        }
    };
    let route53_check = async {
        let (client, url, zone_id) = route53?;
        if let Some(reason) = client.credentials_missing() {
            return Some(Problem {
                what: format!("no AWS credentials for Route53: {}", first_line(reason)),
                hint:
                    "export AWS_PROFILE=<profile>, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
                        .into(),
            });
        }
        match tokio::time::timeout(CHECK_TIMEOUT, client.check_zone(zone_id)).await {
            Ok(Ok(())) => None,
            Ok(Err(e)) => zone_problem(&e, zone_id, url),
            Err(_) => Some(not_answering(
                "Route53",
                url,
                "endpoints.route53_endpoint_url (or AWS_ENDPOINT_URL_ROUTE_53)",
            )),
        }
    };
    let (a, b) = tokio::join!(packet_check, route53_check);
    a.into_iter().chain(b).collect()
}

/// Checks a rack (`provider: redfish`): the BMC credentials are there, and each machine's BMC
/// signs in with them and its system lists the machine's MAC, all machines at once, each within
/// [`CHECK_TIMEOUT`]. A busy or failing BMC (503, 5xx) answers, so it is no problem here: the
/// machine step retries it.
pub async fn check_rack(
    credentials: &Result<BmcCredentials, CredentialsError>,
    machines: &[specs::Machine],
    timeouts: &Timeouts,
) -> Vec<Problem> {
    let credentials = match credentials {
        Ok(credentials) => credentials,
        Err(e) => {
            return vec![Problem {
                what: e.to_string(),
                hint: format!(
                    "export {} and {} (the account every BMC of the rack shares)",
                    crate::redfish::USERNAME_ENV,
                    crate::redfish::PASSWORD_ENV
                ),
            }];
        }
    };
    let mut checks = tokio::task::JoinSet::new();
    for (at, machine) in machines.iter().enumerate() {
        let (machine, credentials, timeouts) =
            (machine.clone(), credentials.clone(), timeouts.clone());
        checks.spawn(async move {
            let check = async {
                let client =
                    RedfishClient::connect(&machine.bmc.url, &credentials, &timeouts).await?;
                let found = client.machine(&machine.bmc.system, &machine.mac).await;
                // Signing out is the BMC's business; a session left expires by itself.
                let _ = client.close().await;
                found.map(drop)
            };
            let problem = match tokio::time::timeout(CHECK_TIMEOUT, check).await {
                Ok(Ok(())) => None,
                Ok(Err(e)) => bmc_problem(&machine, &credentials, &e),
                Err(_) => Some(not_answering(
                    &format!("the BMC of machine {}", machine.name),
                    &machine.bmc.url,
                    &format!("the bmc.url of machine {}", machine.name),
                )),
            };
            (at, problem)
        });
    }
    // In the spec's order, whatever order the BMCs answered in.
    let mut found: Vec<(usize, Problem)> = Vec::new();
    while let Some(joined) = checks.join_next().await {
        match joined {
            Ok((at, Some(problem))) => found.push((at, problem)),
            Ok((_, None)) => {}
            Err(e) => found.push((
                usize::MAX,
                Problem {
                    what: format!("a BMC check failed: {e}"),
                    hint: "run the same command again".into(),
                },
            )),
        }
    }
    found.sort_by_key(|(at, _)| *at);
    found.into_iter().map(|(_, problem)| problem).collect()
}

/// The problem a BMC's answer shows; `None` for a transient one (busy, a 5xx).
fn bmc_problem(
    machine: &specs::Machine,
    credentials: &BmcCredentials,
    e: &RedfishError,
) -> Option<Problem> {
    let name = &machine.name;
    let (what, hint) = match &*e.kind {
        RedfishErrorKind::Busy { .. } | RedfishErrorKind::Server { .. } => return None,
        RedfishErrorKind::Unauthorized => (
            format!(
                "machine {name}: the BMC at {} refuses the user {} (401)",
                machine.bmc.url,
                credentials.username()
            ),
            format!(
                "check {} and {} (or {})",
                crate::redfish::USERNAME_ENV,
                crate::redfish::PASSWORD_ENV,
                crate::redfish::FILE_ENV
            ),
        ),
        RedfishErrorKind::NotFound => (
            format!(
                "machine {name}: the BMC at {} has no system {}",
                machine.bmc.url, machine.bmc.system
            ),
            format!("check bmc.system of machine {name} (the BMC lists /redfish/v1/Systems)"),
        ),
        RedfishErrorKind::WrongMachine { found, .. } => (
            format!(
                "machine {name}: system {} of {} does not list MAC {} (it lists {})",
                machine.bmc.system,
                machine.bmc.url,
                machine.mac,
                if found.is_empty() {
                    "none".to_owned()
                } else {
                    found.join(", ")
                }
            ),
            format!("check the mac and bmc of machine {name}: loko never powers another machine"),
        ),
        RedfishErrorKind::Transport => (
            format!(
                "machine {name}: the BMC at {} does not answer: {}",
                machine.bmc.url,
                first_line(&e.to_string())
            ),
            format!("check the network, or the bmc.url of machine {name}"),
        ),
        _ => (
            format!("machine {name}: {}", first_line(&e.to_string())),
            format!("check the bmc of machine {name} and the BMC credentials"),
        ),
    };
    Some(Problem { what, hint })
}

fn not_answering(what: &str, url: &str, field: &str) -> Problem {
    Problem {
        what: format!(
            "{what} at {url} does not answer within {}s",
            CHECK_TIMEOUT.as_secs()
        ),
        hint: format!("check the network, or {field} in the spec"),
    }
}

/// The problem a failed project read shows; `None` for an answer that proves nothing wrong with
/// the setup (a 5xx, a 429, a garbled body: the endpoint answers, and the steps retry those).
fn packet_problem(e: &PacketError, project: &str, url: &str) -> Option<Problem> {
    Some(match e.kind {
        PacketErrorKind::RateLimited { .. }
        | PacketErrorKind::Server { .. }
        | PacketErrorKind::Decode => return None,
        PacketErrorKind::Unauthorized => Problem {
            what: "the Packet API refuses the token (401)".into(),
            hint: "set PACKET_AUTH_TOKEN (or METAL_AUTH_TOKEN) to an API key of your user".into(),
        },
        PacketErrorKind::NotPacket { status } => Problem {
            what: format!(
                "{url} answered {status} with no Packet error{}",
                e.detail
                    .as_deref()
                    .map(|d| format!(" ({})", first_line(d)))
                    .unwrap_or_default()
            ),
            hint: "does endpoints.packet_api_url end in /metal/v1? (https://api.equinix.com/metal/v1, or the one `loko sim` printed)".into(),
        },
        PacketErrorKind::Forbidden | PacketErrorKind::NotFound => Problem {
            what: format!("project_id {project}: no such project for this token"),
            hint: "check project_id in the spec (Packet console: Project Settings)".into(),
        },
        PacketErrorKind::Transport => Problem {
            what: format!(
                "the Packet API at {url} does not answer: {}",
                e.detail.as_deref().map(first_line).unwrap_or("no detail")
            ),
            hint: "check the network, or endpoints.packet_api_url in the spec".into(),
        },
        _ => Problem {
            what: first_line(&e.to_string()).to_owned(),
            hint: "check endpoints.packet_api_url, the token and project_id".into(),
        },
    })
}

/// The problem a failed zone read shows; `None` for a transient answer (throttling, a 5xx), which
/// the DNS step retries.
fn zone_problem(e: &DnsError, zone: &str, url: &str) -> Option<Problem> {
    let text = e.to_string();
    if text.contains("NoSuchHostedZone") || text.contains("InvalidInput") {
        return Some(Problem {
            what: format!("dns_zone_id {zone}: no such hosted zone"),
            hint: "check dns_zone_id in the spec (aws route53 list-hosted-zones)".into(),
        });
    }
    let refused = [
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "AccessDenied",
        "UnrecognizedClient",
    ];
    if refused.iter().any(|code| text.contains(code)) {
        return Some(Problem {
            what: format!("Route53 refuses the AWS credentials: {}", first_line(&text)),
            hint: "check AWS_PROFILE or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".into(),
        });
    }
    let transient = matches!(
        e,
        DnsError::Api {
            retryable: true,
            ..
        }
    );
    // A dispatch failure (connection refused, no such host) is retryable for a step, but
    // before any step it means the endpoint is wrong or unreachable.
    let unreachable = text.contains("dispatch failure") || text.contains("connect");
    if transient && !unreachable {
        return None;
    }
    Some(Problem {
        what: format!("Route53 at {url}: {}", first_line(&text)),
        hint: "check the network, or endpoints.route53_endpoint_url (or AWS_ENDPOINT_URL_ROUTE_53)"
            .into(),
    })
}

/// The first line of a message, at most 200 characters: one line per problem.
fn first_line(text: &str) -> &str {
    let line = text.lines().next().unwrap_or_default();
    match line.char_indices().nth(200) {
        Some((at, _)) => &line[..at],
        None => line,
    }
}
