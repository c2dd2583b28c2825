//! Validation errors worded as the apiserver words them: the field errors of
//! `k8s.io/apimachinery/pkg/util/validation/field` (`errors.go`, `path.go`, v0.32.3) and the 422
//! `Status` of `k8s.io/apimachinery/pkg/api/errors.NewInvalid` (`errors.go`, v0.32.3), and the
//! reasons of its name rules (`pkg/util/validation/validation.go`), so that
//! what loko reports of a refusal reads as a real cluster's refusal.

use crate::judge::api_status;
use serde_json::{Value, json};

/// A field's path as `field.Path.String()` prints it: `spec.versions[0].name`,
/// `metadata.annotations[api-approved.kubernetes.io]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldPath(String);

impl FieldPath {
    /// The path of a top-level field (`metadata`, `spec`).
    pub(crate) fn root(name: &str) -> FieldPath {
        FieldPath(name.to_owned())
    }

    /// The empty path, where a custom resource's own paths start.
    pub(crate) fn empty() -> FieldPath {
        FieldPath(String::new())
    }

    /// `path.name` (`Path.Child`).
    pub(crate) fn child(&self, name: &str) -> FieldPath {
        if self.0.is_empty() {
            FieldPath(name.to_owned())
        } else {
            FieldPath(format!("{}.{name}", self.0))
        }
    }

    /// `path[i]` (`Path.Index`).
    pub(crate) fn index(&self, index: usize) -> FieldPath {
        FieldPath(format!("{}[{index}]", self.0))
    }

    /// `path[key]` (`Path.Key`).
    pub(crate) fn key(&self, key: &str) -> FieldPath {
        FieldPath(format!("{}[{key}]", self.0))
    }
}

impl std::fmt::Display for FieldPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `field.ErrorType`: the cause type in the `Status` and the words of `ErrorType.String()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorType {
    Required,
    Forbidden,
    Invalid,
    NotSupported,
    TypeInvalid,
}

impl ErrorType {
    fn cause(self) -> &'static str {
        match self {
            ErrorType::Required => "FieldValueRequired",
            ErrorType::Forbidden => "FieldValueForbidden",
            ErrorType::Invalid => "FieldValueInvalid",
            ErrorType::NotSupported => "FieldValueNotSupported",
            ErrorType::TypeInvalid => "FieldValueTypeInvalid",
        }
    }

    fn words(self) -> &'static str {
        match self {
            ErrorType::Required => "Required value",
            ErrorType::Forbidden => "Forbidden",
            ErrorType::Invalid | ErrorType::TypeInvalid => "Invalid value",
            ErrorType::NotSupported => "Unsupported value",
        }
    }
}

/// One `field.Error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldError {
    pub(crate) field: FieldPath,
    pub(crate) kind: ErrorType,
    /// The bad value as `ErrorBody` prints it; `None` for the types that print none.
    pub(crate) value: Option<String>,
    pub(crate) detail: String,
}

impl FieldError {
    /// `field.Required`.
    pub(crate) fn required(field: FieldPath, detail: &str) -> FieldError {
        FieldError {
            field,
            kind: ErrorType::Required,
            value: None,
            detail: detail.to_owned(),
        }
    }

    /// `field.Forbidden`.
    pub(crate) fn forbidden(field: FieldPath, detail: &str) -> FieldError {
        FieldError {
            field,
            kind: ErrorType::Forbidden,
            value: None,
            detail: detail.to_owned(),
        }
    }

    /// `field.Invalid`.
    pub(crate) fn invalid(field: FieldPath, value: &Value, detail: &str) -> FieldError {
        FieldError {
            field,
            kind: ErrorType::Invalid,
            value: Some(shown(value)),
            detail: detail.to_owned(),
        }
    }

    /// `field.TypeInvalid`.
    pub(crate) fn type_invalid(field: FieldPath, value: &Value, detail: &str) -> FieldError {
        FieldError {
            kind: ErrorType::TypeInvalid,
            ..FieldError::invalid(field, value, detail)
        }
    }

    /// `field.NotSupported`: the detail lists the supported values, each quoted.
    pub(crate) fn not_supported(
        field: FieldPath,
        value: &Value,
        supported: &[String],
    ) -> FieldError {
        let quoted: Vec<String> = supported.iter().map(|v| go_quote(v)).collect();
        let detail = if quoted.is_empty() {
            String::new()
        } else {
            format!("supported values: {}", quoted.join(", "))
        };
        FieldError {
            kind: ErrorType::NotSupported,
            ..FieldError::invalid(field, value, &detail)
        }
    }

    /// `Error.ErrorBody()`: the words, the value where the type prints one, the detail.
    fn body(&self) -> String {
        let mut body = self.kind.words().to_owned();
        if let Some(value) = &self.value {
            body = format!("{body}: {value}");
        }
        if !self.detail.is_empty() {
            body = format!("{body}: {}", self.detail);
        }
        body
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}

/// A value as `ErrorBody` prints it: strings quoted (`%q`), numbers and booleans as they are.
/// Go prints other values as Go syntax of its own types (`%#v`); JSON stands in for that.
fn shown(value: &Value) -> String {
    match value {
        Value::String(s) => go_quote(s),
        Value::Null => "null".to_owned(),
        other => other.to_string(),
    }
}

/// Go's `%q` of a string; JSON's escaping agrees with it for the text a manifest holds.
pub(crate) fn go_quote(s: &str) -> String {
    Value::from(s).to_string()
}

/// The apiserver's 422 for an object that fails validation (`errors.NewInvalid`): the message is
/// `<Kind>.<group> "<name>" is invalid: <errors>`, several errors (duplicates dropped) in
/// brackets, comma-separated, as `utilerrors.Aggregate` prints them.
pub(crate) fn invalid_status(group: &str, kind: &str, name: &str, errors: &[FieldError]) -> Value {
    let qualified = if group.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}.{group}")
    };
    let mut seen: Vec<String> = Vec::new();
    for error in errors {
        let text = error.to_string();
        if !seen.contains(&text) {
            seen.push(text);
        }
    }
    let aggregated = match seen.as_slice() {
        [] => String::new(),
        [one] => format!(": {one}"),
        many => format!(": [{}]", many.join(", ")),
    };
    let message = format!("{qualified} {} is invalid{aggregated}", go_quote(name));
    let mut status = api_status::failure(422, "Invalid", &message);
    let causes: Vec<Value> = errors
        .iter()
        .map(|e| json!({"reason": e.kind.cause(), "message": e.body(), "field": e.field.to_string()}))
        .collect();
    status["details"] = json!({"name": name, "group": group, "kind": kind, "causes": causes});
    status
}

/// `validation.IsDNS1123Subdomain` (apimachinery `pkg/util/validation/validation.go`).
pub(crate) fn dns1123_subdomain(value: &str) -> Vec<String> {
    let mut reasons = Vec::new();
    if value.len() > 253 {
        reasons.push("must be no more than 253 characters".to_owned());
    }
    let label_ok = |label: &str| {
        let bytes = label.as_bytes();
        let edge = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        bytes.first().is_some_and(edge)
            && bytes.last().is_some_and(edge)
            && bytes.iter().all(|b| edge(b) || *b == b'-')
    };
    if !value.split('.').all(label_ok) {
        reasons.push("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".to_owned());
    }
    reasons
}

/// `validation.IsDNS1035Label` (apimachinery `pkg/util/validation/validation.go`).
pub(crate) fn dns1035_label(value: &str) -> Vec<String> {
    let mut reasons = Vec::new();
    if value.len() > 63 {
        reasons.push("must be no more than 63 characters".to_owned());
    }
    let bytes = value.as_bytes();
    let ok = bytes.first().is_some_and(u8::is_ascii_lowercase)
        && bytes
            .last()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
    if !ok {
        reasons.push("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')".to_owned());
    }
    reasons
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_as_apimachinery_prints_them() {
        let path = FieldPath::root("metadata")
            .child("annotations")
            .key("api-approved.kubernetes.io");
        let required = FieldError::required(path, "see the KEP");
        assert_eq!(
            required.to_string(),
            "metadata.annotations[api-approved.kubernetes.io]: Required value: see the KEP"
        );
        let unsupported = FieldError::not_supported(
            FieldPath::root("spec").child("scope"),
            &Value::from("Global"),
            &["Cluster".to_owned(), "Namespaced".to_owned()],
        );
        assert_eq!(
            unsupported.to_string(),
            r#"spec.scope: Unsupported value: "Global": supported values: "Cluster", "Namespaced""#
        );
        let status = invalid_status(
            "g.io",
            "Thing",
            "a",
            &[required.clone(), required, unsupported],
        );
        assert_eq!(status["code"], 422);
        assert_eq!(status["reason"], "Invalid");
        let message = status["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with(r#"Thing.g.io "a" is invalid: [metadata.annotations"#),
            "{message}"
        );
        assert_eq!(message.matches("Required value").count(), 1, "{message}");
        assert_eq!(FieldPath::root("spec").index(0).to_string(), "spec[0]");
    }
}
