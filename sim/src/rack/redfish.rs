//! The rack's BMCs over HTTP: the part of DMTF Redfish that provisioning uses, shaped as
//! sushy-tools' emulator answers it (its fake driver is the peer the client is held against),
//! where the schema is stricter than sushy-tools, the schema's way:
//!
//! - a `BootSourceOverrideEnabled` of `Once` is kept and spent by the next boot (sushy-tools
//!   always reports `Continuous`);
//! - a `BootSourceOverrideTarget` outside its allowable values is 400
//!   `PropertyValueNotInList` (sushy-tools accepts any), a `ResetType` outside them 400
//!   `ActionParameterNotSupported` (sushy-tools: 501).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use serde_json::{Value, json};

use crate::faults::BmcFault;

use super::model::{Machine, RackInner};

const SYSTEMS: &str = "/redfish/v1/Systems";
const BOOT_TARGETS: [&str; 5] = ["None", "Pxe", "Hdd", "Cd", "UefiHttp"];
const BOOT_ENABLED: [&str; 3] = ["Once", "Continuous", "Disabled"];
/// The reset types sushy-tools' fake driver carries out (it lists `Nmi` but refuses it).
const RESET_TYPES: [&str; 6] = [
    "On",
    "ForceOn",
    "ForceOff",
    "GracefulShutdown",
    "GracefulRestart",
    "ForceRestart",
];

type Rack = State<Arc<RackInner>>;

pub(super) fn router(inner: Arc<RackInner>) -> Router {
    Router::new()
        .route("/redfish/v1", get(service_root))
        .route("/redfish/v1/", get(service_root))
        .route(SYSTEMS, get(systems))
        .route("/redfish/v1/Systems/{id}", get(system).patch(patch_boot))
        .route(
            "/redfish/v1/Systems/{id}/EthernetInterfaces",
            get(interfaces),
        )
        .route(
            "/redfish/v1/Systems/{id}/EthernetInterfaces/{nic}",
            get(interface),
        )
        .route(
            "/redfish/v1/Systems/{id}/Actions/ComputerSystem.Reset",
            post(reset),
        )
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                "ResourceMissingAtURI",
                "no such resource",
            )
        })
        .with_state(inner)
}

/// A Redfish error body (`Base` message registry).
fn error(status: StatusCode, id: &str, message: &str) -> Response {
    let body = json!({"error": {
        "code": format!("Base.1.8.{id}"),
        "message": message,
        "@Message.ExtendedInfo": [{
            "@odata.type": "#Message.v1_1_1.Message",
            "MessageId": format!("Base.1.8.{id}"),
            "Message": message,
        }],
    }});
    (status, axum::Json(body)).into_response()
}

/// The service root is readable without credentials (the Redfish specification), the rest not.
async fn service_root() -> Response {
    axum::Json(json!({
        "@odata.type": "#ServiceRoot.v1_5_0.ServiceRoot",
        "@odata.id": "/redfish/v1",
        "Id": "RedfishService",
        "Name": "Root Service",
        "RedfishVersion": "1.6.0",
        "Systems": {"@odata.id": SYSTEMS},
    }))
    .into_response()
}

/// Checks the machine's faults, then the credentials (HTTP basic auth).
/// `None` when the request may go on; otherwise the refusal.
fn gate(rack: &RackInner, headers: &HeaderMap, id: Option<&str>) -> Option<Response> {
    let fault = id.and_then(|id| rack.fault_of_request(id));
    match fault {
        Some(BmcFault::Unauthorized) => return Some(unauthorized()),
        Some(BmcFault::Unavailable) => {
            let mut response = error(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceTemporarilyUnavailable",
                "the BMC is busy; retry later",
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
            return Some(response);
        }
        _ => {}
    }
    let expected = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", rack.config.username, rack.config.password));
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "));
    (given != Some(expected.as_str())).then(unauthorized)
}

fn unauthorized() -> Response {
    let mut response = error(
        StatusCode::UNAUTHORIZED,
        "InsufficientPrivilege",
        "authentication required",
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Basic realm=\"redfish\""),
    );
    response
}

fn missing(id: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "ResourceMissingAtURI",
        &format!("system {id} was not found"),
    )
}

async fn systems(State(rack): Rack, headers: HeaderMap) -> Response {
    if let Some(refused) = gate(&rack, &headers, None) {
        return refused;
    }
    let members: Vec<Value> = rack
        .machines()
        .keys()
        .map(|id| json!({"@odata.id": format!("{SYSTEMS}/{id}")}))
        .collect();
    axum::Json(json!({
        "@odata.type": "#ComputerSystemCollection.ComputerSystemCollection",
        "@odata.id": SYSTEMS,
        "Name": "Computer System Collection",
        "Members@odata.count": members.len(),
        "Members": members,
    }))
    .into_response()
}

fn computer_system(machine: &Machine) -> Value {
    let id = &machine.spec.system_id;
    let url = format!("{SYSTEMS}/{id}");
    json!({
        "@odata.type": "#ComputerSystem.v1_13_0.ComputerSystem",
        "@odata.id": url,
        "Id": id,
        "Name": machine.spec.name,
        "UUID": id,
        "Manufacturer": "loko simulator",
        "Status": {"State": "Enabled", "Health": "OK"},
        "PowerState": if machine.powered { "On" } else { "Off" },
        "Boot": {
            "BootSourceOverrideEnabled": machine.boot.enabled,
            "BootSourceOverrideTarget": machine.boot.target,
            "BootSourceOverrideTarget@Redfish.AllowableValues": BOOT_TARGETS,
            "BootSourceOverrideMode": "UEFI",
        },
        "EthernetInterfaces": {"@odata.id": format!("{url}/EthernetInterfaces")},
        "Actions": {
            "#ComputerSystem.Reset": {
                "target": format!("{url}/Actions/ComputerSystem.Reset"),
                "ResetType@Redfish.AllowableValues": RESET_TYPES,
            }
        },
    })
}

async fn system(State(rack): Rack, Path(id): Path<String>, headers: HeaderMap) -> Response {
    if let Some(refused) = gate(&rack, &headers, Some(&id)) {
        return refused;
    }
    match rack.machines().get(&id) {
        Some(machine) => axum::Json(computer_system(machine)).into_response(),
        None => missing(&id),
    }
}

async fn interfaces(State(rack): Rack, Path(id): Path<String>, headers: HeaderMap) -> Response {
    if let Some(refused) = gate(&rack, &headers, Some(&id)) {
        return refused;
    }
    let machines = rack.machines();
    let Some(machine) = machines.get(&id) else {
        return missing(&id);
    };
    let url = format!("{SYSTEMS}/{id}/EthernetInterfaces");
    axum::Json(json!({
        "@odata.type": "#EthernetInterfaceCollection.EthernetInterfaceCollection",
        "@odata.id": url,
        "Name": "Ethernet Interface Collection",
        "Members@odata.count": 1,
        "Members": [{"@odata.id": format!("{url}/{}", machine.spec.mac)}],
    }))
    .into_response()
}

async fn interface(
    State(rack): Rack,
    Path((id, nic)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = gate(&rack, &headers, Some(&id)) {
        return refused;
    }
    let machines = rack.machines();
    let Some(machine) = machines.get(&id).filter(|m| m.spec.mac == nic) else {
        return missing(&format!("{id} interface {nic}"));
    };
    let mac = &machine.spec.mac;
    axum::Json(json!({
        "@odata.type": "#EthernetInterface.v1_0_2.EthernetInterface",
        "@odata.id": format!("{SYSTEMS}/{id}/EthernetInterfaces/{mac}"),
        "Id": mac,
        "Name": format!("NIC {mac}"),
        "Status": {"State": "Enabled", "Health": "OK"},
        "PermanentMACAddress": mac,
        "MACAddress": mac,
    }))
    .into_response()
}

/// A refused request's answer, boxed as it travels through `?` (a `Response` is large).
struct Refused(Box<Response>);

impl From<Response> for Refused {
    fn from(response: Response) -> Self {
        Refused(Box::new(response))
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        *self.0
    }
}

/// A write's answer: done, or refused with a Redfish error.
type Written = Result<StatusCode, Refused>;

/// A write to one system (`PATCH`, an action): its id and its JSON body, once the gate let it
/// through. The gate comes before the body is read, as a BMC checks credentials first.
struct Write {
    id: String,
    body: Value,
}

impl FromRequest<Arc<RackInner>> for Write {
    type Rejection = Refused;

    async fn from_request(request: Request, rack: &Arc<RackInner>) -> Result<Self, Refused> {
        let (mut parts, body) = request.into_parts();
        let Path(id) = Path::<String>::from_request_parts(&mut parts, rack)
            .await
            .map_err(IntoResponse::into_response)?;
        if let Some(refused) = gate(rack, &parts.headers, Some(&id)) {
            return Err(refused.into());
        }
        let bytes = Bytes::from_request(Request::from_parts(parts, body), rack)
            .await
            .map_err(IntoResponse::into_response)?;
        let body = serde_json::from_slice(&bytes).map_err(|e| {
            error(
                StatusCode::BAD_REQUEST,
                "MalformedJSON",
                &format!("the body is not JSON: {e}"),
            )
        })?;
        Ok(Write { id, body })
    }
}

/// `PATCH` of `Boot`: the override's target and how long it holds.
async fn patch_boot(State(rack): Rack, Write { id, body }: Write) -> Written {
    let boot = body.get("Boot").and_then(Value::as_object).ok_or_else(|| {
        error(
            StatusCode::BAD_REQUEST,
            "PropertyMissing",
            "only Boot can be patched here",
        )
    })?;
    set_boot(&rack, &id, boot)?;
    rack.save().await;
    Ok(StatusCode::NO_CONTENT)
}

/// The override's properties of a `Boot` PATCH, each checked against its allowable values.
fn set_boot(
    rack: &RackInner,
    id: &str,
    boot: &serde_json::Map<String, Value>,
) -> Result<(), Refused> {
    let mut machines = rack.machines();
    let Some(machine) = machines.get_mut(id) else {
        return Err(missing(id).into());
    };
    for (property, allowed) in [
        ("BootSourceOverrideTarget", &BOOT_TARGETS[..]),
        ("BootSourceOverrideEnabled", &BOOT_ENABLED[..]),
    ] {
        let Some(value) = boot.get(property) else {
            continue;
        };
        let Some(value) = value.as_str().filter(|v| allowed.contains(v)) else {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "PropertyValueNotInList",
                &format!("{value} is not an allowable value of {property}"),
            )
            .into());
        };
        match property {
            "BootSourceOverrideTarget" => machine.boot.target = value.to_owned(),
            _ => machine.boot.enabled = value.to_owned(),
        }
    }
    machine.events.push(format!(
        "boot override {} {}",
        machine.boot.target, machine.boot.enabled
    ));
    Ok(())
}

/// `#ComputerSystem.Reset`: accepted (204), effective after the power delay.
async fn reset(State(rack): Rack, Write { id, body }: Write) -> Written {
    if !rack.machines().contains_key(&id) {
        return Err(missing(&id).into());
    }
    let reset_type = body
        .get("ResetType")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            error(
                StatusCode::BAD_REQUEST,
                "ActionParameterMissing",
                "ResetType is required",
            )
        })?;
    if !RESET_TYPES.contains(&reset_type) {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "ActionParameterNotSupported",
            &format!("ResetType {reset_type} is not supported"),
        )
        .into());
    }
    rack.reset(&id, reset_type);
    rack.save().await;
    Ok(StatusCode::NO_CONTENT)
}
