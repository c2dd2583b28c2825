//! Step ids, in one place so that the plan, `loko plan` and `loko status` agree.

use journal::StepId;

fn id(text: String) -> StepId {
    // Hostnames are validated by the spec (letters, digits, dashes), so ids are valid.
    StepId::new(text).unwrap_or_else(|e| unreachable!("{e}"))
}
pub fn pki() -> StepId {
    id("assets/pki".into())
}
pub fn kubeconfigs() -> StepId {
    id("assets/kubeconfigs".into())
}
pub fn manifests() -> StepId {
    id("assets/manifests".into())
}
pub fn ignition(host: &str) -> StepId {
    id(format!("ignition/{host}"))
}
pub fn device(host: &str) -> StepId {
    id(format!("{}{host}", super::DEVICE))
}
/// The node of a `device/<host>` step; none for another step.
pub fn device_host(step: &StepId) -> Option<&str> {
    step.as_str().strip_prefix(super::DEVICE)
}
pub fn delete_device(host: &str) -> StepId {
    id(format!("delete-device/{host}"))
}
pub fn drain(host: &str) -> StepId {
    id(format!("drain/{host}"))
}
pub fn dns() -> StepId {
    id("dns".into())
}
pub fn etcd_secrets(host: &str) -> StepId {
    id(format!("etcd-secrets/{host}"))
}
/// A controller's static control plane. (`bootkube`, the step it replaced, may still be
/// in an older cluster's ledger: a ledger entry no plan names is ignored.)
pub fn control_plane(host: &str) -> StepId {
    id(format!("control-plane/{host}"))
}
pub fn bootstrap() -> StepId {
    id("bootstrap".into())
}
pub fn ready() -> StepId {
    id("ready".into())
}
pub fn destroy_devices() -> StepId {
    id("destroy/devices".into())
}
pub fn destroy_dns() -> StepId {
    id("destroy/dns".into())
}
