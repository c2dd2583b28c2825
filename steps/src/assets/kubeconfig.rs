//! The kubeconfigs under `asset_dir/auth/`, built from the certificates [`super::pki`] wrote:
//!
//! - `auth/kubeconfig` (the bootstrap step applies with it) and `auth/<cluster>-config` (the same text, for
//!   the user): the admin certificate against `https://<cluster>.<zone>:6443`, the apiserver's
//!   public name.
//! - `auth/kubeconfig-kubelet`: the kubelets' bootstrap kubeconfig, the bootstrap token
//!   ([`super::bootstrap_token`]) against `https://<cluster>-private.<zone>:6443`, the private
//!   name; every node's Ignition embeds it at `/etc/kubernetes/kubeconfig`, the kubelet's
//!   `--bootstrap-kubeconfig` ([`kubelet_kubeconfig`]), as Typhoon's `kubeconfig-bootstrap`.
//!   Each kubelet then gets a certificate of its own by TLS bootstrap.
//!
//! - `auth/kubeconfig-kube-scheduler` and `auth/kubeconfig-kube-controller-manager`: the
//!   certificates of those components against `https://127.0.0.1:6443`, the apiserver of their
//!   own controller (the static control plane: every controller runs all three, and the
//!   apiserver certificate names 127.0.0.1). The control-plane step copies them to
//!   `/etc/kubernetes/pki` of each controller.
//!
//! Each embeds a private key or the token, so each is written 0600.
//!
//! The YAML is written by hand. Names and URLs are double-quoted (a JSON string is a YAML
//! double-quoted scalar), so no value can change the document's structure. The `*-data` values are
//! base64, plain scalars on purpose: the kubelet unit of Lokomotive extracts the CA with
//! `grep certificate-authority-data | awk '{print $2}' | base64 -d`, which quotes would break.
//!
//! Names: Lokomotive called the admin entries `<cluster>-cluster`, `<cluster>-user` and
//! `<cluster>-context`, and left the kubelet's context unnamed. Here the cluster is `<cluster>`, the
//! user `<cluster>-admin` (or `kubelet-bootstrap`), and the context and current-context `<cluster>`
//! (or `kubelet-bootstrap`): names that stay distinct when a user merges the admin kubeconfigs of several
//! clusters into one `KUBECONFIG`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::bootstrap_token::{BootstrapToken, read_token};
use super::pki::{apiserver_names, apiserver_url};
use super::{AssetDir, AssetError, Sensitivity};

/// The admin kubeconfig.
pub const ADMIN_KUBECONFIG: &str = "auth/kubeconfig";
/// The kubeconfigs of the static control plane's components (not the apiserver: it is the
/// server), by component.
pub const CONTROL_PLANE_KUBECONFIGS: [(&str, &str); 2] = [
    ("kube-scheduler", "auth/kubeconfig-kube-scheduler"),
    (
        "kube-controller-manager",
        "auth/kubeconfig-kube-controller-manager",
    ),
];
/// The kubelets' bootstrap kubeconfig.
pub const KUBELET_KUBECONFIG: &str = "auth/kubeconfig-kubelet";

/// `auth/<cluster>-config`, the admin kubeconfig under the cluster's name.
pub fn named_admin_kubeconfig(cluster: &specs::DesiredCluster) -> String {
    format!("auth/{}-config", cluster.settings.cluster_name)
}

/// Writes the kubeconfigs from `tls/ca.crt` and the client certificates and keys
/// [`super::pki::ensure_pki`] must have written, and the bootstrap token `token`.
pub fn write_kubeconfigs(
    dir: &AssetDir,
    cluster: &specs::DesiredCluster,
    token: &BootstrapToken,
) -> Result<(), AssetError> {
    let admin = admin_kubeconfig(dir, cluster)?;
    dir.write(ADMIN_KUBECONFIG, admin.as_bytes(), Sensitivity::Secret)?;
    dir.write(
        named_admin_kubeconfig(cluster),
        admin.as_bytes(),
        Sensitivity::Secret,
    )?;
    let kubelet = bootstrap_kubeconfig(dir, cluster, token)?;
    dir.write(KUBELET_KUBECONFIG, kubelet.as_bytes(), Sensitivity::Secret)?;
    for (component, rel) in CONTROL_PLANE_KUBECONFIGS {
        let text = render(
            dir,
            &Entry {
                cluster: cluster.settings.cluster_name.as_str(),
                server: &apiserver_url("127.0.0.1"),
                tls_server_name: None,
                user: component,
                context: component,
                credential: Credential::Certificate {
                    cert: &format!("tls/{component}.crt"),
                    key: &format!("tls/{component}.key"),
                },
            },
        )?;
        dir.write(rel, text.as_bytes(), Sensitivity::Secret)?;
    }
    Ok(())
}

/// The kubelets' bootstrap kubeconfig text, with the token `auth/bootstrap-token.json` holds
/// ([`super::bootstrap_token::ensure_token`] writes it before the kubeconfigs).
pub fn kubelet_kubeconfig(
    dir: &AssetDir,
    cluster: &specs::DesiredCluster,
) -> Result<String, AssetError> {
    let token = read_token(dir)?.ok_or_else(|| AssetError::Invalid {
        path: dir.path(super::bootstrap_token::BOOTSTRAP_TOKEN),
        reason: "is missing; the kubeconfigs step issues it".into(),
    })?;
    bootstrap_kubeconfig(dir, cluster, &token)
}

fn bootstrap_kubeconfig(
    dir: &AssetDir,
    cluster: &specs::DesiredCluster,
    token: &BootstrapToken,
) -> Result<String, AssetError> {
    let (_, private) = apiserver_names(cluster);
    render(
        dir,
        &Entry {
            cluster: cluster.settings.cluster_name.as_str(),
            server: &apiserver_url(&private),
            tls_server_name: None,
            user: "kubelet-bootstrap",
            context: "kubelet-bootstrap",
            credential: Credential::Token(token.bearer()),
        },
    )
}

/// The admin kubeconfig text.
fn admin_kubeconfig(dir: &AssetDir, cluster: &specs::DesiredCluster) -> Result<String, AssetError> {
    let (public, _) = apiserver_names(cluster);
    admin(dir, cluster, &apiserver_url(&public), None)
}

/// The admin kubeconfig reaching the apiserver at `address` (a controller's IP) and verifying
/// its certificate for the apiserver's public name (`tls-server-name`, which kubectl honours
/// since Kubernetes 1.19): for a cluster whose name does not resolve where kubectl runs, such as
/// one in the standalone simulator.
pub fn admin_kubeconfig_at(
    dir: &AssetDir,
    cluster: &specs::DesiredCluster,
    address: std::net::IpAddr,
) -> Result<String, AssetError> {
    let (public, _) = apiserver_names(cluster);
    let host = match address {
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
        v4 => v4.to_string(),
    };
    admin(dir, cluster, &apiserver_url(&host), Some(&public))
}

/// The admin's kubeconfig for the apiserver at `server`, its certificate verified for
/// `tls_server_name` when given.
fn admin(
    dir: &AssetDir,
    cluster: &specs::DesiredCluster,
    server: &str,
    tls_server_name: Option<&str>,
) -> Result<String, AssetError> {
    let name = cluster.settings.cluster_name.as_str();
    render(
        dir,
        &Entry {
            cluster: name,
            server,
            tls_server_name,
            user: &format!("{name}-admin"),
            context: name,
            credential: Credential::Certificate {
                cert: "tls/admin.crt",
                key: "tls/admin.key",
            },
        },
    )
}

/// One cluster, user and context.
struct Entry<'a> {
    cluster: &'a str,
    server: &'a str,
    /// The name the server's certificate is verified for, when the server is an address.
    tls_server_name: Option<&'a str>,
    user: &'a str,
    context: &'a str,
    credential: Credential<'a>,
}

/// How a user authenticates.
enum Credential<'a> {
    /// Certificate and key files, relative to the asset directory.
    Certificate { cert: &'a str, key: &'a str },
    /// A bearer token (the bootstrap token).
    Token(String),
}

fn render(dir: &AssetDir, e: &Entry<'_>) -> Result<String, AssetError> {
    let ca = base64_of(dir, "tls/ca.crt")?;
    let credential = match &e.credential {
        Credential::Certificate { cert, key } => format!(
            "    client-certificate-data: {}\n    client-key-data: {}\n",
            base64_of(dir, cert)?,
            base64_of(dir, key)?
        ),
        Credential::Token(token) => format!("    token: {}\n", quote(token)),
    };
    let (cluster, server, user, context) = (
        quote(e.cluster),
        quote(e.server),
        quote(e.user),
        quote(e.context),
    );
    let tls_server_name = e
        .tls_server_name
        .map(|name| format!("\n    tls-server-name: {}", quote(name)))
        .unwrap_or_default();
    Ok(format!(
        "apiVersion: v1
kind: Config
clusters:
- name: {cluster}
  cluster:
    server: {server}{tls_server_name}
    certificate-authority-data: {ca}
users:
- name: {user}
  user:
{credential}contexts:
- name: {context}
  context:
    cluster: {cluster}
    user: {user}
current-context: {context}
"
    ))
}

/// The base64 of the file `rel`, which must exist.
fn base64_of(dir: &AssetDir, rel: &str) -> Result<String, AssetError> {
    let bytes = dir.read(rel)?.ok_or_else(|| AssetError::Invalid {
        path: dir.path(rel),
        reason: "is missing; the PKI (ensure_pki) writes it before the kubeconfigs".into(),
    })?;
    Ok(STANDARD.encode(bytes))
}

/// `s` as a YAML double-quoted scalar.
fn quote(s: &str) -> String {
    // A JSON string is a valid YAML double-quoted scalar; serializing a &str cannot fail.
    serde_json::to_string(s).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use super::*;
    use crate::assets::bootstrap_token::ensure_token;
    use crate::assets::pki::{PkiInputs, ensure_pki};

    fn tutorial() -> specs::DesiredCluster {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/tutorial.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        specs::parse(&text, &path.display().to_string())
            .unwrap_or_else(|e| panic!("{e}"))
            .desired()
    }

    /// The tutorial's cluster and an asset directory holding its PKI, issued at `now`.
    fn tutorial_with_pki() -> (
        tempfile::TempDir,
        AssetDir,
        specs::DesiredCluster,
        SystemTime,
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = AssetDir::create(tmp.path()).unwrap();
        let cluster = tutorial();
        let now = UNIX_EPOCH + Duration::from_secs(1_750_000_000);
        ensure_pki(&dir, &PkiInputs::from_desired(&cluster), now).unwrap();
        (tmp, dir, cluster, now)
    }

    #[test]
    fn a_kubeconfig_by_address_verifies_the_apiserver_by_its_name() {
        let (_tmp, dir, cluster, _) = tutorial_with_pki();
        let text = admin_kubeconfig_at(&dir, &cluster, "10.0.0.7".parse().unwrap()).unwrap();
        assert!(text.contains(
            "    server: \"https://10.0.0.7:6443\"\n    tls-server-name: \"supernova.packet.example.com\"\n"
        ));
        let v6 = admin_kubeconfig_at(&dir, &cluster, "2604:1380::1".parse().unwrap()).unwrap();
        assert!(
            v6.contains("server: \"https://[2604:1380::1]:6443\""),
            "{v6}"
        );
    }

    #[test]
    fn the_kubelet_unit_can_extract_the_ca_with_grep_and_awk() {
        let (_tmp, dir, cluster, now) = tutorial_with_pki();
        let token = ensure_token(&dir, now, true).unwrap();
        write_kubeconfigs(&dir, &cluster, &token).unwrap();
        let text = kubelet_kubeconfig(&dir, &cluster).unwrap();
        assert!(
            text.contains(&format!("    token: \"{}\"\n", token.bearer())),
            "the bootstrap token, no certificate"
        );
        assert!(!text.contains("client-key-data"));
        assert_eq!(
            dir.read_text(KUBELET_KUBECONFIG).unwrap().as_deref(),
            Some(text.as_str())
        );
        // grep 'certificate-authority-data' | awk '{print $2}' | base64 -d
        let line = text
            .lines()
            .find(|l| l.contains("certificate-authority-data"))
            .unwrap();
        let field = line.split_whitespace().nth(1).unwrap();
        assert_eq!(
            STANDARD.decode(field).unwrap(),
            dir.read("tls/ca.crt").unwrap().unwrap()
        );
        assert!(text.contains("server: \"https://supernova-private.packet.example.com:6443\"\n"));
    }

    #[test]
    fn without_the_pki_the_missing_file_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = AssetDir::create(tmp.path()).unwrap();
        let token = ensure_token(&dir, UNIX_EPOCH, true).unwrap();
        let err = write_kubeconfigs(&dir, &tutorial(), &token).unwrap_err();
        assert!(
            matches!(&err, AssetError::Invalid { path, .. } if path == &dir.path("tls/ca.crt")),
            "{err}"
        );
        assert_eq!(dir.read(ADMIN_KUBECONFIG).unwrap(), None);
    }

    #[test]
    fn quoting_keeps_yaml_structure() {
        assert_eq!(quote("a\"b: c\n- d"), r#""a\"b: c\n- d""#);
    }
}
