//! The wipe's script run here as a retired machine runs it: bash with the real util-linux
//! (`lsblk`, `wipefs`, `blkdiscard`, `blockdev`) and `dd`, on a loop device standing for the
//! install disk, `udevadm` and `systemctl` standing in for the machine's. A loop device needs
//! root, as the namespaces of the firewall tests do.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;

use crate::node_artifacts::check_with;
use crate::pki_support::text;

const MIB: u64 = 1024 * 1024;
/// What the node's data stands for: it must not be on the disk after the wipe.
const SECRET: &[u8] = b"kubelet-client-key-8c1f0b3e-stands-for-a-secret";

/// A loop device of this test, detached when dropped.
struct Loop(String);

impl Loop {
    fn attach(image: &Path, args: &[&str]) -> Loop {
        let out = check_with(
            Command::new("losetup")
                .args(["--find", "--show"])
                .args(args)
                .arg(image),
            "mount",
        );
        assert!(out.status.success(), "losetup: {}", text(&out));
        Loop(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.0]).status();
    }
}

/// A 64 MiB disk image: an MBR whose one partition (1 MiB to 21 MiB) holds an ext4 file
/// system, and the secret among the partition's blocks.
fn disk_image(path: &Path) {
    let mut image = vec![0u8; (64 * MIB) as usize];
    // One primary Linux partition (type 0x83): start LBA 2048, 40960 sectors.
    let entry = [[0u8, 0, 0, 0, 0x83, 0, 0, 0], [0, 8, 0, 0, 0, 0xa0, 0, 0]].concat();
    image[446..462].copy_from_slice(&entry);
    image[510..512].copy_from_slice(&[0x55, 0xaa]);
    std::fs::write(path, &image).unwrap();
    {
        let partition = Loop::attach(
            path,
            &[
                "--offset",
                &MIB.to_string(),
                "--sizelimit",
                &(20 * MIB).to_string(),
            ],
        );
        let out = check_with(
            Command::new("mkfs.ext4").args(["-q", "-F", &partition.0]),
            "e2fsprogs",
        );
        assert!(out.status.success(), "mkfs.ext4: {}", text(&out));
    }
    let mut image = std::fs::read(path).unwrap();
    let at = (9 * MIB) as usize;
    image[at..at + SECRET.len()].copy_from_slice(SECRET);
    std::fs::write(path, &image).unwrap();
}

/// `blkid -p` of a device: what it probes (partition table, file system), empty when nothing.
fn probe(device: &str) -> String {
    let out = check_with(Command::new("blkid").args(["-p", device]), "util-linux");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_wipe_script_leaves_nothing_of_the_node_on_a_real_block_device() {
    let work = tempfile::tempdir().unwrap();
    let image = work.path().join("disk.img");
    disk_image(&image);
    let stubs = work.path().join("bin");
    std::fs::create_dir(&stubs).unwrap();
    let called = work.path().join("called");
    for program in ["udevadm", "systemctl"] {
        let stub = stubs.join(program);
        std::fs::write(
            &stub,
            format!(
                "#!/bin/sh\necho \"{program} $*\" >> '{}'\n",
                called.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let holds_secret = |bytes: &[u8]| bytes.windows(SECRET.len()).any(|w| w == SECRET);
    assert!(holds_secret(&std::fs::read(&image).unwrap()));
    let disk = Loop::attach(&image, &[]);
    assert!(
        probe(&disk.0).contains("PTTYPE=\"dos\""),
        "{}",
        probe(&disk.0)
    );

    let script = steps::ignition::wipe::wipe_script(&disk.0);
    let path = format!(
        "{}:{}",
        stubs.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = check_with(
        Command::new("bash")
            .arg("-c")
            .arg(&script)
            .env("PATH", path),
        "bash",
    );
    assert!(out.status.success(), "{}", text(&out));
    let called = std::fs::read_to_string(&called).unwrap();
    assert!(
        called.lines().last() == Some("systemctl poweroff"),
        "{called}"
    );

    assert_eq!(probe(&disk.0), "", "a signature is left");
    let after = std::fs::read(&image).unwrap();
    assert!(!holds_secret(&after), "the secret is still on the disk");
    let edges = (MIB as usize, after.len() - MIB as usize);
    assert!(
        after[..edges.0].iter().all(|b| *b == 0) && after[edges.1..].iter().all(|b| *b == 0),
        "the first and last MiB are not zero"
    );
}
