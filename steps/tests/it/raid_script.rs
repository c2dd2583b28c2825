//! `/opt/persist-data-raid` under real bash on a worker's root ([`NodeRoot`]), with stand-ins
//! for the disk tools (`lsblk`, `mdadm`, `mkfs.ext4`, `mount`) that answer as the node's disks
//! would and log what they were asked: the RAID is built from exactly the unmounted disks of
//! the wanted kind, whichever disk comes last.

use loko_tests::node_root::NodeRoot;
use loko_tests::rendered::render_example;

use crate::pki_support::text;

/// The worker's disks, smallest first as `lsblk -x size` lists them: `path rota mountpoint`.
/// The largest is an HDD with something mounted (a disk the operator uses): it comes last.
const DISKS: &str = "/dev/sda 0 /\n/dev/sdb 1 -\n/dev/sdc 1 -\n/dev/sdd 1 /srv\n";

/// `lsblk`: `-lnpd -x size -o path,rota -I 8,259` lists the disks; `-ln -o mountpoint DISK`
/// prints the disk's mount point (nothing when none).
const LSBLK: &str = r#"#!/bin/bash
set -euo pipefail
if [ "$*" = "-lnpd -x size -o path,rota -I 8,259" ]; then
  while read -r path rota _; do echo "$path $rota"; done < /etc/test-disks
  exit 0
fi
[ "$1 $2 $3" = "-ln -o mountpoint" ] || { echo "lsblk stand-in: $*" >&2; exit 1; }
while read -r path _ mounted; do
  if [ "$path" = "$4" ] && [ "$mounted" != - ]; then echo "$mounted"; fi
done < /etc/test-disks
"#;

/// `mdadm`: `--detail --scan` prints the arrays made so far; `--create DEVICE …` makes one
/// (its device link too, as udev would).
const MDADM: &str = r#"#!/bin/bash
set -euo pipefail
echo "mdadm $*" >> /etc/test-calls
if [ "$1" = --detail ]; then cat /etc/test-arrays 2>/dev/null || true; exit 0; fi
[ "$1" = --create ] || { echo "mdadm stand-in: $*" >&2; exit 1; }
mkdir -p "$(dirname "$2")"
ln -s /dev/null "$2"
echo "ARRAY $2 metadata=1.2 name=any:$(basename "$2") UUID=0:0:0:0" >> /etc/test-arrays
"#;

const LOGGED: &str = "#!/bin/bash\necho \"$(basename \"$0\") $*\" >> /etc/test-calls\n";

#[test]
fn the_raid_script_builds_the_array_of_the_unmounted_disks_of_its_kind() {
    let rendered = render_example("flannel.yaml");
    // The archive pool: HDDs only (`setup_raid_hdd`), with a file system.
    let host = "lattice-archive-worker-0";
    let script = rendered
        .file(host, "/opt/persist-data-raid")
        .expect("the archive worker has the RAID script");

    let mut node = NodeRoot::new(&["/etc", "/usr/bin", "/usr/sbin", "/opt", "/dev"]);
    node.write("/opt/persist-data-raid", script, 0o700);
    node.write("/etc/test-disks", DISKS, 0o644);
    node.write("/usr/bin/lsblk", LSBLK, 0o755);
    node.write("/usr/sbin/mdadm", MDADM, 0o755);
    node.write("/usr/sbin/mkfs.ext4", LOGGED, 0o755);
    node.write("/usr/bin/mount", LOGGED, 0o755);
    node.start(None);

    let out = node
        .command("/opt/persist-data-raid")
        // systemd's PATH on the node, without /usr/local: only the node's programs.
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .output()
        .expect("the RAID script runs");
    assert!(out.status.success(), "{}", text(&out));
    let calls = node.read("/etc/test-calls").unwrap_or_default();
    let device = "/dev/md/node-local-hdd-storage";
    assert!(
        calls.contains(&format!(
            "mdadm --create {device} --homehost=any --force --run \
             --name=node-local-hdd-storage --level=0 --raid-devices=2 /dev/sdb /dev/sdc\n"
        )),
        "not an array of the two unmounted HDDs: {calls}"
    );
    assert!(calls.contains(&format!("mkfs.ext4 -F {device}")), "{calls}");
    assert!(calls.contains(&format!("mount {device} /mnt/")), "{calls}");
    let conf = node.read("/etc/mdadm.conf").unwrap_or_default();
    assert!(conf.starts_with(&format!("ARRAY {device} ")), "{conf}");
    let fstab = node.read("/etc/fstab").unwrap_or_default();
    assert!(
        fstab.ends_with(&format!(
            "{device} /mnt/ ext4 defaults,nofail,discard 0 0\n"
        )),
        "{fstab}"
    );

    // Run again (the unit's ConditionPathExists=!/etc/mdadm.conf aside): an array exists, so
    // nothing is created twice.
    let again = node
        .command("/opt/persist-data-raid")
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .output()
        .expect("the RAID script runs");
    assert!(again.status.success());
    let calls = node.read("/etc/test-calls").unwrap_or_default();
    assert_eq!(calls.matches("mdadm --create").count(), 1, "{calls}");
}
