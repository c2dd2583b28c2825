//! Following an etcd journal as it is written: what it holds, then a watch from the revision
//! that read was at. A reader needs no lock.

use std::time::Duration;

use serde_json::{Value, json};

use super::client::{Client, b64, int, prefix_end, unb64};
use super::{EtcdConfig, EtcdStore};
use crate::store::{Key, StoreError};

impl EtcdStore {
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
                && !each(k, stored_record(unb64(&kv["value"])))
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
                            && !each(k, stored_record(unb64(&ev["kv"]["value"])))
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
}

/// The record a stored value holds; a deflated one that cannot be inflated is passed on as it
/// is, and fails the reader's checksum there, as any damaged record does.
fn stored_record(value: Vec<u8>) -> Vec<u8> {
    if !super::packing::is_packed(&value) {
        return value;
    }
    super::packing::unpack(value.clone()).unwrap_or(value)
}
