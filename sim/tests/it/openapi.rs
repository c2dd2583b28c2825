//! Validation against the Equinix Metal OpenAPI document in `sim/openapi/`.
//!
//! The document is OpenAPI 3.0: schemas are JSON Schema draft 4 plus `nullable`, which is turned
//! into a `null` type here. References resolve against the whole document, so a component is
//! checked as `allOf: [{$ref: "#/components/schemas/Name"}]` at the document's root.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{Value, json};

fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/openapi/equinix-metal-openapi.json"
        );
        let text = std::fs::read_to_string(path).expect("read the OpenAPI document");
        let mut doc: Value = serde_json::from_str(&text).expect("parse the OpenAPI document");
        allow_null(&mut doc);
        // The document types `next` and `previous` as `Href` objects, but the real API sends
        // them as null on the last and the first page (issue 14); clients rely on that.
        for link in ["next", "previous"] {
            doc["components"]["schemas"]["Meta"]["properties"][link] =
                json!({"anyOf": [{"$ref": "#/components/schemas/Href"}, {"type": "null"}]});
        }
        doc
    })
}

/// `nullable: true` becomes a `null` member of `type` (and of `enum`).
fn allow_null(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.get("nullable") == Some(&Value::Bool(true)) {
                if let Some(Value::String(t)) = map.get("type").cloned() {
                    map.insert("type".into(), json!([t, "null"]));
                }
                if let Some(Value::Array(values)) = map.get_mut("enum") {
                    values.push(Value::Null);
                }
            }
            map.values_mut().for_each(allow_null);
        }
        Value::Array(items) => items.iter_mut().for_each(allow_null),
        _ => {}
    }
}

fn validator(schema: &Value) -> Arc<jsonschema::Validator> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<jsonschema::Validator>>>> = OnceLock::new();
    let key = schema.to_string();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(v) = cache.lock().unwrap().get(&key) {
        return v.clone();
    }
    let mut root = document().clone();
    root["allOf"] = json!([schema]);
    let v = Arc::new(
        jsonschema::draft4::options()
            .build(&root)
            .unwrap_or_else(|e| panic!("compile schema {schema}: {e}")),
    );
    cache.lock().unwrap().insert(key, v.clone());
    v
}

/// Panics with every violation when `instance` does not match `schema`.
pub fn assert_valid(schema: &Value, instance: &Value, context: &str) {
    let errors: Vec<String> = validator(schema)
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "{context}: does not match {schema}:\n{}\ninstance: {instance:#}",
        errors.join("\n")
    );
}

/// A `$ref` to a component schema.
pub fn component(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// The request body schema of `POST /projects/{id}/devices`, as the document states it.
pub fn device_create_body() -> Value {
    document()["paths"]["/projects/{id}/devices"]["post"]["requestBody"]["content"]["application/json"]["schema"].clone()
}

/// Shows that the validator rejects what it should, so passing validations mean something.
#[allow(dead_code)]
pub fn assert_rejects(schema: &Value, instance: &Value) {
    assert!(
        validator(schema).iter_errors(instance).next().is_some(),
        "{instance} should not match {schema}"
    );
}
