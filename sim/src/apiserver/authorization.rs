//! Who the caller is and what it asks: the filter that authorizes every request by its client
//! certificate, as the apiserver's x509 authenticator and its authorizers (Node, when its flags
//! enable it, and RBAC) and NodeRestriction do, and the request's
//! authorization attributes, read from its method and path as the apiserver reads them.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::state::{ApiState, Caller, json_response};
use crate::judge::api_status;
use crate::judge::rbac;

/// Authorizes the request by the caller's certificate, as the apiserver's filter chain does
/// before any handler runs.
pub(super) async fn authorize(
    State(state): State<Arc<ApiState>>,
    axum::Extension(Caller(caller)): axum::Extension<Caller>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let user = match caller {
        Ok(user) => user,
        Err(reason) => {
            tracing::info!(%reason, "apiserver emulator cannot authenticate a client");
            return json_response(
                StatusCode::UNAUTHORIZED,
                api_status::failure(401, "Unauthorized", "Unauthorized"),
            );
        }
    };
    let attributes = request_attributes(
        request.method(),
        request.uri().path(),
        request.uri().query().unwrap_or_default(),
    );
    let decision = state
        .authorizers
        .admit(&state.store.derived().policy, &user, &attributes);
    match rbac::refusal_status(&user, &attributes, &decision) {
        None => next.run(request).await,
        Some(status) => {
            tracing::info!(user = %user.name, request = %attributes, "apiserver emulator forbade a request");
            json_response(StatusCode::FORBIDDEN, status)
        }
    }
}

/// The authorization attributes of a request, as the apiserver's `RequestInfoFactory` reads
/// them: `/api/v1/...` and `/apis/<group>/<version>/...` with an optional
/// `namespaces/<ns>/` are resource requests, everything else a non-resource path.
fn request_attributes(method: &axum::http::Method, path: &str, query: &str) -> rbac::Request {
    use axum::http::Method;
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match segments.as_slice() {
        ["api", _version, rest @ ..] if !rest.is_empty() => ("", rest),
        ["apis", group, _version, rest @ ..] if !rest.is_empty() => (*group, rest),
        _ => {
            return rbac::Request::NonResource {
                verb: method.as_str().to_ascii_lowercase(),
                path: path.to_owned(),
            };
        }
    };
    let (namespace, rest) = match rest {
        ["namespaces", namespace, rest @ ..] if !rest.is_empty() => (*namespace, rest),
        _ => ("", rest),
    };
    let resource = rest.first().copied().unwrap_or_default();
    let name = rest.get(1).copied().unwrap_or_default();
    let subresource = rest.get(2).copied().unwrap_or_default();
    let watch = query
        .split('&')
        .any(|pair| pair == "watch=true" || pair == "watch=1");
    let verb = match *method {
        Method::GET | Method::HEAD if name.is_empty() && watch => "watch",
        Method::GET | Method::HEAD if name.is_empty() => "list",
        Method::GET | Method::HEAD => "get",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if name.is_empty() => "deletecollection",
        Method::DELETE => "delete",
        _ => "",
    };
    rbac::ResourceRequest::new(verb, group, resource)
        .in_namespace(namespace)
        .named(name)
        .subresource(subresource)
        .into()
}

#[cfg(test)]
mod tests {
    use axum::http::Method;

    use super::*;
    use crate::judge::rbac::{Request, ResourceRequest};

    #[test]
    fn request_attributes_follow_the_apiservers_request_info() {
        let attributes =
            |method: Method, path: &str, query: &str| request_attributes(&method, path, query);
        assert_eq!(
            attributes(Method::GET, "/api/v1/nodes", ""),
            Request::from(ResourceRequest::new("list", "", "nodes"))
        );
        assert_eq!(
            attributes(Method::GET, "/api/v1/nodes", "watch=true&resourceVersion=1"),
            Request::from(ResourceRequest::new("watch", "", "nodes"))
        );
        assert_eq!(
            attributes(Method::PATCH, "/api/v1/nodes/n1/status", ""),
            Request::from(
                ResourceRequest::new("patch", "", "nodes")
                    .named("n1")
                    .subresource("status")
            )
        );
        assert_eq!(
            attributes(
                Method::PUT,
                "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1",
                ""
            ),
            Request::from(
                ResourceRequest::new("update", "coordination.k8s.io", "leases")
                    .in_namespace("kube-node-lease")
                    .named("n1")
            )
        );
        assert_eq!(
            attributes(Method::GET, "/api/v1/namespaces/kube-system", ""),
            Request::from(ResourceRequest::new("get", "", "namespaces").named("kube-system"))
        );
        assert_eq!(
            attributes(Method::DELETE, "/api/v1/namespaces/d/pods", ""),
            Request::from(ResourceRequest::new("deletecollection", "", "pods").in_namespace("d"))
        );
        for path in [
            "/api",
            "/api/v1",
            "/apis",
            "/apis/apps/v1",
            "/healthz",
            "/version",
        ] {
            assert_eq!(
                attributes(Method::GET, path, ""),
                Request::NonResource {
                    verb: "get".to_owned(),
                    path: path.to_owned()
                },
                "{path}"
            );
        }
    }
}
