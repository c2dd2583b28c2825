//! The pod network: Calico (with host protection) or flannel.

use std::net::Ipv4Addr;

use serde_json::{Value, json};
use specs::{DesiredCluster, Role};

use super::objects::{
    CALICO_CNI_IMAGE, CALICO_IMAGE, CALICO_KUBE_CONTROLLERS_IMAGE, FLANNEL_CNI_IMAGE,
    FLANNEL_IMAGE, Manifest, cluster_role_binding, daemon_set, host_path, labels, manifest,
    metadata, mount, service_account, xtables_lock_volume,
};
use crate::assets::AssetError;
use crate::ignition::firewall;

/// Every CustomResourceDefinition of Calico v3.29 (`manifests/calico.yaml` of v3.29.2; the set
/// is `shared/reference/upstream/calico-v3.29-crds.txt`): (group, version, kind, plural,
/// namespaced). Calico reads and writes every one of them at start; a missing one stops
/// calico-node. Their schemas keep unknown fields: Calico validates its own resources.
const CALICO_CRDS: [(&str, &str, &str, &str, bool); 20] = [
    (
        "policy.networking.k8s.io",
        "v1alpha1",
        "AdminNetworkPolicy",
        "adminnetworkpolicies",
        false,
    ),
    (
        "crd.projectcalico.org",
        "v1",
        "BGPConfiguration",
        "bgpconfigurations",
        false,
    ),
    (
        "crd.projectcalico.org",
        "v1",
        "BGPFilter",
        "bgpfilters",
        false,
    ),
    ("crd.projectcalico.org", "v1", "BGPPeer", "bgppeers", false),
    (
        "crd.projectcalico.org",
        "v1",
        "BlockAffinity",
        "blockaffinities",
        false,
    ),
    (
        "crd.projectcalico.org",
        "v1",
        "CalicoNodeStatus",
        "caliconodestatuses",
        false,
    ),
    (
        "crd.projectcalico.org",
        "v1",
        "ClusterInformation",
        "clusterinformations",
        false,
    ),
    (
        "crd.projectcalico.org",
        "v1",
        "FelixConfiguration",
        "felixconfigurations",
        false,
    ),
    (
        "crd.projectcalico.org",
        "v1",
        "GlobalNetworkPolicy",
        "globalnetworkpolicies",
        false,
    ),
    (
        "crd.projectcalico.org",
        "v1",
        "GlobalNetworkSet",
        "globalnetworksets",
        false,
    ),
    (
        "crd.projectcalico.org",
        "v1",
        "HostEndpoint",
        "hostendpoints",
        false,
    ),
    (
        "crd.projectcalico.org",
        "v1",
        "IPAMBlock",
        "ipamblocks",
        false,
    ),
    (
        "crd.projectcalico.org",
        "v1",
        "IPAMConfig",
        "ipamconfigs",
        false,
    ),
    (
        "crd.projectcalico.org",
        "v1",
        "IPAMHandle",
        "ipamhandles",
        false,
    ),
    ("crd.projectcalico.org", "v1", "IPPool", "ippools", false),
    (
        "crd.projectcalico.org",
        "v1",
        "IPReservation",
        "ipreservations",
        false,
    ),
    (
        "crd.projectcalico.org",
        "v1",
        "KubeControllersConfiguration",
        "kubecontrollersconfigurations",
        false,
    ),
    (
        "crd.projectcalico.org",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
        true,
    ),
    (
        "crd.projectcalico.org",
        "v1",
        "NetworkSet",
        "networksets",
        true,
    ),
    ("crd.projectcalico.org", "v1", "Tier", "tiers", false),
];

/// The `api-approved.kubernetes.io` annotation of each Calico CRD whose group Kubernetes
/// protects (`k8s.io`, `kubernetes.io` and their subdomains), as Calico v3.29.2's
/// `manifests/calico.yaml` carries it: the apiserver refuses such a CRD without one (KEP-1111,
/// apiextensions-apiserver `validateAPIApproval`).
const CALICO_CRD_APPROVALS: [(&str, &str); 1] = [(
    "adminnetworkpolicies.policy.networking.k8s.io",
    "https://github.com/kubernetes-sigs/network-policy-api/pull/30",
)];

/// The ClusterRoles `calico-node`, `calico-cni-plugin` and `calico-kube-controllers` of Calico
/// v3.29.2, verbatim from its `manifests/calico.yaml` (Apache-2.0): what the pinned version
/// calls, no more, no less. Each is bound to the service account of its name.
const CALICO_CLUSTER_ROLES: &str = include_str!("../../../data/calico-v3.29.2-cluster-roles.json");

fn calico_crd(group: &str, version: &str, kind: &str, plural: &str, namespaced: bool) -> Value {
    let scope = if namespaced { "Namespaced" } else { "Cluster" };
    let name = format!("{plural}.{group}");
    let mut metadata = json!({"name": name});
    if let Some((_, approval)) = CALICO_CRD_APPROVALS.iter().find(|(crd, _)| *crd == name) {
        metadata["annotations"] = json!({"api-approved.kubernetes.io": approval});
    }
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": metadata,
        "spec": {
            "group": group,
            "scope": scope,
            "names": {"kind": kind, "listKind": format!("{kind}List"), "plural": plural, "singular": kind.to_lowercase()},
            "versions": [{
                "name": version,
                "served": true,
                "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
            }],
        },
    })
}

pub(super) fn calico(cluster: &DesiredCluster) -> Result<Vec<Manifest>, AssetError> {
    let s = &cluster.settings;
    let can_reach = Ipv4Addr::from(u32::from(s.node_private_cidr.network()).saturating_add(1));
    let mut out: Vec<Manifest> = CALICO_CRDS
        .iter()
        .map(|&(group, version, kind, plural, namespaced)| {
            manifest(
                &format!("manifests/calico/crd-{plural}.json"),
                calico_crd(group, version, kind, plural, namespaced),
            )
        })
        .collect();
    out.push(manifest(
        "manifests/calico/config.json",
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": metadata("calico-config"),
            "data": {
                "calico_backend": "bird",
                "veth_mtu": s.network_mtu.to_string(),
                "cni_network_config": json!({
                    "name": "k8s-pod-network",
                    "cniVersion": "0.3.1",
                    "plugins": [
                        {"type": "calico", "log_level": "info", "log_file_path": "/var/log/calico/cni/cni.log",
                         "datastore_type": "kubernetes", "nodename": "__KUBERNETES_NODE_NAME__",
                         "mtu": s.network_mtu, "ipam": {"type": "calico-ipam"}, "policy": {"type": "k8s"},
                         "kubernetes": {"kubeconfig": "__KUBECONFIG_FILEPATH__"}},
                        {"type": "portmap", "snat": true, "capabilities": {"portMappings": true}},
                        {"type": "bandwidth", "capabilities": {"bandwidth": true}},
                    ],
                }).to_string(),
            },
        }),
    ));
    out.push(manifest(
        "manifests/calico/sa.json",
        service_account("calico-node"),
    ));
    // calico-node asks for a token of this account and writes it into the CNI plugin's
    // kubeconfig: the plugin acts with fewer rights than the node agent.
    out.push(manifest(
        "manifests/calico/cni-plugin-sa.json",
        service_account("calico-cni-plugin"),
    ));
    let roles: Vec<Value> =
        serde_json::from_str(CALICO_CLUSTER_ROLES).map_err(|e| AssetError::Generate {
            what: "Calico's ClusterRoles".to_owned(),
            reason: e.to_string(),
        })?;
    for role in roles {
        let name = role["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        out.push(manifest(
            &format!("manifests/calico/role-{name}.json"),
            role,
        ));
        out.push(manifest(
            &format!("manifests/calico/rbac-{name}.json"),
            cluster_role_binding(&name, &name, &name),
        ));
    }
    out.push(manifest(
        "manifests/calico/ippool.json",
        json!({
            "apiVersion": "crd.projectcalico.org/v1",
            "kind": "IPPool",
            "metadata": {"name": "default-ipv4-ippool"},
            "spec": {"cidr": s.pod_cidr.to_string(), "ipipMode": "Always", "vxlanMode": "Never", "natOutgoing": true, "blockSize": 24, "nodeSelector": "all()"},
        }),
    ));
    out.push(manifest(
        "manifests/calico/felix.json",
        json!({
            "apiVersion": "crd.projectcalico.org/v1",
            "kind": "FelixConfiguration",
            "metadata": {"name": "default"},
            "spec": {
                "usageReportingEnabled": s.enable_reporting,
                "logSeverityScreen": "Info",
                "failsafeInboundHostPorts": failsafe_inbound(cluster),
            },
        }),
    ));
    // Host protection (kinvolk/lokomotive's calico-host-protection): SSH and the API only from
    // the management CIDRs, cluster traffic only from the cluster's own CIDRs. Felix reads a
    // stored policy's tier from its name (libcalico-go v3.29.2 `lib/names/policy.go`
    // `TierFromPolicyName`); the policies are stored as libcalico-go's own client stores them
    // (`BackendTieredPolicyName`: `default.<name>`, so calicoctl finds them by name), with the
    // `types` its client would default (`clientv3/globalnetworkpolicy.go`
    // `defaultPolicyTypesField`; Felix reads no types as ingress and egress). The `default`
    // tier itself is created by calico-node at start (`clientv3/client.go` EnsureInitialized).
    for node in cluster.controllers() {
        out.push(manifest(
            &format!("manifests/calico/hostendpoint-{}.json", node.hostname),
            json!({
                "apiVersion": "crd.projectcalico.org/v1",
                "kind": "HostEndpoint",
                "metadata": {
                    "name": format!("{}-bond0", node.hostname),
                    "labels": {"host-endpoint": "ingress", "nodetype": "controller"},
                },
                "spec": {"node": node.hostname, "interfaceName": "bond0"},
            }),
        ));
    }
    let management: Vec<String> = s.management_cidrs.iter().map(|c| c.to_string()).collect();
    let cluster_cidrs = vec![
        s.node_private_cidr.to_string(),
        s.pod_cidr.to_string(),
        s.service_cidr.to_string(),
    ];
    out.push(manifest(
        "manifests/calico/policy-management.json",
        json!({
            "apiVersion": "crd.projectcalico.org/v1",
            "kind": "GlobalNetworkPolicy",
            "metadata": {"name": "default.allow-management"},
            "spec": {
                "tier": "default",
                "selector": "host-endpoint == 'ingress'",
                "order": 10,
                "types": ["Ingress"],
                "ingress": [{"action": "Allow", "protocol": "TCP",
                             "source": {"nets": management},
                             "destination": {"ports": [22, 6443]}}],
            },
        }),
    ));
    out.push(manifest(
        "manifests/calico/policy-cluster.json",
        json!({
            "apiVersion": "crd.projectcalico.org/v1",
            "kind": "GlobalNetworkPolicy",
            "metadata": {"name": "default.allow-cluster"},
            "spec": {
                "tier": "default",
                "selector": "host-endpoint == 'ingress'",
                "order": 20,
                "types": ["Ingress", "Egress"],
                "ingress": [{"action": "Allow", "source": {"nets": cluster_cidrs}}],
                "egress": [{"action": "Allow"}],
            },
        }),
    ));
    out.push(manifest(
        "manifests/calico/node.json",
        calico_node(cluster, can_reach),
    ));
    out.extend(kube_controllers());
    Ok(out)
}

/// calico-kube-controllers as Calico v3.29.2's `manifests/calico.yaml` deploys it, with only
/// the node controller (its `ENABLED_CONTROLLERS=node` on the kubernetes datastore). Nothing
/// else frees what a deleted node held in Calico's IPAM: its blocks' affinities, and the
/// handles and addresses of its pods (kube-controllers `pkg/controllers/node/ipam.go`, run on
/// every Node deletion and periodically). Workers delete their Node at every shutdown
/// (`delete-node.service`), so without it each replaced worker leaks a block of the pool.
fn kube_controllers() -> Vec<Manifest> {
    const NAME: &str = "calico-kube-controllers";
    let check_status = |flag: &str| json!({"exec": {"command": ["/usr/bin/check-status", flag]}});
    let mut liveness = check_status("-l");
    liveness["periodSeconds"] = json!(10);
    liveness["initialDelaySeconds"] = json!(10);
    liveness["failureThreshold"] = json!(6);
    liveness["timeoutSeconds"] = json!(10);
    let mut readiness = check_status("-r");
    readiness["periodSeconds"] = json!(10);
    vec![
        manifest(
            "manifests/calico/kube-controllers-sa.json",
            service_account(NAME),
        ),
        // Upstream lets a cluster autoscaler evict its single replica.
        manifest(
            "manifests/calico/kube-controllers-pdb.json",
            json!({
                "apiVersion": "policy/v1",
                "kind": "PodDisruptionBudget",
                "metadata": {"name": NAME, "namespace": "kube-system", "labels": labels(NAME)},
                "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels(NAME)}},
            }),
        ),
        manifest(
            "manifests/calico/kube-controllers.json",
            json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": NAME, "namespace": "kube-system", "labels": labels(NAME)},
                "spec": {
                    // Its controllers can only have a single active instance (upstream's words).
                    "replicas": 1,
                    "selector": {"matchLabels": labels(NAME)},
                    "strategy": {"type": "Recreate"},
                    "template": {
                        "metadata": {"name": NAME, "namespace": "kube-system", "labels": labels(NAME)},
                        "spec": {
                            "nodeSelector": {"kubernetes.io/os": "linux"},
                            "tolerations": [
                                {"key": "CriticalAddonsOnly", "operator": "Exists"},
                                {"key": "node-role.kubernetes.io/master", "effect": "NoSchedule"},
                                {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"},
                            ],
                            "serviceAccountName": NAME,
                            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                            "priorityClassName": "system-cluster-critical",
                            "containers": [{
                                "name": NAME,
                                "image": CALICO_KUBE_CONTROLLERS_IMAGE,
                                "imagePullPolicy": "IfNotPresent",
                                "env": [
                                    {"name": "ENABLED_CONTROLLERS", "value": "node"},
                                    {"name": "DATASTORE_TYPE", "value": "kubernetes"},
                                ],
                                "livenessProbe": liveness,
                                "readinessProbe": readiness,
                                "securityContext": {"runAsNonRoot": true},
                            }],
                        },
                    },
                },
            }),
        ),
    ]
}

/// Felix's inbound failsafe ports (`failsafeInboundHostPorts`): what it accepts on a host
/// endpoint before any policy, inserted at the top of INPUT (Felix v3.29.2
/// `felix/rules/static.go` failsafeInChain, `config_params.go` ChainInsertMode). Its default
/// (tcp 22, 179, 2379, 2380, 5473, 6443, 6666, 6667 and udp 68, from every address) would open
/// SSH and etcd to the internet on every controller, past the firewall's narrower rules; here
/// it is the controllers' firewall, port for port and source for source.
fn failsafe_inbound(cluster: &DesiredCluster) -> Vec<Value> {
    firewall::allowances(cluster, Role::Controller)
        .iter()
        .flat_map(|allowance| {
            allowance.ports.iter().flat_map(move |port| {
                allowance.sources.iter().map(move |net| {
                    json!({"protocol": allowance.protocol.to_uppercase(), "port": port, "net": net})
                })
            })
        })
        .collect()
}

fn calico_node(cluster: &DesiredCluster, can_reach: Ipv4Addr) -> Value {
    let s = &cluster.settings;
    let field = |path: &str| json!({"fieldRef": {"fieldPath": path}});
    let config = |key: &str| json!({"configMapKeyRef": {"name": "calico-config", "key": key}});
    let dir = |name: &str, path: &str| json!({"name": name, "hostPath": {"path": path, "type": "DirectoryOrCreate"}});
    daemon_set(
        "calico-node",
        Some(1),
        json!({
            "hostNetwork": true,
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "priorityClassName": "system-node-critical",
            "serviceAccountName": "calico-node",
            "terminationGracePeriodSeconds": 0,
            "tolerations": [
                {"effect": "NoSchedule", "operator": "Exists"},
                {"key": "CriticalAddonsOnly", "operator": "Exists"},
                {"effect": "NoExecute", "operator": "Exists"},
            ],
            "initContainers": [
                {
                    "name": "upgrade-ipam",
                    "image": CALICO_CNI_IMAGE,
                    "command": ["/opt/cni/bin/calico-ipam", "-upgrade"],
                    "env": [
                        {"name": "KUBERNETES_NODE_NAME", "valueFrom": field("spec.nodeName")},
                        {"name": "CALICO_NETWORKING_BACKEND", "valueFrom": config("calico_backend")},
                    ],
                    "securityContext": {"privileged": true},
                    "volumeMounts": [
                        mount("host-local-net-dir", "/var/lib/cni/networks", false),
                        mount("cni-bin-dir", "/host/opt/cni/bin", false),
                    ],
                },
                {
                    "name": "install-cni",
                    "image": CALICO_CNI_IMAGE,
                    "command": ["/opt/cni/bin/install"],
                    "env": [
                        {"name": "CNI_CONF_NAME", "value": "10-calico.conflist"},
                        {"name": "CNI_NETWORK_CONFIG", "valueFrom": config("cni_network_config")},
                        {"name": "KUBERNETES_NODE_NAME", "valueFrom": field("spec.nodeName")},
                        {"name": "CNI_MTU", "valueFrom": config("veth_mtu")},
                        {"name": "SLEEP", "value": "false"},
                    ],
                    "securityContext": {"privileged": true},
                    "volumeMounts": [
                        mount("cni-bin-dir", "/host/opt/cni/bin", false),
                        mount("cni-net-dir", "/host/etc/cni/net.d", false),
                    ],
                },
            ],
            "containers": [{
                "name": "calico-node",
                "image": CALICO_IMAGE,
                "env": [
                    {"name": "DATASTORE_TYPE", "value": "kubernetes"},
                    {"name": "WAIT_FOR_DATASTORE", "value": "true"},
                    {"name": "NODENAME", "valueFrom": field("spec.nodeName")},
                    {"name": "CALICO_NETWORKING_BACKEND", "valueFrom": config("calico_backend")},
                    {"name": "CLUSTER_TYPE", "value": "k8s,bgp"},
                    {"name": "IP", "value": "autodetect"},
                    {"name": "IP_AUTODETECTION_METHOD", "value": format!("can-reach={can_reach}")},
                    {"name": "CALICO_IPV4POOL_CIDR", "value": s.pod_cidr.to_string()},
                    {"name": "CALICO_IPV4POOL_IPIP", "value": "Always"},
                    {"name": "CALICO_IPV4POOL_VXLAN", "value": "Never"},
                    {"name": "CALICO_IPV6POOL_VXLAN", "value": "Never"},
                    {"name": "FELIX_IPINIPMTU", "valueFrom": config("veth_mtu")},
                    {"name": "CALICO_DISABLE_FILE_LOGGING", "value": "true"},
                    {"name": "FELIX_DEFAULTENDPOINTTOHOSTACTION", "value": "ACCEPT"},
                    {"name": "FELIX_IPV6SUPPORT", "value": "false"},
                    {"name": "FELIX_HEALTHENABLED", "value": "true"},
                    {"name": "FELIX_USAGEREPORTINGENABLED", "value": s.enable_reporting.to_string()},
                ],
                "securityContext": {"privileged": true},
                "resources": {"requests": {"cpu": "250m"}},
                "lifecycle": {"preStop": {"exec": {"command": ["/bin/calico-node", "-shutdown"]}}},
                "livenessProbe": {
                    "exec": {"command": ["/bin/calico-node", "-felix-live", "-bird-live"]},
                    "periodSeconds": 10, "initialDelaySeconds": 10, "failureThreshold": 6, "timeoutSeconds": 10,
                },
                "readinessProbe": {
                    "exec": {"command": ["/bin/calico-node", "-felix-ready", "-bird-ready"]},
                    "periodSeconds": 10, "timeoutSeconds": 10,
                },
                "volumeMounts": [
                    mount("cni-net-dir", "/host/etc/cni/net.d", false),
                    mount("lib-modules", "/lib/modules", true),
                    mount("xtables-lock", "/run/xtables.lock", false),
                    mount("var-run-calico", "/var/run/calico", false),
                    mount("var-lib-calico", "/var/lib/calico", false),
                    mount("policysync", "/var/run/nodeagent", false),
                    mount("bpffs", "/sys/fs/bpf", false),
                    mount("cni-log-dir", "/var/log/calico/cni", true),
                ],
            }],
            "volumes": [
                host_path("lib-modules", "/lib/modules"),
                dir("var-run-calico", "/var/run/calico"),
                dir("var-lib-calico", "/var/lib/calico"),
                xtables_lock_volume(),
                {"name": "bpffs", "hostPath": {"path": "/sys/fs/bpf", "type": "Directory"}},
                dir("cni-bin-dir", "/opt/cni/bin"),
                dir("cni-net-dir", "/etc/cni/net.d"),
                dir("cni-log-dir", "/var/log/calico/cni"),
                dir("host-local-net-dir", "/var/lib/cni/networks"),
                dir("policysync", "/var/run/nodeagent"),
            ],
        }),
    )
}

/// Typhoon's CNI installer (`poseidon/flannel-cni`; Typhoon still pins v0.4.2): the
/// containernetworking plugins v0.9.1 `bridge`, `host-local`, `loopback`, `portmap` and the
/// script that copies them to the host and writes `CNI_NETWORK_CONFIG` there.
const FLANNEL_INSTALL_CNI_IMAGE: &str = "quay.io/poseidon/flannel-cni:v0.4.2";

pub(super) fn flannel(cluster: &DesiredCluster) -> Vec<Manifest> {
    let s = &cluster.settings;
    let net_conf =
        json!({"Network": s.pod_cidr.to_string(), "Backend": {"Type": "vxlan", "Port": 4789}});
    let cni_conf = json!({
        "name": "cbr0",
        "cniVersion": "0.3.1",
        "plugins": [
            {"type": "flannel", "delegate": {"hairpinMode": true, "isDefaultGateway": true}},
            {"type": "portmap", "capabilities": {"portMappings": true}},
        ],
    });
    vec![
        manifest("manifests/flannel/sa.json", service_account("flannel")),
        manifest(
            "manifests/flannel/role.json",
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": "flannel"},
                "rules": [
                    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
                    {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]},
                    {"apiGroups": [""], "resources": ["nodes/status"], "verbs": ["patch"]},
                ],
            }),
        ),
        manifest(
            "manifests/flannel/rbac.json",
            cluster_role_binding("flannel", "flannel", "flannel"),
        ),
        manifest(
            "manifests/flannel/config.json",
            json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": metadata("flannel-config"),
                "data": {"net-conf.json": net_conf.to_string(), "cni-conf.json": cni_conf.to_string()},
            }),
        ),
        manifest(
            "manifests/flannel/daemonset.json",
            daemon_set(
                "flannel",
                None,
                json!({
                    "hostNetwork": true,
                    "serviceAccountName": "flannel",
                    "tolerations": [{"operator": "Exists"}],
                    // containerd runs the plugins from /opt/cni/bin, which Flatcar
                    // leaves empty: flannel delegates to `bridge` with `host-local`
                    // addresses, and every sandbox needs `loopback`. Typhoon's installer
                    // copies those and writes the network's configuration; the flannel
                    // plugin itself comes last, from flannel's own release.
                    "initContainers": [
                        {
                            "name": "install-cni",
                            "image": FLANNEL_INSTALL_CNI_IMAGE,
                            "command": ["/install-cni.sh"],
                            "env": [{
                                "name": "CNI_NETWORK_CONFIG",
                                "valueFrom": {"configMapKeyRef": {"name": "flannel-config", "key": "cni-conf.json"}},
                            }],
                            "volumeMounts": [
                                mount("cni-bin-dir", "/host/opt/cni/bin", false),
                                mount("cni-net-dir", "/host/etc/cni/net.d", false),
                            ],
                        },
                        {
                            "name": "install-cni-plugin",
                            "image": FLANNEL_CNI_IMAGE,
                            "command": ["cp", "-f", "/flannel", "/opt/cni/bin/flannel"],
                            "volumeMounts": [mount("cni-bin-dir", "/opt/cni/bin", false)],
                        },
                    ],
                    "containers": [{
                        "name": "flannel",
                        "image": FLANNEL_IMAGE,
                        "command": ["/opt/bin/flanneld", "--ip-masq", "--kube-subnet-mgr", "--iface=$(POD_IP)"],
                        "env": [
                            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                            {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                        ],
                        "securityContext": {"privileged": true},
                        "volumeMounts": [
                            mount("flannel-config", "/etc/kube-flannel/", true),
                            mount("run-flannel", "/run/flannel", false),
                            // flanneld's masquerade rules go through `iptables --wait`: the
                            // host's lock keeps them from racing kube-proxy's and the
                            // kubelet's writes (Typhoon v1.32.3's flannel DaemonSet).
                            mount("xtables-lock", "/run/xtables.lock", false),
                        ],
                    }],
                    "volumes": [
                        {"name": "flannel-config", "configMap": {"name": "flannel-config"}},
                        host_path("run-flannel", "/run/flannel"),
                        host_path("cni-bin-dir", "/opt/cni/bin"),
                        host_path("cni-net-dir", "/etc/cni/net.d"),
                        xtables_lock_volume(),
                    ],
                }),
            ),
        ),
    ]
}
