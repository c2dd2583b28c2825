//! The machines of one's own rack (`provider: redfish`), powered and booted through their BMCs.
//!
//! A listed machine exists before loko runs and after it: ensuring it means booting it into
//! the installer (PXE once, then on or a forced restart), retiring it means powering it off.
//! With `boot_server.retire: wipe`, `super::netbooted` boots it into a wipe of its disk
//! instead ([`RedfishProvider::boot_to_wipe`]), which powers it off.

use engine::StepError;
use journal::Outputs;

use super::{Change, Intents, ListedMachine, MachineProvider, ProvidedMachine};
use crate::packet::Timeouts;
use crate::redfish::{
    BmcCredentials, ComputerSystem, Polling, PowerState, RedfishClient, RedfishError, Reset,
};

/// The intent journaled before a machine is reset into its network boot: a resumed attempt
/// that finds it, and the machine on, adopts the boot in progress instead of restarting it.
pub const BOOT_INTENT: &str = "network boot";
/// The intent journaled before a machine is powered off.
pub const POWER_OFF_INTENT: &str = "power off";
/// The intent journaled before a machine found off is powered on from its disk.
pub const POWER_ON_INTENT: &str = "power on";
/// The intent journaled before a retired machine is reset into the wipe of its disk: a resumed
/// attempt that finds it on waits for the wipe to power it off instead of restarting it.
pub const WIPE_INTENT: &str = "wipe";

/// Machines booted and powered through Redfish, with one account for every BMC.
#[derive(Clone)]
pub struct RedfishProvider {
    pub credentials: BmcCredentials,
    pub timeouts: Timeouts,
    pub polling: Polling,
    /// The rack's machines, for [`MachineProvider::list`].
    pub machines: Vec<specs::Machine>,
}

impl RedfishProvider {
    async fn connect(&self, machine: &specs::Machine) -> Result<RedfishClient, StepError> {
        RedfishClient::connect(&machine.bmc.url, &self.credentials, &self.timeouts)
            .await
            .map_err(RedfishError::into_step_error)
    }

    /// Runs `work` with a client of the machine's BMC, then signs out whatever `work` did: a
    /// BMC keeps few sessions, and an attempt that failed must not hold one until it expires.
    async fn with_bmc<T>(
        &self,
        machine: &specs::Machine,
        work: impl AsyncFnOnce(&RedfishClient) -> Result<T, StepError>,
    ) -> Result<T, StepError> {
        let client = self.connect(machine).await?;
        let result = work(&client).await;
        let closed = client.close().await;
        let value = result?;
        // A session the BMC would not delete expires by itself; the work is done.
        if let Err(e) = closed {
            tracing::warn!("{e}");
        }
        Ok(value)
    }

    /// The system, checked to be the machine (its NIC's MAC listed).
    async fn system(
        client: &RedfishClient,
        machine: &specs::Machine,
    ) -> Result<ComputerSystem, StepError> {
        client
            .machine(&machine.bmc.system, &machine.mac)
            .await
            .map_err(|e| named(machine, e))
    }
}

impl RedfishProvider {
    /// Boots the machine from the network once: PXE once, `intent` journaled, then on, or a
    /// forced restart when it is on. With `adopt`, a machine that is on while an earlier
    /// attempt journaled `intent` is left as it is: false.
    async fn boot_from_network(
        &self,
        client: &RedfishClient,
        intents: &impl Intents,
        machine: &specs::Machine,
        intent: &str,
        adopt: bool,
    ) -> Result<bool, StepError> {
        let system = Self::system(client, machine).await?;
        let on = system.power_state == Some(PowerState::On);
        if adopt && on && intents.intended_before(intent) {
            intents.progress(format!(
                "machine {} is on since an earlier attempt's {intent}; adopted",
                machine.name
            ));
            return Ok(false);
        }
        let system = client
            .boot_pxe_once(&system, &self.polling)
            .await
            .map_err(|e| named(machine, e))?;
        let reset = if on { Reset::ForceRestart } else { Reset::On };
        intents
            .intent(
                intent,
                detail(machine)?.with("reset", format!("{reset:?}"))?,
            )
            .await?;
        let sent = client
            .reset(&system, reset, &self.polling)
            .await
            .map_err(|e| named(machine, e))?;
        intents.progress(format!(
            "machine {}: next boot PXE, {sent} sent ({intent})",
            machine.name
        ));
        Ok(true)
    }

    /// Boots a retired machine into the wipe its MAC is served, off or on ([`WIPE_INTENT`]);
    /// false when an earlier attempt's wipe is adopted (see `boot_from_network`), unless
    /// `adopt` is false. Whether it fetched the wipe and is off again is the caller's to see.
    pub async fn boot_to_wipe(
        &self,
        intents: &impl Intents,
        machine: &specs::Machine,
        adopt: bool,
    ) -> Result<bool, StepError> {
        self.with_bmc(machine, async |client| {
            self.boot_from_network(client, intents, machine, WIPE_INTENT, adopt)
                .await
        })
        .await
    }

    /// Waits until the machine's BMC reports it off, reading it every `self.polling.every`
    /// for at most `within`.
    pub async fn wait_off(
        &self,
        machine: &specs::Machine,
        within: std::time::Duration,
    ) -> Result<(), StepError> {
        let polling = Polling {
            every: self.polling.every,
            within,
        };
        self.with_bmc(machine, async |client| {
            client
                .wait_for_power(&machine.bmc.system, &PowerState::Off, &polling)
                .await
                .map(|_| ())
                .map_err(|e| named(machine, e))
        })
        .await
    }

    /// The node `hostname`'s machine, found off, powered on from its disk as it is (no network
    /// boot: what the node keeps on its disk, a controller's etcd member, stays).
    pub async fn power_on(
        &self,
        intents: &impl Intents,
        hostname: &str,
        machine: &specs::Machine,
    ) -> Result<ProvidedMachine, StepError> {
        self.with_bmc(machine, async |client| {
            let system = Self::system(client, machine).await?;
            if system.power_state == Some(PowerState::On) {
                return Ok(provided(hostname, machine, false));
            }
            intents.intent(POWER_ON_INTENT, detail(machine)?).await?;
            self.reset_to(client, &system, machine, Reset::On, &PowerState::On)
                .await?;
            intents.progress(format!(
                "machine {} was off: powered on from its disk",
                machine.name
            ));
            Ok(provided(hostname, machine, true))
        })
        .await
    }

    /// The power state of each of `machines` ([`RedfishProvider::power_state`]), in their
    /// order, every BMC asked at once: a rack of a hundred machines is not a hundred round
    /// trips in a row.
    pub async fn power_states(
        &self,
        machines: &[specs::Machine],
    ) -> Vec<Result<String, StepError>> {
        let provider = std::sync::Arc::new(self.clone());
        let mut asked = tokio::task::JoinSet::new();
        for (index, machine) in machines.iter().cloned().enumerate() {
            let provider = std::sync::Arc::clone(&provider);
            asked.spawn(async move { (index, provider.power_state(&machine).await) });
        }
        let mut states: Vec<Option<Result<String, StepError>>> = vec![None; machines.len()];
        while let Some(joined) = asked.join_next().await {
            match joined {
                Ok((index, state)) => states[index] = Some(state),
                // A task that panicked or was cancelled answers nothing: said as its error.
                Err(e) => tracing::warn!("a BMC's power state was not read: {e}"),
            }
        }
        states
            .into_iter()
            .map(|s| s.unwrap_or_else(|| Err(StepError::retryable("its power state was not read"))))
            .collect()
    }

    /// Sends `reset` to the machine's system and waits until its power state is `state`.
    async fn reset_to(
        &self,
        client: &RedfishClient,
        system: &ComputerSystem,
        machine: &specs::Machine,
        reset: Reset,
        state: &PowerState,
    ) -> Result<(), StepError> {
        client
            .reset(system, reset, &self.polling)
            .await
            .map_err(|e| named(machine, e))?;
        client
            .wait_for_power(&machine.bmc.system, state, &self.polling)
            .await
            .map_err(|e| named(machine, e))?;
        Ok(())
    }

    /// The machine's power state as its BMC reports it (`On`, `Off`; `unknown` when the BMC
    /// leaves it out), after checking the system is the machine.
    pub async fn power_state(&self, machine: &specs::Machine) -> Result<String, StepError> {
        self.with_bmc(machine, async |client| {
            let system = Self::system(client, machine).await?;
            Ok(system
                .power_state
                .map_or_else(|| "unknown".to_owned(), |s| s.to_string()))
        })
        .await
    }
}

/// The node `hostname`'s machine as the steps after it read it; `acted`: booted or powered
/// by this attempt, not adopted as it was.
fn provided(hostname: &str, machine: &specs::Machine, acted: bool) -> ProvidedMachine {
    ProvidedMachine {
        id: machine.name.to_string(),
        hostname: hostname.to_owned(),
        public_ipv4: machine.public_ipv4,
        private_ipv4: machine.private_ipv4,
        acted,
        reservation_id: None,
        replaced: Vec::new(),
    }
}

/// A BMC's error, with the machine's name before it.
fn named(machine: &specs::Machine, e: RedfishError) -> StepError {
    let retryable = e.is_retryable();
    let after = e.retry_after();
    let message = format!("machine {}: {e}", machine.name);
    match (retryable, after) {
        (true, Some(after)) => StepError::retry_after(message, after),
        (true, None) => StepError::retryable(message),
        (false, _) => StepError::permanent(message),
    }
}

fn detail(machine: &specs::Machine) -> Result<Outputs, StepError> {
    Ok(Outputs::new()
        .with("machine", machine.name.as_str())?
        .with("mac", machine.mac.to_string())?
        .with("bmc", &machine.bmc.url)?
        .with("system", &machine.bmc.system)?)
}

impl MachineProvider for RedfishProvider {
    type Machine = specs::Machine;

    async fn ensure(
        &self,
        intents: &impl Intents,
        hostname: &str,
        machine: &specs::Machine,
    ) -> Result<ProvidedMachine, StepError> {
        let provided = |acted| provided(hostname, machine, acted);
        self.with_bmc(machine, async |client| {
            // An earlier attempt reset it into its network boot and it is on: it is installing
            // or installed; another restart would only start that over.
            if !self
                .boot_from_network(client, intents, machine, BOOT_INTENT, true)
                .await?
            {
                return Ok(provided(false));
            }
            client
                .wait_for_power(&machine.bmc.system, &PowerState::On, &self.polling)
                .await
                .map_err(|e| named(machine, e))?;
            Ok(provided(true))
        })
        .await
    }

    async fn retire(
        &self,
        intents: &impl Intents,
        machine: &specs::Machine,
    ) -> Result<(), StepError> {
        self.with_bmc(machine, async |client| {
            // Checked first: powering off whatever answers at a wrong system would stop
            // another machine.
            let system = Self::system(client, machine).await?;
            if system.power_state == Some(PowerState::Off) {
                return Ok(());
            }
            intents.intent(POWER_OFF_INTENT, detail(machine)?).await?;
            self.reset_to(client, &system, machine, Reset::ForceOff, &PowerState::Off)
                .await?;
            intents.progress(format!("machine {} is off", machine.name));
            Ok(())
        })
        .await
    }

    async fn list(&self) -> Result<Vec<ListedMachine>, StepError> {
        let states = self.power_states(&self.machines).await;
        self.machines
            .iter()
            .zip(states)
            .map(|(machine, state)| {
                Ok(ListedMachine {
                    id: machine.name.to_string(),
                    state: state?,
                })
            })
            .collect()
    }

    fn change(&self, was: &specs::Machine, is: &specs::Machine) -> Change {
        machine_change(was, is)
    }
}

/// What moving a node from machine `was` to `is` takes ([`MachineProvider::change`]); also
/// what `loko plan` and a run's classification of a rack's nodes ask, without a BMC's
/// credentials.
pub fn machine_change(was: &specs::Machine, is: &specs::Machine) -> Change {
    if was.mac != is.mac {
        return Change::Recreate {
            why: format!(
                "its MAC changed from {} to {}: another machine, booted in its place",
                was.mac, is.mac
            ),
        };
    }
    if was.install_disk != is.install_disk {
        return Change::Recreate {
            why: format!(
                "its install disk changed from {} to {}: Flatcar is installed again",
                was.install_disk, is.install_disk
            ),
        };
    }
    for (field, from, to) in [
        ("public_ipv4", was.public_ipv4, is.public_ipv4),
        ("private_ipv4", was.private_ipv4, is.private_ipv4),
    ] {
        if from != to {
            return Change::Refused {
                field: field.to_owned(),
                why: format!(
                    "machine {}: its {field} changed from {from} to {to}: a node's addresses are in its certificates, etcd's peers and the DNS records",
                    is.name
                ),
            };
        }
    }
    // Where its BMC answers (a new URL, a renumbered system) is no change to the machine.
    Change::None
}
