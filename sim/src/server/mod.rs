//! The HTTP server: the routes of every API and of `/_sim/`, each API behind the gate every
//! request passes (count, authenticate, rate limit, inject faults; `gate.rs`).
//!
//! The handlers serve from the [`Shared`] state (`shared.rs`); this layer only wires them.

mod gate;
mod packet;
mod route53;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::faults::FaultPlan;
use crate::shared::Shared;
use gate::{Api, gate};

async fn sim_state(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(shared.state()).into_response()
}

async fn get_faults(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(shared.world().faults.plan().clone()).into_response()
}

async fn put_faults(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let plan = match serde_json::from_slice::<FaultPlan>(&body) {
        Ok(plan) => plan,
        Err(e) => {
            return packet::error(
                StatusCode::UNPROCESSABLE_ENTITY,
                vec![format!("invalid fault plan: {e}")],
            );
        }
    };
    match shared.set_faults(plan) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => packet::error(StatusCode::UNPROCESSABLE_ENTITY, vec![e.to_string()]),
    }
}

/// An unknown path: under `/metal/v1` the API's own 404; elsewhere nothing of Packet answers
/// (its API lives under that prefix), so no Packet error body either: a base URL missing the
/// prefix must not read as a missing object.
async fn not_found(uri: axum::http::Uri) -> Response {
    if uri.path().starts_with("/metal/v1/") {
        packet::error(StatusCode::NOT_FOUND, vec!["Not found".to_owned()])
    } else {
        (StatusCode::NOT_FOUND, "404 page not found\n").into_response()
    }
}

/// Every route of the simulator.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let packet_routes = Router::new()
        .route("/metal/v1/projects/{id}", get(packet::get_project))
        .route(
            "/metal/v1/projects/{id}/devices",
            get(packet::list_devices).post(packet::create_device),
        )
        .route(
            "/metal/v1/devices/{id}",
            get(packet::get_device)
                .put(packet::update_device)
                .delete(packet::delete_device),
        )
        .route(
            "/metal/v1/projects/{id}/hardware-reservations",
            get(packet::list_reservations),
        )
        .route(
            "/metal/v1/hardware-reservations/{id}",
            get(packet::get_reservation),
        )
        .route("/metal/v1/facilities", get(packet::list_facilities))
        .route("/metal/v1/locations/metros", get(packet::list_metros))
        .route("/metal/v1/plans", get(packet::list_plans))
        .route(
            "/metal/v1/projects/{id}/plans",
            get(packet::list_project_plans),
        )
        .route(
            "/metal/v1/operating-systems",
            get(packet::list_operating_systems),
        )
        .route_layer(middleware::from_fn_with_state(
            (shared.clone(), Api::Packet),
            gate,
        ));
    let route53_routes = Router::new()
        .route(
            "/2013-04-01/hostedzone",
            get(route53::list_hosted_zones).post(route53::create_hosted_zone),
        )
        .route(
            "/2013-04-01/hostedzonesbyname",
            get(route53::list_hosted_zones_by_name),
        )
        .route("/2013-04-01/hostedzone/{id}", get(route53::get_hosted_zone))
        .route(
            "/2013-04-01/hostedzone/{id}/rrset",
            get(route53::list_resource_record_sets).post(route53::change_resource_record_sets),
        )
        .route(
            "/2013-04-01/hostedzone/{id}/rrset/",
            get(route53::list_resource_record_sets).post(route53::change_resource_record_sets),
        )
        .route("/2013-04-01/change/{id}", get(route53::get_change))
        .route_layer(middleware::from_fn_with_state(
            (shared.clone(), Api::Route53),
            gate,
        ));
    let control = Router::new()
        .route("/_sim/state", get(sim_state))
        .route("/_sim/faults", get(get_faults).put(put_faults));
    packet_routes
        .merge(route53_routes)
        .merge(control)
        .fallback(not_found)
        .with_state(shared)
}
