//! The spec.yaml of a loko cluster: types, defaults, validation with locations, the desired
//! cluster and the change classifier.
//!
//! A spec says everything the tutorial's two Terraform modules (the controller module and the
//! worker module) accept, under the same names and with the same defaults; `docs/spec.md` lists
//! every field. loko refuses a wrong spec before touching any API, so this crate reports every
//! mistake at once, each with its field path and line:column, and has no network code at all.
//!
//! ```
//! let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/tutorial.yaml")).unwrap();
//! let spec = specs::parse(&text, "tutorial.yaml").unwrap();
//! let desired = spec.desired();
//! assert_eq!(desired.nodes[0].hostname, "supernova-controller-0");
//! assert_eq!(desired.dns_service_ip.to_string(), "10.3.0.10");
//! // The same spec again changes nothing.
//! assert!(specs::classify(&desired, &spec.desired()).unwrap().is_empty());
//! ```

mod classify;
mod desired;
mod document;
mod error;
mod input;
mod names;
mod rack;
mod read;
mod spec;

pub use classify::{
    ChangeSet, PoolRetyped, PoolScaled, RecipientsChanged, RefusedChange, RefusedChanges, classify,
    recipients_changed,
};
pub use desired::{
    ClusterSettings, DESIRED_FORMAT, DesiredCluster, DesiredNode, DesiredPool, DnsRecord,
    NotPacket, OsImage, RaidSetup, RecordError, RecordTarget, ReservationNeed, controller_hostname,
    worker_hostname,
};
pub use error::{SpecError, SpecErrors};
pub use input::{json_schema, load, parse};
pub use names::{
    ApiAddress, ClusterName, DnsZone, DnsZoneId, Facility, MachineName, MachinePlan, PoolName,
    ProjectId, SshPublicKey,
};
pub use rack::{
    BmcSystem, BootServerSettings, DEFAULT_FLATCAR_MIRROR, MacAddress, Machine, MachineRole,
    Provider, RetirePolicy,
};
pub use spec::{
    Endpoints, HardwareReservation, Networking, OsArch, OsChannel, OsSettings, Reservations, Role,
    Spec, Taint, TaintEffect, WorkerPool,
};
