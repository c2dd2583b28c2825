//! The shared store: etcd v3, spoken through its own gRPC gateway (JSON over HTTP).
//!
//! Why the gateway and not the `etcd-client` crate: etcd-client compiles etcd's protobuf files
//! in its build script with tonic-build, which needs a system `protoc`, and loko must build on
//! a fresh machine with nothing but Rust. etcd serves every call loko needs as JSON at
//! `/v3/kv/range`, `/v3/kv/txn`, `/v3/lease/{grant,keepalive,revoke,timetolive}` and
//! `/v3/watch` (keys and values base64), through reqwest, which loko already uses.
//!
//! Layout, under `/loko/v1/<prefix>/`:
//! - `lock`: the holder's name, put bound to its lease. Its creation revision is the **fence**:
//!   etcd revisions only grow, so every new holder's fence is larger than every earlier one's.
//! - `head`: the key of the last record, the position the next append expects.
//! - `e/<run><seq>`: the records, the journal's own 16-byte keys (big-endian, so etcd's byte
//!   order is journal order) and values (`crc32 ++ JSON`).
//! - `snap` and `s/<generation><chunk>`: the snapshot, in chunks under etcd's request limit.
//!
//! Every append is one transaction comparing the lock key's creation revision with the fence,
//! its lease with ours and `head` with the expected position: a holder that was paused or cut
//! off past its lease's TTL, while another took the lock, can never write again; it gets
//! [`StoreError::Fenced`]. The lease is kept alive at a third of its TTL; when the holder dies
//! the lease expires and etcd deletes the lock key, freeing the journal without anyone's help.

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

use super::{Bytes, Key, Lease, Records, Store, StoreError};
use crate::journal::now_ms;

/// The most operations etcd admits in one transaction (`--max-txn-ops`, default 128): one is
/// the head's put.
const MAX_RECORDS_PER_TXN: usize = 127;

/// The most record bytes in one transaction: etcd refuses requests over 1.5 MiB
/// (`--max-request-bytes`); the rest is keys and framing.
const MAX_TXN_BYTES: usize = 1024 * 1024;

/// Records read per range request.
const PAGE: u64 = 1000;

/// The default lease: long enough to ride out a slow etcd election (a few seconds), short
/// enough that a killed holder's journal is free again soon.
pub const DEFAULT_TTL: Duration = Duration::from_secs(20);

/// How to reach a cluster's journal in etcd: `etcd://HOST:PORT[,HOST:PORT...]/PREFIX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdConfig {
    /// `host:port` of each member; requests go to the first that answers.
    pub endpoints: Vec<String>,
    /// The journal's name under `/loko/v1/`.
    pub prefix: String,
    /// TLS files; plain HTTP without them.
    pub tls: Option<EtcdTls>,
    /// The lease's time to live.
    pub ttl: Duration,
}

/// PEM files for TLS to etcd.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EtcdTls {
    /// The CA that signed etcd's serving certificate.
    pub ca: Option<PathBuf>,
    /// A client certificate (with `key`), when etcd asks for one.
    pub cert: Option<PathBuf>,
    /// The client certificate's private key.
    pub key: Option<PathBuf>,
}

impl EtcdConfig {
    /// Parses `etcd://HOST:PORT[,HOST:PORT...]/PREFIX[?ttl=SECONDS]`; the error says what is
    /// wrong. `ttl` sets the lease (default 20 s): longer for an etcd far away, shorter to
    /// free a crashed holder's journal sooner.
    pub fn parse(url: &str) -> Result<EtcdConfig, String> {
        let rest = url
            .strip_prefix("etcd://")
            .ok_or_else(|| format!("{url:?} does not start with etcd://"))?;
        let (rest, ttl) = match rest.split_once('?') {
            None => (rest, DEFAULT_TTL),
            Some((rest, query)) => {
                let secs = query
                    .strip_prefix("ttl=")
                    .and_then(|t| t.parse::<u64>().ok())
                    .filter(|t| (2..=3600).contains(t))
                    .ok_or_else(|| {
                        format!("{url:?}: the only option is ttl=SECONDS, from 2 to 3600")
                    })?;
                (rest, Duration::from_secs(secs))
            }
        };
        let (hosts, prefix) = rest
            .split_once('/')
            .ok_or_else(|| format!("{url:?} has no /PREFIX after its endpoints"))?;
        let endpoints: Vec<String> = hosts.split(',').map(str::to_owned).collect();
        for e in &endpoints {
            let port = e.rsplit_once(':').map(|(h, p)| (h, p.parse::<u16>()));
            if !matches!(port, Some((h, Ok(p))) if !h.is_empty() && p > 0) {
                return Err(format!("{url:?}: endpoint {e:?} is not HOST:PORT"));
            }
        }
        let prefix = prefix.trim_end_matches('/');
        let valid = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
        if prefix.is_empty()
            || prefix
                .split('/')
                .any(|part| part.is_empty() || part == ".." || !part.chars().all(valid))
        {
            return Err(format!(
                "{url:?}: the prefix {prefix:?} must be one or more names of letters, digits, '-', '_' and '.', separated by '/'"
            ));
        }
        Ok(EtcdConfig {
            endpoints,
            prefix: prefix.to_owned(),
            tls: None,
            ttl,
        })
    }

    /// The URL, as the user wrote it (normalized).
    pub fn url(&self) -> String {
        let url = format!("etcd://{}/{}", self.endpoints.join(","), self.prefix);
        if self.ttl == DEFAULT_TTL {
            url
        } else {
            format!("{url}?ttl={}", self.ttl.as_secs())
        }
    }

    fn key(&self, name: &[u8]) -> Vec<u8> {
        let mut k = format!("/loko/v1/{}/", self.prefix).into_bytes();
        k.extend_from_slice(name);
        k
    }
}

/// Who holds an etcd journal's lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockInfo {
    /// `pid N on host, since T`.
    pub holder: String,
    /// The lease the lock is bound to.
    pub lease: i64,
    /// Seconds the lease has left unless renewed; `None` when etcd no longer knows it.
    pub ttl_left: Option<i64>,
    /// The lock's fence (its creation revision).
    pub fence: u64,
}

impl std::fmt::Display for LockInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}; lease {:x}", self.holder, self.lease)?;
        match self.ttl_left {
            Some(s) => write!(f, ", expires in {s}s unless renewed"),
            None => write!(f, ", expired"),
        }
    }
}

/// The HTTP side: every endpoint, the one that answered last first.
#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    streaming: reqwest::Client,
    bases: Arc<Vec<String>>,
    current: Arc<AtomicUsize>,
}

impl Client {
    fn new(config: &EtcdConfig) -> Result<Client, StoreError> {
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
    async fn post(&self, path: &str, body: &Value) -> Result<Value, StoreError> {
        let start = self.current.load(Ordering::Relaxed);
        let mut last = String::new();
        for i in 0..self.bases.len() {
            let at = (start + i) % self.bases.len();
            let url = format!("{}{path}", self.bases[at]);
            match self.http.post(&url).json(body).send().await {
                Ok(resp) => {
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
                Err(e) => last = format!("{url}: {e}"),
            }
        }
        Err(StoreError::Failed(format!(
            "no etcd member answered ({last})"
        )))
    }

    /// Like [`Client::post`], retried for up to `within` while no member answers: an election
    /// or a member restarting takes seconds.
    async fn post_retried(
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
struct Connection {
    config: EtcdConfig,
    client: Client,
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
}

impl Connection {
    fn open(config: &EtcdConfig) -> Result<Connection, StoreError> {
        let client = Client::new(config)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("journal-etcd")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Failed(format!("etcd client runtime: {e}")))?;
        Ok(Connection {
            config: config.clone(),
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
            client,
        })
    }

    /// Runs `f(client)` on the connection's runtime and waits for it.
    fn call<T, F>(&self, f: impl FnOnce(Client) -> F) -> Result<T, StoreError>
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

    fn post(&self, path: &'static str, body: Value) -> Result<Value, StoreError> {
        self.call(
            move |c| async move { c.post_retried(path, &body, Duration::from_secs(10)).await },
        )
    }

    fn key(&self, name: &[u8]) -> Vec<u8> {
        self.config.key(name)
    }

    /// Who holds the lock, if anyone.
    fn lock_info(&self) -> Result<Option<LockInfo>, StoreError> {
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
    fn revoke(&self, lease: i64) -> Result<(), StoreError> {
        self.post("/v3/lease/revoke", json!({"ID": lease.to_string()}))
            .map(|_| ())
    }

    /// Records with keys in `[from, end)`, a page at a time, all read at one revision.
    fn range_pages(&self, from: Vec<u8>, end: Vec<u8>) -> Records<'_> {
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
                    buffer
                        .push_back((Bytes::Owned(journal_key), Bytes::Owned(unb64(&kv["value"]))));
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

/// What has been appended and not yet flushed.
#[derive(Default)]
struct Pending {
    /// The key of the last record appended (durable or not).
    head: Option<Key>,
    /// The key of the last durable record.
    durable: Option<Key>,
    records: Vec<(Key, Vec<u8>)>,
    snapshot: Option<Vec<u8>>,
}

/// An etcd journal, held by this process under a lease (see the module docs).
pub struct EtcdStore {
    location: String,
    lease: Lease,
    /// 0 for a store opened only to read.
    lease_id: i64,
    pending: Mutex<Pending>,
    /// Why the lease is known lost (by the keep-alive), if it is.
    lost: Arc<Mutex<Option<String>>>,
    stop_keepalive: Arc<AtomicBool>,
    // Declared last: dropped after the lease is revoked in `drop`.
    conn: Connection,
}

impl EtcdStore {
    /// Takes the journal's lock under a new lease, or reports who holds it.
    pub fn acquire(config: &EtcdConfig) -> Result<EtcdStore, StoreError> {
        let conn = Connection::open(config)?;
        let ttl = config.ttl.as_secs().max(1);
        let grant = conn.post("/v3/lease/grant", json!({"TTL": ttl.to_string()}))?;
        let lease_id = int(&grant["ID"]);
        if lease_id == 0 {
            return Err(StoreError::Failed(format!(
                "etcd granted no lease: {grant}"
            )));
        }
        let holder = format!(
            "{}, since {}",
            crate::lock::whoami(),
            crate::lock::human_time(now_ms())
        );
        let lock = b64(&conn.key(b"lock"));
        let txn = conn.post(
            "/v3/kv/txn",
            json!({
                "compare": [{"target": "CREATE", "key": lock, "result": "EQUAL", "create_revision": "0"}],
                "success": [{"request_put": {"key": lock, "value": b64(holder.as_bytes()), "lease": lease_id.to_string()}}],
                "failure": [],
            }),
        )?;
        if txn["succeeded"].as_bool() != Some(true) {
            let _ = conn.revoke(lease_id);
            let holder = match conn.lock_info()? {
                Some(info) => info.to_string(),
                None => "a holder that just released it; try again".to_owned(),
            };
            return Err(StoreError::Held { holder });
        }
        let fence = int(&txn["header"]["revision"]) as u64;
        let head = conn.post("/v3/kv/range", json!({"key": b64(&conn.key(b"head"))}))?;
        let head = first_kv(&head).and_then(|kv| Key::try_from(&unb64(&kv["value"])[..]).ok());
        let lost = Arc::new(Mutex::new(None));
        let stop_keepalive = Arc::new(AtomicBool::new(false));
        conn.handle.spawn(keep_alive(
            conn.client.clone(),
            lease_id,
            config.ttl,
            Arc::clone(&lost),
            Arc::clone(&stop_keepalive),
        ));
        Ok(EtcdStore {
            location: config.url(),
            lease: Lease { holder, fence },
            lease_id,
            pending: Mutex::new(Pending {
                head,
                durable: head,
                ..Pending::default()
            }),
            lost,
            stop_keepalive,
            conn,
        })
    }

    /// Opens the journal to read it while another process may hold it: no lease, and every
    /// append is refused.
    pub fn read_only(config: &EtcdConfig) -> Result<EtcdStore, StoreError> {
        let conn = Connection::open(config)?;
        Ok(EtcdStore {
            location: config.url(),
            lease: Lease {
                holder: "nobody (read only)".to_owned(),
                fence: 0,
            },
            lease_id: 0,
            pending: Mutex::new(Pending::default()),
            lost: Arc::new(Mutex::new(Some("opened to read only".to_owned()))),
            stop_keepalive: Arc::new(AtomicBool::new(true)),
            conn,
        })
    }

    /// Who holds the journal at `config`, if anyone.
    pub fn holder(config: &EtcdConfig) -> Result<Option<LockInfo>, StoreError> {
        Connection::open(config)?.lock_info()
    }

    /// Revokes the lease of the journal's holder, freeing the journal at once; returns who
    /// held it. The holder, if alive, is fenced: its next append is refused.
    pub fn force_unlock(config: &EtcdConfig) -> Result<Option<LockInfo>, StoreError> {
        let conn = Connection::open(config)?;
        let info = conn.lock_info()?;
        if let Some(info) = &info {
            conn.revoke(info.lease)?;
        }
        Ok(info)
    }

    /// Follows the journal's records as they are written, from the record after `after`:
    /// calls `each` with every record's key and bytes, in order, until it returns false.
    /// Reads what exists first, then an etcd watch from the revision it read at, so no record
    /// is missed or seen twice.
    pub async fn follow(
        config: &EtcdConfig,
        mut each: impl FnMut(Key, Vec<u8>) -> bool,
    ) -> Result<(), StoreError> {
        let client = Client::new(config)?;
        let prefix = config.key(b"e/");
        let end = prefix_end(&prefix);
        let strip = prefix.len();
        let resp = client
            .post_retried(
                "/v3/kv/range",
                &json!({"key": b64(&prefix), "range_end": b64(&end)}),
                Duration::from_secs(10),
            )
            .await?;
        let revision = int(&resp["header"]["revision"]);
        for kv in resp["kvs"].as_array().into_iter().flatten() {
            let key = unb64(&kv["key"]);
            if let Ok(k) = Key::try_from(key.get(strip..).unwrap_or_default())
                && !each(k, unb64(&kv["value"]))
            {
                return Ok(());
            }
        }
        let body = json!({"create_request": {
            "key": b64(&prefix), "range_end": b64(&end), "start_revision": (revision + 1).to_string(),
        }});
        let mut last_err = String::new();
        for base in client.bases.iter() {
            let resp = match client
                .streaming
                .post(format!("{base}/v3/watch"))
                .json(&body)
                .send()
                .await
            {
                Ok(r) => r,
                Err(e) => {
                    last_err = e.to_string();
                    continue;
                }
            };
            let mut resp = resp;
            let mut partial = Vec::new();
            loop {
                let chunk = match resp.chunk().await {
                    Ok(Some(c)) => c,
                    Ok(None) => return Err(StoreError::Failed("etcd ended the watch".to_owned())),
                    Err(e) => return Err(StoreError::Failed(format!("etcd watch: {e}"))),
                };
                partial.extend_from_slice(&chunk);
                while let Some(end) = partial.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = partial.drain(..=end).collect();
                    let Ok(msg) = serde_json::from_slice::<Value>(&line) else {
                        continue;
                    };
                    for ev in msg["result"]["events"].as_array().into_iter().flatten() {
                        if ev["type"].as_str() == Some("DELETE") {
                            continue;
                        }
                        let key = unb64(&ev["kv"]["key"]);
                        if let Ok(k) = Key::try_from(key.get(strip..).unwrap_or_default())
                            && !each(k, unb64(&ev["kv"]["value"]))
                        {
                            return Ok(());
                        }
                    }
                }
            }
        }
        Err(StoreError::Failed(format!(
            "no etcd member accepted the watch ({last_err})"
        )))
    }

    /// Copies records and the snapshot into this store's journal, which must be empty: for
    /// `loko journal push`.
    pub fn import(
        &self,
        records: impl Iterator<Item = Result<(Key, Vec<u8>), StoreError>>,
    ) -> Result<u64, StoreError> {
        let mut n = 0;
        let mut batch = Vec::new();
        for item in records {
            batch.push(item?);
            n += 1;
            if batch.len() >= 4 * MAX_RECORDS_PER_TXN {
                self.append_now(std::mem::take(&mut batch))?;
            }
        }
        self.append_now(batch)?;
        Ok(n)
    }

    fn append_now(&self, records: Vec<(Key, Vec<u8>)>) -> Result<(), StoreError> {
        let head = self.lock_pending().head;
        self.append(head, records)?;
        self.flush()
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn check_lease(&self) -> Result<(), StoreError> {
        match self.lost.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            Some(why) => Err(StoreError::Fenced(why.clone())),
            None => Ok(()),
        }
    }

    /// The transaction's guards: the lock is still ours (same fence, same lease).
    fn lease_compares(&self) -> Vec<Value> {
        let lock = b64(&self.conn.key(b"lock"));
        vec![
            json!({"target": "CREATE", "key": lock, "result": "EQUAL", "create_revision": self.lease.fence.to_string()}),
            json!({"target": "LEASE", "key": lock, "result": "EQUAL", "lease": self.lease_id.to_string()}),
        ]
    }

    /// Writes one transaction of records after `durable`; returns the new durable head.
    fn write_batch(
        &self,
        durable: Option<Key>,
        batch: &[(Key, Vec<u8>)],
    ) -> Result<Option<Key>, StoreError> {
        let Some((last, _)) = batch.last() else {
            return Ok(durable);
        };
        let head_key = b64(&self.conn.key(b"head"));
        let mut compare = self.lease_compares();
        compare.push(match durable {
            None => json!({"target": "CREATE", "key": head_key, "result": "EQUAL", "create_revision": "0"}),
            Some(k) => json!({"target": "VALUE", "key": head_key, "result": "EQUAL", "value": b64(&k)}),
        });
        let mut success: Vec<Value> = batch
            .iter()
            .map(|(k, v)| {
                let mut key = self.conn.key(b"e/");
                key.extend_from_slice(k);
                json!({"request_put": {"key": b64(&key), "value": b64(v)}})
            })
            .collect();
        success.push(json!({"request_put": {"key": head_key, "value": b64(last)}}));
        let lock = b64(&self.conn.key(b"lock"));
        let resp = self.conn.post(
            "/v3/kv/txn",
            json!({
                "compare": compare,
                "success": success,
                "failure": [
                    {"request_range": {"key": lock}},
                    {"request_range": {"key": head_key}},
                ],
            }),
        )?;
        if resp["succeeded"].as_bool() == Some(true) {
            return Ok(Some(*last));
        }
        let responses = resp["responses"].as_array().cloned().unwrap_or_default();
        let range = |i: usize| {
            responses
                .get(i)
                .and_then(|r| r["response_range"]["kvs"].as_array())
                .and_then(|kvs| kvs.first().cloned())
        };
        let lock_kv = range(0);
        let ours = lock_kv.as_ref().is_some_and(|kv| {
            int(&kv["create_revision"]) as u64 == self.lease.fence
                && int(&kv["lease"]) == self.lease_id
        });
        if !ours {
            let reason = match lock_kv {
                Some(kv) => format!(
                    "the journal's lock is now held by {} (fence {}, ours {})",
                    String::from_utf8_lossy(&unb64(&kv["value"])),
                    int(&kv["create_revision"]),
                    self.lease.fence
                ),
                None => format!(
                    "the journal's lock (fence {}) is gone: the lease expired or was revoked",
                    self.lease.fence
                ),
            };
            *self.lost.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason.clone());
            return Err(StoreError::Fenced(reason));
        }
        let found = range(1).and_then(|kv| Key::try_from(&unb64(&kv["value"])[..]).ok());
        if found == Some(*last) {
            // An earlier try of this very transaction was applied and its answer lost.
            return Ok(found);
        }
        Err(StoreError::Conflict {
            expected: super::describe_key(durable),
            found: super::describe_key(found),
        })
    }

    /// Stores a snapshot in chunks under a new generation, then points `snap` at it and
    /// deletes the previous generation, in one transaction guarded by the lease.
    fn write_snapshot(&self, bytes: &[u8]) -> Result<(), StoreError> {
        let generation = now_ms().max(1);
        let chunks: Vec<&[u8]> = bytes.chunks(MAX_TXN_BYTES).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let mut key = self.conn.key(b"s/");
            key.extend_from_slice(&generation.to_be_bytes());
            key.extend_from_slice(&(i as u32).to_be_bytes());
            let resp = self.conn.post(
                "/v3/kv/txn",
                json!({
                    "compare": self.lease_compares(),
                    "success": [{"request_put": {"key": b64(&key), "value": b64(chunk)}}],
                }),
            )?;
            if resp["succeeded"].as_bool() != Some(true) {
                return Err(StoreError::Fenced("the lock changed hands".to_owned()));
            }
        }
        let meta_key = b64(&self.conn.key(b"snap"));
        let mut meta = generation.to_be_bytes().to_vec();
        meta.extend_from_slice(&(chunks.len() as u32).to_be_bytes());
        meta.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
        let mut ops = vec![json!({"request_put": {"key": meta_key, "value": b64(&meta)}})];
        if let Some(old) = self.snapshot_meta()? {
            let mut from = self.conn.key(b"s/");
            from.extend_from_slice(&old.0.to_be_bytes());
            ops.push(json!({"request_delete_range": {"key": b64(&from), "range_end": b64(&prefix_end(&from))}}));
        }
        let resp = self.conn.post(
            "/v3/kv/txn",
            json!({"compare": self.lease_compares(), "success": ops}),
        )?;
        if resp["succeeded"].as_bool() != Some(true) {
            return Err(StoreError::Fenced("the lock changed hands".to_owned()));
        }
        Ok(())
    }

    /// The snapshot's generation, chunk count and length.
    fn snapshot_meta(&self) -> Result<Option<(u64, u32, u64)>, StoreError> {
        let resp = self
            .conn
            .post("/v3/kv/range", json!({"key": b64(&self.conn.key(b"snap"))}))?;
        let Some(kv) = first_kv(&resp) else {
            return Ok(None);
        };
        let v = unb64(&kv["value"]);
        let (Some(g), Some(c), Some(l)) = (v.get(..8), v.get(8..12), v.get(12..20)) else {
            return Ok(None);
        };
        let num = |b: &[u8]| b.iter().fold(0u64, |n, x| n << 8 | u64::from(*x));
        Ok(Some((num(g), num(c) as u32, num(l))))
    }
}

impl Store for EtcdStore {
    fn location(&self) -> &str {
        &self.location
    }

    fn lease(&self) -> &Lease {
        &self.lease
    }

    fn append(&self, after: Option<Key>, records: Vec<(Key, Vec<u8>)>) -> Result<(), StoreError> {
        self.check_lease()?;
        let mut pending = self.lock_pending();
        if pending.head != after {
            return Err(StoreError::Conflict {
                expected: super::describe_key(after),
                found: super::describe_key(pending.head),
            });
        }
        if let Some((last, _)) = records.last() {
            pending.head = Some(*last);
        }
        pending.records.extend(records);
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.check_lease()?;
        // One flush at a time (the committer's), so the pending list is taken whole and
        // written in order.
        let (records, snapshot, mut durable) = {
            let mut p = self.lock_pending();
            (std::mem::take(&mut p.records), p.snapshot.take(), p.durable)
        };
        if records.is_empty() && snapshot.is_none() {
            return Ok(());
        }
        let mut start = 0;
        while start < records.len() {
            let mut end = start;
            let mut bytes = 0;
            while end < records.len()
                && end - start < MAX_RECORDS_PER_TXN
                && (end == start || bytes + records[end].1.len() <= MAX_TXN_BYTES)
            {
                bytes += records[end].1.len();
                end += 1;
            }
            match self.write_batch(durable, &records[start..end]) {
                Ok(head) => {
                    durable = head;
                    self.lock_pending().durable = durable;
                }
                Err(e) => {
                    // What was not written stays pending, ahead of later appends.
                    let mut p = self.lock_pending();
                    let mut rest = records[start..].to_vec();
                    rest.append(&mut p.records);
                    p.records = rest;
                    return Err(e);
                }
            }
            start = end;
        }
        if let Some(bytes) = snapshot {
            // Derived data: a snapshot that could not be written costs the next open time,
            // never a record (they are durable by now). A lost lease surfaces at the next
            // append.
            let _ = self.write_snapshot(&bytes);
        }
        Ok(())
    }

    fn scan_after(&self, after: Option<Key>) -> Records<'_> {
        let prefix = self.conn.key(b"e/");
        let from = match after {
            None => prefix.clone(),
            Some(k) => {
                let mut from = prefix.clone();
                from.extend_from_slice(&k);
                from.push(0);
                from
            }
        };
        self.conn.range_pages(from, prefix_end(&prefix))
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Records<'_> {
        let mut from = self.conn.key(b"e/");
        from.extend_from_slice(prefix);
        let end = prefix_end(&from);
        self.conn.range_pages(from, end)
    }

    fn contains(&self, key: Key) -> Result<bool, StoreError> {
        let mut k = self.conn.key(b"e/");
        k.extend_from_slice(&key);
        let resp = self
            .conn
            .post("/v3/kv/range", json!({"key": b64(&k), "count_only": true}))?;
        Ok(int(&resp["count"]) > 0)
    }

    fn put_snapshot(&self, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.check_lease()?;
        self.lock_pending().snapshot = Some(bytes);
        Ok(())
    }

    fn snapshot(&self) -> Result<Option<Bytes>, StoreError> {
        let Some((generation, count, len)) = self.snapshot_meta()? else {
            return Ok(None);
        };
        let mut from = self.conn.key(b"s/");
        from.extend_from_slice(&generation.to_be_bytes());
        let resp = self.conn.post(
            "/v3/kv/range",
            json!({"key": b64(&from), "range_end": b64(&prefix_end(&from))}),
        )?;
        let kvs = resp["kvs"].as_array().cloned().unwrap_or_default();
        if kvs.len() != count as usize {
            return Ok(None);
        }
        let bytes: Vec<u8> = kvs.iter().flat_map(|kv| unb64(&kv["value"])).collect();
        Ok((bytes.len() as u64 == len).then_some(Bytes::Owned(bytes)))
    }

    #[cfg(feature = "testing")]
    fn overwrite_raw(&self, key: Key, value: &[u8]) -> Result<(), StoreError> {
        let mut k = self.conn.key(b"e/");
        k.extend_from_slice(&key);
        self.conn
            .post("/v3/kv/put", json!({"key": b64(&k), "value": b64(value)}))
            .map(|_| ())
    }
}

impl Drop for EtcdStore {
    fn drop(&mut self) {
        self.stop_keepalive.store(true, Ordering::Relaxed);
        if self.lease_id != 0 {
            // Frees the journal at once rather than after the TTL. A failure leaves the lease
            // to expire.
            let lease = self.lease_id;
            let _ = self.conn.call(move |c| async move {
                c.post("/v3/lease/revoke", &json!({"ID": lease.to_string()}))
                    .await
                    .map(|_| ())
            });
        }
    }
}

/// Renews the lease every third of its TTL until stopped; records why when it is lost.
async fn keep_alive(
    client: Client,
    lease: i64,
    ttl: Duration,
    lost: Arc<Mutex<Option<String>>>,
    stop: Arc<AtomicBool>,
) {
    let mut renewed = Instant::now();
    let body = json!({"ID": lease.to_string()});
    loop {
        tokio::time::sleep(ttl / 3).await;
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let why = match client.post("/v3/lease/keepalive", &body).await {
            Ok(resp) if int(&resp["result"]["TTL"]) > 0 => {
                renewed = Instant::now();
                continue;
            }
            Ok(_) => format!("the lease {lease:x} expired or was revoked"),
            Err(_) if renewed.elapsed() < ttl => continue,
            Err(e) => format!(
                "the lease {lease:x} could not be renewed for {}s: {e}",
                ttl.as_secs()
            ),
        };
        *lost.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
        return;
    }
}

/// The smallest key after every key starting with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
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

fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

fn unb64(v: &Value) -> Vec<u8> {
    v.as_str()
        .and_then(|s| B64.decode(s).ok())
        .unwrap_or_default()
}

/// etcd's JSON writes 64-bit integers as strings, and leaves out zeros.
fn int(v: &Value) -> i64 {
    match v {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

fn first_kv(resp: &Value) -> Option<&Value> {
    resp["kvs"].as_array().and_then(|kvs| kvs.first())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_or_say_what_is_wrong() {
        let c = EtcdConfig::parse("etcd://10.0.0.1:2379,10.0.0.2:2379/team/supernova").unwrap();
        assert_eq!(c.endpoints, ["10.0.0.1:2379", "10.0.0.2:2379"]);
        assert_eq!(c.prefix, "team/supernova");
        assert_eq!(c.key(b"lock"), b"/loko/v1/team/supernova/lock");
        assert_eq!(c.url(), "etcd://10.0.0.1:2379,10.0.0.2:2379/team/supernova");
        assert_eq!(c.ttl, DEFAULT_TTL);
        let c = EtcdConfig::parse("etcd://h:1/x?ttl=5").unwrap();
        assert_eq!((c.prefix.as_str(), c.ttl), ("x", Duration::from_secs(5)));
        assert_eq!(c.url(), "etcd://h:1/x?ttl=5");
        for (bad, says) in [
            ("http://h:1/x", "does not start with etcd://"),
            ("etcd://h:1", "no /PREFIX"),
            ("etcd://h/x", "is not HOST:PORT"),
            ("etcd://h:0/x", "is not HOST:PORT"),
            ("etcd://h:1/", "the prefix"),
            ("etcd://h:1/a/../b", "the prefix"),
            ("etcd://h:1/a b", "the prefix"),
            ("etcd://h:1/a?ttl=1", "ttl=SECONDS"),
            ("etcd://h:1/a?lease=5", "ttl=SECONDS"),
        ] {
            let err = EtcdConfig::parse(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn prefix_end_is_the_first_key_after_the_prefix() {
        assert_eq!(prefix_end(b"a/e/"), b"a/e0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff"), b"\0");
    }
}
