//! A Redfish (DMTF DSP0266) client for one BMC: the calls that boot a machine from the network
//! and power it, over reqwest as the Packet client.
//!
//! Like the Packet client it does not retry a failed call: a [`RedfishError`] says whether it
//! may pass, and the engine's retry policy decides. What it does wait for is what the protocol
//! says to wait for: a `202 Accepted` answer's task monitor, and a power state that a reset
//! changes some seconds after it is accepted.

use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::header::{HeaderMap, HeaderValue, IF_MATCH, LOCATION};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::credentials::BmcCredentials;
use super::error::{RedfishError, RedfishErrorKind};
use super::model::{
    Collection, ComputerSystem, EthernetInterface, PowerState, Reset, ServiceRoot, Task,
};
use crate::http::{body_start, parse_retry_after, transport_detail};
use crate::packet::Timeouts;

/// The service root, the one resource a client may read before it authenticates.
const SERVICE_ROOT: &str = "/redfish/v1/";
/// Where the systems are listed, read to prove basic credentials.
const SYSTEMS: &str = "/redfish/v1/Systems";

/// How often, and how long, to read a power state or a task monitor back.
#[derive(Clone, Debug)]
pub struct Polling {
    pub every: Duration,
    pub within: Duration,
}

impl Default for Polling {
    fn default() -> Self {
        // BMCs apply a reset within seconds to a minute; a machine's firmware may take longer
        // to report On, so five minutes before the step fails and its retries take over.
        Polling {
            every: Duration::from_secs(2),
            within: Duration::from_secs(300),
        }
    }
}

/// How requests are authenticated.
enum Auth {
    /// A session's `X-Auth-Token`, and the session to delete at the end.
    Session { token: HeaderValue, url: String },
    /// `Authorization: Basic`, for a service without a session service.
    Basic(HeaderValue),
}

/// A client of one BMC, authenticated.
pub struct RedfishClient {
    http: reqwest::Client,
    bmc: String,
    auth: Auth,
    /// Removes the password, the basic-auth header and the session's token from what an error
    /// quotes of an answer.
    redactor: journal::Redactor,
}

/// A successful answer.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl RedfishClient {
    /// Reads the BMC's service root at `bmc` (its base URL, `https://10.0.9.11`) and signs in:
    /// a session when the root links a session service, basic authentication otherwise
    /// (proven by reading the systems). Wrong credentials are a 401 naming the BMC.
    pub async fn connect(
        bmc: &str,
        credentials: &BmcCredentials,
        timeouts: &Timeouts,
    ) -> Result<RedfishClient, RedfishError> {
        let http = reqwest::Client::builder()
            .connect_timeout(timeouts.connect)
            .timeout(timeouts.request)
            .user_agent(concat!("loko/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| RedfishError {
                operation: "set up the HTTP client".into(),
                bmc: bmc.to_owned(),
                system: String::new(),
                kind: Box::new(RedfishErrorKind::Transport),
                detail: Some(crate::error_chain(&e)),
            })?;
        let basic = basic_header(credentials);
        let mut client = RedfishClient {
            http,
            bmc: bmc.trim_end_matches('/').to_owned(),
            auth: Auth::Basic(basic),
            redactor: credentials.redactor.clone(),
        };
        let root: ServiceRoot = client
            .get_json(SERVICE_ROOT, "read the service root", SERVICE_ROOT)
            .await?;
        let sessions = root.links.and_then(|l| l.sessions).map(|l| l.odata_id);
        if let Some(sessions) = sessions
            && let Some(auth) = client.open_session(&sessions, credentials).await?
        {
            client.auth = auth;
            return Ok(client);
        }
        let _: Collection = client.get_json(SYSTEMS, "sign in (basic)", SYSTEMS).await?;
        Ok(client)
    }

    /// The BMC's base URL.
    pub fn bmc(&self) -> &str {
        &self.bmc
    }

    /// True when requests carry a session's token (false: basic authentication).
    pub fn has_session(&self) -> bool {
        matches!(self.auth, Auth::Session { .. })
    }

    /// Signs out: deletes the session, if there is one. A session already gone counts as
    /// deleted.
    pub async fn close(self) -> Result<(), RedfishError> {
        let Auth::Session { url, .. } = &self.auth else {
            return Ok(());
        };
        match self
            .exchange(Method::DELETE, url, None, None, "delete the session", url)
            .await
        {
            Err(e) if *e.kind == RedfishErrorKind::NotFound => Ok(()),
            other => other.map(drop),
        }
    }

    /// The system at `system` (`/redfish/v1/Systems/<id>`).
    pub async fn system(&self, system: &str) -> Result<ComputerSystem, RedfishError> {
        let answer = self
            .exchange(Method::GET, system, None, None, "read the system", system)
            .await?;
        let mut read: ComputerSystem = self.decode(&answer, "read the system", system)?;
        // DSP0266 puts the ETag in a header and may repeat it as @odata.etag; the header wins.
        if let Some(etag) = answer.headers.get("etag").and_then(|v| v.to_str().ok()) {
            read.odata_etag = Some(etag.to_owned());
        }
        Ok(read)
    }

    /// The MAC addresses of the system's Ethernet interfaces, lowercase, as listed.
    pub async fn macs(&self, system: &ComputerSystem) -> Result<Vec<String>, RedfishError> {
        let Some(link) = &system.ethernet_interfaces else {
            return Ok(Vec::new());
        };
        let list: Collection = self
            .get_json(&link.odata_id, "list the NICs", &system.resource.odata_id)
            .await?;
        let mut macs = Vec::new();
        for member in &list.members {
            let nic: EthernetInterface = self
                .get_json(&member.odata_id, "read a NIC", &system.resource.odata_id)
                .await?;
            for mac in [nic.mac, nic.permanent_mac].into_iter().flatten() {
                let mac = mac.to_ascii_lowercase().replace('-', ":");
                if !mac.is_empty() && !macs.contains(&mac) {
                    macs.push(mac);
                }
            }
        }
        Ok(macs)
    }

    /// Reads the system and checks that it has the NIC `mac`: the spec's system is the machine
    /// it says, before loko powers it.
    pub async fn machine(
        &self,
        system: &str,
        mac: &specs::MacAddress,
    ) -> Result<ComputerSystem, RedfishError> {
        let read = self.system(system).await?;
        let found = self.macs(&read).await?;
        let mac = mac.to_string();
        if !found.contains(&mac) {
            return Err(self.fail(
                "check the machine",
                system,
                RedfishErrorKind::WrongMachine { mac, found },
                None,
            ));
        }
        Ok(read)
    }

    /// Sets the next boot, once, to PXE (`Boot.BootSourceOverrideTarget: Pxe`, `Enabled:
    /// Once`), as the system read last says it may be changed: with `If-Match` its ETag when it
    /// has one (a 412, changed meanwhile, is retryable). Then reads the system back: its
    /// override target must be `Pxe`. `Enabled` is not held to `Once`: sushy-tools always
    /// reports `Continuous` (its main.py ignores the field), and a PXE boot on every restart
    /// still boots the machine.
    pub async fn boot_pxe_once(
        &self,
        system: &ComputerSystem,
        polling: &Polling,
    ) -> Result<ComputerSystem, RedfishError> {
        const OPERATION: &str = "set the next boot to PXE once";
        let path = &system.resource.odata_id;
        if let Some(allowed) = system
            .boot
            .as_ref()
            .and_then(|b| b.allowed_targets.as_ref())
            && !allowed.iter().any(|t| t == "Pxe")
        {
            return Err(self.fail(
                OPERATION,
                path,
                RedfishErrorKind::PxeNotAllowed {
                    allowed: allowed.clone(),
                },
                None,
            ));
        }
        let body = json!({
            "Boot": { "BootSourceOverrideTarget": "Pxe", "BootSourceOverrideEnabled": "Once" }
        });
        let answer = self
            .exchange(
                Method::PATCH,
                path,
                Some(&body),
                system.odata_etag.as_deref(),
                OPERATION,
                path,
            )
            .await?;
        self.finish_task(answer, OPERATION, path, polling).await?;
        let read = self.system(path).await?;
        let target = read.boot.as_ref().and_then(|b| b.override_target.clone());
        if target.as_deref() != Some("Pxe") {
            return Err(self.fail(
                OPERATION,
                path,
                RedfishErrorKind::BootOverrideNotKept {
                    target: target.unwrap_or_else(|| "not reported".into()),
                },
                None,
            ));
        }
        Ok(read)
    }

    /// Asks the system for `reset`, with the first of its reset types the system allows, and
    /// follows a task monitor to its end. Returns the reset type sent.
    pub async fn reset(
        &self,
        system: &ComputerSystem,
        reset: Reset,
        polling: &Polling,
    ) -> Result<&'static str, RedfishError> {
        let path = &system.resource.odata_id;
        let action = system.actions.as_ref().and_then(|a| a.reset.as_ref());
        let Some(action) = action else {
            return Err(self.fail(
                "reset",
                path,
                RedfishErrorKind::ResetNotAllowed {
                    wanted: reset.types().to_vec(),
                    allowed: Vec::new(),
                },
                Some("the system has no #ComputerSystem.Reset action".into()),
            ));
        };
        // Without AllowableValues the schema leaves every type possible: the first is sent.
        let chosen = match &action.allowed {
            None => reset.types().first().copied(),
            Some(allowed) => reset
                .types()
                .iter()
                .copied()
                .find(|t| allowed.iter().any(|a| a == t)),
        };
        let Some(reset_type) = chosen else {
            return Err(self.fail(
                "reset",
                path,
                RedfishErrorKind::ResetNotAllowed {
                    wanted: reset.types().to_vec(),
                    allowed: action.allowed.clone().unwrap_or_default(),
                },
                None,
            ));
        };
        let operation = format!("reset {reset_type}");
        let body = json!({ "ResetType": reset_type });
        let answer = self
            .exchange(
                Method::POST,
                &action.target,
                Some(&body),
                None,
                &operation,
                path,
            )
            .await?;
        self.finish_task(answer, &operation, path, polling).await?;
        Ok(reset_type)
    }

    /// Reads the system back until its power state is `want`, for at most `polling.within`.
    pub async fn wait_for_power(
        &self,
        system: &str,
        want: &PowerState,
        polling: &Polling,
    ) -> Result<ComputerSystem, RedfishError> {
        let start = Instant::now();
        loop {
            let read = self.system(system).await?;
            if read.power_state.as_ref() == Some(want) {
                return Ok(read);
            }
            if start.elapsed() >= polling.within {
                let last = read
                    .power_state
                    .map_or_else(|| "not reported".to_owned(), |s| s.to_string());
                return Err(self.fail(
                    "read the power state back",
                    system,
                    RedfishErrorKind::PowerStateNotReached {
                        want: want.to_string(),
                        last,
                        waited: start.elapsed(),
                    },
                    None,
                ));
            }
            tokio::time::sleep(polling.every).await;
        }
    }

    /// After a change: done at once (200, 204), or a `202 Accepted` whose task monitor
    /// (`Location`) is read until it no longer answers 202, then must show `Completed`.
    async fn finish_task(
        &self,
        answer: Answer,
        operation: &str,
        system: &str,
        polling: &Polling,
    ) -> Result<(), RedfishError> {
        if answer.status != StatusCode::ACCEPTED {
            return Ok(());
        }
        let Some(monitor) = location(&answer.headers) else {
            // A 202 without a monitor: nothing to follow; the read-back decides.
            return Ok(());
        };
        let start = Instant::now();
        let mut wait = parse_retry_after(&answer.headers).unwrap_or(polling.every);
        loop {
            if start.elapsed() >= polling.within {
                return Err(self.fail(
                    operation,
                    system,
                    RedfishErrorKind::TaskUnfinished {
                        waited: start.elapsed(),
                    },
                    Some(format!("task monitor {monitor}")),
                ));
            }
            tokio::time::sleep(wait.min(polling.within.saturating_sub(start.elapsed()))).await;
            let read = self
                .exchange(Method::GET, &monitor, None, None, operation, system)
                .await?;
            if read.status == StatusCode::ACCEPTED {
                wait = parse_retry_after(&read.headers).unwrap_or(polling.every);
                continue;
            }
            // The monitor now answers with the operation's result; a Task tells how it ended.
            let state = serde_json::from_slice::<Task>(&read.body)
                .ok()
                .and_then(|t| t.task_state);
            return match state.as_deref() {
                None | Some("Completed") => Ok(()),
                Some(other) => Err(self.fail(
                    operation,
                    system,
                    RedfishErrorKind::TaskFailed {
                        state: other.to_owned(),
                    },
                    redfish_messages(&read.body),
                )),
            };
        }
    }

    async fn open_session(
        &self,
        sessions: &str,
        credentials: &BmcCredentials,
    ) -> Result<Option<Auth>, RedfishError> {
        const OPERATION: &str = "open a session";
        let body = json!({ "UserName": credentials.username, "Password": credentials.password });
        let request = self
            .http
            .post(self.url(sessions))
            .json(&body)
            .header("OData-Version", "4.0");
        let (status, headers, bytes) = self.send(request, OPERATION, sessions).await?;
        match status.as_u16() {
            200 | 201 => {}
            // No session service after all: basic authentication, as the root did not link one.
            404 | 405 | 501 => return Ok(None),
            _ => return Err(self.status_error(status, &headers, &bytes, OPERATION, sessions)),
        }
        let token = headers.get("x-auth-token").cloned();
        let url = location(&headers).or_else(|| {
            serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v["@odata.id"].as_str().map(str::to_owned))
        });
        match (token, url) {
            (Some(mut token), Some(url)) => {
                token.set_sensitive(true);
                if let Ok(text) = token.to_str() {
                    credentials.redactor.add(text);
                }
                Ok(Some(Auth::Session { token, url }))
            }
            _ => Err(self.fail(
                OPERATION,
                sessions,
                RedfishErrorKind::Decode,
                Some("the session was created without an X-Auth-Token or a Location".into()),
            )),
        }
    }

    async fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        operation: &str,
        system: &str,
    ) -> Result<T, RedfishError> {
        let answer = self
            .exchange(Method::GET, path, None, None, operation, system)
            .await?;
        self.decode(&answer, operation, system)
    }

    fn decode<T: DeserializeOwned>(
        &self,
        answer: &Answer,
        operation: &str,
        system: &str,
    ) -> Result<T, RedfishError> {
        serde_json::from_slice(&answer.body).map_err(|e| {
            self.fail(
                operation,
                system,
                RedfishErrorKind::Decode,
                Some(format!("{e} (body: {})", body_start(&answer.body))),
            )
        })
    }

    /// One authenticated request; a status other than 2xx is an error.
    async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        if_match: Option<&str>,
        operation: &str,
        system: &str,
    ) -> Result<Answer, RedfishError> {
        let mut request = self
            .http
            .request(method.clone(), self.url(path))
            .header("OData-Version", "4.0");
        request = match &self.auth {
            Auth::Session { token, .. } => request.header("X-Auth-Token", token.clone()),
            Auth::Basic(basic) => request.header(reqwest::header::AUTHORIZATION, basic.clone()),
        };
        if let Some(etag) = if_match {
            request = request.header(IF_MATCH, etag);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        tracing::debug!(%method, bmc = %self.bmc, path, "redfish request");
        let (status, headers, bytes) = self.send(request, operation, system).await?;
        if !status.is_success() {
            return Err(self.status_error(status, &headers, &bytes, operation, system));
        }
        Ok(Answer {
            status,
            headers,
            body: bytes,
        })
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        operation: &str,
        system: &str,
    ) -> Result<(StatusCode, HeaderMap, Vec<u8>), RedfishError> {
        // Boxed, as the Packet client's: reqwest's futures are large.
        let exchange = Box::pin(async {
            let response = request.send().await?;
            let status = response.status();
            let headers = response.headers().clone();
            Ok::<_, reqwest::Error>((status, headers, response.bytes().await?.to_vec()))
        });
        exchange.await.map_err(|e| {
            self.fail(
                operation,
                system,
                RedfishErrorKind::Transport,
                Some(transport_detail(&e)),
            )
        })
    }

    fn status_error(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
        operation: &str,
        system: &str,
    ) -> RedfishError {
        use RedfishErrorKind as K;
        let kind = match status.as_u16() {
            401 => K::Unauthorized,
            403 => K::Forbidden,
            404 => K::NotFound,
            412 => K::Changed,
            429 | 503 => K::Busy {
                retry_after: parse_retry_after(headers),
            },
            // Not Implemented is the BMC's final word, not a failure that passes.
            s @ (400..=499 | 501) => K::Refused { status: s },
            s @ 500..=599 => K::Server { status: s },
            s => K::Unexpected { status: s },
        };
        self.fail(operation, system, kind, redfish_messages(body))
    }

    fn fail(
        &self,
        operation: &str,
        system: &str,
        kind: RedfishErrorKind,
        detail: Option<String>,
    ) -> RedfishError {
        RedfishError {
            operation: operation.to_owned(),
            bmc: self.bmc.clone(),
            system: system.to_owned(),
            kind: Box::new(kind),
            detail: detail.map(|d| self.redactor.redact(&d)),
        }
    }

    /// A path on this BMC, or a URL it gave (a task monitor may be absolute).
    fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_owned()
        } else {
            format!("{}{path}", self.bmc)
        }
    }
}

fn basic_header(credentials: &BmcCredentials) -> HeaderValue {
    let pair = format!("{}:{}", credentials.username, credentials.password);
    let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
    credentials.redactor.add(&encoded);
    // Base64 is always a valid header value.
    let mut value = HeaderValue::from_str(&format!("Basic {encoded}"))
        .unwrap_or_else(|_| HeaderValue::from_static("Basic"));
    value.set_sensitive(true);
    value
}

fn location(headers: &HeaderMap) -> Option<String> {
    headers
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// A Redfish error body's `error.message` and its extended info's messages, joined; else the
/// start of the body.
fn redfish_messages(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) if body.is_empty() => return None,
        Err(_) => return Some(body_start(body)),
    };
    let error = &value["error"];
    let mut messages: Vec<String> = error["message"]
        .as_str()
        .map(str::to_owned)
        .into_iter()
        .collect();
    if let Some(extended) = error["@Message.ExtendedInfo"].as_array() {
        for message in extended.iter().filter_map(|m| m["Message"].as_str()) {
            // BMCs often repeat the error's message as its first ExtendedInfo: said once.
            if !messages.iter().any(|said| said == message) {
                messages.push(message.to_owned());
            }
        }
    }
    if messages.is_empty() {
        (!body.is_empty()).then(|| body_start(body))
    } else {
        Some(messages.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redfish_error_bodies_are_read() {
        let body = br#"{"error":{"code":"Base.1.0.GeneralError","message":"Fake system nope was not found","@Message.ExtendedInfo":[{"MessageId":"Base.1.0.GeneralError","Message":"See the log"}]}}"#;
        assert_eq!(
            redfish_messages(body).as_deref(),
            Some("Fake system nope was not found; See the log")
        );
        let repeated = br#"{"error":{"message":"the BMC is busy; retry later","@Message.ExtendedInfo":[{"Message":"the BMC is busy; retry later"}]}}"#;
        assert_eq!(
            redfish_messages(repeated).as_deref(),
            Some("the BMC is busy; retry later")
        );
        assert_eq!(redfish_messages(b""), None);
        assert_eq!(redfish_messages(b"<html>").as_deref(), Some("<html>"));
    }
}
