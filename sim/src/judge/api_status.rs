//! The apiserver's `Status` of a failed request: what a refused or invalid request gets back,
//! whether the refusal comes from a judge (RBAC's 403) or from the apiserver's own checks.

use serde_json::{Value, json};

/// The `Status` of a failed request (`kind: Status`, `status: Failure`) with this HTTP code,
/// reason (`Forbidden`, `NotFound`, ...) and message.
pub fn failure(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    })
}
