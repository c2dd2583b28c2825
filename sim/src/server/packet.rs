//! The Packet API's HTTP handlers and JSON shapes (`/metal/v1/...`).
//!
//! Shapes follow the OpenAPI document in `sim/openapi/`; the contract tests validate every
//! response against it. Authentication, rate limiting and faults happen before these handlers,
//! in the gate (`gate.rs`).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::clock::Timings;
use crate::packet::catalog;
use crate::packet::model::{
    CreateDevice, Device, PacketCloud, PacketError, Reservation, Status, UpdateDevice,
};
use crate::shared::Shared;

const BASE: &str = "/metal/v1";
const DEFAULT_PER_PAGE: usize = 10;
const MAX_PER_PAGE: usize = 1000;

impl IntoResponse for PacketError {
    fn into_response(self) -> Response {
        match self {
            PacketError::NotFound(m) => error(StatusCode::NOT_FOUND, vec![m]),
            PacketError::Forbidden(m) => error(StatusCode::FORBIDDEN, vec![m]),
            PacketError::Unprocessable(ms) => error(StatusCode::UNPROCESSABLE_ENTITY, ms),
        }
    }
}

/// An error the way the API reports them: `{"errors": [...]}`.
pub(crate) fn error(status: StatusCode, messages: Vec<String>) -> Response {
    (status, Json(json!({ "errors": messages }))).into_response()
}

type Reply = Result<Response, PacketError>;

pub(crate) async fn get_project(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Reply {
    let now = shared.now();
    let world = shared.world();
    let project = world.packet.project(parse_project(&id)?)?;
    let devices = world
        .packet
        .list_devices(project.id, None, None, now, shared.timings())?
        .into_iter()
        .map(|d| json!({ "href": format!("{BASE}/devices/{}", d.id) }))
        .collect::<Vec<_>>();
    let body = json!({
        "id": project.id,
        "name": project.name,
        "href": format!("{BASE}/projects/{}", project.id),
        "created_at": timestamp(project.created_at),
        "updated_at": timestamp(project.created_at),
        "type": "default",
        "backend_transfer_enabled": false,
        "customdata": {},
        "network_status": {},
        "max_devices": {},
        "tags": [],
        "devices": devices,
        "members": [],
        "memberships": [],
        "invitations": [],
        "ssh_keys": [],
        "volumes": [],
    });
    Ok(Json(body).into_response())
}

pub(crate) async fn list_devices(State(shared): State<Arc<Shared>>, list: ProjectList) -> Reply {
    let include = Include::from_query(&list.query);
    let now = shared.now();
    let t = shared.timings();
    let world = shared.world();
    let devices = world.packet.list_devices(
        list.project_id,
        list.query.get("tag").map(String::as_str),
        list.query.get("hostname").map(String::as_str),
        now,
        t,
    )?;
    Ok(list.answer("devices", "devices", &devices, |d| {
        device_json(d, &world.packet, now, t, &include)
    }))
}

pub(crate) async fn create_device(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
    body: Bytes,
) -> Reply {
    let project_id = parse_project(&id)?;
    let include = Include::from_query(&query);
    let input: CreateDevice = parse_body(&body)?;
    let t = shared.timings();
    shared
        .mutate(|world, now| {
            let faults = world.faults.plan().devices.clone();
            let roll = world.faults.roll();
            let device_id = world
                .packet
                .create_device(project_id, input, &faults, roll, now, t)?;
            let device = &world.packet.devices[&device_id];
            tracing::info!(device = %device_id, hostname = %device.hostname, fate = ?device.fate, "device created");
            Ok((
                StatusCode::CREATED,
                Json(device_json(device, &world.packet, now, t, &include)),
            )
                .into_response())
        })
        .await
}

pub(crate) async fn get_device(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Reply {
    let include = Include::from_query(&query);
    let now = shared.now();
    let t = shared.timings();
    let world = shared.world();
    let device = world.packet.visible_device(&id, now, t)?;
    Ok(Json(device_json(device, &world.packet, now, t, &include)).into_response())
}

pub(crate) async fn update_device(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
    body: Bytes,
) -> Reply {
    let include = Include::from_query(&query);
    let input: UpdateDevice = parse_body(&body)?;
    let t = shared.timings();
    shared
        .mutate(|world, now| {
            let uuid = world.packet.update_device(&id, input, now, t)?;
            let device = &world.packet.devices[&uuid];
            Ok(Json(device_json(device, &world.packet, now, t, &include)).into_response())
        })
        .await
}

pub(crate) async fn delete_device(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Reply {
    let hostname = shared
        .mutate(|world, now| {
            world.packet.delete_device(&id, now, shared.timings())?;
            Ok(world
                .packet
                .devices
                .values()
                .find(|d| d.id.to_string() == id)
                .map(|d| d.hostname.clone())
                .unwrap_or_default())
        })
        .await?;
    // Beside the apiservers' changes, so a test reads a drain's order against the delete.
    shared.api_events().record(
        "delete",
        format!("packet/devices/{hostname}"),
        "packet",
        id.clone(),
    );
    // The machine goes down as soon as deprovisioning starts, not at the next tick.
    shared.sync_nodes(false).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn list_reservations(
    State(shared): State<Arc<Shared>>,
    list: ProjectList,
) -> Reply {
    let now = shared.now();
    let t = shared.timings();
    let world = shared.world();
    world.packet.project(list.project_id)?;
    let provisionable_only = list.query.get("provisionable").is_some_and(|v| v == "only");
    let mut reservations: Vec<&Reservation> = world
        .packet
        .reservations
        .values()
        .filter(|r| r.project_id == list.project_id)
        .filter(|r| !provisionable_only || r.provisionable(&world.packet.devices, now, t))
        .collect();
    reservations.sort_by_key(|r| (r.created_at, r.id));
    Ok(list.answer(
        "hardware-reservations",
        "hardware_reservations",
        &reservations,
        |r| reservation_json(r, &world.packet, now, t),
    ))
}

pub(crate) async fn get_reservation(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Reply {
    let now = shared.now();
    let world = shared.world();
    let reservation = Uuid::parse_str(&id)
        .ok()
        .and_then(|id| world.packet.reservations.get(&id))
        .ok_or_else(|| PacketError::NotFound("Not found".to_owned()))?;
    Ok(Json(reservation_json(
        reservation,
        &world.packet,
        now,
        shared.timings(),
    ))
    .into_response())
}

pub(crate) async fn list_facilities() -> Json<Value> {
    catalog_list(
        "facilities",
        catalog::FACILITIES,
        catalog::Facility::to_json,
    )
}

pub(crate) async fn list_metros() -> Json<Value> {
    catalog_list("metros", catalog::METROS, catalog::Metro::to_json)
}

pub(crate) async fn list_plans() -> Json<Value> {
    catalog_list("plans", catalog::PLANS, catalog::PlanEntry::to_json)
}

pub(crate) async fn list_project_plans(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Reply {
    shared.world().packet.project(parse_project(&id)?)?;
    Ok(list_plans().await.into_response())
}

pub(crate) async fn list_operating_systems() -> Json<Value> {
    catalog_list(
        "operating_systems",
        catalog::OPERATING_SYSTEMS,
        catalog::OperatingSystem::to_json,
    )
}

/// A list of the fixed catalog: `{"<key>": [every entry]}`.
fn catalog_list<T>(key: &str, entries: &[T], to_json: fn(&T) -> Value) -> Json<Value> {
    let items: Vec<Value> = entries.iter().map(to_json).collect();
    Json(json!({ key: items }))
}

/// Unknown and malformed project ids both answer 404, as the API does.
fn parse_project(id: &str) -> Result<Uuid, PacketError> {
    Uuid::parse_str(id).map_err(|_| PacketError::NotFound("Not found".to_owned()))
}

/// Parses a JSON request body; anything that is not the expected object is a 422.
fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, PacketError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| PacketError::Unprocessable(vec![format!("request body is not JSON: {e}")]))?;
    if !value.is_object() {
        return Err(PacketError::Unprocessable(vec![
            "request body must be a JSON object".to_owned(),
        ]));
    }
    serde_json::from_value(value)
        .map_err(|e| PacketError::Unprocessable(vec![format!("invalid request body: {e}")]))
}

/// The `include` parameter: related objects to embed whole instead of as `{"href": ...}`.
struct Include {
    include: Vec<String>,
    /// `exclude`: an excluded object comes back as its `href` only, an excluded plain
    /// attribute (such as the multi-kilobyte `userdata`) not at all.
    exclude: Vec<String>,
}

impl Include {
    fn from_query(query: &BTreeMap<String, String>) -> Include {
        let names = |key: &str| -> Vec<String> {
            query
                .get(key)
                .map_or("", String::as_str)
                .split(',')
                .map(|n| n.trim().to_owned())
                .filter(|n| !n.is_empty())
                .collect()
        };
        Include {
            include: names("include"),
            exclude: names("exclude"),
        }
    }

    fn has(&self, name: &str) -> bool {
        self.include.iter().any(|n| n == name)
    }

    fn apply_exclude(&self, body: &mut Value) {
        let Some(fields) = body.as_object_mut() else {
            return;
        };
        for name in &self.exclude {
            match fields.get(name) {
                Some(Value::Object(object)) if object.contains_key("href") => {
                    let href = object["href"].clone();
                    fields.insert(name.clone(), json!({ "href": href }));
                }
                Some(_) => {
                    fields.remove(name);
                }
                None => {}
            }
        }
    }
}

/// A list request under `/projects/{id}/...`: the project, the page asked for, and the whole
/// query (the list's filters).
pub(crate) struct ProjectList {
    project_id: Uuid,
    page: Page,
    query: BTreeMap<String, String>,
}

impl<S: Send + Sync> FromRequestParts<S> for ProjectList {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        let Path(id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let Query(query) = Query::<BTreeMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let project_id = parse_project(&id).map_err(IntoResponse::into_response)?;
        let page = Page::from_query(&query).map_err(IntoResponse::into_response)?;
        Ok(ProjectList {
            project_id,
            page,
            query,
        })
    }
}

impl ProjectList {
    /// This page of `items` as the API lists them under `/projects/{id}/<path>`:
    /// `{"<key>": [...], "meta": {...}}`.
    fn answer<T>(
        &self,
        path: &str,
        key: &str,
        items: &[T],
        to_json: impl Fn(&T) -> Value,
    ) -> Response {
        let href = format!("{BASE}/projects/{}/{path}", self.project_id);
        let (items, meta) = self.page.slice(items, &href);
        let items: Vec<Value> = items.iter().map(to_json).collect();
        Json(json!({ key: items, "meta": meta })).into_response()
    }
}

/// `page` and `per_page` of a list request, and its other parameters (filters), which the
/// `meta` links keep so that following `next` stays on the filtered list.
struct Page {
    page: usize,
    per_page: usize,
    filters: String,
}

impl Page {
    fn from_query(query: &BTreeMap<String, String>) -> Result<Page, PacketError> {
        let number = |key: &str, default: usize| -> Result<usize, PacketError> {
            match query.get(key) {
                None => Ok(default),
                Some(v) => v.parse::<usize>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                    PacketError::Unprocessable(vec![format!(
                        "{key} must be a positive integer, got {v:?}"
                    )])
                }),
            }
        };
        let filters = query
            .iter()
            .filter(|(k, _)| *k != "page" && *k != "per_page")
            .map(|(k, v)| format!("&{}={}", query_escape(k), query_escape(v)))
            .collect();
        Ok(Page {
            page: number("page", 1)?,
            per_page: number("per_page", DEFAULT_PER_PAGE)?.min(MAX_PER_PAGE),
            filters,
        })
    }

    /// The items of this page and the `meta` object describing the pages.
    fn slice<'a, T>(&self, items: &'a [T], href: &str) -> (&'a [T], Value) {
        let total = items.len();
        let last_page = total.div_ceil(self.per_page).max(1);
        let start = (self.page - 1).saturating_mul(self.per_page).min(total);
        let end = start.saturating_add(self.per_page).min(total);
        let link = |page: usize| json!({ "href": format!("{href}?page={page}&per_page={}{}", self.per_page, self.filters) });
        // The real API always sends `next` and `previous`, null where there is no such page;
        // clients test them against null rather than for presence.
        let next = if self.page < last_page {
            link(self.page + 1)
        } else {
            Value::Null
        };
        let previous = if self.page > 1 {
            link((self.page - 1).min(last_page))
        } else {
            Value::Null
        };
        let meta = json!({
            "first": link(1),
            "last": link(last_page),
            "next": next,
            "previous": previous,
            "self": link(self.page),
            "current_page": self.page,
            "last_page": last_page,
            "total": total,
        });
        (&items[start..end], meta)
    }
}

/// Percent-encodes a query component (RFC 3986 unreserved characters stay).
fn query_escape(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~:".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

pub(crate) fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn device_json(
    d: &Device,
    cloud: &PacketCloud,
    now: DateTime<Utc>,
    t: &Timings,
    include: &Include,
) -> Value {
    let status = d.status(now, t);
    let facility = catalog::facility(&d.facility).unwrap_or(&catalog::FACILITIES[0]);
    let href = format!("{BASE}/devices/{}", d.id);
    let project_href = json!({ "href": format!("{BASE}/projects/{}", d.project_id) });
    let mut body = json!({
        "id": d.id,
        "short_id": d.short_id(),
        "href": href,
        "hostname": d.hostname,
        "state": status.api_state().unwrap_or("deleted"),
        "tags": d.tags,
        "userdata": d.userdata,
        "customdata": d.customdata,
        "locked": d.locked,
        "billing_cycle": d.billing_cycle,
        "always_pxe": d.always_pxe,
        "spot_instance": false,
        "network_frozen": false,
        "created_at": timestamp(d.created_at),
        "updated_at": timestamp(d.updated_at),
        "plan": catalog::plan(&d.plan).map(catalog::PlanEntry::to_json),
        "operating_system": catalog::operating_system(&d.operating_system).map(catalog::OperatingSystem::to_json),
        "facility": facility.to_json(),
        "metro": facility.metro().to_json(),
        "project": project_href,
        "project_lite": project_href,
        "ip_addresses": ip_addresses(d, cloud),
        "sos": format!("{}@sos.{}.platformequinix.com", d.id, d.facility),
        "switch_uuid": &d.id.simple().to_string()[..8],
        "actions": [],
        "volumes": [],
        "network_ports": [],
        "provisioning_events": [],
    });
    if let Some(description) = &d.description {
        body["description"] = json!(description);
    }
    if let Some(url) = &d.ipxe_script_url {
        body["ipxe_script_url"] = json!(url);
    }
    // As the API: a reference unless the client asked for the object with `include`.
    if let Some(r) = d.hardware_reservation_id {
        body["hardware_reservation"] = match cloud.reservations.get(&r) {
            Some(reservation) if include.has("hardware_reservation") => {
                reservation_json(reservation, cloud, now, t)
            }
            _ => json!({ "href": format!("{BASE}/hardware-reservations/{r}") }),
        };
    }
    if status == Status::Provisioning {
        body["provisioning_percentage"] = json!(d.provisioning_percentage(now, t));
    }
    include.apply_exclude(&mut body);
    body
}

/// Public IPv4, private IPv4 and public IPv6, as `/31`, `/31` and `/127` like Packet assigns.
fn ip_addresses(d: &Device, cloud: &PacketCloud) -> Value {
    let metro = catalog::facility(&d.facility).map(|f| f.metro().to_json());
    let assigned_to = json!({ "href": format!("{BASE}/devices/{}", d.id) });
    let public_network = Ipv4Addr::from(u32::from(d.public_ipv4) - 1);
    let v6_network = std::net::Ipv6Addr::from(u128::from(d.public_ipv6) - 1);
    let private_parent = cloud
        .projects
        .get(&d.project_id)
        .map(|p| (p.private_block, p.private_prefix));
    let entries = [
        (
            4,
            true,
            d.public_ipv4.to_string(),
            public_network.to_string(),
            31,
            "255.255.255.254",
        ),
        (
            4,
            false,
            d.private_ipv4.to_string(),
            d.private_block.to_string(),
            31,
            "255.255.255.254",
        ),
        (
            6,
            true,
            d.public_ipv6.to_string(),
            v6_network.to_string(),
            127,
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe",
        ),
    ];
    let ips: Vec<Value> = entries
        .into_iter()
        .enumerate()
        .map(|(i, (family, public, address, network, cidr, netmask))| {
            // Stable per device and index, so the same address keeps its id across reads.
            let id = Uuid::from_u128(d.id.as_u128() ^ (i as u128 + 1));
            let mut ip = json!({
                "id": id,
                "href": format!("{BASE}/ips/{id}"),
                "address_family": family,
                "public": public,
                "management": true,
                "manageable": true,
                "enabled": true,
                "global_ip": false,
                "address": address,
                "network": network,
                "gateway": network,
                "cidr": cidr,
                "netmask": netmask,
                "created_at": timestamp(d.created_at),
                "assigned_to": assigned_to,
            });
            if let Some(metro) = &metro {
                ip["metro"] = metro.clone();
            }
            if !public && let Some((block, prefix)) = private_parent {
                let netmask = Ipv4Addr::from(u32::MAX << (32 - u32::from(prefix.clamp(1, 32))));
                ip["parent_block"] = json!({
                    "network": block.to_string(),
                    "netmask": netmask.to_string(),
                    "cidr": prefix,
                    "href": format!("{BASE}/ips/{}", d.project_id),
                });
            }
            ip
        })
        .collect();
    Value::Array(ips)
}

fn reservation_json(
    r: &Reservation,
    cloud: &PacketCloud,
    now: DateTime<Utc>,
    t: &Timings,
) -> Value {
    let mut body = json!({
        "id": r.id,
        "short_id": &r.id.simple().to_string()[..8],
        "href": format!("{BASE}/hardware-reservations/{}", r.id),
        "created_at": timestamp(r.created_at),
        "provisionable": r.provisionable(&cloud.devices, now, t),
        "spare": false,
        "need_of_service": false,
        "plan": catalog::plan(&r.plan).map(catalog::PlanEntry::to_json),
        "facility": catalog::facility(&r.facility).map(catalog::Facility::to_json),
        "project": { "href": format!("{BASE}/projects/{}", r.project_id) },
        "switch_uuid": &r.id.simple().to_string()[24..],
    });
    if let Some(device) = r.live_device(&cloud.devices, now, t) {
        body["device"] = json!({ "id": device, "href": format!("{BASE}/devices/{device}") });
    }
    body
}
