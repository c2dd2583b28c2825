//! The systemd units and scripts of a node, as text.
//!
//! Each follows the Lokomotive Packet templates of December 2019 (`cl/controller.yaml.tmpl`,
//! `workers/cl/worker.yaml.tmpl`), moved to what a Flatcar node of today runs: rkt and the
//! hyperkube wrappers are gone, so the kubelet, etcd and kubectl run as `docker run`
//! of their upstream images, and the kubelet talks CRI to Flatcar's containerd (the kubelet
//! lost dockershim in 1.24). `docs/assets.md` accounts for every line of the templates.
//!
//! Facts these units rely on, each from the component itself (see
//! `shared/reference/upstream/images.md`):
//! - `quay.io/poseidon/kubelet` has `ENTRYPOINT ["/usr/local/bin/kubelet"]` and no `CMD`: the
//!   arguments after the image are kubelet flags; kubectl is `/usr/local/bin/kubectl`.
//! - `quay.io/coreos/etcd` has `CMD ["/usr/local/bin/etcd"]` and no `ENTRYPOINT`: the arguments
//!   after the image are the whole command line, binary first.
//! - kubelet 1.32 has `--pod-manifest-path` (there is no `--static-pod-path`), and refuses to
//!   start with a `--node-labels` key in a Kubernetes namespace other than `node.kubernetes.io`,
//!   `kubelet.kubernetes.io` and a short allowed list: the roles are `node.kubernetes.io/*`.

use specs::{DesiredCluster, DesiredNode, OsArch, RaidSetup, Role};

/// The kubelet image (Typhoon's, which tracks upstream releases).
pub const KUBELET_IMAGE: &str = "quay.io/poseidon/kubelet:v1.32.3";
/// The etcd image.
pub const ETCD_IMAGE: &str = "quay.io/coreos/etcd:v3.5.17";

/// Where containerd, which ships with Flatcar and runs docker's containers too, serves CRI.
pub const CONTAINERD_SOCKET: &str = "unix:///run/containerd/containerd.sock";

/// The file `coreos-metadata.service` writes: the node's addresses from the Packet metadata
/// service (`COREOS_PACKET_IPV4_PRIVATE_0`, `COREOS_PACKET_IPV4_PUBLIC_0`, …).
const METADATA_FILE: &str = "/run/metadata/flatcar";

/// The label every controller's kubelet sets on itself; the control plane's nodeSelectors
/// select it. `node.kubernetes.io/*` is a namespace a kubelet may label itself in.
pub const CONTROLLER_LABEL: &str = "node.kubernetes.io/master";
/// The label of every worker.
pub const WORKER_LABEL: &str = "node.kubernetes.io/node";
/// The taint that keeps ordinary pods off controllers (a taint, not a label: no self-label rule).
pub const CONTROLLER_TAINT: &str = "node-role.kubernetes.io/master=:NoSchedule";
/// Lokomotive's label with the node's public IPv4, which its users' tools read.
const PUBLIC_IPV4_LABEL: &str = "lokomotive.alpha.kinvolk.io/public-ipv4";

/// `coreos-metadata.service` as the templates define it: Packet's metadata from the kernel
/// command line into [`METADATA_FILE`], before the kubelet and etcd read it.
pub fn coreos_metadata() -> String {
    format!(
        "[Unit]\n\
         Description=Flatcar Metadata Agent\n\
         [Service]\n\
         Type=oneshot\n\
         RemainAfterExit=true\n\
         Environment=COREOS_METADATA_OPT_PROVIDER=--cmdline\n\
         ExecStart=/usr/bin/coreos-metadata ${{COREOS_METADATA_OPT_PROVIDER}} --attributes={METADATA_FILE}\n\
         [Install]\n\
         RequiredBy=metadata.target\n"
    )
}

/// `coreos-metadata.service` of a rack's node: the same [`METADATA_FILE`] with the same names,
/// written from the machine's addresses in the spec. Afterburn (`coreos-metadata`) serves
/// `COREOS_PACKET_*` only on Packet, whose metadata service a rack does not have; Typhoon's
/// bare-metal nodes likewise take their addresses from their own configuration, not from a
/// metadata service. Same unit name, so the kubelet's and etcd's `Requires=`/`After=` hold.
pub fn machine_metadata(hostname: &str, machine: &specs::Machine) -> String {
    let (public, private) = (machine.public_ipv4, machine.private_ipv4);
    // `echo` of validated names and addresses: nothing for systemd's `%` specifiers or the
    // shell to expand.
    format!(
        "[Unit]\n\
         Description=The node's addresses, from its machine in the spec\n\
         [Service]\n\
         Type=oneshot\n\
         RemainAfterExit=true\n\
         ExecStart=/usr/bin/mkdir -p /run/metadata\n\
         ExecStart=/usr/bin/sh -c 'echo COREOS_PACKET_HOSTNAME={hostname} >{METADATA_FILE}; \
         echo COREOS_PACKET_IPV4_PUBLIC_0={public} >>{METADATA_FILE}; \
         echo COREOS_PACKET_IPV4_PRIVATE_0={private} >>{METADATA_FILE}'\n\
         [Install]\n\
         RequiredBy=metadata.target\n"
    )
}

/// The kubelet's `--node-labels`: the role label, the spec's labels (workers) and the public IPv4.
fn node_labels(node: &DesiredNode) -> String {
    let mut labels = Vec::new();
    match node.role {
        Role::Controller => {
            labels.push(format!("{CONTROLLER_LABEL}="));
            labels.push("node.kubernetes.io/controller=true".to_owned());
        }
        Role::Worker => {
            labels.push(format!("{WORKER_LABEL}="));
            labels.extend(node.labels.iter().map(|(k, v)| format!("{k}={v}")));
        }
    }
    labels.push(format!(
        "{PUBLIC_IPV4_LABEL}=${{COREOS_PACKET_IPV4_PUBLIC_0}}"
    ));
    labels.join(",")
}

fn taints(node: &DesiredNode) -> String {
    match node.role {
        Role::Controller => CONTROLLER_TAINT.to_owned(),
        Role::Worker => node
            .taints
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(","),
    }
}

/// `kubelet.service`: the kubelet of [`KUBELET_IMAGE`] in a privileged host container.
pub fn kubelet(cluster: &DesiredCluster, node: &DesiredNode) -> String {
    let settings = &cluster.settings;
    let taints = taints(node);
    let taints = if taints.is_empty() {
        String::new()
    } else {
        format!("  --register-with-taints={taints} \\\n")
    };
    // Workers: the data RAID is mounted on /mnt and iSCSI volumes need the host's initiator.
    let worker_mounts = match node.role {
        Role::Worker => "  -v /mnt:/mnt:rshared -v /etc/iscsi:/etc/iscsi \\\n",
        Role::Controller => "",
    };
    format!(
        "[Unit]\n\
         Description=Kubelet ({KUBELET_IMAGE})\n\
         Requires=docker.service containerd.service coreos-metadata.service\n\
         After=docker.service containerd.service coreos-metadata.service\n\
         Wants=rpc-statd.service\n\
         [Service]\n\
         EnvironmentFile={METADATA_FILE}\n\
         ExecStartPre=/bin/mkdir -p /etc/kubernetes/manifests /etc/cni/net.d /opt/cni/bin /var/lib/calico /var/lib/cni /var/lib/kubelet/volumeplugins /var/log/pods\n\
         ExecStartPre=/bin/sh -c \"grep certificate-authority-data /etc/kubernetes/kubeconfig | awk '{{print $2}}' | base64 -d > /etc/kubernetes/ca.crt\"\n\
         ExecStartPre=-/usr/bin/docker rm -f kubelet\n\
         ExecStart=/usr/bin/docker run --rm --name kubelet --privileged --pid host --network host \\\n\
         \x20 -v /etc/kubernetes:/etc/kubernetes:ro -v /etc/cni/net.d:/etc/cni/net.d:ro \\\n\
         \x20 -v /etc/machine-id:/etc/machine-id:ro -v /usr/lib/os-release:/etc/os-release:ro \\\n\
         \x20 -v /lib/modules:/lib/modules:ro -v /run:/run -v /dev:/dev -v /sys/fs/cgroup:/sys/fs/cgroup \\\n\
         \x20 -v /var/lib/calico:/var/lib/calico:ro -v /var/lib/cni:/var/lib/cni \\\n\
         \x20 -v /var/lib/containerd:/var/lib/containerd -v /var/lib/kubelet:/var/lib/kubelet:rshared \\\n\
         \x20 -v /var/log:/var/log -v /opt/cni/bin:/opt/cni/bin \\\n\
         {worker_mounts}\
         \x20 {KUBELET_IMAGE} \\\n\
         \x20 --anonymous-auth=false \\\n\
         \x20 --authentication-token-webhook \\\n\
         \x20 --authorization-mode=Webhook \\\n\
         \x20 --bootstrap-kubeconfig=/etc/kubernetes/kubeconfig \\\n\
         \x20 --cgroup-driver=systemd \\\n\
         \x20 --client-ca-file=/etc/kubernetes/ca.crt \\\n\
         \x20 --cluster-dns={dns} \\\n\
         \x20 --cluster-domain={domain} \\\n\
         \x20 --container-runtime-endpoint={CONTAINERD_SOCKET} \\\n\
         \x20 --hostname-override={hostname} \\\n\
         \x20 --kubeconfig=/var/lib/kubelet/kubeconfig \\\n\
         \x20 --node-ip=${{COREOS_PACKET_IPV4_PRIVATE_0}} \\\n\
         \x20 --node-labels={labels} \\\n\
         \x20 --pod-manifest-path=/etc/kubernetes/manifests \\\n\
         \x20 --read-only-port=0 \\\n\
         {taints}\
         \x20 --rotate-certificates \\\n\
         \x20 --volume-plugin-dir=/var/lib/kubelet/volumeplugins\n\
         ExecStop=-/usr/bin/docker stop kubelet\n\
         Restart=always\n\
         RestartSec=10\n\
         [Install]\n\
         WantedBy=multi-user.target\n",
        dns = cluster.dns_service_ip,
        domain = settings.cluster_domain_suffix,
        hostname = node.hostname,
        labels = node_labels(node),
    )
}

fn etcd_initial_cluster(cluster: &DesiredCluster) -> String {
    (0..cluster.settings.controller_count)
        .map(|j| format!("etcd{j}=https://{}:2380", cluster.etcd_host(j)))
        .collect::<Vec<_>>()
        .join(",")
}

/// Where [`etcd_rejoin`] records that this member joins an existing cluster.
const ETCD_STATE_DROPIN: &str = "/etc/systemd/system/etcd-member.service.d/50-rejoin.conf";

/// `etcd-member.service`: member `etcd<i>` in a host container, with client and peer
/// certificate authentication; `/opt/etcd-rejoin` runs after it fails.
pub fn etcd(cluster: &DesiredCluster, node: &DesiredNode) -> String {
    let i = node.index;
    let me = cluster.etcd_host(i);
    let arch_env = match node.os.arch() {
        OsArch::Arm64 => "Environment=ETCD_UNSUPPORTED_ARCH=arm64\n",
        _ => "",
    };
    // Metrics on the node's private address only: Prometheus scrapes them from inside the
    // cluster, and the world has no business there (the 2019 template listened on 0.0.0.0 and
    // opened the port to everyone).
    format!(
        "[Unit]\n\
         Description=etcd ({ETCD_IMAGE})\n\
         Requires=docker.service coreos-metadata.service{wait}\n\
         After=docker.service coreos-metadata.service{wait}\n\
         [Service]\n\
         EnvironmentFile={METADATA_FILE}\n\
         {arch_env}\
         ExecStartPre=/bin/mkdir -p /var/lib/etcd\n\
         ExecStartPre=-/usr/bin/docker rm -f etcd\n\
         ExecStart=/usr/bin/docker run --rm --name etcd --network host \\\n\
         \x20 -v /var/lib/etcd:/var/lib/etcd -v /etc/ssl/etcd:/etc/ssl/etcd:ro \\\n\
         \x20 -e ETCD_UNSUPPORTED_ARCH -e ETCD_INITIAL_CLUSTER_STATE \\\n\
         \x20 {ETCD_IMAGE} /usr/local/bin/etcd \\\n\
         \x20 --name=etcd{i} \\\n\
         \x20 --data-dir=/var/lib/etcd \\\n\
         \x20 --advertise-client-urls=https://{me}:2379 \\\n\
         \x20 --initial-advertise-peer-urls=https://{me}:2380 \\\n\
         \x20 --listen-client-urls=https://0.0.0.0:2379 \\\n\
         \x20 --listen-peer-urls=https://0.0.0.0:2380 \\\n\
         \x20 --listen-metrics-urls=http://${{COREOS_PACKET_IPV4_PRIVATE_0}}:2381 \\\n\
         \x20 --initial-cluster={initial} \\\n\
         \x20 --strict-reconfig-check \\\n\
         \x20 --trusted-ca-file=/etc/ssl/etcd/etcd/server-ca.crt \\\n\
         \x20 --cert-file=/etc/ssl/etcd/etcd/server.crt \\\n\
         \x20 --key-file=/etc/ssl/etcd/etcd/server.key \\\n\
         \x20 --client-cert-auth=true \\\n\
         \x20 --peer-trusted-ca-file=/etc/ssl/etcd/etcd/peer-ca.crt \\\n\
         \x20 --peer-cert-file=/etc/ssl/etcd/etcd/peer.crt \\\n\
         \x20 --peer-key-file=/etc/ssl/etcd/etcd/peer.key \\\n\
         \x20 --peer-client-cert-auth=true\n\
         ExecStop=-/usr/bin/docker stop etcd\n\
         ExecStopPost=-/opt/etcd-rejoin\n\
         Restart=always\n\
         RestartSec=10s\n\
         [Install]\n\
         WantedBy=multi-user.target\n",
        initial = etcd_initial_cluster(cluster),
        wait = match waits_for_dns(cluster) {
            true => " wait-for-dns.service",
            false => "",
        },
    )
}

/// `/opt/etcd-rejoin`, the templates' script: a member that keeps failing (a reprovisioned
/// controller: empty data directory, while the cluster still lists the old member) is removed
/// and added again, and starts as a member of the existing cluster. etcdctl comes from the etcd
/// image, since Flatcar no longer ships it.
///
/// What it reads is etcdctl's text as v3.5 prints it (`etcdctl/ctlv3/command/printer_simple.go`):
/// `endpoint health` prints `<endpoint> is healthy: ...` (stdout; stderr in v3.4) or
/// `<endpoint> is unhealthy: ...` (stderr) per endpoint and exits 1 when any is unhealthy, and
/// `member list -w simple` prints `ID, status, name, peer URLs, client URLs, is learner` with an
/// empty name for a member added but never started.
pub fn etcd_rejoin(cluster: &DesiredCluster, node: &DesiredNode) -> String {
    let me = cluster.etcd_host(node.index);
    let endpoints = (0..cluster.settings.controller_count)
        .map(|j| format!("https://{}:2379", cluster.etcd_host(j)))
        .collect::<Vec<_>>()
        .join(",");
    format!(
        r#"#!/bin/bash
set -euo pipefail
# Not provisioned yet (loko copies the certificates), or stopped on purpose: nothing to do.
[ -d /etc/ssl/etcd/etcd ] || exit 0
# `systemctl stop` or `restart` runs `docker stop`, and etcd, the container's PID 1, exits 0 on
# SIGTERM (pkg/osutil/interrupt_unix.go): the service ends in success, never "killed".
[ "${{SERVICE_RESULT:-}}" = success ] && exit 0
[ "${{EXIT_CODE:-}}" = killed ] && exit 0
# Only a member that fails again within 120 s is considered lost.
now=$(date +%s)
last=$(cat /var/lib/etcd-last-fail 2>/dev/null || echo 0)
echo "$now" > /var/lib/etcd-last-fail
[ $((now - last)) -gt 120 ] && exit 0
own_client=https://{me}:2379
own_peer=https://{me}:2380
etcdctl() {{
  /usr/bin/docker run --rm --network host -v /etc/ssl/etcd:/etc/ssl/etcd:ro {ETCD_IMAGE} \
    /usr/local/bin/etcdctl --cacert=/etc/ssl/etcd/etcd-client-ca.crt \
    --cert=/etc/ssl/etcd/etcd-client.crt --key=/etc/ssl/etcd/etcd-client.key \
    --endpoints={endpoints} "$@"
}}
# etcdctl exits 1 whenever an endpoint is unhealthy, which is when there is work here: its
# status means nothing, its lines do. An endpoint that commits a proposal has a quorum behind it.
health=$(etcdctl endpoint health 2>&1) || true
own_healthy=no
quorum=no
while read -r endpoint _ verdict _; do
  [ "$verdict" = healthy: ] || continue
  if [ "$endpoint" = "$own_client" ]; then own_healthy=yes; else quorum=yes; fi
done <<< "$health"
# A healthy member was not lost.
[ "$own_healthy" = yes ] && exit 0
# Without a quorum no member can be removed or added: change nothing, keep the data.
[ "$quorum" = yes ] || exit 0
# The old member by its peer URL: named etcd{index} once started, nameless if added but never
# started (a rejoin that did not finish).
members=$(etcdctl member list -w simple)
old_id=$(awk -F', ' -v peer="$own_peer" '$4 == peer {{ print $1 }}' <<< "$members")
if [ -n "$old_id" ]; then etcdctl member remove "$old_id"; fi
etcdctl member add etcd{index} --peer-urls="$own_peer"
# The old data is the removed member's: set aside, and the new member starts empty.
if [ -e /var/lib/etcd ]; then mv /var/lib/etcd "/var/lib/etcd-bkp-$now"; fi
mkdir -p "$(dirname {ETCD_STATE_DROPIN})"
printf '[Service]\nEnvironment=ETCD_INITIAL_CLUSTER_STATE=existing\n' > {ETCD_STATE_DROPIN}
# Restart=always starts etcd again after RestartSec, with the reloaded drop-in. (The templates'
# `systemctl restart etcd-member &` ran in the unit's cgroup, which systemd kills after this.)
systemctl daemon-reload
"#,
        index = node.index,
    )
}

/// Whether the controllers run [`wait_for_dns`]: only when Route53 names etcd's members; a
/// cluster without a zone names them by address, and nothing has to resolve.
pub fn waits_for_dns(cluster: &DesiredCluster) -> bool {
    cluster.settings.route53().is_some()
}

/// `wait-for-dns.service`: etcd and the kubelet start once the etcd members' names resolve.
/// loko writes those records once the devices have their addresses, after they booted; without
/// this wait, etcd would fail on its first peers and back off. `getent hosts` with several names
/// exits 2 while any of them does not resolve (getent(1)).
pub fn wait_for_dns(cluster: &DesiredCluster) -> String {
    let names: Vec<String> = (0..cluster.settings.controller_count)
        .map(|j| cluster.etcd_host(j))
        .collect();
    format!(
        "[Unit]\n\
         Description=Wait for DNS entries\n\
         Wants=systemd-resolved.service\n\
         Before=kubelet.service etcd-member.service\n\
         [Service]\n\
         Type=oneshot\n\
         RemainAfterExit=true\n\
         ExecStart=/bin/sh -c 'while ! /usr/bin/getent hosts {names} > /dev/null; do sleep 1; done'\n\
         [Install]\n\
         RequiredBy=kubelet.service etcd-member.service\n",
        names = names.join(" ")
    )
}

/// `delete-node.service`: a worker deletes its own Node when it shuts down, as its kubelet:
/// with the kubeconfig TLS bootstrap wrote (`/var/lib/kubelet/kubeconfig`, naming the rotated
/// certificate under `/var/lib/kubelet/pki`), so as `system:node:<hostname>`. RBAC's
/// `kubelet-delete` ClusterRole lets group `system:nodes` delete nodes (the Node authorizer
/// grants no delete), and NodeRestriction lets a node delete only its own Node
/// (k8s.io/kubernetes v1.32 plugin/pkg/admission/noderestriction `admitNode`).
pub fn delete_node(node: &DesiredNode) -> String {
    format!(
        "[Unit]\n\
         Description=Delete this node from the cluster on shutdown\n\
         Requires=docker.service\n\
         After=docker.service network-online.target\n\
         Wants=network-online.target\n\
         [Service]\n\
         Type=oneshot\n\
         RemainAfterExit=true\n\
         ExecStart=/bin/true\n\
         ExecStop=/usr/bin/docker run --rm --network host -v /var/lib/kubelet:/var/lib/kubelet:ro \\\n\
         \x20 --entrypoint /usr/local/bin/kubectl {KUBELET_IMAGE} \\\n\
         \x20 --kubeconfig=/var/lib/kubelet/kubeconfig delete node {hostname}\n\
         [Install]\n\
         WantedBy=multi-user.target\n",
        hostname = node.hostname,
    )
}

/// `persist-data-raid.service`: builds the data RAID once; `/etc/mdadm.conf` and `/etc/fstab`
/// bring it back at every later boot.
pub const RAID: &str = "[Unit]\n\
Description=Persist data RAID if exists\n\
ConditionPathExists=!/etc/mdadm.conf\n\
Before=kubelet.service\n\
[Service]\n\
Type=oneshot\n\
RemainAfterExit=true\n\
ExecStart=/opt/persist-data-raid\n\
[Install]\n\
WantedBy=multi-user.target\n\
RequiredBy=kubelet.service\n";

/// The templates' RAID 0 of the extra disks (unmounted, of the block majors of SCSI and NVMe
/// disks): all of them, HDDs only (rotational 1) or SSDs only (rotational 0), with an ext4 file
/// system on `/mnt` unless asked not to. The array goes into `/etc/mdadm.conf` and the mount into
/// `/etc/fstab`, so both come back after a reboot.
pub fn raid_script(raid: RaidSetup) -> Option<String> {
    let (device, rotational, filesystem) = match raid {
        RaidSetup::None => return None,
        RaidSetup::AllDisks => ("node-local-storage", "-1", true),
        RaidSetup::Hdd => ("node-local-hdd-storage", "1", true),
        RaidSetup::Ssd { filesystem } => ("node-local-ssd-storage", "0", filesystem),
    };
    let mkfs = if filesystem {
        "mkfs.ext4 -F \"$device\"\n\
         mount \"$device\" /mnt/\n\
         echo \"$device /mnt/ ext4 defaults,nofail,discard 0 0\" >> /etc/fstab\n"
    } else {
        ""
    };
    // The disks are collected in an array, never word-split, and the loop ends with an `if`:
    // a `[ … ] && …` that fails on the last disk (the largest, if mounted) would make the loop,
    // and under `set -e` and `pipefail` the script, fail before building the array.
    Some(format!(
        r#"#!/bin/bash
set -euo pipefail
device=/dev/md/{device}
# -1: disks of any kind; 1: HDDs only; 0: SSDs only (lsblk's ROTA).
rotational={rotational}
# An array that exists (but /etc/mdadm.conf was lost) is left alone.
[ -n "$(mdadm --detail --scan)" ] && exit 0
# Disks of majors 8 (SCSI) and 259 (NVMe), by size, of the wanted kind, with nothing mounted.
listing=$(lsblk -lnpd -x size -o path,rota -I 8,259)
disks=()
while read -r path rota; do
  if [ -z "$path" ]; then continue; fi
  if [ "$rotational" != -1 ] && [ "$rotational" != "$rota" ]; then continue; fi
  if [ -z "$(lsblk -ln -o mountpoint "$path" | tr -d '[:space:]')" ]; then disks+=("$path"); fi
done <<< "$listing"
[ "${{#disks[@]}}" -lt 1 ] && exit 0
mdadm --create "$device" --homehost=any --force --run --name={device} --level=0 --raid-devices="${{#disks[@]}}" "${{disks[@]}}"
while [ ! -L "$device" ]; do sleep 1; done
mdadm --detail --scan | grep "ARRAY $device " >> /etc/mdadm.conf
{mkfs}"#
    ))
}

/// The iPXE installer's script: installs Flatcar on the smallest unmounted disk (the
/// templates' `flatcar-install -s`: the first disk may be a data disk) with the node's own
/// Ignition, then boots it. Its unit retries a failed download.
pub fn installer_script(channel: &str, version: &str, arch: OsArch, postinstall: &str) -> String {
    let board = match arch {
        OsArch::Arm64 => "arm64-usr",
        _ => "amd64-usr",
    };
    format!(
        "#!/bin/bash\nset -euxo pipefail\n\
         flatcar-install -s -C {channel} -V {version} -B {board} -o packet -i {postinstall}\n\
         udevadm settle\n\
         systemctl reboot\n"
    )
}

/// `installer.service`: tried again every minute, up to five times an hour, as the templates
/// did: a mirror that fails once must not leave the machine in the installer.
pub const INSTALLER: &str = "[Unit]\n\
Description=Install Flatcar to disk\n\
StartLimitBurst=5\n\
StartLimitIntervalSec=3600s\n\
Requires=network-online.target\n\
After=network-online.target\n\
[Service]\n\
Type=simple\n\
Restart=on-failure\n\
RestartSec=60\n\
ExecStart=/opt/installer\n\
[Install]\n\
WantedBy=multi-user.target\n";

/// The wipe of a retired rack machine's disk (`super::wipe`): once, after which the script
/// powers the machine off. No restart: a wipe that failed leaves the machine on, which loko
/// reports, and an operator can read the journal over SSH (port 2222).
pub const WIPE: &str = "[Unit]\n\
Description=Wipe the install disk, then power off\n\
[Service]\n\
Type=oneshot\n\
ExecStart=/opt/wipe\n\
[Install]\n\
WantedBy=multi-user.target\n";

/// The installer's sshd listens on 2222, as in the templates: loko waits for the installed
/// system's SSH on 22 (with the host key it pinned) and never mistakes the installer for it.
pub const INSTALLER_SSHD_PORT: &str = "[Socket]\nListenStream=\nListenStream=2222\n";
