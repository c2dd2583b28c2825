//! The spec.yaml of a loko cluster: types, defaults, validation with locations, the desired
//! cluster and the change classifier.
//!
//! A spec says everything the tutorial's two Terraform modules (the controller module and the
//! worker module) accept, under the same names and with the same defaults; `docs/spec.md` lists
//! every field. loko refuses a wrong spec before touching any API, so this crate reports every
//! mistake at once, each with its field path and line:column, and has no network code at all.
//!
//! ```
//! let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/tutorial.yaml")).unwrap();
//! let spec = specs::parse(&text, "tutorial.yaml").unwrap();
//! let desired = spec.desired();
//! assert_eq!(desired.nodes[0].hostname, "supernova-controller-0");
//! assert_eq!(desired.dns_service_ip.to_string(), "10.3.0.10");
//! // The same spec again changes nothing.
//! assert!(specs::classify(&desired, &spec.desired()).unwrap().is_empty());
//! ```

mod classify;
mod desired;
mod document;
mod error;
mod rack;
mod read;
mod spec;

use std::path::Path;

pub use classify::{
    ChangeSet, PoolRetyped, PoolScaled, RecipientsChanged, RefusedChange, RefusedChanges, classify,
};
pub use desired::{
    ClusterSettings, DESIRED_FORMAT, DesiredCluster, DesiredNode, DesiredPool, DnsRecord,
    NotPacket, OsImage, RaidSetup, RecordError, RecordTarget, ReservationNeed, controller_hostname,
    worker_hostname,
};
pub use error::{SpecError, SpecErrors};
pub use rack::{
    BmcSystem, BootServerSettings, DEFAULT_FLATCAR_MIRROR, MacAddress, Machine, MachineRole,
    Provider,
};
pub use spec::{
    ClusterName, DnsZone, DnsZoneId, Endpoints, Facility, HardwareReservation, MachineName,
    MachinePlan, Networking, OsArch, OsChannel, OsSettings, PoolName, ProjectId, Reservations,
    Role, Spec, SshPublicKey, Taint, TaintEffect, WorkerPool,
};

/// Reads and validates the spec file at `path`. A relative `asset_dir` is resolved against the
/// file's directory, so a spec means the same whatever directory loko runs from.
pub fn load(path: &Path) -> Result<Spec, SpecErrors> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        SpecErrors::new(
            &origin,
            vec![SpecError {
                path: String::new(),
                line: 0,
                column: 0,
                message: format!("cannot read the spec: {e}"),
            }],
        )
    })?;
    parse(&text, &origin)
}

/// Validates spec text. `origin` names it in errors (usually its file path); a relative
/// `asset_dir` is resolved against `origin`'s directory, as [`load`] does.
pub fn parse(text: &str, origin: &str) -> Result<Spec, SpecErrors> {
    let base_dir = Path::new(origin).parent().unwrap_or(Path::new(""));
    let root = document::parse_document(text).map_err(|e| SpecErrors::new(origin, vec![e]))?;
    let mut errors = document::Errors::default();
    let spec = read::read_spec(&document::Node::root(&root), base_dir, &mut errors);
    match spec {
        Some(spec) if errors.0.is_empty() => Ok(spec),
        _ => Err(SpecErrors::new(origin, errors.0)),
    }
}

/// The JSON Schema of spec.yaml, for editors (yaml-language-server and the like).
pub fn json_schema() -> serde_json::Value {
    let mut schema = serde_json::to_value(schemars::schema_for!(Spec)).unwrap_or_default();
    // Flattened structs cannot carry serde's deny_unknown_fields, and the pool-level copies of two
    // cluster settings are accepted (they must equal the cluster's) but not stored; both are
    // described here so that editors match what `parse` accepts.
    schema["additionalProperties"] = false.into();
    if let Some(pool) = schema.pointer_mut("/$defs/WorkerPool") {
        pool["additionalProperties"] = false.into();
        pool["properties"]["cluster_domain_suffix"] = serde_json::json!({
            "type": "string",
            "description": "Inherited from the cluster; if given, must equal the cluster's cluster_domain_suffix."
        });
        pool["properties"]["service_cidr"] = serde_json::json!({
            "type": "string",
            "description": "Inherited from the cluster; if given, must equal the cluster's service_cidr."
        });
    }
    // Packet's project and facility are required with Packet only; a rack lists its machines.
    if let Some(required) = schema["required"].as_array_mut() {
        required.retain(|f| f != "project_id" && f != "facility");
    }
    schema["if"] = serde_json::json!({
        "properties": { "provider": { "const": "redfish" } },
        "required": ["provider"]
    });
    schema["then"] = serde_json::json!({ "required": ["machines"] });
    schema["else"] = serde_json::json!({ "required": ["project_id", "facility"] });
    if let Some(endpoints) = schema.pointer_mut("/$defs/Endpoints") {
        endpoints["additionalProperties"] = false.into();
    }
    schema
}
