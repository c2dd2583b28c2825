//! The device step: one Packet device per node, created at most once.
//!
//! Every attempt reconciles first: the device is looked up by its tag `loko:node=<hostname>`
//! and adopted if it exists, so a crash between the POST and the journal's record of it never
//! makes a second device (the `next-available` duplicates of the Terraform provider). The
//! create intent is journaled before the POST. A device that ends `failed`, that is not active
//! by the provisioning deadline, or that answers 403 or 404 after a failed provisioning (Packet
//! moves such devices to an internal project), is deleted and replaced, a bounded number of
//! times, each replacement journaled; none is left behind. Waiting uses the cluster's shared [`DevicePoller`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::{Milestone, StepError};
use journal::Outputs;

use crate::provider::{Intents, ProvidedMachine};

use super::client::PacketClient;
use super::error::{PacketError, PacketErrorKind};
use super::model::{CreateDevice, Device, DeviceState};
use super::poller::{DevicePoller, Listing, PollPace};

/// What this file's steps change, as their milestones name it (`device created`).
const DEVICE: &str = "device";
use super::spec::{DeviceSpec, Location, cluster_id_tag, cluster_tag, node_tag};

/// Limits of waiting and replacing.
#[derive(Clone, Debug)]
pub struct DeviceSettings {
    /// How long a device may take to become `active` once loko waits for it; past it, the
    /// device is deleted and replaced like a failed one.
    pub provision_deadline: Duration,
    /// How many failed devices one attempt replaces before failing for good.
    pub max_replacements: u32,
    /// How often the shared poller lists the cluster's devices.
    pub poll: PollPace,
}

impl Default for DeviceSettings {
    fn default() -> Self {
        DeviceSettings {
            provision_deadline: Duration::from_secs(30 * 60),
            max_replacements: 3,
            poll: PollPace::default(),
        }
    }
}

/// 429s a request waits out within one attempt (see [`paced`]), and the longest `Retry-After`
/// it waits that way; beyond either, the attempt fails and the engine decides.
const MAX_PACED_REQUESTS: u32 = 10;
const MAX_PACED_WAIT: Duration = Duration::from_secs(300);

/// Sends a request, and again after the server's `Retry-After` while it answers 429: a 429
/// means the request was refused, not acted on, so the step's attempt goes on. Failing the
/// attempt would cost the step a fresh listing before it could send again (and, in the
/// engine's backoff, up to a poll interval more), which put the last of a thousand creates or
/// deletes seconds behind the rate limit's own pace. The wait holds no place.
async fn paced<T, F, Fut>(ctx: &impl Intents, send: F) -> Result<T, StepError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, PacketError>>,
{
    let mut refused = 0;
    loop {
        match send().await {
            Ok(answer) => return Ok(answer),
            Err(PacketError {
                kind:
                    PacketErrorKind::RateLimited {
                        retry_after: Some(wait),
                    },
                ..
            }) if refused < MAX_PACED_REQUESTS && wait <= MAX_PACED_WAIT => {
                refused += 1;
                ctx.sleep(wait).await?;
            }
            Err(e) => return Err(step_error(e)),
        }
    }
}

/// Maps an API failure to the engine's retry classes.
pub fn step_error(e: PacketError) -> StepError {
    match (e.is_retryable(), e.retry_after()) {
        (true, Some(after)) => StepError::retry_after(e, after),
        (true, None) => StepError::retryable(e),
        (false, _) => StepError::permanent(e),
    }
}

/// How waiting for a device ended.
enum Waited {
    Active(Device),
    Failed(Device),
    /// Not active by the provisioning deadline.
    Stuck(Device),
    Gone,
}

/// The effect of the intent a device step journals before it sends a create: a run that finds
/// it without the step's success looks for the device by tag before creating one.
pub const CREATE_INTENT: &str = "create device";

/// Creates (or adopts) the device of a node and waits until it is active.
pub struct DeviceStep {
    pub client: Arc<PacketClient>,
    pub poller: Arc<DevicePoller>,
    pub spec: DeviceSpec,
    pub settings: DeviceSettings,
    /// Nodes whose named reservations a `next-available` create could take: it waits until
    /// their devices are listed (a few polls at most).
    pub named_first: Vec<String>,
    /// The spec's `node_private_cidr`: the node's private address must lie in it.
    pub private_network: ipnet::Ipv4Net,
}

/// Listings a `next-available` create waits for the named reservations' devices to appear in;
/// past them (a named create failed), it goes ahead.
const NAMED_FIRST_POLLS: u32 = 3;

impl DeviceStep {
    /// One attempt; see the module docs.
    pub(crate) async fn run(&self, ctx: &impl Intents) -> Result<ProvidedMachine, StepError> {
        let hostname = &self.spec.hostname;
        let mut replaced: Vec<String> = Vec::new();
        // False while the node's device is one an earlier attempt or run made, as it was.
        let mut acted = false;
        // The first lookup may read a listing requested since the attempt began; after a
        // replacement, only one requested after it.
        let mut since = Instant::now();
        // Each phase is boxed: a future is as large as its largest state, and thousands of
        // these live for minutes (5,000 in a type change), most of it waiting in one phase.
        // With every phase inline, each step's future was 3.3 KB; boxed, 2.2 KB.
        loop {
            let found = Box::pin(self.find(ctx, since)).await?;
            since = Instant::now();
            let device = match found {
                Some(device) if device.state == DeviceState::Failed => {
                    Box::pin(self.replace(ctx, &device, &mut replaced, "failed provisioning"))
                        .await?;
                    acted = true;
                    continue;
                }
                Some(device)
                    if device
                        .plan_slug()
                        .is_some_and(|p| p != self.spec.machine_type) =>
                {
                    // The pool's type changed: delete, then create (the tutorial's "recreate",
                    // with the downtime it warns about).
                    Box::pin(self.retire(ctx, &device, "plan changed")).await?;
                    acted = true;
                    continue;
                }
                Some(device) => {
                    ctx.progress(format!("adopted device {} ({})", device.id, device.state));
                    device
                }
                None => {
                    acted = true;
                    Box::pin(self.create(ctx)).await?
                }
            };
            // Waiting holds no place among the packet-api steps: the shared poller makes one
            // list call for all waiting devices, so a thousand can provision at once.
            match Box::pin(ctx.wait(self.wait_active(ctx, &device))).await?? {
                Waited::Active(device) => {
                    check_private_network(&device, self.private_network)?;
                    return provided(&device, replaced, acted);
                }
                Waited::Failed(device) => {
                    Box::pin(self.replace(ctx, &device, &mut replaced, "failed provisioning"))
                        .await?
                }
                // Hardware that has not come up in the deadline rarely does: as with a failed
                // device, a bounded number of replacements, each journaled.
                Waited::Stuck(device) => {
                    Box::pin(self.replace(
                        ctx,
                        &device,
                        &mut replaced,
                        "stuck past the provisioning deadline",
                    ))
                    .await?
                }
                Waited::Gone => {
                    ctx.progress(format!(
                        "device {} of {hostname} is gone (403/404 after a failed provisioning); creating a replacement",
                        device.id
                    ));
                    note_replacement(
                        &mut replaced,
                        &device.id,
                        self.settings.max_replacements,
                        hostname,
                    )?;
                }
            }
        }
    }

    /// The node's device, by tag, from the shared poller's next listing of the cluster (the
    /// devices loko creates carry both tags). More than one is a conflict loko will not guess
    /// about.
    async fn find(&self, ctx: &impl Intents, since: Instant) -> Result<Option<Device>, StepError> {
        let tag = node_tag(&self.spec.hostname);
        let listing = listing_since(ctx, &self.poller, since).await?;
        let mut found: Vec<Device> = listing
            .devices
            .values()
            .filter(|d| d.has_tag(&tag) && d.state != DeviceState::Deprovisioning)
            .map(|d| Device::clone(d))
            .collect();
        if found.len() > 1 {
            let ids: Vec<&str> = found.iter().map(|d| d.id.as_str()).collect();
            return Err(StepError::permanent(format!(
                "{} devices carry tag {tag}: {}; delete the ones that are not the node's device and run again",
                found.len(),
                ids.join(", ")
            )));
        }
        Ok(found.pop())
    }

    async fn create(&self, ctx: &impl Intents) -> Result<Device, StepError> {
        let spec = &self.spec;
        let userdata = std::fs::read_to_string(&spec.userdata_path).map_err(|e| {
            StepError::permanent(format!(
                "cannot read the Ignition of {} at {}: {e}",
                spec.hostname,
                spec.userdata_path.display()
            ))
        })?;
        let (facility, metro) = match &spec.location {
            Location::Facility(f) => (Some(vec![f.clone()]), None),
            Location::Metro(m) => (None, Some(m.clone())),
        };
        let fields = spec.inputs();
        let (operating_system, ipxe_script_url) = (
            fields.operating_system,
            fields.ipxe_script_url.map(str::to_owned),
        );
        let request = CreateDevice {
            hostname: spec.hostname.clone(),
            plan: spec.machine_type.clone(),
            facility,
            metro,
            operating_system,
            ipxe_script_url,
            // As the Lokomotive modules: PXE only on the first boot.
            always_pxe: false,
            billing_cycle: "hourly".to_owned(),
            tags: [cluster_tag(&spec.cluster), node_tag(&spec.hostname)]
                .into_iter()
                .chain(spec.cluster_id.as_deref().map(cluster_id_tag))
                .collect(),
            userdata,
            hardware_reservation_id: spec.reservation.clone(),
        };
        for _ in 0..NAMED_FIRST_POLLS {
            if self.named_first.is_empty() {
                break;
            }
            let listing = listing_since(ctx, &self.poller, Instant::now()).await?;
            let listed = |host: &String| {
                let tag = node_tag(host);
                listing.devices.values().any(|d| d.has_tag(&tag))
            };
            if self.named_first.iter().all(listed) {
                break;
            }
        }
        let mut intent = Outputs::new()
            .with("hostname", &spec.hostname)?
            .with("plan", &spec.machine_type)?;
        if let Some(r) = &spec.reservation {
            intent.insert("reservation", r)?;
        }
        ctx.intent(CREATE_INTENT, intent).await?;
        // A 429 refused the create, so sending it again within this attempt is safe; failing
        // the attempt instead would make the next one look for a device that cannot exist,
        // after a fresh listing, which at 1000 workers put the last creates seconds late.
        let device = paced(ctx, || self.client.create_device(&request)).await?;
        ctx.milestone(
            Milestone::created(DEVICE),
            format!("created device {} ({})", device.id, device.state),
        );
        Ok(device)
    }

    /// Deletes a failed device (journaled) so that the loop creates its replacement.
    async fn replace(
        &self,
        ctx: &impl Intents,
        device: &Device,
        replaced: &mut Vec<String>,
        why: &str,
    ) -> Result<(), StepError> {
        note_replacement(
            replaced,
            &device.id,
            self.settings.max_replacements,
            &self.spec.hostname,
        )?;
        self.retire(ctx, device, why).await
    }

    /// Deletes the node's current device, journaling why, and waits until Packet no longer
    /// lists it, so that its replacement never coexists with it under the same tag. The wait
    /// reads the shared poller and holds no place: a pool's type change deletes all its
    /// devices at once.
    async fn retire(
        &self,
        ctx: &impl Intents,
        device: &Device,
        why: &str,
    ) -> Result<(), StepError> {
        let mut detail = Outputs::new()
            .with("device_id", &device.id)?
            .with("reason", why)?;
        if let Some(plan) = device.plan_slug() {
            detail.insert("plan", plan)?;
        }
        ctx.intent("delete device", detail).await?;
        paced(ctx, || self.client.delete_device(&device.id)).await?;
        ctx.milestone(
            Milestone::delete_sent(DEVICE),
            format!("deleting device {} ({why}); a new one follows", device.id),
        );
        let deadline = Instant::now() + self.settings.provision_deadline;
        loop {
            let listing = listing_since(ctx, &self.poller, Instant::now()).await?;
            if !listing.devices.contains_key(&device.id) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(StepError::retryable(format!(
                    "device {} of {} is still deprovisioning after {}s",
                    device.id,
                    self.spec.hostname,
                    self.settings.provision_deadline.as_secs()
                )));
            }
        }
    }

    async fn wait_active(&self, ctx: &impl Intents, device: &Device) -> Result<Waited, StepError> {
        let hostname = &self.spec.hostname;
        let deadline = Instant::now() + self.settings.provision_deadline;
        let since = Instant::now();
        let mut sub = self.poller.subscribe();
        let mut last_state = device.state.clone();
        if let Some(done) = settled(device) {
            return Ok(done);
        }
        let mut skipped = false;
        loop {
            match tokio::time::timeout_at(deadline.into(), sub.rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(StepError::retryable("the device poller stopped")),
                Err(_) => {
                    ctx.progress(format!(
                        "device {} of {hostname} is still {last_state} after {}s, past its provisioning deadline",
                        device.id,
                        self.settings.provision_deadline.as_secs()
                    ));
                    let mut stuck = device.clone();
                    stuck.state = last_state;
                    return Ok(Waited::Stuck(stuck));
                }
            }
            let listing = Arc::clone(&sub.rx.borrow_and_update());
            match listing.devices.get(&device.id) {
                Some(now) => {
                    skipped = false;
                    if now.state != last_state {
                        last_state = now.state.clone();
                        if let DeviceState::Other(state) = &now.state {
                            tracing::info!(
                                "device {} of {hostname} is in state {state:?}, which loko does not act on; waiting",
                                now.id
                            );
                        }
                        ctx.progress(format!("device {} {}", now.id, now.state));
                    }
                    if let Some(done) = settled(now) {
                        return Ok(done);
                    }
                }
                // Absent from a listing requested after we started waiting: ask for it by id,
                // unless the listing took several pages and may have skipped it; a device
                // absent from two in a row is asked for. (A new device is in no earlier listing
                // that the poller could keep it from: in a 5,000-device type change, asking at
                // the first miss cost up to 250 calls, nearly half a minute of the rate limit.)
                None if listing.error.is_none() && listing.requested_at > since => {
                    if listing.may_skip() && !skipped {
                        skipped = true;
                        continue;
                    }
                    match self.client.get_device(&device.id).await {
                        Ok(now) => {
                            if let Some(done) = settled(&now) {
                                return Ok(done);
                            }
                        }
                        Err(e) if e.is_gone() => return Ok(Waited::Gone),
                        Err(e) => return Err(step_error(e)),
                    }
                }
                None => {}
            }
        }
    }
}

/// The first listing of the shared poller requested at or after `since` (see
/// [`DevicePoller::listing_since`]), waited for without a place (it is no call of the step's
/// own) and given up on when the run is cancelled.
async fn listing_since(
    ctx: &impl Intents,
    poller: &DevicePoller,
    since: Instant,
) -> Result<Arc<Listing>, StepError> {
    ctx.wait(poller.listing_since(since))
        .await?
        .ok_or_else(|| StepError::retryable("the device poller stopped"))?
        .map_err(step_error)
}

fn settled(device: &Device) -> Option<Waited> {
    match device.state {
        // Active without addresses is not usable yet; the API fills them in shortly after.
        DeviceState::Active
            if device.public_ipv4().is_some() && device.private_ipv4().is_some() =>
        {
            Some(Waited::Active(device.clone()))
        }
        DeviceState::Failed => Some(Waited::Failed(device.clone())),
        _ => None,
    }
}

/// Refuses a device whose private address is outside `node_private_cidr`. The nodes' firewall
/// (etcd, BGP, the kubelet), etcd's and the kubelet's addresses and Calico's `can-reach` all
/// take the cluster's network from that field, so a wrong value cuts the cluster apart with no
/// error anywhere; Packet gives every device of a project an address of the project's private
/// block in its location, which the spec must name. Nothing is bootstrapped on such a device:
/// its dependents are skipped.
fn check_private_network(device: &Device, expected: ipnet::Ipv4Net) -> Result<(), StepError> {
    let Some(address) = device.private_ipv4() else {
        return Ok(());
    };
    if expected.contains(&address) {
        return Ok(());
    }
    let network = device
        .private_network()
        .map_or_else(String::new, |n| format!(" of Packet's private network {n}"));
    let set = device.private_network().map_or_else(
        || "the project's private network".to_owned(),
        |n| format!("`node_private_cidr: {n}`"),
    );
    Err(StepError::permanent(format!(
        "device {} of {} has the private address {address}{network}, outside node_private_cidr {expected}: \
         the nodes' firewall, etcd and Calico would not reach each other. Set {set} in the spec; \
         the Ignition of the devices already created holds the old value, so delete them first with \
         `loko destroy`, then run again",
        device.id, device.hostname
    )))
}

fn note_replacement(
    replaced: &mut Vec<String>,
    id: &str,
    max: u32,
    hostname: &str,
) -> Result<(), StepError> {
    replaced.push(id.to_owned());
    if replaced.len() as u32 > max {
        return Err(StepError::permanent(format!(
            "the device of {hostname} failed provisioning {} times (devices {}); not trying again in this run",
            replaced.len(),
            replaced.join(", ")
        )));
    }
    Ok(())
}

/// The node's active device as the provider seam hands it to the steps after it. An active
/// device has both addresses ([`settled`] waits for them).
fn provided(
    device: &Device,
    replaced: Vec<String>,
    acted: bool,
) -> Result<ProvidedMachine, StepError> {
    let (Some(public_ipv4), Some(private_ipv4)) = (device.public_ipv4(), device.private_ipv4())
    else {
        return Err(StepError::retryable(format!(
            "device {} is active without its addresses",
            device.id
        )));
    };
    Ok(ProvidedMachine {
        id: device.id.clone(),
        hostname: device.hostname.clone(),
        public_ipv4,
        private_ipv4,
        acted,
        reservation_id: device.reservation_id().map(str::to_owned),
        replaced,
    })
}

/// Removes devices by tag: a node's (`loko:node=`) for a pool scaled down, or the whole
/// cluster's (`loko:cluster=`) for `loko destroy`. Looking up by tag finds devices a crash left
/// unrecorded too. Waits until Packet no longer lists them. Nothing to delete is success, so
/// destroy can be rerun until nothing is left. Lookups and waits read the shared poller (the
/// devices carry the cluster's tag too) and hold no place: a thousand deletes cost one list
/// call per poll and finish in one deprovisioning time.
pub struct DeleteDeviceStep {
    pub client: Arc<PacketClient>,
    pub poller: Arc<DevicePoller>,
    /// The tag every device to delete carries.
    pub tag: String,
    pub deadline: Duration,
}

impl DeleteDeviceStep {
    /// One attempt: the ids of the devices it deleted.
    pub(crate) async fn run(&self, ctx: &impl Intents) -> Result<Vec<String>, StepError> {
        let tag = &self.tag;
        let start = Instant::now();
        let mut deleted: Vec<String> = Vec::new();
        // The first listing may be one requested since the attempt began; each later one must
        // be requested after the deletes it checks.
        let mut since = start;
        loop {
            let listing = listing_since(ctx, &self.poller, since).await?;
            let mut remaining = 0;
            for device in listing.devices.values().filter(|d| d.has_tag(tag)) {
                remaining += 1;
                if device.state == DeviceState::Deprovisioning || deleted.contains(&device.id) {
                    continue;
                }
                ctx.intent(
                    "delete device",
                    Outputs::new().with("device_id", &device.id)?,
                )
                .await?;
                paced(ctx, || self.client.delete_device(&device.id)).await?;
                ctx.milestone(
                    Milestone::delete_sent(DEVICE),
                    format!("deleting device {} ({})", device.id, device.hostname),
                );
                deleted.push(device.id.clone());
            }
            if remaining == 0 {
                return Ok(deleted);
            }
            since = Instant::now();
            if start.elapsed() >= self.deadline {
                return Err(StepError::retryable(format!(
                    "{remaining} device(s) tagged {tag} still listed after {}s of deleting",
                    self.deadline.as_secs()
                )));
            }
        }
    }
}
