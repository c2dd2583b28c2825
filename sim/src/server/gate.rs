//! The gate every API request passes: it counts the request under its operation name,
//! authenticates it, applies Packet's rate limit and injects the faults the plan draws for it,
//! in that order, as the real services do.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{packet, route53};
use crate::clock::SimClock;
use crate::shared::Shared;

/// Which API a request belongs to: decides how errors look and how clients authenticate.
#[derive(Clone, Copy, Debug)]
pub(super) enum Api {
    Packet,
    Route53,
}

impl Api {
    fn error(self, status: StatusCode, code: &str, message: &str) -> Response {
        match self {
            Api::Packet => packet::error(status, vec![message.to_owned()]),
            Api::Route53 => {
                let kind = if status.is_server_error() {
                    "Receiver"
                } else {
                    "Sender"
                };
                route53::error_response(status, kind, code, message)
            }
        }
    }

    fn authenticated(self, shared: &Shared, request: &Request) -> bool {
        let headers = request.headers();
        match self {
            Api::Packet => headers
                .get("x-auth-token")
                .is_some_and(|v| v.as_bytes() == shared.token().expose().as_bytes()),
            // Signatures are not checked: any SigV4 header will do, but one must be there.
            Api::Route53 => headers
                .get(header::AUTHORIZATION)
                .is_some_and(|v| v.as_bytes().starts_with(b"AWS4-HMAC-SHA256 ")),
        }
    }
}

/// The operation name of a matched route, as counted and as fault plans name it.
fn operation(method: &Method, path: &str) -> &'static str {
    match (method.as_str(), path) {
        ("GET", "/metal/v1/projects/{id}") => "packet.projects.get",
        ("GET", "/metal/v1/projects/{id}/devices") => "packet.devices.list",
        ("POST", "/metal/v1/projects/{id}/devices") => "packet.devices.create",
        ("GET", "/metal/v1/devices/{id}") => "packet.devices.get",
        ("PUT", "/metal/v1/devices/{id}") => "packet.devices.update",
        ("DELETE", "/metal/v1/devices/{id}") => "packet.devices.delete",
        ("GET", "/metal/v1/projects/{id}/hardware-reservations") => {
            "packet.hardware_reservations.list"
        }
        ("GET", "/metal/v1/hardware-reservations/{id}") => "packet.hardware_reservations.get",
        ("GET", "/metal/v1/facilities") => "packet.facilities.list",
        ("GET", "/metal/v1/locations/metros") => "packet.metros.list",
        ("GET", "/metal/v1/plans" | "/metal/v1/projects/{id}/plans") => "packet.plans.list",
        ("GET", "/metal/v1/operating-systems") => "packet.operating_systems.list",
        ("POST", "/2013-04-01/hostedzone") => "route53.CreateHostedZone",
        ("GET", "/2013-04-01/hostedzone") => "route53.ListHostedZones",
        ("GET", "/2013-04-01/hostedzonesbyname") => "route53.ListHostedZonesByName",
        ("GET", "/2013-04-01/hostedzone/{id}") => "route53.GetHostedZone",
        ("POST", "/2013-04-01/hostedzone/{id}/rrset" | "/2013-04-01/hostedzone/{id}/rrset/") => {
            "route53.ChangeResourceRecordSets"
        }
        ("GET", "/2013-04-01/hostedzone/{id}/rrset" | "/2013-04-01/hostedzone/{id}/rrset/") => {
            "route53.ListResourceRecordSets"
        }
        ("GET", "/2013-04-01/change/{id}") => "route53.GetChange",
        _ => "other",
    }
}

/// Counts, authenticates, rate limits and injects faults, in that order, as the real services
/// do (an unauthenticated request is never rate limited).
pub(super) async fn gate(
    State((shared, api)): State<(Arc<Shared>, Api)>,
    request: Request,
    next: Next,
) -> Response {
    let path = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let operation = operation(request.method(), &path);
    shared
        .world()
        .stats
        .requests
        .entry(operation.to_owned())
        .and_modify(|n| *n += 1)
        .or_insert(1);

    if !api.authenticated(&shared, &request) {
        return match api {
            Api::Packet => api.error(StatusCode::UNAUTHORIZED, "", "Invalid authentication token"),
            Api::Route53 => api.error(
                StatusCode::FORBIDDEN,
                "MissingAuthenticationToken",
                "Missing Authentication Token",
            ),
        };
    }

    let (rate, decision) = {
        let mut world = shared.world();
        let rate = match api {
            Api::Packet => Some(world.rate_window.take(shared.rate_limit(), Instant::now())),
            Api::Route53 => None,
        };
        let decision = world.faults.decide(operation);
        if rate.as_ref().is_some_and(|r| !r.allowed) || decision.rate_limited.is_some() {
            world.stats.rate_limited += 1;
        }
        for kind in decision.kinds() {
            *world.stats.injected.entry(kind.to_owned()).or_default() += 1;
        }
        (rate, decision)
    };
    let rate_headers = |response: &mut Response| {
        if let Some(rate) = &rate {
            let headers = response.headers_mut();
            headers.insert(
                "x-ratelimit-limit",
                HeaderValue::from(shared.rate_limit().requests),
            );
            headers.insert("x-ratelimit-remaining", HeaderValue::from(rate.remaining));
            headers.insert(
                "x-ratelimit-reset",
                HeaderValue::from(sim_secs(shared.clock(), rate.reset)),
            );
        }
    };

    if !decision.latency.is_zero() {
        tokio::select! {
            () = tokio::time::sleep(decision.latency) => {}
            () = shared.stopping() => {
                return api.error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    "the simulator is shutting down",
                );
            }
        }
    }
    let retry_after = match (&rate, decision.rate_limited) {
        (Some(rate), _) if !rate.allowed => Some(sim_secs(shared.clock(), rate.reset)),
        (_, Some(secs)) => Some(secs),
        _ => None,
    };
    if let Some(retry_after) = retry_after {
        let mut response = match api {
            Api::Packet => api.error(StatusCode::TOO_MANY_REQUESTS, "", "Too Many Requests"),
            // Route53 throttles with a 400 whose code SDKs retry on.
            Api::Route53 => api.error(StatusCode::BAD_REQUEST, "Throttling", "Rate exceeded"),
        };
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        rate_headers(&mut response);
        return response;
    }
    if decision.server_error {
        let mut response = api.error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalFailure",
            "Internal Server Error",
        );
        rate_headers(&mut response);
        return response;
    }

    // Only Packet answers tell device states; Route53 requests do not wait for machines.
    let packet = matches!(api, Api::Packet);
    if packet {
        shared.sync_nodes(false).await;
    }
    let mut response = next.run(request).await;
    // Devices that the request made active (or deleted) get their machines before the client
    // can act on the answer.
    if packet {
        shared.sync_nodes(false).await;
    }

    if decision.lost_response {
        tracing::info!(
            operation,
            "fault: the answer of a completed request is lost"
        );
        return (
            StatusCode::BAD_GATEWAY,
            [(header::CONTENT_TYPE, "text/html")],
            "<html><body><h1>502 Bad Gateway</h1></body></html>",
        )
            .into_response();
    }
    if matches!(api, Api::Packet) && (decision.malformed || decision.truncated) {
        response = break_body(response, decision.truncated).await;
    }
    rate_headers(&mut response);
    response
}

/// Replaces a JSON body by broken JSON, or by its first half.
async fn break_body(response: Response, truncate: bool) -> Response {
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let broken = if truncate {
        Bytes::copy_from_slice(&bytes[..bytes.len() / 2])
    } else {
        Bytes::from_static(b"{\"errors\": [\"unexpected\"],, \"devices\": [{\"id\": }")
    };
    let mut response = Response::from_parts(parts, Body::from(broken));
    response.headers_mut().remove(header::CONTENT_LENGTH);
    response
}

/// Whole simulated seconds (rounded up) that `real` real time stands for: what a header that
/// counts seconds says, in the clock every other time of the simulator is in.
fn sim_secs(clock: SimClock, real: Duration) -> u64 {
    let sim = clock.to_sim(real);
    let secs = u64::try_from(sim.num_seconds()).unwrap_or(0);
    secs + u64::from(sim.subsec_nanos() > 0)
}
