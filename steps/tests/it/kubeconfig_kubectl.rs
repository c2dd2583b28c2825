//! The kubeconfigs as kubectl reads them, and as it uses them: against an `openssl s_server` that
//! presents the apiserver certificate and demands a client certificate of the cluster's CA.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use crate::pki_support::{Pki, output, text, tutorial};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use loko_tests::{Killed, free_port, run, wait_for_port};
use steps::assets::kubeconfig::{self, ADMIN_KUBECONFIG, KUBELET_KUBECONFIG};

pub(crate) fn kubectl(home: &Path) -> Command {
    let mut cmd = Command::new("kubectl");
    // kubectl caches discovery under $HOME/.kube; keep it in the test's directory.
    cmd.env("HOME", home).env_remove("KUBECONFIG");
    cmd
}

fn issue() -> (specs::DesiredCluster, Pki) {
    let cluster = tutorial(|t| t);
    let pki = Pki::issue(&cluster, SystemTime::now());
    let token = steps::assets::bootstrap_token::ensure_token(&pki.dir, SystemTime::now(), true)
        .unwrap_or_else(|e| panic!("{e}"));
    kubeconfig::write_kubeconfigs(&pki.dir, &cluster, &token).unwrap_or_else(|e| panic!("{e}"));
    (cluster, pki)
}

fn view(pki: &Pki, file: &str, raw: bool) -> serde_json::Value {
    let mut cmd = kubectl(pki.tmp.path());
    cmd.args(["config", "view", "-o", "json", "--kubeconfig"])
        .arg(pki.path(file));
    if raw {
        cmd.arg("--raw");
    }
    serde_json::from_str(&run(&mut cmd))
        .unwrap_or_else(|e| panic!("kubectl config view {file}: {e}"))
}

fn b64(pki: &Pki, rel: &str) -> String {
    STANDARD.encode(std::fs::read(pki.path(rel)).expect(rel))
}

#[test]
fn kubectl_reads_the_admin_and_kubelet_kubeconfigs() {
    let (cluster, pki) = issue();
    let named = kubeconfig::named_admin_kubeconfig(&cluster);
    assert_eq!(named, "auth/supernova-config");
    assert_eq!(
        std::fs::read(pki.path(&named)).unwrap(),
        std::fs::read(pki.path(ADMIN_KUBECONFIG)).unwrap()
    );
    for file in [ADMIN_KUBECONFIG, named.as_str(), KUBELET_KUBECONFIG] {
        let mode = std::fs::metadata(pki.path(file))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{file}");
    }

    {
        let (file, server, user, cert, key) = (
            ADMIN_KUBECONFIG,
            "https://supernova.packet.example.com:6443",
            "supernova-admin",
            "tls/admin.crt",
            "tls/admin.key",
        );
        let config = view(&pki, file, false);
        assert_eq!(
            config["clusters"][0]["name"], "supernova",
            "{file}: {config}"
        );
        assert_eq!(
            config["clusters"][0]["cluster"]["server"], server,
            "{file}: {config}"
        );
        assert_eq!(config["users"][0]["name"], user, "{file}: {config}");
        let context = &config["current-context"];
        assert_eq!(config["contexts"][0]["name"], *context, "{file}: {config}");
        assert_eq!(
            config["contexts"][0]["context"]["user"], user,
            "{file}: {config}"
        );
        assert_eq!(
            config["contexts"][0]["context"]["cluster"], "supernova",
            "{file}: {config}"
        );
        // Without --raw kubectl hides the data; with it, the data is the files.
        assert_ne!(
            config["users"][0]["user"]["client-key-data"],
            b64(&pki, key)
        );
        let raw = view(&pki, file, true);
        let data = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
        assert_eq!(
            data(&raw["clusters"][0]["cluster"]["certificate-authority-data"]),
            b64(&pki, "tls/ca.crt")
        );
        assert_eq!(
            data(&raw["users"][0]["user"]["client-certificate-data"]),
            b64(&pki, cert)
        );
        assert_eq!(
            data(&raw["users"][0]["user"]["client-key-data"]),
            b64(&pki, key)
        );
    }

    // The kubelets' bootstrap kubeconfig: the token, no certificate.
    let raw = view(&pki, KUBELET_KUBECONFIG, true);
    assert_eq!(
        raw["clusters"][0]["cluster"]["server"],
        "https://supernova-private.packet.example.com:6443"
    );
    assert_eq!(raw["users"][0]["name"], "kubelet-bootstrap", "{raw}");
    assert_eq!(raw["contexts"][0]["context"]["user"], "kubelet-bootstrap");
    let token = steps::assets::bootstrap_token::read_token(&pki.dir)
        .unwrap()
        .unwrap();
    assert_eq!(raw["users"][0]["user"]["token"], token.bearer().as_str());
    assert!(raw["users"][0]["user"]["client-certificate-data"].is_null());
    assert_eq!(
        raw["clusters"][0]["cluster"]["certificate-authority-data"]
            .as_str()
            .unwrap_or_default(),
        b64(&pki, "tls/ca.crt")
    );
}

/// An HTTPS server with the apiserver's certificate that requires a client certificate signed by
/// the Kubernetes CA.
pub(crate) fn fake_apiserver(pki: &Pki) -> (Killed, u16) {
    let port = free_port();
    let mut server = Command::new("openssl");
    server
        .args(["s_server", "-www", "-Verify", "1", "-verify_return_error"])
        .args(["-accept", &format!("127.0.0.1:{port}")]);
    for (flag, file) in [
        ("-cert", "tls/apiserver.crt"),
        ("-key", "tls/apiserver.key"),
        ("-CAfile", "tls/ca.crt"),
    ] {
        server.arg(flag).arg(pki.path(file));
    }
    let child = server
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("openssl s_server: {e}; scripts/test installs openssl"));
    wait_for_port("127.0.0.1", port, Duration::from_secs(10));
    (Killed(child), port)
}

#[test]
fn kubectl_authenticates_with_them_to_a_server_with_the_apiserver_certificate() {
    let (_cluster, pki) = issue();
    let (_server, port) = fake_apiserver(&pki);
    // The kubelets' kubeconfig holds a bootstrap token, no client certificate: the apiserver
    // emulator's tests (sim) judge it.
    {
        let (file, name) = (ADMIN_KUBECONFIG, "supernova.packet.example.com");
        let out = output(
            kubectl(pki.tmp.path())
                .arg("--kubeconfig")
                .arg(pki.path(file))
                .args(["--server", &format!("https://127.0.0.1:{port}")])
                .args(["--tls-server-name", name, "--request-timeout=10s"])
                .args(["get", "--raw", "/"]),
        );
        // s_server -www answers with its status page once the client certificate verified.
        assert!(
            out.status.success() && text(&out).contains("s_server"),
            "{file}: {}",
            text(&out)
        );
    }

    // A kubeconfig of another cluster does not trust this apiserver ...
    let (_other_cluster, other) = issue();
    let get = |kubeconfig: &Path| {
        output(
            kubectl(pki.tmp.path())
                .arg("--kubeconfig")
                .arg(kubeconfig)
                .args(["--server", &format!("https://127.0.0.1:{port}")])
                .args([
                    "--tls-server-name",
                    "supernova.packet.example.com",
                    "--request-timeout=10s",
                ])
                .args(["get", "--raw", "/"]),
        )
    };
    let out = get(&other.path(ADMIN_KUBECONFIG));
    assert!(
        !out.status.success()
            && text(&out).contains("x509: certificate signed by unknown authority"),
        "{}",
        text(&out)
    );
    // ... and this apiserver refuses its admin certificate, even from a client that trusts it.
    let ours = std::fs::read_to_string(pki.path(ADMIN_KUBECONFIG)).unwrap();
    let theirs = std::fs::read_to_string(other.path(ADMIN_KUBECONFIG)).unwrap();
    let mixed: String = ours
        .lines()
        .zip(theirs.lines())
        .map(|(o, t)| if o.contains("client-") { t } else { o })
        .map(|l| format!("{l}\n"))
        .collect();
    let mixed_path = pki.tmp.path().join("mixed-kubeconfig");
    std::fs::write(&mixed_path, mixed).unwrap();
    let out = get(&mixed_path);
    assert!(
        !out.status.success()
            && text(&out).contains("remote error: tls: unknown certificate authority"),
        "{}",
        text(&out)
    );
}
