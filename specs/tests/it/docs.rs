//! docs/spec.md documents every field of the spec.

use std::path::Path;

#[test]
fn every_field_of_the_schema_is_documented() {
    let docs =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/spec.md"))
            .expect("docs/spec.md");
    let schema = specs::json_schema();
    let mut fields: Vec<String> = Vec::new();
    for properties in [
        &schema["properties"],
        &schema["$defs"]["WorkerPool"]["properties"],
        &schema["$defs"]["Endpoints"]["properties"],
        &schema["$defs"]["Machine"]["properties"],
        &schema["$defs"]["BmcSystem"]["properties"],
        &schema["$defs"]["BootServerSettings"]["properties"],
    ] {
        fields.extend(properties.as_object().expect("properties").keys().cloned());
    }
    assert!(fields.len() > 40, "{fields:?}");
    let missing: Vec<&String> = fields
        .iter()
        .filter(|f| !docs.contains(&format!("`{f}`")) && !docs.contains(&format!(".{f}`")))
        .collect();
    assert!(missing.is_empty(), "not in docs/spec.md: {missing:?}");
}
