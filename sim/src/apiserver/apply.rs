//! The endpoint of single objects: `GET` of what is stored and server-side apply (`PATCH` with
//! `application/apply-patch+yaml`), for the resources the store knows.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde_json::Value;

use super::custom_resource::{self, Refusal};
use super::state::{ApiState, json_response};
use super::store::Resource;
use super::{crd, field, objects};
use crate::judge::api_status;

fn not_found(path: &str) -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        api_status::failure(
            404,
            "NotFound",
            &format!("the server could not find the requested resource ({path})"),
        ),
    )
}

/// One object of a resource the apiserver serves: `GET` it, or server-side apply it (`PATCH`
/// with `application/apply-patch+yaml`, the body YAML or JSON). Anything else is a resource this
/// emulator does not have.
pub(super) async fn object(
    State(state): State<Arc<ApiState>>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let path = uri.path();
    let Some(at) = ObjectPath::parse(path) else {
        return not_found(path);
    };
    let Some(resource) = state.store.resource(&at.group, &at.version, &at.plural) else {
        return not_found(path);
    };
    if resource.namespaced != at.namespace.is_some() {
        return not_found(path);
    }
    let resource_name = match at.group.as_str() {
        "" => at.plural.clone(),
        group => format!("{}.{group}", at.plural),
    };
    match method {
        axum::http::Method::GET => match state.store.get(path) {
            Some(object) => json_response(StatusCode::OK, object),
            None => json_response(
                StatusCode::NOT_FOUND,
                objects::status_not_found(&resource_name, &at.name),
            ),
        },
        axum::http::Method::PATCH => {
            let content_type = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if !content_type.starts_with("application/apply-patch+yaml") {
                return json_response(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    api_status::failure(
                        415,
                        "UnsupportedMediaType",
                        &format!(
                            "the body of the request was in an unknown format - accepted media types include: application/apply-patch+yaml (got {content_type:?})"
                        ),
                    ),
                );
            }
            let bad = |message: String| {
                json_response(
                    StatusCode::BAD_REQUEST,
                    api_status::failure(400, "BadRequest", &message),
                )
            };
            let mut object: Value = match serde_yaml::from_slice(&body) {
                Ok(object) => object,
                Err(error) => return bad(format!("error decoding YAML: {error}")),
            };
            let api_version = match at.group.as_str() {
                "" => at.version.clone(),
                group => format!("{group}/{}", at.version),
            };
            if object["apiVersion"] != api_version.as_str()
                || object["kind"] != resource.kind.as_str()
            {
                return bad(format!(
                    "the body's apiVersion {} and kind {} are not those of {path} ({api_version}, {})",
                    object["apiVersion"], object["kind"], resource.kind
                ));
            }
            if object["metadata"]["name"] != at.name.as_str() {
                return bad(format!(
                    "the name of the object ({}) does not match the name on the URL ({})",
                    object["metadata"]["name"], at.name
                ));
            }
            if let Some(namespace) = &at.namespace {
                match object["metadata"]["namespace"].as_str() {
                    None => object["metadata"]["namespace"] = Value::from(namespace.as_str()),
                    Some(given) if given == namespace => {}
                    Some(given) => {
                        return bad(format!(
                            "the namespace of the object ({given}) does not match the namespace on the request ({namespace})"
                        ));
                    }
                }
            }
            if let Some(refusal) = judge(&at, &resource, &object, state.store.get(path).as_ref()) {
                return refusal;
            }
            match state.store.put(path, object.clone()) {
                Ok(true) => json_response(StatusCode::CREATED, object),
                Ok(false) => json_response(StatusCode::OK, object),
                Err(error) => json_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    api_status::failure(500, "InternalError", &error),
                ),
            }
        }
        _ => json_response(
            StatusCode::METHOD_NOT_ALLOWED,
            api_status::failure(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            ),
        ),
    }
}

/// What the apiserver says of an apply before storing it, if it refuses it: a
/// CustomResourceDefinition is validated as apiextensions validates it (`crd`), a custom resource
/// by its definition's schema for the version it is applied at (`custom_resource`).
fn judge(
    at: &ObjectPath,
    resource: &Resource,
    object: &Value,
    stored: Option<&Value>,
) -> Option<Response> {
    if at.group == "apiextensions.k8s.io" && at.plural == "customresourcedefinitions" {
        let errors = crd::validate(object, stored);
        return (!errors.is_empty()).then(|| {
            json_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                field::invalid_status(&at.group, &resource.kind, &at.name, &errors),
            )
        });
    }
    let definition = resource.definition.as_ref()?;
    let schema = definition["spec"]["versions"]
        .as_array()?
        .iter()
        .find(|v| v["name"] == at.version.as_str())
        .map(|v| &v["schema"]["openAPIV3Schema"])
        .filter(|schema| schema.is_object())?;
    match custom_resource::check(schema, object) {
        Ok(()) => None,
        // structuredmerge.go's error, which the apiserver answers as a 500 of its text.
        Err(Refusal::NotTyped(text)) => {
            let mut status = api_status::failure(
                500,
                "",
                &format!(
                    "failed to create typed patch object ({}/{}; {}/{}, Kind={}): {text}",
                    at.namespace.as_deref().unwrap_or_default(),
                    at.name,
                    at.group,
                    at.version,
                    resource.kind
                ),
            );
            // StatusReasonUnknown is "", which the Status omits.
            if let Some(fields) = status.as_object_mut() {
                fields.remove("reason");
            }
            Some(json_response(StatusCode::INTERNAL_SERVER_ERROR, status))
        }
        Err(Refusal::Invalid(errors)) => Some(json_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            field::invalid_status(&at.group, &resource.kind, &at.name, &errors),
        )),
    }
}

/// The URL path of one object: `/api/<v>/[namespaces/<ns>/]<plural>/<name>` or
/// `/apis/<group>/<v>/[namespaces/<ns>/]<plural>/<name>`.
#[derive(Debug, PartialEq, Eq)]
struct ObjectPath {
    group: String,
    version: String,
    namespace: Option<String>,
    plural: String,
    name: String,
}

impl ObjectPath {
    fn parse(path: &str) -> Option<ObjectPath> {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (group, version, rest) = match segments.as_slice() {
            ["api", version, rest @ ..] => ("", *version, rest),
            ["apis", group, version, rest @ ..] => (*group, *version, rest),
            _ => return None,
        };
        let (namespace, plural, name) = match rest {
            ["namespaces", namespace, plural, name] => (Some(*namespace), *plural, *name),
            [plural, name] => (None, *plural, *name),
            _ => return None,
        };
        Some(ObjectPath {
            group: group.to_owned(),
            version: version.to_owned(),
            namespace: namespace.map(str::to_owned),
            plural: plural.to_owned(),
            name: name.to_owned(),
        })
    }
}
