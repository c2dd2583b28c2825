//! From spec text to a checked [`Spec`]: the crate's entry points, and the JSON Schema editors
//! check the same text against.

use std::path::Path;

use crate::document;
use crate::error::{SpecError, SpecErrors};
use crate::read;
use crate::spec::Spec;

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
    // The API is named by a Route53 zone or by the spec's own api_address, one of them; only
    // a rack's spec may name its address.
    schema["oneOf"] = serde_json::json!([
        { "required": ["dns_zone", "dns_zone_id"], "not": { "required": ["api_address"] } },
        {
            "required": ["api_address", "provider"],
            "properties": { "provider": { "const": "redfish" } },
            "not": { "anyOf": [{ "required": ["dns_zone"] }, { "required": ["dns_zone_id"] }] }
        }
    ]);
    if let Some(endpoints) = schema.pointer_mut("/$defs/Endpoints") {
        endpoints["additionalProperties"] = false.into();
    }
    schema
}
