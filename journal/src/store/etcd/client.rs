//! The HTTP side of the etcd store: requests to the first member that answers, on a runtime of
//! the store's own (the journal's API is synchronous), and the JSON of etcd's gateway (keys and
//! values base64, 64-bit integers as strings).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

use super::config::{EtcdConfig, LockInfo};
use super::limits::PAGE;
use crate::store::seam::{Bytes, Records, StoreError};

/// The HTTP side: every endpoint, the one that answered last first.
#[derive(Clone)]
pub(super) struct Client {
    http: reqwest::Client,
    pub(super) streaming: reqwest::Client,
    pub(super) bases: Arc<Vec<String>>,
    current: Arc<AtomicUsize>,
}

impl Client {
    pub(super) fn new(config: &EtcdConfig) -> Result<Client, StoreError> {
        let failed = |what: &str, e: &dyn std::fmt::Display| {
            StoreError::Failed(format!("etcd client for {}: {what}: {e}", config.url()))
        };
        let builder = || -> Result<reqwest::ClientBuilder, StoreError> {
            let mut b = reqwest::Client::builder().connect_timeout(Duration::from_secs(3));
            if let Some(tls) = &config.tls {
                if let Some(ca) = &tls.ca {
                    let pem =
                        std::fs::read(ca).map_err(|e| failed(&ca.display().to_string(), &e))?;
                    let cert = reqwest::Certificate::from_pem(&pem)
                        .map_err(|e| failed(&ca.display().to_string(), &e))?;
                    b = b.add_root_certificate(cert);
                }
                match (&tls.cert, &tls.key) {
                    (Some(cert), Some(key)) => {
                        let mut pem = std::fs::read(cert)
                            .map_err(|e| failed(&cert.display().to_string(), &e))?;
                        pem.push(b'\n');
                        pem.extend(
                            std::fs::read(key)
                                .map_err(|e| failed(&key.display().to_string(), &e))?,
                        );
                        let id = reqwest::Identity::from_pem(&pem)
                            .map_err(|e| failed("client certificate and key", &e))?;
                        b = b.identity(id);
                    }
                    (None, None) => {}
                    _ => {
                        return Err(StoreError::Failed(
                            "a client certificate needs its key, and a key its certificate"
                                .to_owned(),
                        ));
                    }
                }
            }
            Ok(b)
        };
        let scheme = if config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        Ok(Client {
            http: builder()?
                .timeout(Duration::from_secs(10))
                .build()
                .map_err(|e| failed("build", &e))?,
            streaming: builder()?.build().map_err(|e| failed("build", &e))?,
            bases: Arc::new(
                config
                    .endpoints
                    .iter()
                    .map(|e| format!("{scheme}://{e}"))
                    .collect(),
            ),
            current: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// POSTs `body` to `path` at the first endpoint that answers. A member that cannot be
    /// reached is passed over, so a cluster with a majority up keeps serving.
    pub(super) async fn post(&self, path: &str, body: &Value) -> Result<Value, StoreError> {
        let start = self.current.load(Ordering::Relaxed);
        let mut last = String::new();
        // Every member refused the connection (or had no address): no etcd is there.
        let mut unreachable = true;
        for i in 0..self.bases.len() {
            let at = (start + i) % self.bases.len();
            let url = format!("{}{path}", self.bases[at]);
            match self.http.post(&url).json(body).send().await {
                Ok(resp) => {
                    unreachable = false;
                    self.current.store(at, Ordering::Relaxed);
                    let status = resp.status();
                    let value: Value = resp.json().await.map_err(|e| {
                        StoreError::Failed(format!("etcd at {url}: unreadable answer: {e}"))
                    })?;
                    if !status.is_success() || value.get("error").is_some() {
                        let message = value
                            .get("message")
                            .or_else(|| value.get("error"))
                            .and_then(Value::as_str)
                            .unwrap_or("no message");
                        // "no leader" and the like: another member may do better.
                        if status.is_server_error() && i + 1 < self.bases.len() {
                            last = format!("{url}: {status}: {message}");
                            continue;
                        }
                        return Err(StoreError::Failed(format!(
                            "etcd at {url} answered {status}: {message}"
                        )));
                    }
                    return Ok(value);
                }
                Err(e) => {
                    unreachable &= e.is_connect();
                    last = format!("{url}: {}", causes(&e));
                }
            }
        }
        let message = format!("no etcd member answered ({last})");
        Err(if unreachable {
            StoreError::Unreachable(message)
        } else {
            StoreError::Failed(message)
        })
    }

    /// Like [`Client::post`], retried for up to `within` while no member answers: an election
    /// or a member restarting takes seconds.
    pub(super) async fn post_retried(
        &self,
        path: &str,
        body: &Value,
        within: Duration,
    ) -> Result<Value, StoreError> {
        let start = Instant::now();
        let mut pause = Duration::from_millis(100);
        loop {
            match self.post(path, body).await {
                Ok(v) => return Ok(v),
                Err(e) if start.elapsed() + pause >= within => return Err(e),
                Err(_) => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
            }
        }
    }
}

/// A connection to etcd: the client and the runtime it runs on. The journal's API is
/// synchronous (sled's is), and may be called from inside the caller's runtime, where blocking
/// on another runtime panics; so requests run on this connection's own runtime and the caller
/// waits on a plain channel.
pub(super) struct Connection {
    config: EtcdConfig,
    pub(super) client: Client,
    runtime: Option<tokio::runtime::Runtime>,
    pub(super) handle: tokio::runtime::Handle,
}

impl Connection {
    pub(super) fn open(config: &EtcdConfig) -> Result<Connection, StoreError> {
        let client = Client::new(config)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("journal-etcd")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Failed(format!("etcd client runtime: {e}")))?;
        let connection = Connection {
            config: config.clone(),
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
            client,
        };
        connection.probe()?;
        Ok(connection)
    }

    /// Runs `f(client)` on the connection's runtime and waits for it.
    pub(super) fn call<T, F>(&self, f: impl FnOnce(Client) -> F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::channel();
        let fut = f(self.client.clone());
        self.handle.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv()
            .map_err(|_| StoreError::Failed("the etcd client stopped".to_owned()))?
    }

    /// One request, not retried, that proves a member can be connected to: a journal whose
    /// etcd is not there fails at once, as a setup problem, instead of after the seconds of
    /// retries that wait out an election.
    fn probe(&self) -> Result<(), StoreError> {
        self.call(|c| async move {
            match c.post("/v3/maintenance/status", &json!({})).await {
                Err(e @ StoreError::Unreachable(_)) => Err(e),
                // Anything that answered, even with an error, is an etcd to retry against.
                _ => Ok(()),
            }
        })
    }

    pub(super) fn post(&self, path: &'static str, body: Value) -> Result<Value, StoreError> {
        self.call(
            move |c| async move { c.post_retried(path, &body, Duration::from_secs(10)).await },
        )
    }

    pub(super) fn key(&self, name: &[u8]) -> Vec<u8> {
        self.config.key(name)
    }

    /// Who holds the lock, if anyone.
    pub(super) fn lock_info(&self) -> Result<Option<LockInfo>, StoreError> {
        let resp = self.post("/v3/kv/range", json!({"key": b64(&self.key(b"lock"))}))?;
        let Some(kv) = first_kv(&resp) else {
            return Ok(None);
        };
        let lease = int(&kv["lease"]);
        let ttl = self.post("/v3/lease/timetolive", json!({"ID": lease.to_string()}))?;
        let ttl_left = Some(int(&ttl["TTL"])).filter(|t| *t > 0);
        Ok(Some(LockInfo {
            holder: String::from_utf8_lossy(&unb64(&kv["value"])).into_owned(),
            lease,
            ttl_left,
            fence: int(&kv["create_revision"]) as u64,
        }))
    }

    /// Revokes a lease: etcd deletes every key bound to it.
    pub(super) fn revoke(&self, lease: i64) -> Result<(), StoreError> {
        self.post("/v3/lease/revoke", json!({"ID": lease.to_string()}))
            .map(|_| ())
    }

    /// Records with keys in `[from, end)`, a page at a time, all read at one revision.
    pub(super) fn range_pages(&self, from: Vec<u8>, end: Vec<u8>) -> Records<'_> {
        let mut next = Some(from);
        let mut revision: Option<i64> = None;
        let mut buffer = std::collections::VecDeque::new();
        let strip = self.key(b"e/").len();
        Box::new(std::iter::from_fn(move || {
            loop {
                if let Some(item) = buffer.pop_front() {
                    return Some(Ok(item));
                }
                let start = next.take()?;
                let mut body = json!({
                    "key": b64(&start), "range_end": b64(&end), "limit": PAGE.to_string(),
                });
                if let Some(r) = revision {
                    body["revision"] = json!(r.to_string());
                }
                let resp = match self.post("/v3/kv/range", body) {
                    Ok(r) => r,
                    Err(e) => return Some(Err(e)),
                };
                revision.get_or_insert(int(&resp["header"]["revision"]));
                let kvs = resp["kvs"].as_array().cloned().unwrap_or_default();
                let mut last = None;
                for kv in &kvs {
                    let key = unb64(&kv["key"]);
                    last = Some(key.clone());
                    let journal_key = key.get(strip..).unwrap_or_default().to_vec();
                    match super::packing::unpack(unb64(&kv["value"])) {
                        Ok(value) => {
                            buffer.push_back((Bytes::Owned(journal_key), Bytes::Owned(value)))
                        }
                        Err(e) => return Some(Err(e)),
                    }
                }
                if resp["more"].as_bool() == Some(true)
                    && let Some(mut last) = last
                {
                    // The smallest key after `last`.
                    last.push(0);
                    next = Some(last);
                }
                if buffer.is_empty() {
                    return None;
                }
            }
        }))
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which panics inside another runtime; the requests it
        // still runs are abandoned, as on a crash.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}
/// The smallest key after every key starting with `prefix`.
pub(super) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte 0xff: to the end of the keyspace.
    vec![0]
}

pub(super) fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

pub(super) fn unb64(v: &Value) -> Vec<u8> {
    v.as_str()
        .and_then(|s| B64.decode(s).ok())
        .unwrap_or_default()
}

/// etcd's JSON writes 64-bit integers as strings, and leaves out zeros.
pub(super) fn int(v: &Value) -> i64 {
    match v {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

pub(super) fn first_kv(resp: &Value) -> Option<&Value> {
    resp["kvs"].as_array().and_then(|kvs| kvs.first())
}

/// An error with its causes (`error sending request …: client error (Connect): tcp connect
/// error: Connection refused (os error 111)`): reqwest's own text omits them.
fn causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let line = cause.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_is_the_first_key_after_the_prefix() {
        assert_eq!(prefix_end(b"a/e/"), b"a/e0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff"), b"\0");
    }
}
