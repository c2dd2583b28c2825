//! The one place that maps Packet API failures to errors.

use std::time::Duration;

/// What went wrong with a Packet API call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PacketErrorKind {
    /// 401: the token is missing, wrong or revoked.
    Unauthorized,
    /// 403: not allowed. For a device loko created, Packet answers 403 after a failed
    /// provisioning moved it to an internal project (peer lesson: treat it as gone).
    Forbidden,
    /// 404: no such object.
    NotFound,
    /// 422: the API refused the request; its messages say why.
    Invalid,
    /// 429: too many requests; retry after the given time.
    RateLimited { retry_after: Option<Duration> },
    /// 5xx: the API failed.
    Server { status: u16 },
    /// Any other status.
    Unexpected { status: u16 },
    /// An answer without Packet's error JSON where the API sends one (a 4xx), or an HTML page:
    /// the URL reaches a server, but not the Packet API (a base URL missing `/metal/v1`).
    NotPacket { status: u16 },
    /// The request did not complete (connection refused or reset, timeout).
    Transport,
    /// The response body was not what the API documents (malformed or truncated JSON).
    Decode,
}

/// A failed Packet API call: what was attempted, on which object, and the API's own words.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("Packet API: {operation} {object}: {}{}", describe(.kind), .detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
pub struct PacketError {
    /// What loko was doing: "create device", "list devices", ...
    pub operation: &'static str,
    /// The object: a hostname, a device id, a project.
    pub object: String,
    pub kind: PacketErrorKind,
    /// The API's error messages (`{"errors": [...]}`) or the transport error, redacted.
    pub detail: Option<String>,
}

fn describe(kind: &PacketErrorKind) -> String {
    match kind {
        PacketErrorKind::Unauthorized => {
            "401 Unauthorized (check PACKET_AUTH_TOKEN or METAL_AUTH_TOKEN)".into()
        }
        PacketErrorKind::Forbidden => "403 Forbidden".into(),
        PacketErrorKind::NotFound => "404 Not Found".into(),
        PacketErrorKind::Invalid => "422 Unprocessable Entity".into(),
        PacketErrorKind::RateLimited { retry_after } => match retry_after {
            Some(d) => format!("429 Too Many Requests (retry after {}s)", d.as_secs()),
            None => "429 Too Many Requests".into(),
        },
        PacketErrorKind::Server { status } => format!("server error {status}"),
        PacketErrorKind::Unexpected { status } => format!("unexpected status {status}"),
        PacketErrorKind::NotPacket { status } => {
            format!("the URL answered {status} with no Packet error")
        }
        PacketErrorKind::Transport => "request failed".into(),
        PacketErrorKind::Decode => "malformed response".into(),
    }
}

impl PacketError {
    /// True for failures that may pass: rate limits, server errors, transport failures,
    /// malformed bodies, and a 422 that says no reservation is free right now.
    pub fn is_retryable(&self) -> bool {
        match self.kind {
            PacketErrorKind::RateLimited { .. }
            | PacketErrorKind::Server { .. }
            | PacketErrorKind::Transport
            | PacketErrorKind::Decode => true,
            PacketErrorKind::Invalid => self.is_no_reservation_available(),
            _ => false,
        }
    }

    /// The server's `Retry-After`, if it sent one, in real time (see
    /// [`PacketClient::server_time_scale`](super::PacketClient::server_time_scale)).
    pub fn retry_after(&self) -> Option<Duration> {
        match self.kind {
            PacketErrorKind::RateLimited { retry_after } => retry_after,
            _ => None,
        }
    }

    /// True when the object is gone for loko: 404, or 403 (a failed device moved away).
    pub fn is_gone(&self) -> bool {
        matches!(
            self.kind,
            PacketErrorKind::NotFound | PacketErrorKind::Forbidden
        )
    }

    /// "no available hardware reservations" has no error code, only a message (peer lesson).
    pub fn is_no_reservation_available(&self) -> bool {
        self.kind == PacketErrorKind::Invalid
            && self.detail.as_deref().is_some_and(|d| {
                d.to_ascii_lowercase()
                    .contains("no available hardware reservation")
            })
    }
}
