//! A small Packet (Equinix Metal) API client for the endpoints loko uses.
//!
//! It does not retry by itself: a failed call returns a [`PacketError`] that says whether it may
//! pass and how long the server asked to wait, and the engine's retry policy (the one retry
//! policy of loko) decides. What the client does share across calls is the server's word on
//! rate limits: after a 429 with `Retry-After`, no request of this client goes out before that
//! time, so a thousand waiting steps do not hammer an API that asked them to stop.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;

use super::error::{PacketError, PacketErrorKind};
use super::model::{CreateDevice, Device, DeviceList, HardwareReservation, ReservationList};
use crate::http::{body_start, parse_retry_after, transport_detail};

/// The public API's base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.equinix.com/metal/v1";
/// The environment variables that may hold the API token, in order of preference.
pub const TOKEN_ENV: [&str; 2] = ["PACKET_AUTH_TOKEN", "METAL_AUTH_TOKEN"];
/// Devices per page of list calls: the API's maximum. Every call counts against Packet's rate
/// limit (600 a minute) and a poll lists every device of the cluster, so at 1000 workers a
/// page of 250 made a poll 5 calls and pushed device creates past the limit. Lists are sent
/// without `userdata`, so even a full page is a few megabytes at most.
pub(crate) const PER_PAGE: u32 = 1000;

/// The API token. Its `Debug` never shows it, and the run's redactor is told of it, so that
/// no error or event can carry it.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    /// Reads the token from `PACKET_AUTH_TOKEN` or `METAL_AUTH_TOKEN`, and tells `redactor`.
    pub fn from_env(redactor: &journal::Redactor) -> Result<Token, MissingToken> {
        TOKEN_ENV
            .iter()
            .find_map(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
            .map(|token| Token::new(token, redactor))
            .ok_or(MissingToken)
    }

    /// Wraps a token, and tells `redactor` (the run's) so that nothing it redacts carries it.
    pub fn new(token: impl Into<String>, redactor: &journal::Redactor) -> Token {
        let token = token.into().trim().to_owned();
        redactor.add(&token);
        Token(token)
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token([redacted])")
    }
}

/// Neither token variable is set.
#[derive(Debug, thiserror::Error)]
#[error(
    "no Packet API token: set PACKET_AUTH_TOKEN (or METAL_AUTH_TOKEN) to an API key of your user"
)]
pub struct MissingToken;

/// Timeouts of every request.
#[derive(Clone, Debug)]
pub struct Timeouts {
    pub connect: Duration,
    pub request: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            request: Duration::from_secs(60),
        }
    }
}

/// A client bound to one project.
pub struct PacketClient {
    http: reqwest::Client,
    base: String,
    project: String,
    /// No request leaves before this instant (set from `Retry-After`).
    not_before: Mutex<Option<Instant>>,
    /// Real seconds per second of the server's clock (see [`PacketClient::server_time_scale`]).
    server_time_scale: f64,
    counts: Mutex<CallCounts>,
}

/// Requests sent by a client, for `loko bench` and the run summary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallCounts {
    /// Requests per operation ("list devices", "create device", ...).
    pub by_operation: std::collections::BTreeMap<&'static str, u64>,
    /// 429 answers received.
    pub rate_limited: u64,
}

/// Could not build the HTTP client (TLS setup failed).
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the HTTP client: {0}")]
pub struct ClientSetupError(String);

impl PacketClient {
    /// A client for `project` at `base_url` (e.g. [`DEFAULT_BASE_URL`] or the simulator's URL).
    pub fn new(
        base_url: &str,
        project: &str,
        token: &Token,
        timeouts: &Timeouts,
    ) -> Result<PacketClient, ClientSetupError> {
        let mut auth = HeaderValue::from_str(&token.0).map_err(|_| {
            ClientSetupError("the API token holds characters not allowed in an HTTP header".into())
        })?;
        auth.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert("X-Auth-Token", auth);
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .connect_timeout(timeouts.connect)
            .timeout(timeouts.request)
            .user_agent(concat!("loko/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientSetupError(e.to_string()))?;
        Ok(PacketClient {
            http,
            base: base_url.trim_end_matches('/').to_owned(),
            project: project.to_owned(),
            not_before: Mutex::new(None),
            server_time_scale: 1.0,
            counts: Mutex::new(CallCounts::default()),
        })
    }

    /// The server counts time `1 / scale` times as fast as real time (a simulator run with a
    /// time scale): the seconds of its `Retry-After` are `scale` real seconds each. A scale
    /// that is not a positive number is ignored.
    #[must_use]
    pub fn server_time_scale(mut self, scale: f64) -> PacketClient {
        if scale.is_finite() && scale > 0.0 {
            self.server_time_scale = scale;
        }
        self
    }

    /// The requests sent so far.
    pub fn call_counts(&self) -> CallCounts {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The project this client works in.
    pub fn project(&self) -> &str {
        &self.project
    }

    /// Every device of the project carrying `tag`, all pages.
    pub async fn list_devices(&self, tag: &str) -> Result<Vec<Device>, PacketError> {
        let mut devices = Vec::new();
        let mut page = 1;
        loop {
            let path = format!("/projects/{}/devices", self.project);
            // Without `userdata`: each device's Ignition is kilobytes loko does not read back,
            // and a thousand of them per poll would be most of the traffic.
            let query = [
                ("tag", tag.to_owned()),
                ("exclude", "userdata".to_owned()),
                ("page", page.to_string()),
                ("per_page", PER_PAGE.to_string()),
            ];
            let list: DeviceList = self
                .call(Method::GET, &path, &query, None::<&()>, "list devices", tag)
                .await?;
            let last = list.meta.last_page.unwrap_or(1);
            devices.extend(list.devices);
            if page >= last {
                break;
            }
            page += 1;
        }
        Ok(devices)
    }

    /// One device by id.
    /// Reads the client's project: one call that proves the token and that the project exists
    /// for it (401 for a refused token, 403 or 404 for a project it cannot see).
    pub async fn check_project(&self) -> Result<(), PacketError> {
        let path = format!("/projects/{}", self.project);
        let _: serde_json::Value = self
            .call(
                Method::GET,
                &path,
                &[],
                None::<&()>,
                "read project",
                &self.project,
            )
            .await?;
        Ok(())
    }

    pub async fn get_device(&self, id: &str) -> Result<Device, PacketError> {
        self.call(
            Method::GET,
            &format!("/devices/{id}"),
            &[],
            None::<&()>,
            "get device",
            id,
        )
        .await
    }

    /// Creates a device. A failure after the request left may still have created it: callers
    /// look it up by its tags before trying again.
    pub async fn create_device(&self, request: &CreateDevice) -> Result<Device, PacketError> {
        let path = format!("/projects/{}/devices", self.project);
        self.call(
            Method::POST,
            &path,
            &[],
            Some(request),
            "create device",
            &request.hostname,
        )
        .await
    }

    /// Deletes a device; a device that is already gone (404, or 403 after a failed
    /// provisioning) counts as deleted.
    pub async fn delete_device(&self, id: &str) -> Result<(), PacketError> {
        let path = format!("/devices/{id}");
        match self
            .call::<serde_json::Value, ()>(Method::DELETE, &path, &[], None, "delete device", id)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_gone() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The project's hardware reservations, all pages.
    pub async fn hardware_reservations(&self) -> Result<Vec<HardwareReservation>, PacketError> {
        let mut out = Vec::new();
        let mut page = 1;
        loop {
            let path = format!("/projects/{}/hardware-reservations", self.project);
            let query = [
                ("page", page.to_string()),
                ("per_page", PER_PAGE.to_string()),
            ];
            let list: ReservationList = self
                .call(
                    Method::GET,
                    &path,
                    &query,
                    None::<&()>,
                    "list hardware reservations",
                    &self.project,
                )
                .await?;
            let last = list.meta.last_page.unwrap_or(1);
            out.extend(list.hardware_reservations);
            if page >= last {
                break;
            }
            page += 1;
        }
        Ok(out)
    }

    async fn call<T: DeserializeOwned, B: serde::Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&B>,
        operation: &'static str,
        object: &str,
    ) -> Result<T, PacketError> {
        let fail = |kind, detail: Option<String>| PacketError {
            operation,
            object: object.to_owned(),
            kind,
            detail: detail.map(|d| journal::redact_shapes(&d)),
        };
        self.wait_for_rate_limit().await;
        *self
            .counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .by_operation
            .entry(operation)
            .or_default() += 1;
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .query(query);
        if let Some(body) = body {
            request = request.json(body);
        }
        tracing::debug!(%method, path, "packet request");
        // Boxed: reqwest's futures are large (inline, they made a device step's future 900
        // bytes larger), and every future that awaits a call carries them for its whole life,
        // e.g. each of 5,000 device steps waiting minutes for its machine, no request in flight.
        let exchange = Box::pin(async {
            let response = request.send().await?;
            let status = response.status();
            let retry_after = parse_retry_after(response.headers());
            Ok::<_, reqwest::Error>((status, retry_after, response.bytes().await?))
        });
        let (status, retry_after, bytes) = exchange
            .await
            .map_err(|e| fail(PacketErrorKind::Transport, Some(transport_detail(&e))))?;
        let retry_after = retry_after.map(|wait| {
            Duration::try_from_secs_f64(wait.as_secs_f64() * self.server_time_scale).unwrap_or(wait)
        });
        if status.is_success() && is_web_page(&bytes) {
            return Err(fail(
                PacketErrorKind::NotPacket {
                    status: status.as_u16(),
                },
                Some(body_start(&bytes)),
            ));
        }
        if status.is_success() {
            let bytes = if bytes.is_empty() {
                &b"null"[..]
            } else {
                &bytes[..]
            };
            return serde_json::from_slice(bytes)
                .map_err(|e| fail(PacketErrorKind::Decode, Some(e.to_string())));
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            self.counts
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .rate_limited += 1;
            if let Some(wait) = retry_after {
                self.hold_requests_for(wait);
            }
        }
        let kind = match status.as_u16() {
            // Packet explains every refusal in its error JSON; a bare one is another server.
            s @ 400..=499 if s != 429 && packet_error_messages(&bytes).is_none() => {
                PacketErrorKind::NotPacket { status: s }
            }
            401 => PacketErrorKind::Unauthorized,
            403 => PacketErrorKind::Forbidden,
            404 => PacketErrorKind::NotFound,
            422 => PacketErrorKind::Invalid,
            429 => PacketErrorKind::RateLimited { retry_after },
            s @ 500..=599 => PacketErrorKind::Server { status: s },
            s => PacketErrorKind::Unexpected { status: s },
        };
        Err(fail(kind, api_messages(&bytes)))
    }

    async fn wait_for_rate_limit(&self) {
        let until = *self.not_before.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(until) = until {
            tokio::time::sleep_until(until.into()).await;
        }
    }

    fn hold_requests_for(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut not_before = self.not_before.lock().unwrap_or_else(|e| e.into_inner());
        if not_before.is_none_or(|t| t < until) {
            *not_before = Some(until);
        }
    }
}

/// The API's `{"errors": ["..."]}` (or `{"error": "..."}`) joined, or the start of the body.
fn api_messages(body: &[u8]) -> Option<String> {
    match packet_error_messages(body) {
        Some(messages) => Some(messages),
        None if body.is_empty() => None,
        None => Some(body_start(body)),
    }
}

/// The messages of Packet's error JSON (`{"errors": [...]}` or `{"error": "..."}`), if the
/// body is one.
fn packet_error_messages(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        #[serde(default)]
        errors: Vec<String>,
        #[serde(default)]
        error: Option<String>,
    }
    match serde_json::from_slice::<ErrorBody>(body).ok()? {
        e if !e.errors.is_empty() => Some(e.errors.join("; ")),
        ErrorBody { error, .. } => error,
    }
}

/// An HTML page, which the JSON API never sends.
fn is_web_page(body: &[u8]) -> bool {
    body.trim_ascii_start().first() == Some(&b'<')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_error_bodies_are_read() {
        assert_eq!(
            api_messages(br#"{"errors":["plan not found","facility not found"]}"#).as_deref(),
            Some("plan not found; facility not found")
        );
        assert_eq!(
            api_messages(br#"{"error":"nope"}"#).as_deref(),
            Some("nope")
        );
        assert_eq!(
            api_messages(b"<html>bad gateway").as_deref(),
            Some("<html>bad gateway")
        );
        assert_eq!(api_messages(b""), None);
        assert_eq!(packet_error_messages(b"404 page not found"), None);
        assert_eq!(packet_error_messages(br#"{"other":1}"#), None);
        assert!(is_web_page(b"  <!DOCTYPE html>") && !is_web_page(b"{}"));
    }

    #[test]
    fn the_token_never_shows() {
        let redactor = journal::Redactor::new();
        let t = Token::new("tok-abcdefghijklmnop-0001", &redactor);
        assert_eq!(format!("{t:?}"), "Token([redacted])");
        assert_eq!(
            redactor.redact("x tok-abcdefghijklmnop-0001"),
            "x [redacted]"
        );
    }
}
