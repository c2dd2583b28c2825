//! One poller for every waiting device of a cluster.
//!
//! The Terraform provider polled `GET /devices/{id}` for each device every few seconds, and
//! Packet complained about the volume (peer lesson). Here every device step waits on one shared
//! listing: one `GET /projects/{id}/devices?tag=loko:cluster=<name>` per interval for the whole
//! cluster, whatever the number of waiting devices, and none while nobody waits.
//!
//! How often it lists is a trade between seeing a change late and spending Packet's rate
//! limit ([`PollPace`]): every 2 s per page a listing takes, so that waiting costs the same
//! share of the limit at 10 devices and at 5,000.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};

use super::client::{PER_PAGE, PacketClient};
use super::error::PacketError;
use super::model::Device;

/// One listing of the cluster's devices.
#[derive(Debug)]
pub struct Listing {
    /// Increases with every poll, successful or not.
    pub generation: u64,
    /// When the list call was sent (a device created after this may be missing from it).
    pub requested_at: Instant,
    /// The devices by id, from the last successful poll (shared by the listings that repeat
    /// it after a failed poll). Each device is shared too: a listing of several pages keeps
    /// devices of the poll before (see [`published`]), and 5,000 of them were copied per poll.
    pub devices: Arc<HashMap<String, Arc<Device>>>,
    /// The error of the last poll, if it failed (the devices are then from an earlier poll).
    pub error: Option<PacketError>,
}

impl Listing {
    /// True when the poll took more than one page: then a device may be missing from it only
    /// because a device before it went away between two page calls (see [`published`]).
    pub fn may_skip(&self) -> bool {
        several_pages(self.devices.len())
    }
}

fn several_pages(devices: usize) -> bool {
    devices > PER_PAGE as usize
}

/// Failed polls in a row after which [`DevicePoller::listing_since`] gives up.
pub const FRESH_LISTING_TRIES: u32 = 5;

/// How often the poller lists the cluster's devices.
///
/// Each poll is one list call per page of [`PER_PAGE`] devices, and each call counts against
/// Packet's rate limit (600 a minute), which the creates and deletes of a large change need. A
/// device that turned active or went away is seen up to one pause late: 5 s on a one-minute
/// deprovisioning was 8 % of a scale-down. The Terraform provider polled every device on its
/// own every 3 s or more; one listing per 2 s per page is 5 % of the limit, whatever the size.
/// While Packet refuses requests (429), the client holds every request, polls included, until
/// its `Retry-After`: the poller needs no slower pace of its own for that (one that lasted
/// while the API refused put the tail of a 1000-device scale-down 10 s behind).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PollPace {
    /// The pause per page.
    pub per_page: Duration,
}

impl Default for PollPace {
    fn default() -> Self {
        PollPace {
            per_page: Duration::from_secs(2),
        }
    }
}

impl PollPace {
    /// The pause after a poll that listed `devices`.
    pub fn pause(&self, devices: usize) -> Duration {
        let pages = u32::try_from(devices.div_ceil(PER_PAGE as usize).max(1)).unwrap_or(u32::MAX);
        self.per_page.saturating_mul(pages)
    }

    /// The same pace with every duration multiplied by `scale` (the simulator's time scale),
    /// none below `floor`.
    pub fn scaled(&self, scale: f64, floor: Duration) -> PollPace {
        PollPace {
            per_page: Duration::from_secs_f64(self.per_page.as_secs_f64() * scale).max(floor),
        }
    }
}

/// The shared poller. Dropping it stops the polling task.
pub struct DevicePoller {
    latest: watch::Receiver<Arc<Listing>>,
    polls: Arc<AtomicU64>,
    waiters: Arc<AtomicUsize>,
    wake: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for DevicePoller {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Registers a waiter for as long as it lives; the poller polls only while there are waiters.
pub struct Subscription {
    pub rx: watch::Receiver<Arc<Listing>>,
    waiters: Arc<AtomicUsize>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.waiters.fetch_sub(1, Ordering::SeqCst);
    }
}

impl DevicePoller {
    /// Starts polling the devices tagged `cluster_tag` at `pace`.
    pub fn spawn(client: Arc<PacketClient>, cluster_tag: String, pace: PollPace) -> DevicePoller {
        let (tx, rx) = watch::channel(Arc::new(Listing {
            generation: 0,
            requested_at: Instant::now(),
            devices: Arc::default(),
            error: None,
        }));
        let waiters = Arc::new(AtomicUsize::new(0));
        let wake = Arc::new(Notify::new());
        let polls = Arc::new(AtomicU64::new(0));
        let (w, woken, polled) = (Arc::clone(&waiters), Arc::clone(&wake), Arc::clone(&polls));
        let task = tokio::spawn(async move {
            let mut generation = 0;
            let mut devices: Arc<HashMap<String, Arc<Device>>> = Arc::default();
            let mut listed_before = HashMap::new();
            loop {
                if w.load(Ordering::SeqCst) == 0 {
                    // Idle: the first subscriber wakes the poller at once, so a run's first
                    // lookups do not wait out an interval; polls then keep the interval.
                    tokio::select! {
                        () = tokio::time::sleep(pace.per_page) => {}
                        () = woken.notified() => {}
                    }
                    continue;
                }
                generation += 1;
                polled.fetch_add(1, Ordering::Relaxed);
                let requested_at = Instant::now();
                let (error, retry_after) = match client.list_devices(&cluster_tag).await {
                    Ok(list) => {
                        let listed: HashMap<String, Arc<Device>> = list
                            .into_iter()
                            .map(|d| (d.id.clone(), Arc::new(d)))
                            .collect();
                        devices = Arc::new(published(&listed_before, &listed));
                        listed_before = listed;
                        (None, None)
                    }
                    Err(e) => {
                        tracing::warn!("polling devices: {e}");
                        let after = e.retry_after();
                        (Some(e), after)
                    }
                };
                let pause = pace
                    .pause(devices.len())
                    .max(retry_after.unwrap_or_default());
                let listing = Listing {
                    generation,
                    requested_at,
                    devices: Arc::clone(&devices),
                    error,
                };
                if tx.send(Arc::new(listing)).is_err() {
                    return;
                }
                tokio::time::sleep(pause).await;
            }
        });
        DevicePoller {
            latest: rx,
            polls,
            waiters,
            wake,
            task,
        }
    }

    /// The first successful listing requested at or after `since`, which may be the latest one
    /// already: every node's "does my device exist already?" answered by the cluster-wide
    /// poll, not one call each. A step's first lookup needs a listing that reflects what
    /// happened before its attempt began, not one requested after it asked: a hundred steps
    /// starting together then share the poll the first of them woke, instead of all but the
    /// first waiting a whole interval for the next one. A poll that failed for a passing reason
    /// (a 429, a 5xx) is waited out, since the poller retries on its own and one throttled poll
    /// must not fail a thousand lookups at once; a permanent error, or
    /// [`FRESH_LISTING_TRIES`] failed polls in a row, is returned. `None` if the poller stopped.
    pub async fn listing_since(&self, since: Instant) -> Option<Result<Arc<Listing>, PacketError>> {
        {
            let latest = self.latest.borrow();
            if latest.generation > 0 && latest.requested_at >= since && latest.error.is_none() {
                return Some(Ok(Arc::clone(&latest)));
            }
        }
        let mut sub = self.subscribe();
        let mut failed = 0;
        // What was published between the check above and the subscription (the poll this
        // subscription woke may already be done) is looked at first: `changed` only tells of
        // what comes after it.
        let mut listing = Arc::clone(&sub.rx.borrow_and_update());
        loop {
            if listing.generation == 0 || listing.requested_at < since {
                sub.rx.changed().await.ok()?;
                listing = Arc::clone(&sub.rx.borrow_and_update());
                continue;
            }
            match &listing.error {
                None => return Some(Ok(listing)),
                Some(e) => {
                    failed += 1;
                    if !e.is_retryable() || failed >= FRESH_LISTING_TRIES {
                        return Some(Err(e.clone()));
                    }
                    sub.rx.changed().await.ok()?;
                    listing = Arc::clone(&sub.rx.borrow_and_update());
                }
            }
        }
    }

    /// Polls sent so far (each is one list call per page), for `loko bench`.
    pub fn polls(&self) -> u64 {
        self.polls.load(Ordering::Relaxed)
    }

    /// Waits on the listings from now on.
    pub fn subscribe(&self) -> Subscription {
        // The receiver first, then the wake: a poll the wake starts publishes after the
        // receiver marked what it holds as seen, so `changed` tells of it.
        let mut rx = self.latest.clone();
        rx.mark_unchanged();
        self.waiters.fetch_add(1, Ordering::SeqCst);
        self.wake.notify_one();
        Subscription {
            rx,
            waiters: Arc::clone(&self.waiters),
        }
    }
}

/// What a poll publishes: the devices it listed, and, when it or the poll before took more
/// than one page, the devices of the poll before that it did not list, as last seen.
///
/// A listing of several pages is not a snapshot: Packet pages by offset, so a device that goes
/// away between two page calls moves every later one a place up, and the first of the next page
/// lands on the page already read. Taking such a skipped device for gone would retire a device
/// too early, or create a second device for a node whose device exists (the duplicates of the
/// peer lessons), and asking for it by id cost hundreds of calls in a 5,000-device type change.
/// Gone therefore means missing from two multi-page listings in a row; with one page, missing
/// from one.
fn published(
    listed_before: &HashMap<String, Arc<Device>>,
    listed: &HashMap<String, Arc<Device>>,
) -> HashMap<String, Arc<Device>> {
    let mut devices = listed.clone();
    if several_pages(listed.len()) || several_pages(listed_before.len()) {
        for (id, device) in listed_before {
            devices
                .entry(id.clone())
                .or_insert_with(|| Arc::clone(device));
        }
    }
    devices
}

#[cfg(test)]
mod tests {
    use super::*;

    fn devices(ids: std::ops::Range<usize>) -> HashMap<String, Arc<Device>> {
        ids.map(|i| {
            let device: Device = serde_json::from_value(serde_json::json!({
                "id": format!("d{i}"),
                "hostname": format!("h{i}"),
                "state": "active",
            }))
            .unwrap();
            (device.id.clone(), Arc::new(device))
        })
        .collect()
    }

    #[test]
    fn a_device_missing_from_one_multi_page_listing_is_not_gone_yet() {
        let pages = PER_PAGE as usize;
        // Two pages; d1000 was skipped (a device before it went away between the page calls).
        let before = devices(0..pages + 2);
        let mut now = devices(0..pages + 2);
        now.remove("d1000");
        let shown = published(&before, &now);
        assert!(shown.contains_key("d1000"), "kept from the poll before");
        // Missing again: gone.
        assert!(!published(&now, &now).contains_key("d1000"));
        // One page each: one listing is a snapshot, missing means gone.
        let mut small = devices(0..10);
        small.remove("d3");
        assert!(!published(&devices(0..10), &small).contains_key("d3"));
    }

    #[test]
    fn only_a_listing_of_several_pages_may_skip_a_device() {
        let listing = |n: usize| Listing {
            generation: 1,
            requested_at: Instant::now(),
            devices: Arc::new(devices(0..n)),
            error: None,
        };
        let pages = PER_PAGE as usize;
        assert!(!listing(pages).may_skip());
        assert!(listing(pages + 1).may_skip());
    }

    #[test]
    fn the_pause_grows_with_the_pages() {
        let pace = PollPace::default();
        let s = Duration::from_secs;
        assert_eq!(pace.pause(0), s(2), "an empty listing is one call too");
        assert_eq!(pace.pause(1000), s(2));
        assert_eq!(pace.pause(1001), s(4));
        assert_eq!(pace.pause(5004), s(12));
    }

    #[test]
    fn a_scaled_pace_keeps_its_floor() {
        let pace = PollPace::default().scaled(0.001, Duration::from_millis(50));
        assert_eq!(pace.per_page, Duration::from_millis(50));
    }
}
