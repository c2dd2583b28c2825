//! A custom resource judged by its CustomResourceDefinition's schema for the version it is
//! applied at, in the two places a real apiserver judges a server-side apply:
//!
//! 1. The apply is first made a typed object of the schema (structured-merge-diff v4.4.2,
//!    `typed/validate.go`, called from apimachinery v0.32.3
//!    `pkg/util/managedfields/internal/structuredmerge.go`): a field the schema does not declare
//!    where unknown fields are not kept, or a scalar of another type, fails there. That error is
//!    no `Status`, so the apiserver answers 500 with its text (issue kubernetes/kubernetes#139253).
//! 2. Then the object is validated (apiextensions-apiserver v0.32.3,
//!    `pkg/apiserver/validation/validation.go`, with kube-openapi's validator): `required`,
//!    `enum`, `nullable`, and `integer` against a fractional number answer 422.

use serde_json::Value;

use super::field::{FieldError, FieldPath, go_quote};

/// Why a custom resource is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The typed conversion failed: the text structured-merge-diff gives (a 500).
    NotTyped(String),
    /// Validation failed: the field errors of the 422.
    Invalid(Vec<FieldError>),
}

/// Judges `object` by `schema` (the served version's `openAPIV3Schema`).
pub(crate) fn check(schema: &Value, object: &Value) -> Result<(), Refusal> {
    let mut untyped = Vec::new();
    typed(schema, object, "", true, &mut untyped);
    if !untyped.is_empty() {
        // `ValidationErrors.Error()` of structured-merge-diff's typed/helpers.go.
        let text = match untyped.as_slice() {
            [one] => one.clone(),
            many => format!("errors:\n  {}", many.join("\n  ")),
        };
        return Err(Refusal::NotTyped(text));
    }
    let mut invalid = Vec::new();
    validate(schema, object, "", &mut invalid);
    if invalid.is_empty() {
        Ok(())
    } else {
        Err(Refusal::Invalid(invalid))
    }
}

/// Structured-merge-diff's `ObjectToTyped` for a CRD's schema: at the root `apiVersion`, `kind`
/// and `metadata` are the object's own; a map keeps unknown fields only where
/// `x-kubernetes-preserve-unknown-fields` or `additionalProperties` say so; `null` is valid.
fn typed(schema: &Value, value: &Value, path: &str, root: bool, out: &mut Vec<String>) {
    if value.is_null() || schema["x-kubernetes-int-or-string"] == true {
        return;
    }
    let preserves = schema["x-kubernetes-preserve-unknown-fields"] == true;
    match schema["type"].as_str().unwrap_or_default() {
        "object" => {
            let Some(map) = value.as_object() else {
                out.push(format!("{path}: expected map, got {value}"));
                return;
            };
            for (key, field) in map {
                let at = format!("{path}.{key}");
                if root && ["apiVersion", "kind", "metadata"].contains(&key.as_str()) {
                    continue;
                }
                if let Some(property) = schema["properties"].get(key) {
                    typed(property, field, &at, false, out);
                } else if schema["additionalProperties"].is_object() {
                    typed(&schema["additionalProperties"], field, &at, false, out);
                } else if !preserves && schema["additionalProperties"] != true {
                    out.push(format!("{at}: field not declared in schema"));
                }
            }
        }
        "array" => {
            let Some(items) = value.as_array() else {
                out.push(format!("{path}: expected list, got {value}"));
                return;
            };
            for (i, item) in items.iter().enumerate() {
                typed(&schema["items"], item, &format!("{path}[{i}]"), false, out);
            }
        }
        "string" if !value.is_string() => out.push(format!(
            "{path}: expected string, got &value.valueUnstructured{{Value:{value}}}"
        )),
        "integer" | "number" if !value.is_number() => out.push(format!(
            "{path}: expected numeric (int or float), got {}",
            go_type(value)
        )),
        "boolean" if !value.is_boolean() => {
            out.push(format!("{path}: expected boolean, got {value}"));
        }
        _ => {}
    }
}

/// Go's `%T` of a decoded JSON value, as structured-merge-diff prints it.
fn go_type(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "string",
        Value::Bool(_) => "bool",
        Value::Number(_) => "float64",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
        Value::Null => "<nil>",
    }
}

/// kube-openapi's schema validator, as far as a typed object can still fail it. `path` is its
/// path (`spec.cidr`, `spec.ports[0]`); a required field's path is the parent's plus `.name`
/// (`.spec` at the root), and the apiserver trims a leading dot for the field.
fn validate(schema: &Value, value: &Value, path: &str, out: &mut Vec<FieldError>) {
    let field = || FieldPath::empty().child(path.trim_start_matches('.'));
    let kind = schema["type"].as_str().unwrap_or_default();
    if value.is_null() {
        if !kind.is_empty() && schema["nullable"] != true {
            out.push(type_error(field(), path, kind, "null"));
        }
        return;
    }
    // type.go: a number is an integer only if it has no fraction.
    if kind == "integer" && value.as_f64().is_some_and(|n| n.fract() != 0.0) {
        out.push(type_error(field(), path, kind, "number"));
        return;
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        let supported: Vec<String> = allowed
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .collect();
        out.push(FieldError::not_supported(field(), value, &supported));
    }
    if let Some(map) = value.as_object() {
        for (name, property) in schema["properties"].as_object().into_iter().flatten() {
            if let Some(field) = map.get(name) {
                let at = if path.is_empty() {
                    name.clone()
                } else {
                    format!("{path}.{name}")
                };
                validate(property, field, &at, out);
            }
        }
        for required in schema["required"].as_array().into_iter().flatten() {
            let name = required.as_str().unwrap_or_default();
            if !map.contains_key(name) {
                let at = format!("{path}.{name}");
                out.push(FieldError::required(
                    FieldPath::empty().child(at.trim_start_matches('.')),
                    "",
                ));
            }
        }
        if schema["additionalProperties"].is_object() {
            for (name, field) in map {
                if schema["properties"].get(name).is_none() {
                    validate(
                        &schema["additionalProperties"],
                        field,
                        &format!("{path}.{name}"),
                        out,
                    );
                }
            }
        }
    }
    if let (Some(items), true) = (value.as_array(), schema["items"].is_object()) {
        for (i, item) in items.iter().enumerate() {
            validate(&schema["items"], item, &format!("{path}[{i}]"), out);
        }
    }
}

/// `errors.InvalidType` (kube-openapi `pkg/validation/errors/schema.go`) as the apiserver
/// reports it: `spec.x: Invalid value: "null": spec.x in body must be of type string: "null"`.
fn type_error(field: FieldPath, path: &str, kind: &str, found: &str) -> FieldError {
    FieldError::type_invalid(
        field,
        &Value::from(found),
        &format!("{path} in body must be of type {kind}: {}", go_quote(found)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pool_schema() -> Value {
        json!({"type": "object", "properties": {
            "spec": {"type": "object", "required": ["cidr"], "properties": {
                "cidr": {"type": "string"},
                "blockSize": {"type": "integer"},
                "ipipMode": {"type": "string", "enum": ["Always", "CrossSubnet", "Never"]},
                "allowedUses": {"type": "array", "items": {"type": "string"}},
                "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            }},
        }})
    }

    fn pool(spec: Value) -> Value {
        json!({"apiVersion": "crd.projectcalico.org/v1", "kind": "IPPool",
               "metadata": {"name": "default"}, "spec": spec})
    }

    #[test]
    fn a_resource_that_fits_its_schema_passes_and_unknown_fields_are_kept_where_preserved() {
        let object = pool(
            json!({"cidr": "10.2.0.0/16", "blockSize": 24, "ipipMode": "Always",
                                 "allowedUses": ["Workload"], "extra": {"anything": [1]}}),
        );
        assert_eq!(check(&pool_schema(), &object), Ok(()));
        let open = json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
        assert_eq!(check(&open, &object), Ok(()));
    }

    #[test]
    fn undeclared_fields_and_wrong_scalars_fail_the_typed_conversion() {
        let object = pool(json!({"cidr": 10, "nope": true, "allowedUses": "Workload"}));
        let Err(Refusal::NotTyped(text)) = check(&pool_schema(), &object) else {
            panic!("typed conversion should fail");
        };
        assert!(
            text.contains(".spec.cidr: expected string, got &value.valueUnstructured{Value:10}"),
            "{text}"
        );
        assert!(
            text.contains(".spec.nope: field not declared in schema"),
            "{text}"
        );
        assert!(text.contains(".spec.allowedUses: expected list"), "{text}");
    }

    #[test]
    fn required_enum_null_and_fractions_are_refused_as_the_validator_words_them() {
        let object = pool(json!({"ipipMode": "Sometimes", "blockSize": 24.5, "allowedUses": null}));
        let Err(Refusal::Invalid(errors)) = check(&pool_schema(), &object) else {
            panic!("validation should fail");
        };
        let texts: Vec<String> = errors.iter().map(ToString::to_string).collect();
        for expected in [
            r#"spec.ipipMode: Unsupported value: "Sometimes": supported values: "Always", "CrossSubnet", "Never""#,
            r#"spec.blockSize: Invalid value: "number": spec.blockSize in body must be of type integer: "number""#,
            r#"spec.allowedUses: Invalid value: "null": spec.allowedUses in body must be of type array: "null""#,
            "spec.cidr: Required value",
        ] {
            assert!(
                texts.iter().any(|t| t == expected),
                "{expected} in {texts:?}"
            );
        }
    }
}
