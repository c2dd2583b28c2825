//! The etcd store's slots beside the records: single keys under the prefix, read without the
//! lease and written only under it.

use serde_json::json;

use super::EtcdStore;
use super::client::{b64, first_kv, unb64};
use crate::store::StoreError;

impl EtcdStore {
    /// The value of key `name` under the prefix, if it exists.
    pub(super) fn get_slot(&self, name: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let resp = self
            .conn
            .post("/v3/kv/range", json!({"key": b64(&self.conn.key(name))}))?;
        Ok(first_kv(&resp).map(|kv| unb64(&kv["value"])))
    }

    /// Puts key `name` under the prefix in one transaction guarded by the lease: a holder that
    /// lost the journal writes nothing.
    pub(super) fn put_slot(&self, name: &[u8], bytes: &[u8]) -> Result<(), StoreError> {
        self.check_lease()?;
        let resp = self.conn.post(
            "/v3/kv/txn",
            json!({
                "compare": self.lease_compares(),
                "success": [{"request_put": {"key": b64(&self.conn.key(name)), "value": b64(bytes)}}],
            }),
        )?;
        match resp["succeeded"].as_bool() {
            Some(true) => Ok(()),
            _ => Err(StoreError::Fenced("the lock changed hands".to_owned())),
        }
    }
}
