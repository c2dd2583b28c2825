//! One poller for every waiting device of a cluster.
//!
//! The Terraform provider polled `GET /devices/{id}` for each device every few seconds, and
//! Packet complained about the volume (peer lesson). Here every device step waits on one shared
//! listing: one `GET /projects/{id}/devices?tag=loko:cluster=<name>` per interval for the whole
//! cluster, whatever the number of waiting devices, and none while nobody waits.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};

use super::client::PacketClient;
use super::error::PacketError;
use super::model::Device;

/// One listing of the cluster's devices.
#[derive(Debug)]
pub struct Listing {
    /// Increases with every poll, successful or not.
    pub generation: u64,
    /// When the list call was sent (a device created after this may be missing from it).
    pub requested_at: Instant,
    /// The devices by id, from the last successful poll.
    pub devices: HashMap<String, Device>,
    /// The error of the last poll, if it failed (the devices are then from an earlier poll).
    pub error: Option<PacketError>,
}

/// Failed polls in a row after which [`DevicePoller::fresh_listing`] gives up.
pub const FRESH_LISTING_TRIES: u32 = 5;

/// The shared poller. Dropping it stops the polling task.
pub struct DevicePoller {
    latest: watch::Receiver<Arc<Listing>>,
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
    /// Starts polling the devices tagged `cluster_tag` every `interval`.
    pub fn spawn(
        client: Arc<PacketClient>,
        cluster_tag: String,
        interval: Duration,
    ) -> DevicePoller {
        let (tx, rx) = watch::channel(Arc::new(Listing {
            generation: 0,
            requested_at: Instant::now(),
            devices: HashMap::new(),
            error: None,
        }));
        let waiters = Arc::new(AtomicUsize::new(0));
        let wake = Arc::new(Notify::new());
        let (w, woken) = (Arc::clone(&waiters), Arc::clone(&wake));
        let task = tokio::spawn(async move {
            let mut generation = 0;
            let mut devices = HashMap::new();
            loop {
                let mut pause = interval;
                if w.load(Ordering::SeqCst) == 0 {
                    // Idle: the first subscriber wakes the poller at once, so a run's first
                    // lookups do not wait out an interval; polls then keep the interval.
                    tokio::select! {
                        () = tokio::time::sleep(pause) => {}
                        () = woken.notified() => {}
                    }
                    continue;
                }
                generation += 1;
                let requested_at = Instant::now();
                let error = match client.list_devices(&cluster_tag).await {
                    Ok(list) => {
                        devices = list.into_iter().map(|d| (d.id.clone(), d)).collect();
                        None
                    }
                    Err(e) => {
                        tracing::warn!("polling devices: {e}");
                        pause = pause.max(e.retry_after().unwrap_or_default());
                        Some(e)
                    }
                };
                let listing = Listing {
                    generation,
                    requested_at,
                    devices: devices.clone(),
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
            waiters,
            wake,
            task,
        }
    }

    /// The first successful listing requested after this call: every node's "does my device
    /// exist already?" answered by the cluster-wide poll, not one call each. A poll that failed
    /// for a passing reason (a 429, a 5xx) is waited out, since the poller retries on its own
    /// and one throttled poll must not fail a thousand lookups at once; a permanent error, or
    /// [`FRESH_LISTING_TRIES`] failed polls in a row, is returned. `None` if the poller stopped.
    pub async fn fresh_listing(&self) -> Option<Result<Arc<Listing>, PacketError>> {
        let since = Instant::now();
        let mut sub = self.subscribe();
        let mut failed = 0;
        loop {
            sub.rx.changed().await.ok()?;
            let listing = Arc::clone(&sub.rx.borrow_and_update());
            if listing.requested_at < since {
                continue;
            }
            match &listing.error {
                None => return Some(Ok(listing)),
                Some(e) => {
                    failed += 1;
                    if !e.is_retryable() || failed >= FRESH_LISTING_TRIES {
                        return Some(Err(e.clone()));
                    }
                }
            }
        }
    }

    /// Waits on the listings from now on.
    pub fn subscribe(&self) -> Subscription {
        self.waiters.fetch_add(1, Ordering::SeqCst);
        self.wake.notify_one();
        let mut rx = self.latest.clone();
        rx.mark_unchanged();
        Subscription {
            rx,
            waiters: Arc::clone(&self.waiters),
        }
    }
}
