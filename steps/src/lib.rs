//! The provisioning steps (assets, ignition, packet, dns, ssh, readiness) that run on the engine. Filled by issues #6 and #7; nothing here yet.
