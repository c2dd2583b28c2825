//! Shared fixtures for the node and apiserver tests: keys, certificates, Ignition and clients.
//! Everything is generated per test; only loopback addresses are used.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use tokio::io::AsyncWriteExt as _;
use tokio::process::Command;

pub use crate::apiserver_support::{fresh_store, start_apiserver, start_apiserver_with};

pub const ZONE: &str = "example.com";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A free TCP port on `ip`, below the kernel's ephemeral range so that no outgoing connection
/// can take it between this probe and the node binding it.
pub fn free_port(ip: Ipv4Addr) -> u16 {
    for _ in 0..1000 {
        let port = rand::random_range(20_000..32_000);
        if TcpListener::bind((ip, port)).is_ok() {
            return port;
        }
    }
    panic!("no free port on {ip}");
}

/// An OpenSSH key pair made by ssh-keygen: (private key path, public key line).
pub fn ssh_keygen(dir: &Path, name: &str) -> (PathBuf, String) {
    let path = dir.join(name);
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&path)
        .status()
        .expect("run ssh-keygen");
    assert!(status.success(), "ssh-keygen failed");
    let public = std::fs::read_to_string(path.with_extension("pub")).expect("read public key");
    (path, public.trim().to_owned())
}

/// A cluster's PKI and bootkube assets, as terraform-render-bootkube lays them out.
pub struct Cluster {
    pub name: String,
    pub assets: PathBuf,
    /// Kubelet kubeconfig naming `<cluster>-private.<zone>` with this cluster's CA.
    pub kubelet_kubeconfig: String,
}

impl Cluster {
    pub fn fqdn(&self) -> String {
        format!("{}.{ZONE}", self.name)
    }

    pub fn admin_kubeconfig(&self) -> PathBuf {
        self.assets.join("auth/kubeconfig")
    }
}

fn kubeconfig(server: &str, ca_pem: &str, cert_pem: &str, key_pem: &str, user: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster:\n    server: {server}\n    certificate-authority-data: {}\nusers:\n- name: {user}\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\ncontexts:\n- name: {user}-context\n  context:\n    cluster: local\n    user: {user}\ncurrent-context: {user}-context\n",
        b64(ca_pem.as_bytes()),
        b64(cert_pem.as_bytes()),
        b64(key_pem.as_bytes()),
    )
}

/// Binds the kubelets' group to `system:node`, as terraform-render-bootkube's
/// kubelet-nodes-cluster-role-binding.yaml does; without it no kubelet registers.
pub const KUBELET_NODES_BINDING: &str = "apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: system-nodes}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: 'system:node'}
subjects: [{kind: Group, name: 'system:nodes', apiGroup: rbac.authorization.k8s.io}]
";

/// A flannel network with its account and flannel v0.26.4's role, so nodes can be Ready.
pub const FLANNEL: &str = "apiVersion: v1
kind: ServiceAccount
metadata: {name: flannel, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: flannel}
rules:
- {apiGroups: [''], resources: [pods], verbs: [get]}
- {apiGroups: [''], resources: [nodes], verbs: [get, list, watch]}
- {apiGroups: [''], resources: [nodes/status], verbs: [patch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: flannel}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: flannel}
subjects: [{kind: ServiceAccount, name: flannel, namespace: kube-system}]
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: flannel, namespace: kube-system}
spec:
  template:
    spec:
      serviceAccountName: flannel
      containers: [{name: flannel, image: 'docker.io/flannel/flannel:v0.26.4'}]
";

/// Generates the assets of cluster `name` under `dir/assets`.
pub fn cluster(dir: &Path, name: &str) -> Cluster {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "kubernetes-ca");
    ca_params
        .distinguished_name
        .push(DnType::OrganizationName, "bootkube");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA certificate");
    let ca_pem = ca.pem();

    let leaf = |cn: &str, org: &str, sans: Vec<String>, server: bool| {
        let key = KeyPair::generate().expect("leaf key");
        let mut params = CertificateParams::new(sans).expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params
            .distinguished_name
            .push(DnType::OrganizationName, org);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = if server {
            vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ]
        } else {
            vec![ExtendedKeyUsagePurpose::ClientAuth]
        };
        let cert = params.signed_by(&key, &ca).expect("leaf certificate");
        (cert.pem(), key.serialize_pem())
    };
    let (apiserver_crt, apiserver_key) = leaf(
        "kube-apiserver",
        "system:masters",
        apiserver_names(name),
        true,
    );
    let admin = leaf("kubernetes-admin", "system:masters", vec![], false);
    let kubelet = leaf("kubelet", "system:nodes", vec![], true);
    assemble(
        dir,
        name,
        &ca_pem,
        (&apiserver_crt, &apiserver_key),
        admin,
        kubelet,
    )
}

/// The apiserver certificate's subject alternative names, as terraform-render-bootkube sets them.
fn apiserver_names(name: &str) -> Vec<String> {
    vec![
        format!("{name}-private.{ZONE}"),
        format!("{name}.{ZONE}"),
        "kubernetes".to_owned(),
        "kubernetes.default".to_owned(),
        "10.3.0.1".to_owned(),
    ]
}

/// Writes the asset directory of cluster `name` from its PEM certificates and keys.
fn assemble(
    dir: &Path,
    name: &str,
    ca_pem: &str,
    apiserver: (&str, &str),
    (admin_crt, admin_key): (String, String),
    (kubelet_crt, kubelet_key): (String, String),
) -> Cluster {
    let fqdn = format!("{name}.{ZONE}");
    let private = format!("{name}-private.{ZONE}");
    let assets = dir.join("assets");
    for sub in ["auth", "tls", "manifests/network", "bootstrap-manifests"] {
        std::fs::create_dir_all(assets.join(sub)).expect("assets dirs");
    }
    let write =
        |path: &str, text: &str| std::fs::write(assets.join(path), text).expect("write asset");
    write("tls/ca.crt", ca_pem);
    write("tls/apiserver.crt", apiserver.0);
    write("tls/apiserver.key", apiserver.1);
    write("tls/admin.crt", &admin_crt);
    write("tls/admin.key", &admin_key);
    write(
        "auth/kubeconfig",
        &kubeconfig(
            &format!("https://{fqdn}:6443"),
            ca_pem,
            &admin_crt,
            &admin_key,
            "admin",
        ),
    );
    write(
        "manifests/kube-apiserver.yaml",
        "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: kube-apiserver}\n",
    );
    write("manifests/kubelet-nodes.yaml", KUBELET_NODES_BINDING);
    write("manifests/network/flannel.yaml", FLANNEL);
    Cluster {
        name: name.to_owned(),
        assets,
        kubelet_kubeconfig: kubeconfig(
            &format!("https://{private}:6443"),
            ca_pem,
            &kubelet_crt,
            &kubelet_key,
            "kubelet",
        ),
    }
}

/// Like [`cluster`], but RSA 2048 with PKCS#1 keys made by the openssl binary, as the
/// Terraform `tls` provider wrote them for terraform-render-bootkube.
pub fn cluster_rsa(dir: &Path, name: &str) -> Cluster {
    let pki = dir.join("openssl");
    std::fs::create_dir_all(&pki).expect("pki dir");
    let openssl = |args: &[&str]| {
        let output = std::process::Command::new("openssl")
            .current_dir(&pki)
            .args(args)
            .output()
            .expect("run openssl");
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            text(&output)
        );
    };
    openssl(&["genrsa", "-traditional", "-out", "ca.key", "2048"]);
    openssl(&[
        "req",
        "-x509",
        "-new",
        "-key",
        "ca.key",
        "-days",
        "2",
        "-out",
        "ca.crt",
        "-subj",
        "/CN=kubernetes-ca/O=bootkube",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
    ]);
    let leaf = |file: &str, subject: &str, extensions: String| {
        openssl(&[
            "genrsa",
            "-traditional",
            "-out",
            &format!("{file}.key"),
            "2048",
        ]);
        openssl(&[
            "req",
            "-new",
            "-key",
            &format!("{file}.key"),
            "-subj",
            subject,
            "-out",
            &format!("{file}.csr"),
        ]);
        std::fs::write(pki.join(format!("{file}.ext")), extensions).expect("extensions");
        openssl(&[
            "x509",
            "-req",
            "-in",
            &format!("{file}.csr"),
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &format!("{file}.crt"),
            "-extfile",
            &format!("{file}.ext"),
        ]);
        let read = |ext: &str| {
            std::fs::read_to_string(pki.join(format!("{file}.{ext}"))).expect("read pem")
        };
        (read("crt"), read("key"))
    };
    let sans: Vec<String> = apiserver_names(name)
        .into_iter()
        .map(|san| {
            if san.parse::<std::net::IpAddr>().is_ok() {
                format!("IP:{san}")
            } else {
                format!("DNS:{san}")
            }
        })
        .collect();
    let usage = "keyUsage=critical,digitalSignature,keyEncipherment\n";
    let apiserver = leaf(
        "apiserver",
        "/CN=kube-apiserver/O=system:masters",
        format!(
            "{usage}extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName={}\n",
            sans.join(",")
        ),
    );
    let admin = leaf(
        "admin",
        "/CN=kubernetes-admin/O=system:masters",
        format!("{usage}extendedKeyUsage=clientAuth\n"),
    );
    let kubelet = leaf(
        "kubelet",
        "/CN=kubelet/O=system:nodes",
        format!("{usage}extendedKeyUsage=serverAuth,clientAuth\n"),
    );
    assert!(
        apiserver.1.contains("BEGIN RSA PRIVATE KEY"),
        "PKCS#1 keys expected"
    );
    let ca_pem = std::fs::read_to_string(pki.join("ca.crt")).expect("read CA");
    assemble(
        dir,
        name,
        &ca_pem,
        (&apiserver.0, &apiserver.1),
        admin,
        kubelet,
    )
}

/// A tar archive of `files` (path, contents), made by the tar binary.
pub fn tar(dir: &Path, files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let staging = tempfile::tempdir_in(dir).expect("staging dir");
    for (path, contents) in files {
        let path = staging.path().join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, contents).expect("write");
    }
    let output = std::process::Command::new("tar")
        .arg("-C")
        .arg(staging.path())
        .args(["-cf", "-", "."])
        .output()
        .expect("tar");
    assert!(output.status.success(), "tar failed");
    output.stdout
}

/// The files the static apiserver pod reads, as `pki/<name>` (for `tar -x -C /etc/kubernetes`).
pub fn control_plane_pki(cluster: &Cluster) -> Vec<(&'static str, Vec<u8>)> {
    ["ca.crt", "apiserver.crt", "apiserver.key"]
        .into_iter()
        .zip(["pki/ca.crt", "pki/apiserver.crt", "pki/apiserver.key"])
        .map(|(name, to)| {
            (
                to,
                std::fs::read(cluster.assets.join("tls").join(name)).expect("tls file"),
            )
        })
        .collect()
}

/// Applies every object of `cluster`'s `manifests/` to the apiserver at `addr` with server-side
/// apply, through curl and the admin certificate; panics naming the first refusal.
pub fn apply_manifests(cluster: &Cluster, addr: SocketAddr) {
    // The kinds of the test manifests and their REST names.
    let plural = |kind: &str| match kind {
        "ClusterRoleBinding" => (
            "apis/rbac.authorization.k8s.io/v1",
            "clusterrolebindings",
            false,
        ),
        "ClusterRole" => ("apis/rbac.authorization.k8s.io/v1", "clusterroles", false),
        "ServiceAccount" => ("api/v1", "serviceaccounts", true),
        "DaemonSet" => ("apis/apps/v1", "daemonsets", true),
        other => panic!("no REST name for {other} in the test"),
    };
    let objects =
        sim::judge::rbac::manifest_objects(&cluster.assets.join("manifests")).expect("manifests");
    for (_, object) in objects {
        let (prefix, resource, namespaced) = plural(object["kind"].as_str().unwrap_or_default());
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        let path = if namespaced {
            let namespace = object["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default");
            format!("/{prefix}/namespaces/{namespace}/{resource}/{name}")
        } else {
            format!("/{prefix}/{resource}/{name}")
        };
        let (code, body) = server_side_apply(cluster, addr, &path, &object);
        assert!((200..300).contains(&code), "applying {path}: {code} {body}");
    }
}

/// Server-side applies `object` at the URL `path` of the apiserver at `addr` as the admin of
/// `cluster`, through curl: the answer's HTTP status and body.
pub fn server_side_apply(
    cluster: &Cluster,
    addr: SocketAddr,
    path: &str,
    object: &serde_json::Value,
) -> (u16, String) {
    admin_request(
        cluster,
        addr,
        "PATCH",
        "application/apply-patch+yaml",
        &format!("{path}?fieldManager=test&force=true"),
        &object.to_string(),
    )
}

/// `curl -X <method>` of the URL `path` (with its query) of the apiserver at `addr` as the
/// admin of `cluster`, sending `body` as `content_type`: the answer's HTTP status and body.
pub fn admin_request(
    cluster: &Cluster,
    addr: SocketAddr,
    method: &str,
    content_type: &str,
    path: &str,
    body: &str,
) -> (u16, String) {
    let tls = cluster.assets.join("tls");
    let output = std::process::Command::new("curl")
        .args(["-sS", "-X", method, "-w", "\n%{http_code}"])
        .args(["-H", &format!("Content-Type: {content_type}")])
        .arg("--cacert")
        .arg(tls.join("ca.crt"))
        .arg("--cert")
        .arg(tls.join("admin.crt"))
        .arg("--key")
        .arg(tls.join("admin.key"))
        .arg("--resolve")
        .arg(format!("{}:{}:{}", cluster.fqdn(), addr.port(), addr.ip()))
        .args(["--data-binary", body])
        .arg(format!("https://{}:{}{path}", cluster.fqdn(), addr.port()))
        .output()
        .expect("curl");
    let out = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, code) = out
        .rsplit_once('\n')
        .unwrap_or_else(|| panic!("curl wrote no status: {}", text(&output)));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

/// What a test node's Ignition carries.
#[derive(Default)]
pub struct IgnitionSpec<'a> {
    pub authorized_keys: Vec<String>,
    /// OpenSSH private key text for /etc/ssh/ssh_host_ed25519_key.
    pub host_key: Option<String>,
    pub kubelet_kubeconfig: Option<&'a str>,
    pub controller: bool,
}

/// An Ignition 3.3 document shaped like Lokomotive's controller or worker config.
pub fn ignition(spec: &IgnitionSpec<'_>) -> String {
    let mut files = Vec::new();
    if let Some(key) = &spec.host_key {
        files.push(serde_json::json!({
            "path": "/etc/ssh/ssh_host_ed25519_key", "mode": 0o600,
            "contents": {"source": format!("data:;base64,{}", b64(key.as_bytes()))}
        }));
    }
    if let Some(kubeconfig) = spec.kubelet_kubeconfig {
        files.push(serde_json::json!({
            "path": "/etc/kubernetes/kubeconfig", "mode": 0o644,
            "contents": {"source": format!("data:,{}", percent_encode(kubeconfig))}
        }));
    }
    let labels = if spec.controller {
        "node.kubernetes.io/master,node.kubernetes.io/controller=true"
    } else {
        "node.kubernetes.io/node,pool=general"
    };
    let mut units = vec![serde_json::json!({
        "name": "kubelet.service", "enabled": true,
        "contents": kubelet_unit(labels)
    })];
    if spec.controller {
        // What makes a node a controller for the simulator: it runs an etcd member.
        units.push(serde_json::json!({
            "name": "etcd-member.service", "enabled": true,
            "contents": "[Service]\nExecStart=/usr/bin/docker run --rm --network host quay.io/coreos/etcd:v3.5.17 /usr/local/bin/etcd\n[Install]\nWantedBy=multi-user.target\n"
        }));
    }
    serde_json::json!({
        "ignition": {"version": "3.3.0"},
        "passwd": {"users": [{"name": "core", "sshAuthorizedKeys": spec.authorized_keys}]},
        "storage": {"files": files},
        "systemd": {"units": units}
    })
    .to_string()
}

/// A kubelet unit a Flatcar node would start (upstream Lokomotive's ordering after the metadata
/// service, the poseidon image's entrypoint, only self-labels a kubelet may set).
pub fn kubelet_unit(labels: &str) -> String {
    format!(
        "[Unit]\nRequires=docker.service coreos-metadata.service\nAfter=docker.service coreos-metadata.service\n\
         [Service]\nEnvironmentFile=/run/metadata/flatcar\n\
         ExecStart=/usr/bin/docker run --rm --name kubelet --privileged --pid host --network host \\\n\
         \x20 -v /etc/kubernetes:/etc/kubernetes:ro -v /var/lib/kubelet:/var/lib/kubelet:rshared \\\n\
         \x20 quay.io/poseidon/kubelet:v1.32.3 \\\n\
         \x20 --kubeconfig=/etc/kubernetes/kubeconfig --node-ip=${{COREOS_PACKET_IPV4_PRIVATE_0}} \\\n\
         \x20 --node-labels={labels} --pod-manifest-path=/etc/kubernetes/manifests --read-only-port=0\n\
         [Install]\nWantedBy=multi-user.target\n"
    )
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                (byte as char).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}

/// A real OpenSSH client pointed at one node.
pub struct SshClient {
    pub key: PathBuf,
    pub known_hosts: PathBuf,
    pub user: String,
    pub addr: SocketAddr,
}

impl SshClient {
    /// `known_hosts` trusts `host_public_key` for this address only.
    pub fn new(
        dir: &Path,
        key: PathBuf,
        user: &str,
        addr: SocketAddr,
        host_public_key: &str,
    ) -> Self {
        let known_hosts = dir.join(format!("known_hosts-{}-{}", addr.ip(), addr.port()));
        let mut fields = host_public_key.split_whitespace();
        let line = format!(
            "[{}]:{} {} {}\n",
            addr.ip(),
            addr.port(),
            fields.next().unwrap_or_default(),
            fields.next().unwrap_or_default()
        );
        std::fs::write(&known_hosts, line).expect("write known_hosts");
        SshClient {
            key,
            known_hosts,
            user: user.to_owned(),
            addr,
        }
    }

    /// Runs `command` on the node, feeding `stdin`.
    pub async fn run(&self, command: &str, stdin: &[u8]) -> Output {
        let mut child = Command::new("ssh")
            .args(["-F", "/dev/null", "-T"])
            .args(["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes"])
            .args(["-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=20"])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", self.known_hosts.display()))
            .arg("-i")
            .arg(&self.key)
            .arg("-p")
            .arg(self.addr.port().to_string())
            .arg(format!("{}@{}", self.user, self.addr.ip()))
            .arg(command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn ssh");
        let mut pipe = child.stdin.take().expect("ssh stdin");
        let input = stdin.to_vec();
        let feeder = tokio::spawn(async move {
            let _ = pipe.write_all(&input).await;
            drop(pipe);
        });
        let output = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
            .await
            .expect("ssh finished within 120s")
            .expect("ssh output");
        let _ = feeder.await;
        output
    }

    /// Retries `echo ready` until it works (sshd may need a moment to start).
    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let output = self.run("echo ready", b"").await;
            if output.status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "node {} never accepted SSH: {}",
                self.addr,
                String::from_utf8_lossy(&output.stderr)
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

/// stdout and stderr as text, for assertion messages.
pub fn text(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs the real kubectl (`$KUBECTL`, else `kubectl` on PATH) against `server` with
/// `kubeconfig`, HOME in `dir`.
pub async fn kubectl(
    dir: &Path,
    kubeconfig: &Path,
    server: SocketAddr,
    tls_name: &str,
    args: &[&str],
) -> Output {
    let kubectl = std::env::var_os("KUBECTL").unwrap_or_else(|| "kubectl".into());
    let output = Command::new(kubectl)
        .env("HOME", dir)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--server")
        .arg(format!("https://{server}"))
        .arg("--tls-server-name")
        .arg(tls_name)
        .arg("--request-timeout=30s")
        .args(args)
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(Duration::from_secs(120), output)
        .await
        .expect("kubectl finished within 120s")
        .expect("run kubectl")
}
