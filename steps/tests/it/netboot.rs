//! The network boot server over the wire: what each MAC gets, what an unknown one does not,
//! the installer's Ignition as `ignition-validate` and shellcheck read it, and a real iPXE
//! (Debian's, in qemu) booting from it.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sim::ignition::NodeIgnition;
use steps::netboot::{BootMachine, BootServer, MacAddr, NetbootConfig, NetbootError};

use crate::node_artifacts::{check_with, shellcheck};

const MAC: &str = "52:54:00:12:34:56";
const OTHER_MAC: &str = "52:54:00:ab:cd:ef";
/// Stands for the node's Ignition: never in a log, never served for another MAC.
const NODE_IGNITION: &str = r#"{"ignition":{"version":"3.3.0"},"storage":{"files":[{"path":"/etc/hostname","mode":420,"contents":{"source":"data:,rack-a1%0A"}}]},"x-secret":"PRIVATE-KEY-MARKER"}"#;

fn machine(mac: &str, hostname: &str, ignition: &str) -> BootMachine {
    BootMachine {
        mac: mac.parse().unwrap(),
        hostname: hostname.to_owned(),
        install_disk: "/dev/disk/by-path/pci-0000:00:1f.2-ata-1".to_owned(),
        ignition: ignition.to_owned(),
    }
}

async fn server(config: NetbootConfig, advertise: Option<String>) -> BootServer {
    BootServer::start(
        "127.0.0.1:0".parse().unwrap(),
        advertise,
        config,
        vec![
            machine(MAC, "rack-a1", NODE_IGNITION),
            machine(OTHER_MAC, "rack-worker-0", r#"{"other":"node"}"#),
        ],
    )
    .await
    .unwrap()
}

async fn get(server: &BootServer, path_and_query: &str) -> (u16, String) {
    let response = reqwest::get(format!("http://{}{path_and_query}", server.local_addr()))
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test]
async fn netboot_answers_each_mac_its_script_installer_and_node_ignition() {
    let config = NetbootConfig {
        kernel_args: vec!["console=ttyS0,115200n8".to_owned()],
        ..NetbootConfig::default()
    };
    let server = server(config, None).await;
    let url = server.url().to_owned();
    // Any case, `:` or `-`: the same machine.
    for mac in [
        MAC,
        "52-54-00-12-34-56",
        "52:54:00:12:34:56".to_uppercase().as_str(),
    ] {
        let (status, script) = get(&server, &format!("/boot.ipxe?mac={mac}")).await;
        assert_eq!(status, 200, "{mac}");
        let kernel = "kernel https://stable.release.flatcar-linux.net/amd64-usr/current/flatcar_production_pxe.vmlinuz ";
        assert!(script.starts_with("#!ipxe\n"), "{script}");
        assert!(script.contains(kernel), "{script}");
        for arg in [
            "initrd=flatcar_production_pxe_image.cpio.gz",
            "flatcar.first_boot=yes",
            &format!("ignition.config.url={url}/ignition?mac=${{netX/mac}}"),
            "console=ttyS0,115200n8",
        ] {
            assert!(script.contains(&format!(" {arg}")), "{arg}: {script}");
        }
        assert!(script.contains(
            "\ninitrd https://stable.release.flatcar-linux.net/amd64-usr/current/flatcar_production_pxe_image.cpio.gz\nboot\n"
        ));
        assert_eq!(
            get(&server, &format!("/ipxe?mac={mac}")).await,
            (200, script)
        );
    }
    // Without a MAC, `/boot.ipxe` asks again with the NIC's.
    let (status, chain) = get(&server, "/boot.ipxe").await;
    assert_eq!(
        (status, chain.as_str()),
        (
            200,
            format!("#!ipxe\nchain {url}/boot.ipxe?mac=${{netX/mac}}\n").as_str()
        )
    );

    let (status, installer) = get(&server, "/ignition?mac=52-54-00-12-34-56").await;
    assert_eq!(status, 200);
    assert!(!installer.contains("PRIVATE-KEY-MARKER"));
    let parsed = NodeIgnition::parse(&installer);
    assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
    assert!(parsed.declares_unit("installer.service"));
    let script =
        String::from_utf8(parsed.file("/opt/installer").unwrap().contents.clone()).unwrap();
    assert!(
        script.contains(&format!("'{url}/node-ignition?mac={MAC}'")),
        "{script}"
    );
    assert!(
        script.contains("flatcar-install -d '/dev/disk/by-path/pci-0000:00:1f.2-ata-1' -C 'stable' -V 'current' -i /opt/node-ignition.json"),
        "{script}"
    );
    assert_eq!(
        get(&server, &format!("/node-ignition?mac={MAC}")).await,
        (200, NODE_IGNITION.to_owned())
    );
    assert_eq!(
        get(&server, &format!("/node-ignition?mac={OTHER_MAC}")).await,
        (200, r#"{"other":"node"}"#.to_owned())
    );
}

#[tokio::test]
async fn netboot_answers_an_unknown_or_malformed_mac_404_and_nothing_else() {
    let server = server(NetbootConfig::default(), None).await;
    for path in [
        "/boot.ipxe?mac=52:54:00:00:00:01",
        "/ipxe?mac=52:54:00:00:00:01",
        "/ignition?mac=52:54:00:00:00:01",
        "/node-ignition?mac=52:54:00:00:00:01",
        "/boot.ipxe?mac=",
        "/boot.ipxe?mac=${netX/mac}",
        "/node-ignition?mac=52:54:00:12:34",
        "/node-ignition?mac=52:54:00:12:34:56:78",
        "/node-ignition",
        "/ignition",
        "/ipxe",
        "/",
        "/machines",
        "/assets/flatcar/",
        "/node-ignition/52:54:00:12:34:56",
    ] {
        assert_eq!(get(&server, path).await, (404, String::new()), "{path}");
    }
    let client = reqwest::Client::new();
    let post = client
        .post(format!(
            "http://{}/node-ignition?mac={MAC}",
            server.local_addr()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status().as_u16(), 404);
    assert_eq!(post.text().await.unwrap(), "");
}

#[tokio::test]
async fn netboot_serves_machines_added_during_the_run_and_forgets_deleted_ones() {
    let server = server(NetbootConfig::default(), None).await;
    let added = "52:54:00:00:00:07";
    assert_eq!(
        get(&server, &format!("/node-ignition?mac={added}")).await.0,
        404
    );
    server
        .serve(machine(added, "rack-worker-1", r#"{"w":1}"#))
        .unwrap();
    assert_eq!(
        get(&server, &format!("/node-ignition?mac={added}")).await,
        (200, r#"{"w":1}"#.to_owned())
    );
    // The same node on another NIC: its old MAC is no longer answered.
    let moved = "52:54:00:00:00:08";
    server
        .serve(machine(moved, "rack-worker-1", r#"{"w":2}"#))
        .unwrap();
    assert_eq!(
        get(&server, &format!("/node-ignition?mac={added}")).await.0,
        404
    );
    assert_eq!(
        get(&server, &format!("/node-ignition?mac={moved}")).await,
        (200, r#"{"w":2}"#.to_owned())
    );
    // Another node's MAC is refused, and that node keeps its Ignition.
    let taken = server
        .serve(machine(MAC, "rack-worker-2", "{}"))
        .unwrap_err();
    assert!(
        matches!(taken, NetbootError::DuplicateMac { .. }),
        "{taken}"
    );
    assert_eq!(
        get(&server, &format!("/node-ignition?mac={MAC}")).await,
        (200, NODE_IGNITION.to_owned())
    );
    assert!(server.forget(moved.parse().unwrap()));
    assert_eq!(get(&server, &format!("/ignition?mac={moved}")).await.0, 404);
}

/// A `tracing` writer into a shared buffer, to read what the server logged.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn netboot_logs_every_request_with_its_mac_and_code_never_the_ignition() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    // The test runtime runs the server's tasks on this thread: they log through this subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);
    let server = server(NetbootConfig::default(), None).await;
    assert_eq!(
        get(&server, &format!("/node-ignition?mac={MAC}")).await.0,
        200
    );
    assert_eq!(get(&server, "/ignition?mac=52:54:00:00:00:01").await.0, 404);
    assert_eq!(get(&server, "/ignition?mac=junk").await.0, 404);
    let requests = server.requests();
    let seen: Vec<(&str, &str, Option<String>, u16)> = requests
        .iter()
        .map(|r| {
            (
                r.method.as_str(),
                r.path.as_str(),
                r.mac.map(|m| m.to_string()),
                r.status,
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("GET", "/node-ignition", Some(MAC.to_owned()), 200),
            (
                "GET",
                "/ignition",
                Some("52:54:00:00:00:01".to_owned()),
                404
            ),
            ("GET", "/ignition", None, 404),
        ]
    );
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        log.contains("path=\"/node-ignition\"") || log.contains("path=/node-ignition"),
        "{log}"
    );
    assert!(
        log.contains(MAC) && log.contains("status=200") && log.contains("status=404"),
        "{log}"
    );
    assert!(
        !log.contains("PRIVATE-KEY-MARKER"),
        "the node's Ignition was logged: {log}"
    );
}

#[tokio::test]
async fn netboot_refuses_two_machines_with_one_mac_and_a_url_nobody_reaches() {
    let error = BootServer::start(
        "127.0.0.1:0".parse().unwrap(),
        None,
        NetbootConfig::default(),
        vec![
            machine(MAC, "a", "{}"),
            machine("52-54-00-12-34-56", "b", "{}"),
        ],
    )
    .await
    .unwrap_err();
    assert!(
        matches!(error, NetbootError::DuplicateMac { .. }),
        "{error}"
    );
    assert_eq!(
        error.to_string(),
        format!("boot server: machines a and b both boot from MAC {MAC}")
    );
}

/// `ignition-validate` of an Ignition (written under `work`): its report when it fails or says
/// anything.
pub(crate) fn ignition_validate(ignition: &str, work: &Path) -> Option<String> {
    let path = work.join("validated.ign");
    std::fs::write(&path, ignition).unwrap();
    let out = check_with(Command::new("ignition-validate").arg(&path), "ignition");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (!out.status.success() || !report.trim().is_empty()).then_some(report)
}

#[tokio::test]
async fn netboot_installer_passes_ignition_validate_and_shellcheck() {
    let config = NetbootConfig {
        ssh_keys: vec!["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO1V6Bq0dFYb2Gq3XhQm8YHt1rS0o8GmDL3k2pYwUq3c core@rack".to_owned()],
        ..NetbootConfig::default()
    };
    let server = server(config, None).await;
    let (_, installer) = get(&server, &format!("/ignition?mac={MAC}")).await;
    let work = tempfile::tempdir().unwrap();
    assert_eq!(ignition_validate(&installer, work.path()), None);
    let parsed = NodeIgnition::parse(&installer);
    let script =
        String::from_utf8(parsed.file("/opt/installer").unwrap().contents.clone()).unwrap();
    assert_eq!(shellcheck(None, &script, work.path()), None);
    assert_eq!(parsed.authorized_keys.len(), 1);
}

/// Debian's iPXE (`ipxe.lkrn` of package `ipxe`) in qemu, its DHCP filename the boot server's
/// `/boot.ipxe`: it chains to its MAC's script and asks the mirror for the kernel it names. The
/// mirror here is a listener of the test: the request reaching it is the proof. (SeaBIOS did not
/// run the package's `pxe-virtio.rom` as a boot device here; iPXE booted as a kernel is the same
/// iPXE.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn netboot_real_ipxe_in_qemu_fetches_its_script_and_asks_for_the_kernel() {
    const QEMU: &str = "qemu-system-x86_64";
    const IPXE: &str = "/usr/lib/ipxe/ipxe.lkrn";
    if Command::new(QEMU).arg("--version").output().is_err() || !Path::new(IPXE).is_file() {
        eprintln!(
            "SKIPPED: {QEMU} or {IPXE} is missing (Debian packages qemu-system-x86, seabios, ipxe; scripts/test installs them)"
        );
        return;
    }
    let mirror = TcpListener::bind("127.0.0.1:0").unwrap();
    let mirror_port = mirror.local_addr().unwrap().port();
    let mirror_requests = Arc::new(Mutex::new(Vec::<String>::new()));
    spawn_mirror(mirror, mirror_requests.clone());
    // qemu's user network reaches the host's loopback at 10.0.2.2.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let config = NetbootConfig {
        mirror: format!("http://10.0.2.2:{mirror_port}/amd64-usr/current/"),
        ..NetbootConfig::default()
    };
    let bind: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let server = BootServer::start(
        bind,
        Some(format!("http://10.0.2.2:{port}")),
        config,
        vec![machine(MAC, "rack-a1", NODE_IGNITION)],
    )
    .await
    .unwrap();
    let work = tempfile::tempdir().unwrap();
    let console = work.path().join("console.log");
    let mut vm = Command::new(QEMU)
        .args([
            "-accel",
            "tcg",
            "-m",
            "128",
            "-nodefaults",
            "-display",
            "none",
            "-no-reboot",
        ])
        .args([
            "-L",
            "/usr/share/seabios",
            "-L",
            "/usr/share/qemu",
            "-kernel",
            IPXE,
        ])
        .arg("-serial")
        .arg(format!("file:{}", console.display()))
        // A first NIC on a wire without DHCP: iPXE gives up on it and boots from the second,
        // whose MAC (not the first's) the scripts must name.
        .args([
            "-netdev",
            "socket,id=dead,udp=127.0.0.1:9,localaddr=127.0.0.1:0",
        ])
        .args([
            "-device",
            "virtio-net-pci,netdev=dead,mac=52:54:00:00:00:aa",
        ])
        .arg("-netdev")
        .arg(format!(
            "user,id=n0,bootfile=http://10.0.2.2:{port}/boot.ipxe"
        ))
        .arg("-device")
        .arg(format!("virtio-net-pci,netdev=n0,mac={MAC}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let kernel = "GET /amd64-usr/current/flatcar_production_pxe.vmlinuz ";
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline
        && !mirror_requests
            .lock()
            .unwrap()
            .iter()
            .any(|r| r.starts_with(kernel))
    {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let _ = vm.kill();
    let _ = vm.wait();
    let mac: MacAddr = MAC.parse().unwrap();
    let requests = server.requests();
    let by_mac = requests
        .iter()
        .position(|r| r.path == "/boot.ipxe" && r.mac == Some(mac) && r.status == 200);
    assert!(by_mac.is_some(), "no /boot.ipxe for {MAC}: {requests:?}");
    let asked = mirror_requests.lock().unwrap().clone();
    assert!(
        asked.iter().any(|r| r.starts_with(kernel)),
        "the mirror saw {asked:?}; the server {requests:?}"
    );
}

/// A mirror that records each request line and answers 404.
fn spawn_mirror(listener: TcpListener, seen: Arc<Mutex<Vec<String>>>) {
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut line = String::new();
            if BufReader::new(&stream).read_line(&mut line).is_ok() {
                seen.lock().unwrap().push(line.trim_end().to_owned());
            }
            let _ = stream.write_all(
                b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            );
        }
    });
}

/// loko's boot server and the simulator's rack together: a machine powered on through its BMC
/// with a PXE override boots loko's script, runs loko's installer on its install disk, and
/// becomes the node of loko's own Ignition for it (its hostname, its host key on SSH).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn netboot_a_rack_machine_boots_lokos_installer_into_lokos_node() {
    use crate::rack_support::{embedded_nodes, rack_config, tutorial_node_ignition};
    use sim::rack::{MachineState, Rack, RackMachine};

    let tmp = tempfile::tempdir().unwrap();
    let (node, ignition) = tutorial_node_ignition(tmp.path());
    let server = BootServer::start(
        "127.0.0.1:0".parse().unwrap(),
        None,
        NetbootConfig::default(),
        vec![BootMachine {
            mac: MAC.parse().unwrap(),
            hostname: node.hostname.clone(),
            install_disk: "/dev/sdb".to_owned(),
            ignition,
        }],
    )
    .await
    .unwrap();

    let ip = std::net::Ipv4Addr::new(127, 77, 29, 40);
    let ssh_port = loko_tests::free_port();
    let nodes = embedded_nodes(tmp.path(), ssh_port);
    let rack = Rack::start(
        rack_config("pw", Duration::from_millis(100), Duration::from_millis(300)),
        vec![RackMachine {
            name: "rack-0".to_owned(),
            system_id: "rack-0".to_owned(),
            mac: MAC.to_owned(),
            disks: vec!["/dev/sda".to_owned(), "/dev/sdb".to_owned()],
            public_ip: ip,
            private_ip: std::net::Ipv4Addr::new(10, 88, 29, 40),
        }],
        Arc::new(nodes.clone()),
    )
    .await
    .unwrap();
    rack.set_boot_filename(Some(format!("{}/boot.ipxe", server.url())));
    let system = rack.system_url("rack-0").unwrap();
    let http = reqwest::Client::new();
    let boot = serde_json::json!({"Boot": {"BootSourceOverrideTarget": "Pxe", "BootSourceOverrideEnabled": "Once"}});
    let patched = http
        .patch(&system)
        .basic_auth("admin", Some("pw"))
        .json(&boot)
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status().as_u16(), 204);
    let reset = serde_json::json!({"ResetType": "On"});
    let reset = http
        .post(format!("{system}/Actions/ComputerSystem.Reset"))
        .basic_auth("admin", Some("pw"))
        .json(&reset)
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status().as_u16(), 204);

    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let status = rack.status("rack-0").unwrap();
        if !matches!(status.state, MachineState::Off | MachineState::Booting)
            || Instant::now() > deadline
        {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.state, MachineState::Running, "{status:?}");
    assert_eq!(status.installed_on.as_deref(), Some("/dev/sdb"));
    let paths: Vec<String> = server
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.path, r.status))
        .collect();
    assert_eq!(
        paths,
        [
            "/boot.ipxe 200",
            "/boot.ipxe 200",
            "/ignition 200",
            "/node-ignition 200"
        ]
    );
    // The node is loko's: the hostname of its Ignition, and SSH on its address.
    assert!(
        nodes.kubelets().contains_key(&node.hostname),
        "{:?}",
        nodes.kubelets()
    );
    let mut banner = [0u8; 8];
    let mut ssh = std::net::TcpStream::connect((ip, ssh_port)).unwrap();
    std::io::Read::read_exact(&mut ssh, &mut banner).unwrap();
    assert_eq!(&banner, b"SSH-2.0-");
}
