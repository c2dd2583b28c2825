//! The one place that maps Redfish failures to errors. Each names the BMC and the system, never
//! the password (the details are redacted, and the credentials are registered secrets).

use std::time::Duration;

/// What went wrong with a BMC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RedfishErrorKind {
    /// 401: the BMC refused the credentials.
    Unauthorized,
    /// 403: the account may not do this.
    Forbidden,
    /// 404: no such resource (a wrong system id).
    NotFound,
    /// 400, 405, 409, 501 and the like: the BMC refused the request; its message says why.
    Refused { status: u16 },
    /// 412: the resource changed since it was read (its ETag); read it again.
    Changed,
    /// 429 or 503 with `Retry-After`: busy, try again later.
    Busy { retry_after: Option<Duration> },
    /// 5xx: the BMC failed.
    Server { status: u16 },
    /// Any other status.
    Unexpected { status: u16 },
    /// The request did not complete (connection refused or reset, timeout).
    Transport,
    /// The body was not what DSP0266 and the schema describe.
    Decode,
    /// The system offers none of the reset types that would do it.
    ResetNotAllowed {
        wanted: Vec<&'static str>,
        allowed: Vec<String>,
    },
    /// The system's boot override does not offer PXE.
    PxeNotAllowed { allowed: Vec<String> },
    /// The boot override read back is not PXE.
    BootOverrideNotKept { target: String },
    /// The system does not list the machine's MAC: another machine answers at this system.
    WrongMachine { mac: String, found: Vec<String> },
    /// The power state did not become `want` in time (it was `last`).
    PowerStateNotReached {
        want: String,
        last: String,
        waited: Duration,
    },
    /// A task (a 202 answer's monitor) ended other than `Completed`.
    TaskFailed { state: String },
    /// A task had not ended by the deadline.
    TaskUnfinished { waited: Duration },
}

/// A failed Redfish call: what was attempted, at which BMC and system, and the BMC's words.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("Redfish {bmc}{system}: {operation}: {}{}", describe(.kind), .detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
pub struct RedfishError {
    /// What loko was doing: "read system", "set boot override", "reset ForceRestart", ...
    pub operation: String,
    /// The BMC's base URL.
    pub bmc: String,
    /// The system's path (`/redfish/v1/Systems/1`), or the path called when it is not a system's.
    pub system: String,
    /// Boxed: the error travels in every `Result` of the client, and most are `Ok`.
    pub kind: Box<RedfishErrorKind>,
    /// The BMC's message (`error.message` and its extended info) or the transport error, redacted.
    pub detail: Option<String>,
}

fn describe(kind: &RedfishErrorKind) -> String {
    use RedfishErrorKind as K;
    match kind {
        K::Unauthorized => format!(
            "401 Unauthorized (check {} and {})",
            super::credentials::USERNAME_ENV,
            super::credentials::PASSWORD_ENV
        ),
        K::Forbidden => "403 Forbidden (the account may not do this)".into(),
        K::NotFound => "404 Not Found".into(),
        K::Refused { status } => format!("refused ({status})"),
        K::Changed => "412 Precondition Failed (it changed since it was read)".into(),
        K::Busy { retry_after } => match retry_after {
            Some(d) => format!("busy (retry after {}s)", d.as_secs()),
            None => "busy".into(),
        },
        K::Server { status } => format!("server error {status}"),
        K::Unexpected { status } => format!("unexpected status {status}"),
        K::Transport => "request failed".into(),
        K::Decode => "malformed response".into(),
        K::ResetNotAllowed { wanted, allowed } => format!(
            "the system allows reset types {} and none of {}",
            allowed.join(", "),
            wanted.join(", ")
        ),
        K::PxeNotAllowed { allowed } => format!(
            "the system boots once from {} only, not Pxe",
            allowed.join(", ")
        ),
        K::BootOverrideNotKept { target } => {
            format!("the boot override reads {target} after it was set to Pxe")
        }
        K::WrongMachine { mac, found } => format!(
            "the system does not have the machine's NIC {mac} (it has {}): another machine answers here; check bmc.system and mac in the spec",
            if found.is_empty() {
                "none listed".into()
            } else {
                found.join(", ")
            }
        ),
        K::PowerStateNotReached { want, last, waited } => format!(
            "the power state is still {last}, not {want}, after {}s",
            waited.as_secs()
        ),
        K::TaskFailed { state } => format!("its task ended {state}"),
        K::TaskUnfinished { waited } => {
            format!("its task had not ended after {}s", waited.as_secs())
        }
    }
}

impl RedfishError {
    /// True for failures that may pass: a busy or failing BMC, a lost connection, a garbled
    /// answer, a resource changed under us, a power state or task still on its way.
    /// A refusal (401, 403, 404, 400) will be refused again.
    pub fn is_retryable(&self) -> bool {
        use RedfishErrorKind as K;
        matches!(
            *self.kind,
            K::Busy { .. }
                | K::Server { .. }
                | K::Transport
                | K::Decode
                | K::Changed
                | K::PowerStateNotReached { .. }
                | K::TaskUnfinished { .. }
                | K::BootOverrideNotKept { .. }
        )
    }

    /// The BMC's `Retry-After`, if it sent one.
    pub fn retry_after(&self) -> Option<Duration> {
        match *self.kind {
            RedfishErrorKind::Busy { retry_after } => retry_after,
            _ => None,
        }
    }

    /// As the engine takes it: retried by the run's retry policy (the one of loko) when it may
    /// pass, else permanent.
    pub fn into_step_error(self) -> engine::StepError {
        match (self.is_retryable(), self.retry_after()) {
            (true, Some(after)) => engine::StepError::retry_after(self, after),
            (true, None) => engine::StepError::retryable(self),
            (false, _) => engine::StepError::permanent(self),
        }
    }
}
