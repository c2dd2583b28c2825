//! The simulator as an independent judge of what loko renders, holding it to facts taken from
//! the real components, independently of loko's own code.
//!
//! The emulated nodes and the fidelity tests decide whether a unit or a pod would work on a real
//! Flatcar node with the same reasoning the real components use: systemd reads the unit
//! ([`systemd`]), docker reads its command line and applies the image's ENTRYPOINT and CMD
//! ([`docker`]), the program parses its flags ([`flags`]), and the kubelet applies its
//! self-label rule ([`labels`]) and starts the static pods of its manifest path ([`pod`]); the
//! apiserver authorizes requests through RBAC ([`rbac`]); Felix reads Calico's policy objects
//! and protects host endpoints ([`calico`]); the kernel filters a node's new connections by the
//! firewall its Ignition loads at boot ([`iptables`]).
//! Every fact about those components (flag sets, entrypoints, the label rule, what Flatcar
//! provides) is data in `sim/data/`, each file naming its upstream source ([`data`]); nothing
//! here comes from loko's code or constants, so a mistake in the renderer cannot hide behind the
//! same mistake in the simulator.
//!
//! A node judgement is a list of [`problem::Problem`]s, each naming the unit or pod, the flag or
//! setting, and why a real node would refuse it.

pub mod api_status;
pub mod calico;
pub mod data;
pub mod docker;
pub mod flags;
pub mod iptables;
pub mod kubelet;
pub mod labels;
pub mod metadata;
pub mod pod;
pub mod problem;
pub mod rbac;
pub mod systemd;
pub mod x509;
