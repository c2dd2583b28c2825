//! The simulator's rack: BMCs over Redfish, machines that network-boot from a boot server over
//! HTTP (here a fixture answering as Typhoon's Matchbox profiles do), install, and become
//! SSH-reachable nodes; and the BMCs' faults.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use base64::Engine as _;
use serde_json::{Value, json};
use sim::rack::{BmcFault, MachineState, Rack, RackConfig, RackMachine};

use crate::node_world::{NodeWorld, eventually};
use crate::nodes_support::text;

pub(crate) const MAC: &str = "52:54:00:29:00:01";
const USER: &str = "admin";
const PASSWORD: &str = "rack-secret";

/// A boot server answering as Typhoon's install profile does, for one MAC; it records each
/// request (path and MAC).
pub(crate) struct BootFixture {
    pub(crate) url: String,
    pub(crate) seen: Arc<Mutex<Vec<String>>>,
}

#[derive(Clone)]
struct Served {
    url: String,
    node_ignition: String,
    install_disk: String,
    seen: Arc<Mutex<Vec<String>>>,
}

pub(crate) async fn boot_fixture(node_ignition: String, install_disk: &str) -> BootFixture {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let served = Served {
        url: url.clone(),
        node_ignition,
        install_disk: install_disk.to_owned(),
        seen: seen.clone(),
    };
    let app = axum::Router::new().fallback(answer).with_state(served);
    tokio::spawn(async move { axum::serve(listener, app).await });
    BootFixture { url, seen }
}

async fn answer(
    State(s): State<Served>,
    uri: axum::http::Uri,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> (axum::http::StatusCode, String) {
    let mac = q.get("mac").cloned().unwrap_or_default();
    s.seen.lock().unwrap().push(format!("{} {mac}", uri.path()));
    let known = mac.eq_ignore_ascii_case(MAC);
    let url = &s.url;
    let body = match (uri.path(), known) {
        ("/boot.ipxe", _) if mac.is_empty() => {
            format!("#!ipxe\nchain {url}/boot.ipxe?mac=${{net0/mac}}\n")
        }
        ("/boot.ipxe", true) => format!(
            "#!ipxe\nkernel http://mirror.invalid/amd64-usr/current/flatcar_production_pxe.vmlinuz initrd=flatcar_production_pxe_image.cpio.gz flatcar.first_boot=yes ignition.config.url={url}/ignition?mac=${{net0/mac}}\ninitrd http://mirror.invalid/amd64-usr/current/flatcar_production_pxe_image.cpio.gz\nboot\n"
        ),
        ("/ignition", true) => {
            let script = format!(
                "#!/bin/bash -ex\ncurl --retry 10 \"{url}/node-ignition?mac={MAC}\" -o ignition.json\nflatcar-install \\\n  -d {} \\\n  -C stable \\\n  -i ignition.json\nudevadm settle\nsystemctl reboot\n",
                s.install_disk
            );
            json!({
                "ignition": {"version": "3.3.0"},
                "storage": {"files": [{"path": "/opt/installer", "mode": 320, "contents": {
                    "source": format!("data:;base64,{}", base64::engine::general_purpose::STANDARD.encode(script))
                }}]},
                "systemd": {"units": [{"name": "installer.service", "enabled": true,
                    "contents": "[Unit]\nRequires=network-online.target\nAfter=network-online.target\n[Service]\nType=simple\nExecStart=/opt/installer\n[Install]\nWantedBy=multi-user.target\n"}]}
            })
            .to_string()
        }
        ("/node-ignition", true) => s.node_ignition.clone(),
        _ => return (axum::http::StatusCode::NOT_FOUND, String::new()),
    };
    (axum::http::StatusCode::OK, body)
}

pub(crate) struct RackWorld {
    pub(crate) world: NodeWorld,
    pub(crate) rack: Rack,
    pub(crate) ip: Ipv4Addr,
    http: reqwest::Client,
}

/// The BMCs' account and timing, keeping the machines in `state_file` if any.
pub(crate) fn rack_config(power_delay: Duration, state_file: Option<PathBuf>) -> RackConfig {
    RackConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        username: USER.to_owned(),
        password: PASSWORD.to_owned(),
        power_delay,
        ssh_refused_for: Duration::ZERO,
        apiserver_start_delay: Duration::from_millis(300),
        state_file,
    }
}

/// The one machine of [`rack_world`], its node at `ip`.
fn rack_machine(ip: Ipv4Addr, octet: u8) -> RackMachine {
    RackMachine {
        name: "rack-controller-0".to_owned(),
        system_id: "c0ffee00-0000-4000-8000-000000000001".to_owned(),
        mac: MAC.to_owned(),
        disks: vec!["/dev/sda".to_owned(), "/dev/sdb".to_owned()],
        public_ip: ip,
        private_ip: Ipv4Addr::new(10, 88, 29, octet),
    }
}

async fn rack_world(octet: u8, power_delay: Duration) -> RackWorld {
    rack_world_kept(octet, power_delay, None).await
}

/// A rack of one machine whose node answers at `127.77.29.octet`.
pub(crate) async fn rack_world_kept(
    octet: u8,
    power_delay: Duration,
    state_file: Option<PathBuf>,
) -> RackWorld {
    let ip = Ipv4Addr::new(127, 77, 29, octet);
    let world = NodeWorld::new(ip);
    let config = rack_config(power_delay, state_file);
    assert!(!format!("{config:?}").contains(PASSWORD), "{config:?}");
    rack_on(world, ip, config, vec![rack_machine(ip, octet)]).await
}

/// A rack of `machines` booting into `world`'s nodes, the test's machine's at `ip`.
pub(crate) async fn rack_on(
    world: NodeWorld,
    ip: Ipv4Addr,
    config: RackConfig,
    machines: Vec<RackMachine>,
) -> RackWorld {
    let rack = Rack::start(config, machines, Arc::new(world.nodes.clone()))
        .await
        .unwrap();
    RackWorld {
        world,
        rack,
        ip,
        http: reqwest::Client::new(),
    }
}

impl RackWorld {
    pub(crate) fn system(&self) -> String {
        self.rack.system_url("rack-controller-0").unwrap()
    }

    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, url)
            .basic_auth(USER, Some(PASSWORD));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub(crate) async fn pxe_once_and(&self, reset: &str) {
        let boot = json!({"Boot": {"BootSourceOverrideTarget": "Pxe", "BootSourceOverrideEnabled": "Once"}});
        assert_eq!(
            self.call(reqwest::Method::PATCH, &self.system(), Some(boot))
                .await
                .0,
            204
        );
        self.reset(reset).await;
    }

    pub(crate) async fn reset(&self, reset: &str) {
        let url = format!("{}/Actions/ComputerSystem.Reset", self.system());
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                &url,
                Some(json!({"ResetType": reset})),
            )
            .await;
        assert_eq!(status, 204, "{body}");
    }

    pub(crate) async fn power_state(&self) -> String {
        let (_, system) = self.call(reqwest::Method::GET, &self.system(), None).await;
        system["PowerState"].as_str().unwrap_or_default().to_owned()
    }

    pub(crate) async fn settled(
        &self,
        done: impl Fn(&MachineState) -> bool,
    ) -> sim::rack::MachineStatus {
        eventually(
            Duration::from_secs(30),
            Duration::from_millis(50),
            async || {
                let status = self.rack.status("rack-controller-0").unwrap();
                match done(&status.state) {
                    true => Ok(status),
                    false => Err(format!("machine: {status:?}")),
                }
            },
        )
        .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rack_machine_boots_from_the_network_installs_and_answers_ssh() {
    let r = rack_world(1, Duration::from_millis(200)).await;
    let boot = boot_fixture(r.world.ignition(None, true), "/dev/sda").await;
    r.rack
        .set_boot_filename(Some(format!("{}/boot.ipxe", boot.url)));
    assert_eq!(r.power_state().await, "Off");
    r.pxe_once_and("On").await;
    let status = r.settled(|s| *s == MachineState::Running).await;
    assert_eq!(status.installed_on.as_deref(), Some("/dev/sda"));
    assert_eq!(r.power_state().await, "On");
    let seen = boot.seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            "/boot.ipxe ".to_owned(),
            format!("/boot.ipxe {MAC}"),
            format!("/ignition {MAC}"),
            format!("/node-ignition {MAC}")
        ]
    );
    // The one-time override was spent by this boot.
    let (_, system) = r.call(reqwest::Method::GET, &r.system(), None).await;
    assert_eq!(system["Boot"]["BootSourceOverrideEnabled"], "Disabled");
    // The node is the installed Ignition's: the admin's key logs in, its host key answers.
    let output = r.world.core(r.ip).run("echo up", b"").await;
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "up\n",
        "{}",
        text(&output)
    );

    // Off, then on again: it boots its disk, without asking the boot server.
    r.reset("ForceOff").await;
    r.settled(|s| *s == MachineState::Off).await;
    assert_eq!(r.power_state().await, "Off");
    assert!(
        std::net::TcpStream::connect(r.world.addr(r.ip)).is_err(),
        "SSH answers a machine that is off"
    );
    r.reset("On").await;
    r.settled(|s| *s == MachineState::Running).await;
    assert_eq!(boot.seen.lock().unwrap().len(), 4);
    let output = r.world.core(r.ip).run("echo again", b"").await;
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "again\n",
        "{}",
        text(&output)
    );
}

#[tokio::test]
async fn rack_bmc_refuses_without_credentials_and_when_faulted_401_and_503() {
    let r = rack_world(2, Duration::from_millis(50)).await;
    let anonymous = reqwest::get(r.system()).await.unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    assert!(anonymous.headers().contains_key("www-authenticate"));
    let wrong = r
        .http
        .get(r.system())
        .basic_auth(USER, Some("guess"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    // The service root needs none (the Redfish specification).
    assert_eq!(
        reqwest::get(r.rack.url()).await.unwrap().status().as_u16(),
        200
    );

    r.rack
        .set_fault("rack-controller-0", Some(BmcFault::Unauthorized));
    let url = format!("{}/Actions/ComputerSystem.Reset", r.system());
    let (status, body) = r
        .call(
            reqwest::Method::POST,
            &url,
            Some(json!({"ResetType": "On"})),
        )
        .await;
    assert_eq!(status, 401, "{body}");
    r.rack
        .set_fault("rack-controller-0", Some(BmcFault::Unavailable));
    let busy = r
        .http
        .post(&url)
        .basic_auth(USER, Some(PASSWORD))
        .json(&json!({"ResetType": "On"}))
        .send()
        .await
        .unwrap();
    assert_eq!(busy.status().as_u16(), 503);
    assert_eq!(busy.headers()["retry-after"], "5");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = r.rack.status("rack-controller-0").unwrap();
    assert!(
        !status.powered && status.events.is_empty(),
        "a refused reset acted: {status:?}"
    );
    r.rack.set_fault("rack-controller-0", None);
    assert_eq!(r.power_state().await, "Off");
}

#[tokio::test]
async fn rack_power_state_stuck_never_changes_after_an_accepted_reset() {
    let r = rack_world(3, Duration::from_millis(50)).await;
    r.rack
        .set_fault("rack-controller-0", Some(BmcFault::PowerStuck));
    r.reset("ForceOn").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(r.power_state().await, "Off");
    r.rack.set_fault("rack-controller-0", None);
    r.reset("ForceOn").await;
    // Nothing on its disks and no override: on, with no bootable device.
    let status = r.settled(|s| *s == MachineState::NoBootableDevice).await;
    assert!(status.powered);
    assert_eq!(r.power_state().await, "On");
}

#[tokio::test]
async fn rack_machine_booting_with_a_wrong_mac_gets_404_and_no_node() {
    let r = rack_world(4, Duration::from_millis(50)).await;
    let boot = boot_fixture(r.world.ignition(None, true), "/dev/sda").await;
    r.rack
        .set_boot_filename(Some(format!("{}/boot.ipxe", boot.url)));
    r.rack.set_fault(
        "rack-controller-0",
        Some(BmcFault::BootsWithMac("52:54:00:29:99:99".to_owned())),
    );
    r.pxe_once_and("ForceRestart").await;
    let status = r
        .settled(|s| matches!(s, MachineState::BootFailed(_)))
        .await;
    let MachineState::BootFailed(reason) = status.state else {
        unreachable!()
    };
    assert!(
        reason.contains("52:54:00:29:99:99") && reason.contains("answered 404"),
        "{reason}"
    );
    assert!(status.installed_on.is_none());
    assert!(
        r.world.nodes.kubelets().is_empty(),
        "a node started: {:?}",
        r.world.nodes.kubelets()
    );
}

/// A rack has no Packet metadata service: a node whose kubelet reads `COREOS_PACKET_*` from
/// Flatcar's own `coreos-metadata.service` (afterburn, which serves them only on Packet) boots
/// and answers SSH, but its kubelet is refused, naming the variable.
#[tokio::test]
async fn rack_node_relying_on_packet_metadata_gets_no_kubelet() {
    let r = rack_world(6, Duration::from_millis(50)).await;
    let kubeconfig = "apiVersion: v1\nkind: Config\nclusters: []\n";
    let boot = boot_fixture(r.world.ignition(Some(kubeconfig), false), "/dev/sda").await;
    r.rack
        .set_boot_filename(Some(format!("{}/boot.ipxe", boot.url)));
    r.pxe_once_and("On").await;
    r.settled(|s| *s == MachineState::Running).await;
    let kubelets = r.world.nodes.kubelets();
    let status = kubelets
        .values()
        .next()
        .unwrap_or_else(|| panic!("no kubelet judged: {kubelets:?}"));
    assert!(!status.running, "{status:?}");
    assert!(
        status
            .problems
            .iter()
            .any(|p| p.contains("COREOS_PACKET_IPV4_PRIVATE_0")),
        "{status:?}"
    );
}

#[tokio::test]
async fn rack_machine_refuses_an_installer_for_a_disk_it_lacks() {
    let r = rack_world(5, Duration::from_millis(50)).await;
    let boot = boot_fixture(r.world.ignition(None, true), "/dev/nvme0n1").await;
    r.rack
        .set_boot_filename(Some(format!("{}/boot.ipxe", boot.url)));
    r.pxe_once_and("On").await;
    let status = r
        .settled(|s| matches!(s, MachineState::BootFailed(_)))
        .await;
    assert_eq!(
        status.state,
        MachineState::BootFailed("installer: flatcar-install -d /dev/nvme0n1: no such disk (this machine has /dev/sda, /dev/sdb)".to_owned())
    );
}

#[tokio::test]
async fn rack_bmc_answers_the_schema_shapes_and_refuses_values_outside_its_lists() {
    let r = rack_world(6, Duration::from_millis(50)).await;
    let (status, system) = r.call(reqwest::Method::GET, &r.system(), None).await;
    assert_eq!(status, 200);
    for required in ["@odata.id", "@odata.type", "Id", "Name"] {
        assert!(system.get(required).is_some(), "{required}: {system}");
    }
    assert_eq!(system["Boot"]["BootSourceOverrideTarget"], "Hdd");
    let nics = system["EthernetInterfaces"]["@odata.id"].as_str().unwrap();
    let base = r.rack.url().replace("/redfish/v1", "");
    let (_, listing) = r
        .call(reqwest::Method::GET, &format!("{base}{nics}"), None)
        .await;
    let nic = listing["Members"][0]["@odata.id"].as_str().unwrap();
    let (_, nic) = r
        .call(reqwest::Method::GET, &format!("{base}{nic}"), None)
        .await;
    assert_eq!(nic["MACAddress"], MAC);
    let target = system["Actions"]["#ComputerSystem.Reset"]["target"]
        .as_str()
        .unwrap();
    assert_eq!(
        format!("{base}{target}"),
        format!("{}/Actions/ComputerSystem.Reset", r.system())
    );

    let (status, body) = r
        .call(
            reqwest::Method::PATCH,
            &r.system(),
            Some(json!({"Boot": {"BootSourceOverrideTarget": "Floppy"}})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("Base.1.8.PropertyValueNotInList"))
    );
    let url = format!("{}/Actions/ComputerSystem.Reset", r.system());
    let (status, body) = r
        .call(
            reqwest::Method::POST,
            &url,
            Some(json!({"ResetType": "Bogus"})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("Base.1.8.ActionParameterNotSupported"))
    );
    let (status, _) = r
        .call(
            reqwest::Method::GET,
            &format!("{}/Systems/nope", r.rack.url()),
            None,
        )
        .await;
    assert_eq!(status, 404);
}

/// The same requests to sushy-tools' emulator (its fake driver), the Redfish peer loko's client
/// is held against: the properties a provisioning client reads exist in both, with the same
/// JSON types, and the writes are answered alike.
#[tokio::test]
async fn rack_bmc_answers_as_sushy_tools_fake_driver_does() {
    let Some(sushy) = SushyEmulator::start() else {
        eprintln!(
            "SKIPPED: sushy-emulator is not installed (PyPI sushy-tools; scripts/test installs it)"
        );
        return;
    };
    let r = rack_world(7, Duration::from_millis(50)).await;
    let http = reqwest::Client::new();
    let (_, listing) = get_json(&http, &format!("{}/redfish/v1/Systems", sushy.url)).await;
    let theirs_url = format!(
        "{}{}",
        sushy.url,
        listing["Members"][0]["@odata.id"].as_str().unwrap()
    );
    let (_, theirs) = get_json(&http, &theirs_url).await;
    let (_, ours) = r.call(reqwest::Method::GET, &r.system(), None).await;
    for pointer in [
        "/@odata.id",
        "/@odata.type",
        "/Id",
        "/Name",
        "/UUID",
        "/Status/State",
        "/PowerState",
        "/Boot/BootSourceOverrideEnabled",
        "/Boot/BootSourceOverrideTarget",
        "/Boot/BootSourceOverrideTarget@Redfish.AllowableValues",
        "/Boot/BootSourceOverrideMode",
        "/EthernetInterfaces/@odata.id",
        "/Actions/#ComputerSystem.Reset/target",
        "/Actions/#ComputerSystem.Reset/ResetType@Redfish.AllowableValues",
    ] {
        let (a, b) = (ours.pointer(pointer), theirs.pointer(pointer));
        assert!(
            a.is_some() && b.is_some(),
            "{pointer}: ours {a:?}, sushy-tools {b:?}"
        );
        assert_eq!(
            std::mem::discriminant(a.unwrap()),
            std::mem::discriminant(b.unwrap()),
            "{pointer}: ours {a:?}, sushy-tools {b:?}"
        );
    }
    assert_eq!(ours["@odata.type"], theirs["@odata.type"]);
    let listed = |v: &Value, pointer: &str| -> Vec<String> {
        v.pointer(pointer)
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_owned())
            .collect()
    };
    let resets = "/Actions/#ComputerSystem.Reset/ResetType@Redfish.AllowableValues";
    let theirs_resets = listed(&theirs, resets);
    assert!(
        listed(&ours, resets)
            .iter()
            .all(|t| theirs_resets.contains(t)),
        "{theirs_resets:?}"
    );
    let targets = "/Boot/BootSourceOverrideTarget@Redfish.AllowableValues";
    let theirs_targets = listed(&theirs, targets);
    assert!(
        listed(&ours, targets)
            .iter()
            .all(|t| t == "None" || theirs_targets.contains(t)),
        "{theirs_targets:?}"
    );
    // The writes: both 204.
    let boot =
        json!({"Boot": {"BootSourceOverrideTarget": "Pxe", "BootSourceOverrideEnabled": "Once"}});
    let theirs_patch = http
        .patch(&theirs_url)
        .json(&boot)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(
        r.call(reqwest::Method::PATCH, &r.system(), Some(boot))
            .await
            .0,
        theirs_patch
    );
    let reset = json!({"ResetType": "ForceOff"});
    let theirs_reset = http
        .post(format!("{theirs_url}/Actions/ComputerSystem.Reset"))
        .json(&reset)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    let url = format!("{}/Actions/ComputerSystem.Reset", r.system());
    assert_eq!(
        r.call(reqwest::Method::POST, &url, Some(reset)).await.0,
        theirs_reset
    );
    // A NIC: the same properties.
    let (_, nics) = get_json(
        &http,
        &format!(
            "{}{}",
            sushy.url,
            theirs["EthernetInterfaces"]["@odata.id"].as_str().unwrap()
        ),
    )
    .await;
    let (_, nic) = get_json(
        &http,
        &format!(
            "{}{}",
            sushy.url,
            nics["Members"][0]["@odata.id"].as_str().unwrap()
        ),
    )
    .await;
    let base = r.rack.url().replace("/redfish/v1", "");
    let (_, our_nics) = r
        .call(
            reqwest::Method::GET,
            &format!(
                "{base}{}",
                ours["EthernetInterfaces"]["@odata.id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    let (_, our_nic) = r
        .call(
            reqwest::Method::GET,
            &format!(
                "{base}{}",
                our_nics["Members"][0]["@odata.id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    for key in [
        "@odata.id",
        "@odata.type",
        "Id",
        "Name",
        "MACAddress",
        "PermanentMACAddress",
    ] {
        assert!(
            nic.get(key).is_some() && our_nic.get(key).is_some(),
            "{key}: {nic} / {our_nic}"
        );
    }
}

async fn get_json(http: &reqwest::Client, url: &str) -> (u16, Value) {
    let response = http.get(url).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// sushy-tools' emulator with its fake driver, on a free port; killed on drop.
struct SushyEmulator {
    url: String,
    child: std::process::Child,
}

impl SushyEmulator {
    fn start() -> Option<SushyEmulator> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let child = std::process::Command::new("sushy-emulator")
            .args(["--fake", "-i", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let emulator = SushyEmulator {
            url: format!("http://127.0.0.1:{port}"),
            child,
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(emulator);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("sushy-emulator did not listen on {port} within 30 s");
    }
}

impl Drop for SushyEmulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
