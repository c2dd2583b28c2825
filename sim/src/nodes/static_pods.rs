//! A running kubelet's static pods: it judges the files of its `--pod-manifest-path` at boot
//! and whenever they change, records which run and why the others do not, and keeps an
//! apiserver emulator serving while a valid kube-apiserver pod is there.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::root::NodeRoot;
use crate::apiserver::{Apiserver, ApiserverConfig, CsrController, KubeletRegistry, ObjectStores};
use crate::judge::kubelet::KUBELET_UNIT;
use crate::judge::pod::{StaticPod, judge_static_pod};
use crate::judge::rbac::Authorizers;
use crate::judge::x509::{ServingNames, refused_url};
use crate::lifecycle::StaticPodStatus;

/// How often the kubelet looks at its manifest path (the real one watches it and rescans
/// every 20 s; here a tenth of a second keeps tests quick).
const STATIC_POD_SCAN: Duration = Duration::from_millis(100);

/// A node's running kubelet, as far as its static pods go.
pub(super) struct StaticPodKubelet {
    pub(super) root: NodeRoot,
    /// The host path of `--pod-manifest-path`.
    pub(super) manifests: String,
    pub(super) hostname: String,
    pub(super) public_ip: std::net::Ipv4Addr,
    /// The host path of the certificate the node's etcd member serves (its `--cert-file`).
    pub(super) etcd_serving_cert: Option<String>,
    pub(super) apiserver_start_delay: Duration,
    pub(super) stores: ObjectStores,
    pub(super) registry: KubeletRegistry,
    pub(super) verdicts: Arc<Mutex<BTreeMap<String, BTreeMap<String, StaticPodStatus>>>>,
}

impl StaticPodKubelet {
    /// Runs the static pods of the manifest path for as long as the node runs: judges them
    /// whenever the directory or the files they name change, and keeps an apiserver emulator
    /// serving while a valid kube-apiserver pod is there.
    pub(super) async fn run(self) {
        let mut judged: Option<BTreeMap<String, Result<StaticPod, Vec<String>>>> = None;
        // The configuration last started (its emulator, unless it failed to start: it is not
        // tried again until the pod changes, as a crash-looping container would only repeat
        // its error).
        let mut apiserver: Option<(ApiserverConfig, Option<Apiserver>)> = None;
        let mut delay = Some(self.apiserver_start_delay);
        loop {
            let verdicts = self.judge();
            if judged.as_ref() != Some(&verdicts) {
                self.record(&verdicts);
                judged = Some(verdicts.clone());
            }
            let wanted = verdicts.values().find_map(|verdict| match verdict {
                Ok(pod) if pod.args.component == "kube-apiserver" => Some(pod),
                _ => None,
            });
            let config = wanted.and_then(|pod| self.apiserver_config(pod));
            if apiserver.as_ref().map(|(running, _)| running) != config.as_ref().map(|(c, _)| c) {
                // A changed pod is a new container: the old one stops first.
                apiserver = None;
                if let Some((config, etcd_servers)) = config {
                    if let Some(delay) = delay.take() {
                        tokio::time::sleep(delay).await;
                    }
                    let started = self.start_apiserver(&config, &etcd_servers).await;
                    apiserver = Some((config, started));
                }
            }
            tokio::time::sleep(STATIC_POD_SCAN).await;
        }
    }

    /// Every file of the manifest path (the kubelet skips hidden ones), judged.
    fn judge(&self) -> BTreeMap<String, Result<StaticPod, Vec<String>>> {
        let mut verdicts = BTreeMap::new();
        let Some(dir) = self.root.node_path(&self.manifests) else {
            return verdicts;
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter(|entry| !entry.file_name().to_string_lossy().starts_with('.'))
            .map(|entry| entry.path())
            .filter(|path| path.is_file())
            .collect();
        files.sort();
        for path in files {
            let file = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let subject = format!("{}/{file}", self.manifests.trim_end_matches('/'));
            let verdict = match std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|bytes| {
                    serde_yaml::from_slice::<serde_json::Value>(&bytes).map_err(|e| e.to_string())
                }) {
                Err(error) => Err(vec![format!(
                    "{subject}: the kubelet cannot decode it: {error}"
                )]),
                Ok(pod) => judge_static_pod(&subject, &pod, &|host| {
                    self.root.node_path(host).is_some_and(|path| path.is_file())
                })
                .map_err(|problems| problems.iter().map(ToString::to_string).collect()),
            };
            verdicts.insert(file, verdict);
        }
        // A component whose identity may not do its work runs, but does nothing a cluster
        // needs: judged by the policy of the apiserver beside it (its `--etcd-servers`).
        let etcd_servers = verdicts.values().find_map(|verdict| match verdict {
            Ok(pod) if pod.args.component == "kube-apiserver" => {
                pod.args.value("etcd-servers").map(str::to_owned)
            }
            _ => None,
        });
        for verdict in verdicts.values_mut() {
            let refusal = match verdict {
                Ok(pod) => self
                    .forbidden(pod, etcd_servers.as_deref())
                    .or_else(|| self.etcd_refused(pod)),
                Err(_) => None,
            };
            if let Some(refusal) = refusal {
                *verdict = Err(vec![refusal]);
            }
        }
        if let Some(store) = etcd_servers.and_then(|servers| self.stores.get(&servers).ok()) {
            let controller = verdicts.values().find_map(|verdict| match verdict {
                Ok(pod) if pod.args.component == "kube-controller-manager" => {
                    Some(self.csr_controller(pod))
                }
                _ => None,
            });
            store.set_csr_controller(&self.hostname, controller);
        }
        verdicts
    }

    /// What a running controller-manager does with CSRs, from its flags (k8s.io/kubernetes
    /// v1.32 cmd/kube-controller-manager: `--controllers` defaults to `*`, which runs
    /// csrapproving and csrsigning; `-name` turns one off; csrsigning is skipped without
    /// `--cluster-signing-cert-file` and `--cluster-signing-key-file`).
    fn csr_controller(&self, pod: &StaticPod) -> CsrController {
        use rustls::pki_types::pem::PemObject as _;
        let controllers = pod.args.list("controllers");
        let runs = |name: &str| {
            let named = |item: &&str| *item == name;
            let disabled = format!("-{name}");
            if controllers.iter().any(|item| *item == disabled) {
                return false;
            }
            controllers.is_empty() || controllers.contains(&"*") || controllers.iter().any(named)
        };
        let signer = if !runs("csrsigning") {
            Err("--controllers turns csrsigning off".to_owned())
        } else {
            match (
                pod.files.get("cluster-signing-cert-file"),
                pod.files.get("cluster-signing-key-file"),
            ) {
                (Some(cert), Some(_)) => self
                    .root
                    .node_path(cert)
                    .and_then(|path| std::fs::read(path).ok())
                    .and_then(|pem| {
                        rustls::pki_types::CertificateDer::pem_slice_iter(&pem)
                            .next()?
                            .ok()
                    })
                    .map(|der| der.as_ref().to_vec())
                    .ok_or_else(|| format!("--cluster-signing-cert-file {cert} holds no PEM certificate")),
                _ => Err("its csrsigning controller is skipped without --cluster-signing-cert-file and --cluster-signing-key-file".to_owned()),
            }
        };
        CsrController {
            node: self.hostname.clone(),
            approving: runs("csrapproving"),
            signer,
        }
    }

    /// Why the scheduler's or controller-manager's identity (the client certificate of its
    /// `--kubeconfig`) may not make a request its upstream role holds, or `None`.
    fn forbidden(&self, pod: &StaticPod, etcd_servers: Option<&str>) -> Option<String> {
        let component = pod.args.component.as_str();
        if !["kube-scheduler", "kube-controller-manager"].contains(&component) {
            return None;
        }
        let subject = format!("{component}: its --kubeconfig");
        let kubeconfig = pod
            .files
            .get("kubeconfig")
            .and_then(|host| self.root.node_path(host))
            .and_then(|path| std::fs::read_to_string(path).ok())?;
        let user = match crate::apiserver::cluster::kubeconfig_client_certificate(&kubeconfig)
            .ok_or_else(|| "holds no client certificate".to_owned())
            .and_then(|pem| crate::judge::rbac::UserInfo::from_certificate_pem(&pem))
        {
            Ok(user) => user,
            Err(reason) => return Some(format!("{subject} {reason}")),
        };
        // Without an apiserver beside it, there is nothing to judge against yet.
        let store = self.stores.get(etcd_servers?).ok()?;
        let needs = store.requirements().identity(component).ok()?.requests("");
        let derived = store.derived();
        needs.iter().find_map(|request| {
            let decision = derived.policy.authorize(&user, request);
            crate::judge::rbac::refusal_message(&user, request, &decision)
                .map(|message| format!("{subject}: {message}"))
        })
    }

    /// Why a kube-apiserver pod cannot reach etcd: a host of its `--etcd-servers` that the
    /// certificate the etcd members serve does not name (the apiserver's etcd client checks
    /// it as Go's TLS does, and the apiserver exits when its storage never answers), or
    /// `None`. The members share one server certificate, so this node's stands for every
    /// member's; before loko copied it, there is nothing to judge yet.
    fn etcd_refused(&self, pod: &StaticPod) -> Option<String> {
        if pod.args.component != "kube-apiserver" {
            return None;
        }
        let servers = pod.args.value("etcd-servers")?;
        let cert = self
            .etcd_serving_cert
            .as_ref()
            .and_then(|host| self.root.node_path(host))
            .filter(|path| path.is_file())?;
        let names = match ServingNames::from_pem_file(&cert) {
            Ok(names) => names,
            Err(reason) => return Some(format!("etcd's --cert-file {reason}")),
        };
        refused_url(servers, &names)
            .map(|refusal| format!("kube-apiserver exits: cannot reach etcd at {refusal}"))
    }

    /// Journals a new set of verdicts and publishes it.
    fn record(&self, verdicts: &BTreeMap<String, Result<StaticPod, Vec<String>>>) {
        let mut statuses = BTreeMap::new();
        for (file, verdict) in verdicts {
            let (name, status) = match verdict {
                Ok(pod) => {
                    self.root.journal(
                        KUBELET_UNIT,
                        &format!("Started static pod {} from {file}", pod.name),
                    );
                    (
                        pod.name.clone(),
                        StaticPodStatus {
                            running: true,
                            component: pod.args.component.clone(),
                            problems: Vec::new(),
                        },
                    )
                }
                Err(problems) => {
                    for problem in problems {
                        self.root.journal(KUBELET_UNIT, problem);
                    }
                    (
                        file.clone(),
                        StaticPodStatus {
                            running: false,
                            component: String::new(),
                            problems: problems.clone(),
                        },
                    )
                }
            };
            statuses.insert(name, status);
        }
        self.verdicts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(self.hostname.clone(), statuses);
    }

    /// The emulator's configuration from a valid apiserver pod, and its `--etcd-servers`.
    fn apiserver_config(&self, pod: &StaticPod) -> Option<(ApiserverConfig, String)> {
        let file = |flag: &str| {
            pod.files
                .get(flag)
                .and_then(|host| self.root.node_path(host))
        };
        let port = pod
            .args
            .value("secure-port")
            .and_then(|p| p.parse().ok())
            .unwrap_or(6443);
        let config = ApiserverConfig {
            listen: SocketAddr::from((self.public_ip, port)),
            tls_cert: file("tls-cert-file")?,
            tls_key: file("tls-private-key-file")?,
            client_ca: file("client-ca-file")?,
            authorizers: Authorizers {
                node: pod.args.list("authorization-mode").contains(&"Node"),
                node_restriction: pod
                    .args
                    .list("enable-admission-plugins")
                    .contains(&"NodeRestriction"),
            },
            bootstrap_token_auth: pod.args.bool_flag("enable-bootstrap-token-auth"),
        };
        let Some(etcd_servers) = pod.args.value("etcd-servers") else {
            self.root.journal(
                KUBELET_UNIT,
                "kube-apiserver exits: --etcd-servers must be specified",
            );
            return None;
        };
        Some((config, etcd_servers.to_owned()))
    }

    async fn start_apiserver(
        &self,
        config: &ApiserverConfig,
        etcd_servers: &str,
    ) -> Option<Apiserver> {
        let started = match self.stores.get(etcd_servers) {
            Ok(store) => Apiserver::start(config, store, self.registry.clone())
                .await
                .map_err(|e| e.to_string()),
            Err(error) => Err(error),
        };
        match started {
            Ok(apiserver) => {
                self.root.journal(
                    KUBELET_UNIT,
                    &format!("kube-apiserver answers on {}", apiserver.local_addr()),
                );
                Some(apiserver)
            }
            Err(error) => {
                self.root.journal(
                    KUBELET_UNIT,
                    &format!("kube-apiserver failed to start: {error}"),
                );
                tracing::error!(node = %self.hostname, %error, "apiserver emulator failed to start");
                None
            }
        }
    }
}
