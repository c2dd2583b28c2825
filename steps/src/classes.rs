//! The resource classes of the provisioning steps: each has its own concurrency limit, set by
//! the binary when it builds the engine (a thousand device steps must not open a thousand
//! connections). Not the kinds of steps ([`crate::kinds`]): a class names what a step uses.

use engine::ResourceClass;

/// Calls to the Packet API.
pub const PACKET_API: ResourceClass = ResourceClass::new("packet-api");
/// Calls to Route53.
pub const ROUTE53: ResourceClass = ResourceClass::new("route53");
/// SSH sessions to the nodes.
pub const SSH: ResourceClass = ResourceClass::new("ssh");
/// Calls to a rack's BMCs, each machine's own (the machine step holds its slot while the
/// machine installs, minutes).
pub const REDFISH: ResourceClass = ResourceClass::new("redfish");
