//! The demo's rack (`loko run RACK_SPEC --sim`): the spec's machines behind the simulator's
//! Redfish BMCs, booting from loko's boot server into nodes of the simulator's
//! [`sim::NodeLifecycle`], as Packet devices start.
//!
//! A rack's addresses are the spec's, and the demo's machines run on this host: each machine's
//! public address and its BMC are moved to a loopback network of the state directory
//! (`127.a.b.0/24`, [`simulate`]), before anything reads the desired cluster, so that every run
//! of one demo records and finds the same machines, and two demos side by side do not meet. The
//! private addresses stay the spec's: only the emulated nodes see them.
//!
//! The rack persists in `<state_dir>/sim/rack.json` ([`rack_state_file`]), as the Packet
//! simulator's cloud does in `state.json`: a machine keeps its address, its power, what it
//! installed (its node comes back as the same node) and its place in the rack when it leaves the
//! spec, so that the next run finds it and can retire it.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use sha2::{Digest as _, Sha256};
use specs::DesiredCluster;
use steps::redfish::BmcCredentials;

/// The port of the demo's BMCs (on the rack network's last address).
const BMC_PORT: u16 = 8000;
/// The last octet of the BMCs' address; machines take 1 up, in the spec's order.
const BMC_HOST: u8 = 254;
/// The demo's BMC account (a BMC's factory default; the demo's machines are this host's).
const DEMO_BMC_USER: &str = "loko-demo";
/// How long a BMC takes to power a machine on or off, in simulated time (sushy-tools' and real
/// BMCs' take seconds).
const POWER_DELAY: Duration = Duration::from_secs(5);

/// The loopback network of a state directory's rack: `127.a.b.0/24`, `a.b` from its path.
fn rack_network(state_dir: &Path) -> [u8; 2] {
    let digest = Sha256::digest(state_dir.as_os_str().as_encoded_bytes());
    [digest[0], digest[1]]
}

/// Where the demo's rack keeps its machines, beside the simulator's `state.json`.
pub(crate) fn rack_state_file(state_dir: &Path) -> PathBuf {
    state_dir.join("sim").join("rack.json")
}

/// Moves the machines of `desired` to where the demo's rack has them: a machine the rack
/// already holds keeps its public address (by name: removing a machine from the list moves no
/// other), a new one takes the lowest free `127.a.b.h`; every BMC to `http://127.a.b.254:8000`
/// with the machine's name as its system id (the spec's ids repeat across BMCs, and the demo has
/// one BMC service).
pub(crate) fn simulate(desired: &mut DesiredCluster, state_dir: &Path) -> anyhow::Result<()> {
    let [a, b] = rack_network(state_dir);
    let bmc = format!("http://{}:{BMC_PORT}", Ipv4Addr::new(127, a, b, BMC_HOST));
    let saved_file = rack_state_file(state_dir);
    let saved: BTreeMap<String, Ipv4Addr> = sim::rack::saved_machines(&saved_file)
        .with_context(|| {
            format!(
                "cannot read the demo's rack; remove {} to start it afresh",
                saved_file.display()
            )
        })?
        .into_iter()
        .map(|m| (m.name, m.public_ip))
        .collect();
    let mut taken: Vec<Ipv4Addr> = saved.values().copied().collect();
    for node in &mut desired.nodes {
        let Some(machine) = node.machine.as_mut() else {
            continue;
        };
        let address = match saved.get(machine.name.as_str()) {
            Some(kept) => *kept,
            None => {
                let free = (1..BMC_HOST)
                    .map(|h| Ipv4Addr::new(127, a, b, h))
                    .find(|ip| !taken.contains(ip))
                    .with_context(|| {
                        format!("the demo's rack holds at most {} machines", BMC_HOST - 1)
                    })?;
                taken.push(free);
                free
            }
        };
        machine.public_ipv4 = address;
        machine.bmc = specs::BmcSystem {
            url: bmc.clone(),
            system: format!("/redfish/v1/Systems/{}", machine.name),
        };
    }
    Ok(())
}

/// The demo's running rack and the account its BMCs take.
pub(crate) struct SimRack {
    pub(crate) rack: sim::rack::Rack,
    pub(crate) credentials: BmcCredentials,
    /// The copy of the saved rack a view works on ([`SimRack::view`]).
    _copy: Option<tempfile::TempDir>,
}

impl SimRack {
    /// The demo's rack as last saved, for a command that only reads it (`loko status --sim`):
    /// its machines on a copy of the saved state, booting no node, so that what it does (a
    /// machine that was on is booted again) is not saved over the demo's own.
    pub(crate) async fn view(
        desired: &DesiredCluster,
        state_dir: &Path,
        time_scale: f64,
        redactor: &journal::Redactor,
    ) -> anyhow::Result<SimRack> {
        let copy = tempfile::tempdir().context("cannot create a temporary directory")?;
        let saved = rack_state_file(state_dir);
        let state_file = copy.path().join("rack.json");
        match std::fs::copy(&saved, &state_file) {
            Ok(_) => {}
            // No demo yet: every machine off.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", saved.display())),
        }
        let mut rack = SimRack::start_on(
            desired,
            state_dir,
            state_file,
            Arc::new(sim::NoNodes),
            time_scale,
            &BTreeMap::new(),
            redactor,
        )
        .await?;
        rack._copy = Some(copy);
        Ok(rack)
    }

    /// Starts the BMCs of the rack saved in `state_dir` and of `desired`'s machines (moved by
    /// [`simulate`] for `state_dir`), each of `faults` (by machine name) set; the machines it
    /// boots start through `nodes`, those saved on are back before this returns.
    pub(crate) async fn start(
        desired: &DesiredCluster,
        state_dir: &Path,
        nodes: Arc<dyn sim::NodeLifecycle>,
        time_scale: f64,
        faults: &BTreeMap<String, sim::rack::BmcFault>,
        redactor: &journal::Redactor,
    ) -> anyhow::Result<SimRack> {
        let state_file = rack_state_file(state_dir);
        SimRack::start_on(
            desired, state_dir, state_file, nodes, time_scale, faults, redactor,
        )
        .await
    }

    /// [`SimRack::start`] with the rack saved to `state_file`.
    async fn start_on(
        desired: &DesiredCluster,
        state_dir: &Path,
        state_file: PathBuf,
        nodes: Arc<dyn sim::NodeLifecycle>,
        time_scale: f64,
        faults: &BTreeMap<String, sim::rack::BmcFault>,
        redactor: &journal::Redactor,
    ) -> anyhow::Result<SimRack> {
        let machines: Vec<&specs::Machine> = desired
            .nodes
            .iter()
            .filter_map(|n| n.machine.as_ref())
            .collect();
        anyhow::ensure!(
            !machines.is_empty(),
            "the spec lists no machine for the demo's rack"
        );
        let [a, b] = rack_network(state_dir);
        let listen = SocketAddr::from((Ipv4Addr::new(127, a, b, BMC_HOST), BMC_PORT));
        let password: String = {
            use rand::Rng as _;
            let bytes: [u8; 12] = rand::rng().random();
            bytes.iter().map(|b| format!("{b:02x}")).collect()
        };
        let rack_machines = machines.iter().copied().map(rack_machine).collect();
        let rack = sim::rack::Rack::start(
            sim::rack::RackConfig {
                listen,
                username: DEMO_BMC_USER.to_owned(),
                password: password.clone(),
                power_delay: POWER_DELAY.mul_f64(time_scale),
                ssh_refused_for: Duration::ZERO,
                apiserver_start_delay: Duration::from_secs(30).mul_f64(time_scale),
                state_file: Some(state_file),
            },
            rack_machines,
            nodes,
        )
        .await
        .context("cannot start the demo's rack")?;
        for (name, fault) in faults {
            anyhow::ensure!(
                rack.set_fault(name, Some(fault.clone())),
                "the fault plan names machine {name}, which the demo's rack does not have"
            );
        }
        Ok(SimRack {
            rack,
            credentials: BmcCredentials::new(DEMO_BMC_USER, password, redactor),
            _copy: None,
        })
    }

    /// Hands the rack's network boots the boot server's script (`<url>/boot.ipxe`), as its
    /// DHCP's boot filename.
    pub(crate) fn boot_from(&self, boot_server_url: &str) {
        self.rack.set_boot_filename(Some(format!(
            "{}/boot.ipxe",
            boot_server_url.trim_end_matches('/')
        )));
    }
}

/// The simulator's machine for a listed one (the simulator reads no spec: its machines are
/// told to it). Its Redfish system id is its name, as [`simulate`] points its BMC.
fn rack_machine(machine: &specs::Machine) -> sim::rack::RackMachine {
    let name = machine.name.to_string();
    sim::rack::RackMachine {
        system_id: name.clone(),
        name,
        mac: machine.mac.to_string(),
        disks: vec![machine.install_disk.clone()],
        public_ip: machine.public_ipv4,
        private_ip: machine.private_ipv4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rack_yaml() -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/rack.yaml");
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"))
    }

    fn parsed(text: &str) -> DesiredCluster {
        specs::parse(text, "rack.yaml")
            .unwrap_or_else(|e| panic!("{e}"))
            .desired()
    }

    fn rack_desired() -> DesiredCluster {
        parsed(&rack_yaml())
    }

    /// The example's machines moved to the demo of `state_dir`, and its rack (without nodes).
    async fn demo_rack(
        state_dir: &Path,
        redactor: &journal::Redactor,
    ) -> (DesiredCluster, SimRack) {
        std::fs::create_dir_all(state_dir.join("sim")).unwrap();
        let mut desired = rack_desired();
        simulate(&mut desired, state_dir).unwrap();
        let rack = SimRack::start(
            &desired,
            state_dir,
            Arc::new(sim::NoNodes),
            0.01,
            &BTreeMap::new(),
            redactor,
        )
        .await
        .unwrap();
        (desired, rack)
    }

    fn public_ip(desired: &DesiredCluster, name: &str) -> Ipv4Addr {
        desired
            .nodes
            .iter()
            .filter_map(|n| n.machine.as_ref())
            .find(|m| m.name.as_str() == name)
            .unwrap_or_else(|| panic!("no machine {name}"))
            .public_ipv4
    }

    #[tokio::test]
    async fn a_machine_keeps_its_address_when_one_before_it_leaves_and_a_new_one_takes_a_free_one()
    {
        let dir = tempfile::tempdir().unwrap();
        let (desired, rack) = demo_rack(dir.path(), &journal::Redactor::new()).await;
        rack.rack.shutdown().await;
        // rack-b1 leaves the list; rack-b3 joins at its end.
        let text = rack_yaml();
        let (b1, b2) = (
            text.find("  - name: rack-b1").unwrap(),
            text.find("  - name: rack-b2").unwrap(),
        );
        let b3 = text[b2..]
            .replace("rack-b2", "rack-b3")
            .replace("52:54:00:b1:00:02", "52:54:00:b1:00:03")
            .replace("10.10.0.22", "10.10.0.23")
            .replace("10.0.9.22", "10.0.9.23")
            .replace("10.0.1.22", "10.0.1.23");
        let mut next = parsed(&format!("{}{}{b3}", &text[..b1], &text[b2..]));
        simulate(&mut next, dir.path()).unwrap();
        let [a, b] = rack_network(dir.path());
        assert_eq!(public_ip(&next, "rack-a1"), Ipv4Addr::new(127, a, b, 1));
        assert_eq!(public_ip(&next, "rack-b2"), public_ip(&desired, "rack-b2"));
        assert_eq!(
            public_ip(&next, "rack-b3"),
            Ipv4Addr::new(127, a, b, 6),
            "the rack still holds rack-b1 at .4"
        );
    }

    #[test]
    fn a_demo_moves_its_machines_to_its_own_loopback_network_the_same_every_run() {
        let mut first = rack_desired();
        simulate(&mut first, Path::new("/tmp/demo-a")).unwrap();
        let mut again = rack_desired();
        simulate(&mut again, Path::new("/tmp/demo-a")).unwrap();
        assert_eq!(first, again, "the same state directory, the same rack");
        let mut other = rack_desired();
        simulate(&mut other, Path::new("/tmp/demo-b")).unwrap();
        let machine = |d: &DesiredCluster, i: usize| d.nodes[i].machine.clone().unwrap();
        assert_ne!(
            machine(&first, 0).public_ipv4,
            machine(&other, 0).public_ipv4
        );
        let m = machine(&first, 4);
        assert_eq!(m.name.as_str(), "rack-b2");
        let [a, b] = rack_network(Path::new("/tmp/demo-a"));
        assert_eq!(m.public_ipv4, Ipv4Addr::new(127, a, b, 5));
        assert_eq!(
            m.private_ipv4,
            Ipv4Addr::new(10, 10, 0, 22),
            "private: the spec's"
        );
        assert_eq!(m.bmc.url, format!("http://127.{a}.{b}.254:8000"));
        assert_eq!(m.bmc.system, "/redfish/v1/Systems/rack-b2");
    }

    #[tokio::test]
    async fn the_demo_rack_passes_the_rack_preflight_with_its_own_account() {
        let dir = tempfile::tempdir().unwrap();
        let redactor = journal::Redactor::new();
        let (desired, rack) = demo_rack(dir.path(), &redactor).await;
        let machines: Vec<specs::Machine> = desired
            .nodes
            .iter()
            .filter_map(|n| n.machine.clone())
            .collect();
        let problems = steps::preflight::check_rack(
            &Ok(rack.credentials.clone()),
            &machines,
            &steps::packet::Timeouts::default(),
        )
        .await;
        assert_eq!(problems, [], "{problems:#?}");
        let wrong = steps::preflight::check_rack(
            &Ok(BmcCredentials::new(
                DEMO_BMC_USER,
                "x-wrong-pass",
                &redactor,
            )),
            &machines[..1],
            &steps::packet::Timeouts::default(),
        )
        .await;
        assert_eq!(wrong.len(), 1, "the rack checks its account: {wrong:#?}");
    }
}
