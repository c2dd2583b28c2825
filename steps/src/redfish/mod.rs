//! DMTF Redfish: a client for the BMCs of a rack's machines, their resources, errors and
//! credentials. The provider of listed machines (`crate::provider`) boots and powers machines
//! with it.
//!
//! A call that a BMC refuses (401, 403, 404) is permanent; one that fails on the way (5xx, a
//! timeout, a power state not yet reached) is retryable, and the engine's retry policy, the one
//! of loko, retries it. Every error names the BMC and the system, never the password.

mod client;
mod credentials;
mod error;
mod model;

pub use client::{Polling, RedfishClient};
pub use credentials::{BmcCredentials, CredentialsError, FILE_ENV, PASSWORD_ENV, USERNAME_ENV};
pub use error::{RedfishError, RedfishErrorKind};
pub use model::{
    Boot, Collection, ComputerSystem, EthernetInterface, Link, PowerState, Reset, ResetAction,
    Resource, RootLinks, ServiceRoot, SystemActions, Task,
};
