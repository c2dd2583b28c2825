//! Support for loko's tests: the real peers they run against (moto's Route53 server, OpenSSH's
//! sshd and ssh-agent), started on loopback addresses and stopped when dropped.
//!
//! A peer that is not installed is a test failure with a pointer to `scripts/test`, never a
//! silent skip: CI installs them all.

pub mod node_root;
pub mod rendered;
pub mod sushy;
pub mod world;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process killed (and reaped) on drop.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Copies the directory `from` (files and subdirectories) to `to`: a test works on a copy of
/// a committed fixture, never on the fixture.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A copy of the example spec `examples/<name>` in a new temporary directory (where a run puts
/// its `asset_dir`), and the copy's path: a test never writes beside the committed example.
pub fn example_copy(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let spec = dir.path().join(name);
    std::fs::copy(rendered::example_path(name), &spec)
        .unwrap_or_else(|e| panic!("copy examples/{name}: {e}"));
    (dir, spec)
}

/// A free TCP port on 127.0.0.1 (free when asked; bind it soon).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on 127.0.0.1")
}

/// Waits until something accepts connections on `host:port`.
pub fn wait_for_port(host: &str, port: u16, within: Duration) {
    let start = Instant::now();
    while TcpStream::connect((host, port)).is_err() {
        assert!(
            start.elapsed() < within,
            "nothing listens on {host}:{port} after {within:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs a command to completion and returns its stdout; panics with its stderr on failure.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (scripts/test installs the test peers)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The name of the user running the tests.
pub fn current_user() -> String {
    run(Command::new("id").arg("-un")).trim().to_owned()
}

/// moto's server, speaking Route53.
pub struct Moto {
    _child: Killed,
    pub url: String,
}

impl Moto {
    /// Starts `moto_server` on a free port.
    pub fn start() -> Moto {
        let port = free_port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server must be installed (scripts/test runs pip install 'moto[server]')");
        wait_for_port("127.0.0.1", port, Duration::from_secs(60));
        Moto {
            _child: Killed(child),
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Creates a hosted zone with a raw Route53 request and returns its id (without the
    /// `/hostedzone/` prefix). moto routes requests to a service by the signature's credential
    /// scope, so the request carries a route53-scoped `Authorization` header.
    pub fn create_zone(&self, name: &str) -> String {
        let body = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><CreateHostedZoneRequest xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><Name>{name}</Name><CallerReference>{}-{name}</CallerReference></CreateHostedZoneRequest>"#,
            std::process::id()
        );
        let text = run(Command::new("curl")
            .args(["-s", "-X", "POST", "-H", "Content-Type: application/xml"])
            .args(["-H", "Authorization: AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/route53/aws4_request, SignedHeaders=host, Signature=0"])
            .args(["--data", &body])
            .arg(format!("{}/2013-04-01/hostedzone", self.url)));
        let marker = "<Id>/hostedzone/";
        let start = text
            .find(marker)
            .unwrap_or_else(|| panic!("no zone id in {text}"))
            + marker.len();
        let end = text[start..]
            .find('<')
            .unwrap_or_else(|| panic!("no zone id in {text}"));
        text[start..start + end].to_owned()
    }
}

/// A `curl` that speaks to the cluster's apiserver as its admin: the CA, certificate and key of
/// the asset directory's `tls/`.
pub fn curl_as_admin(tls: &Path) -> Command {
    let mut curl = Command::new("curl");
    curl.arg("--cacert")
        .arg(tls.join("ca.crt"))
        .arg("--cert")
        .arg(tls.join("admin.crt"))
        .arg("--key")
        .arg(tls.join("admin.key"));
    curl
}

/// Generates an ed25519 key pair with `ssh-keygen` at `path` (and `path.pub`); returns the
/// public key line.
pub fn ssh_keygen(path: &Path) -> String {
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "loko-test", "-f"])
        .arg(path));
    std::fs::read_to_string(path.with_extension("pub"))
        .expect("ssh-keygen wrote no public key")
        .trim()
        .to_owned()
}

/// An `ssh-agent` with its own socket.
pub struct SshAgent {
    _child: Killed,
    pub socket: PathBuf,
}

impl SshAgent {
    /// Starts an agent whose socket is in `dir`.
    pub fn start(dir: &Path) -> SshAgent {
        let socket = dir.join("agent.sock");
        let child = Command::new("ssh-agent")
            .args(["-D", "-a"])
            .arg(&socket)
            .stdout(Stdio::null())
            .spawn()
            .expect("ssh-agent (openssh-client) must be installed");
        // The socket file appears at bind(), before listen(): a connection proves it serves.
        let start = Instant::now();
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "ssh-agent did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        SshAgent {
            _child: Killed(child),
            socket,
        }
    }

    /// Adds a private key to the agent.
    pub fn add(&self, key: &Path) {
        run(Command::new("ssh-add")
            .env("SSH_AUTH_SOCK", &self.socket)
            .arg(key));
    }
}

/// A real OpenSSH `sshd` on 127.0.0.1, accepting the keys in `authorized_keys` for the current
/// user only.
pub struct Sshd {
    _child: Killed,
    pub port: u16,
}

impl Sshd {
    /// Starts sshd with `host_key` (private key path) and `authorized_keys` (file path).
    pub fn start(dir: &Path, host_key: &Path, authorized_keys: &Path) -> Sshd {
        let port = free_port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {host}\nAuthorizedKeysFile {ak}\nPidFile none\n\
             UsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nAllowUsers {user}\n",
            host = host_key.display(),
            ak = authorized_keys.display(),
            user = current_user()
        );
        let config_path = dir.join("sshd_config");
        std::fs::write(&config_path, config).expect("write sshd_config");
        // sshd refuses to start without its privilege separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(&config_path)
            .stderr(Stdio::null())
            .spawn()
            .expect("sshd (openssh-server) must be installed");
        wait_for_port("127.0.0.1", port, Duration::from_secs(30));
        Sshd {
            _child: Killed(child),
            port,
        }
    }
}

/// An etcd of one or more members on 127.0.0.1 (plain HTTP, or TLS with client certificates),
/// with its data in a temporary directory; every member is killed on drop.
pub struct Etcd {
    members: Vec<Option<Killed>>,
    /// Each member's command line, to restart it on its data.
    commands: Vec<Vec<std::ffi::OsString>>,
    client_ports: Vec<u16>,
    tls: Option<EtcdTlsFiles>,
    dir: tempfile::TempDir,
}

/// A CA, etcd's serving certificate (for 127.0.0.1) and a client certificate, made with
/// openssl, for an etcd that serves TLS and asks clients for a certificate.
#[derive(Clone, Debug)]
pub struct EtcdTlsFiles {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl EtcdTlsFiles {
    /// Writes the files into `dir`.
    pub fn make(dir: &Path) -> EtcdTlsFiles {
        let p = |name: &str| dir.join(name);
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        run(Command::new("openssl")
            .args(["req", "-x509"])
            .args(ec)
            .arg("-keyout")
            .arg(p("ca.key"))
            .arg("-out")
            .arg(p("ca.crt"))
            .args(["-subj", "/CN=loko-test-ca", "-days", "2"]));
        // etcd's JSON gateway calls the server's gRPC side with the server's own
        // certificate, so with client certificate authentication the serving certificate must
        // be a client certificate too.
        for (name, usage) in [
            ("server", "serverAuth,clientAuth"),
            ("client", "clientAuth"),
        ] {
            std::fs::write(
                p(&format!("{name}.ext")),
                format!("subjectAltName=IP:127.0.0.1\nextendedKeyUsage={usage}\n"),
            )
            .expect("write an openssl extension file");
            run(Command::new("openssl")
                .arg("req")
                .args(ec)
                .arg("-keyout")
                .arg(p(&format!("{name}.key")))
                .arg("-out")
                .arg(p(&format!("{name}.csr")))
                .args(["-subj", &format!("/CN=loko-test-{name}")]));
            run(Command::new("openssl")
                .args(["x509", "-req", "-days", "2", "-CAcreateserial"])
                .arg("-in")
                .arg(p(&format!("{name}.csr")))
                .arg("-CA")
                .arg(p("ca.crt"))
                .arg("-CAkey")
                .arg(p("ca.key"))
                .arg("-out")
                .arg(p(&format!("{name}.crt")))
                .arg("-extfile")
                .arg(p(&format!("{name}.ext"))));
        }
        EtcdTlsFiles {
            ca: p("ca.crt"),
            server_cert: p("server.crt"),
            server_key: p("server.key"),
            client_cert: p("client.crt"),
            client_key: p("client.key"),
        }
    }
}

impl Etcd {
    /// Starts `members` plain-HTTP members and waits until the cluster serves.
    pub fn start(members: usize) -> Etcd {
        Etcd::start_with(members, None)
    }

    /// One member serving clients over TLS, asking them for a certificate of `tls.ca`.
    pub fn start_tls(tls: &EtcdTlsFiles) -> Etcd {
        Etcd::start_with(1, Some(tls.clone()))
    }

    fn start_with(members: usize, tls: Option<EtcdTlsFiles>) -> Etcd {
        let dir = tempfile::tempdir().expect("temp dir for etcd");
        let scheme = if tls.is_some() { "https" } else { "http" };
        let ports: Vec<(u16, u16)> = (0..members).map(|_| (free_port(), free_port())).collect();
        let cluster: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("m{i}=http://127.0.0.1:{peer}"))
            .collect();
        let commands: Vec<Vec<std::ffi::OsString>> = ports
            .iter()
            .enumerate()
            .map(|(i, (client, peer))| {
                let client_url = format!("{scheme}://127.0.0.1:{client}");
                let peer_url = format!("http://127.0.0.1:{peer}");
                let mut etcd = Command::new("etcd");
                if let Some(tls) = &tls {
                    etcd.arg("--cert-file")
                        .arg(&tls.server_cert)
                        .arg("--key-file")
                        .arg(&tls.server_key)
                        .arg("--trusted-ca-file")
                        .arg(&tls.ca)
                        .arg("--client-cert-auth");
                }
                etcd.args(["--name", &format!("m{i}")])
                    .arg("--data-dir")
                    .arg(dir.path().join(format!("m{i}")))
                    .args(["--listen-client-urls", &client_url])
                    .args(["--advertise-client-urls", &client_url])
                    .args(["--listen-peer-urls", &peer_url])
                    .args(["--initial-advertise-peer-urls", &peer_url])
                    .args(["--initial-cluster", &cluster.join(",")])
                    .args(["--initial-cluster-state", "new"]);
                etcd.get_args().map(ToOwned::to_owned).collect()
            })
            .collect();
        let mut etcd = Etcd {
            members: Vec::new(),
            commands,
            client_ports: ports.iter().map(|(c, _)| *c).collect(),
            tls,
            dir,
        };
        etcd.members = (0..members).map(|i| Some(etcd.spawn(i))).collect();
        etcd.wait_healthy(Duration::from_secs(60));
        etcd
    }

    fn spawn(&self, i: usize) -> Killed {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("m{i}.log")))
            .expect("etcd log file");
        let child = Command::new("etcd")
            .args(&self.commands[i])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("etcd: {e}; scripts/test installs it (the etcd-server package)")
            });
        Killed(child)
    }

    /// Starts member `i` again on its data (after [`Etcd::kill`]) and waits until the cluster
    /// serves.
    pub fn restart(&mut self, i: usize) {
        self.members[i] = Some(self.spawn(i));
        self.wait_healthy(Duration::from_secs(60));
    }

    /// `127.0.0.1:PORT,...` of every member, killed ones included.
    pub fn endpoints(&self) -> String {
        self.client_ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `etcd://ENDPOINTS/PREFIX`.
    pub fn url(&self, prefix: &str) -> String {
        format!("etcd://{}/{prefix}", self.endpoints())
    }

    /// Kills member `i` with SIGKILL.
    pub fn kill(&mut self, i: usize) {
        self.members[i].take();
    }

    /// etcdctl against the members still running; returns stdout.
    pub fn ctl(&self, args: &[&str]) -> String {
        run(self.etcdctl("5s").args(args))
    }

    fn etcdctl(&self, timeout: &str) -> Command {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let live: Vec<String> = self
            .client_ports
            .iter()
            .zip(&self.members)
            .filter(|(_, m)| m.is_some())
            .map(|(p, _)| format!("{scheme}://127.0.0.1:{p}"))
            .collect();
        let mut cmd = Command::new("etcdctl");
        cmd.env("ETCDCTL_API", "3").args([
            "--endpoints",
            &live.join(","),
            "--command-timeout",
            timeout,
        ]);
        if let Some(tls) = &self.tls {
            cmd.arg("--cacert")
                .arg(&tls.ca)
                .arg("--cert")
                .arg(&tls.client_cert)
                .arg("--key")
                .arg(&tls.client_key);
        }
        cmd
    }

    fn wait_healthy(&self, within: Duration) {
        let start = Instant::now();
        loop {
            let ok = self
                .etcdctl("2s")
                .args(["endpoint", "health"])
                .output()
                .is_ok_and(|o| o.status.success());
            if ok {
                return;
            }
            if start.elapsed() > within {
                let logs: String = (0..self.members.len())
                    .map(|i| {
                        let log =
                            std::fs::read_to_string(self.dir.path().join(format!("m{i}.log")))
                                .unwrap_or_default();
                        format!("--- m{i} ---\n{log}")
                    })
                    .collect();
                panic!("etcd is not healthy after {within:?}:\n{logs}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
