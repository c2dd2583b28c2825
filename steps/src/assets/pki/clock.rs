//! The PKI's clock: validity windows and the whole-second times certificates carry. Apart from
//! `pki.rs` so that its children import it without importing their parent.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;

use crate::assets::AssetError;

/// CAs live at least this long (ten years), whatever `certs_validity_period_hours` says: a CA is
/// never regenerated, so its expiry is the cluster's.
pub const CA_MIN_VALIDITY_HOURS: u64 = 10 * 8760;
/// How far `not_before` lies before `now`: tolerance for nodes whose clock is behind.
pub const NOT_BEFORE_SKEW: Duration = Duration::from_secs(3600);
/// A leaf is renewed when it expires within this long (or a third of its validity, if shorter).
pub const RENEWAL_WINDOW_MAX: Duration = Duration::from_secs(30 * 24 * 3600);
/// A CA that expires within this long gets a warning in the report: replacing it is a manual
/// operation on a running cluster, so the warning comes early.
pub const CA_WARNING_WINDOW: Duration = Duration::from_secs(180 * 24 * 3600);
/// How long before its expiry a certificate of `validity` is renewed:
/// min([`RENEWAL_WINDOW_MAX`], validity / 3), so that short test validities do not renew on
/// every run.
pub fn renewal_window(validity: Duration) -> Duration {
    RENEWAL_WINDOW_MAX.min(validity / 3)
}

/// A point in time, whole seconds since the epoch (X.509 times have no fractions).
#[derive(Debug, Clone, Copy)]
pub(super) struct UnixTime(pub(super) i64);

impl UnixTime {
    pub(super) fn new(t: SystemTime) -> Result<Self, AssetError> {
        let secs = t
            .duration_since(UNIX_EPOCH)
            .map_err(|_| AssetError::Generate {
                what: "the PKI".into(),
                reason: "the clock is before 1970".into(),
            })?
            .as_secs();
        Ok(UnixTime(i64::try_from(secs).unwrap_or(i64::MAX)))
    }

    pub(super) fn plus(self, d: Duration) -> UnixTime {
        UnixTime(
            self.0
                .saturating_add(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
        )
    }

    pub(super) fn minus(self, d: Duration) -> UnixTime {
        UnixTime(
            self.0
                .saturating_sub(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
        )
    }

    pub(super) fn to_datetime(self, what: &str) -> Result<OffsetDateTime, AssetError> {
        OffsetDateTime::from_unix_timestamp(self.0).map_err(|e| AssetError::Generate {
            what: what.into(),
            reason: format!("time out of range: {e}"),
        })
    }

    pub(super) fn rfc3339(self) -> String {
        let t = if self.0 >= 0 {
            UNIX_EPOCH + Duration::from_secs(self.0.unsigned_abs())
        } else {
            UNIX_EPOCH - Duration::from_secs(self.0.unsigned_abs())
        };
        humantime::format_rfc3339_seconds(t).to_string()
    }
}

pub(super) fn hours(h: u64) -> Duration {
    Duration::from_secs(h.saturating_mul(3600))
}
