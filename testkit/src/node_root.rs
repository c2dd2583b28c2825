//! A node's file system and network on this machine, for running what loko puts on a node with
//! the real programs that run it there, without touching the host.
//!
//! A [`NodeRoot`] is a mount namespace in which chosen directories of the host (`/etc`,
//! `/var/lib`, `/usr/bin`, `/opt`, …) are overlays: the host's files below, the test's above.
//! A script on the node finds the host's programs and the files the test put there (stand-ins
//! for the node's `docker` or `systemctl` among them, at their paths on the node), and all it
//! writes or removes lands in the test's directory. Its processes may share a [`NetNamespace`],
//! a loopback of their own, so that several nodes serve the same ports on 127.0.0.x.
//!
//! Both are held by a `sleep` that is killed on drop; every command enters them with `nsenter`.
//! Mount and network namespaces need root (scripts/test runs as root, as CI does).

use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Killed;

/// Starts `setup` (a shell program ending in `exec sleep`) and waits until it reached the sleep,
/// that is until the namespaces it made are ready to be entered.
fn hold(mut cmd: Command, what: &str) -> (Killed, u32) {
    let child: Child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e} (unshare and nsenter: Debian package util-linux)"));
    let pid = child.id();
    let mut held = Killed(child);
    let start = Instant::now();
    loop {
        if let Ok(Some(status)) = held.0.try_wait() {
            let mut err = String::new();
            if let Some(mut stderr) = held.0.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut stderr, &mut err);
            }
            panic!("{what} exited {status}: {err} (it needs root)");
        }
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() == "sleep" {
            return (held, pid);
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{what} is not ready"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A network namespace with its loopback up: 127.0.0.0/8 is all its own.
pub struct NetNamespace {
    _holder: Killed,
    pid: u32,
}

impl NetNamespace {
    /// Makes one.
    pub fn new() -> NetNamespace {
        let mut cmd = Command::new("unshare");
        cmd.args([
            "--net",
            "--",
            "sh",
            "-c",
            "ip link set lo up && exec sleep 86400",
        ]);
        let (holder, pid) = hold(cmd, "unshare --net, then ip link (Debian package iproute2)");
        NetNamespace {
            _holder: holder,
            pid,
        }
    }

    /// `program` run in the namespace (and otherwise on the host).
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--target={}", self.pid))
            .args(["--net", "--", program]);
        cmd
    }
}

impl Default for NetNamespace {
    fn default() -> Self {
        NetNamespace::new()
    }
}

/// A node's view of the file system: the host's directories `dirs` with the test's files over
/// them. Write the node's files with [`NodeRoot::write`], then [`NodeRoot::start`] it.
pub struct NodeRoot {
    tmp: tempfile::TempDir,
    dirs: Vec<String>,
    holder: Option<(Killed, u32)>,
}

impl NodeRoot {
    /// A node whose `dirs` (absolute host directories, none inside another) are overlaid.
    pub fn new(dirs: &[&str]) -> NodeRoot {
        let tmp = tempfile::tempdir().expect("a temporary directory");
        for dir in dirs {
            assert!(dir.starts_with('/'), "{dir}: not absolute");
            for layer in ["upper", "work"] {
                std::fs::create_dir_all(tmp.path().join(layer).join(&dir[1..]))
                    .expect("an overlay layer");
            }
        }
        NodeRoot {
            tmp,
            dirs: dirs.iter().map(|d| (*d).to_owned()).collect(),
            holder: None,
        }
    }

    /// Where the node's `path` is in the test's layer: what the test put there, and what the
    /// node's programs wrote (a removed file is an overlay whiteout there, not a file).
    pub fn path(&self, path: &str) -> PathBuf {
        let dir = self
            .dirs
            .iter()
            .find(|d| path.starts_with(&format!("{d}/")))
            .unwrap_or_else(|| panic!("{path} is not under an overlaid directory {:?}", self.dirs));
        self.tmp
            .path()
            .join("upper")
            .join(&dir[1..])
            .join(&path[dir.len() + 1..])
    }

    /// Puts a file on the node, with its mode (before the node starts).
    pub fn write(&self, path: &str, contents: impl AsRef<[u8]>, mode: u32) {
        assert!(
            self.holder.is_none(),
            "{path}: written after the node started"
        );
        let at = self.path(path);
        if let Some(parent) = at.parent() {
            std::fs::create_dir_all(parent).expect("the file's directory");
        }
        std::fs::write(&at, contents).unwrap_or_else(|e| panic!("{}: {e}", at.display()));
        std::fs::set_permissions(&at, std::fs::Permissions::from_mode(mode)).expect("its mode");
    }

    /// The node's file `path` as its programs see it now, if it exists.
    pub fn read(&self, path: &str) -> Option<String> {
        let out = self
            .command("cat")
            .arg(path)
            .output()
            .expect("cat on the node");
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Mounts the overlays in a new mount namespace, inside `net` if given.
    pub fn start(&mut self, net: Option<&NetNamespace>) {
        // The host's `mount` and `sleep`, copied where no overlay reaches: a node may have its
        // own stand-in at their paths, which the first overlays would put in their place.
        let tools = self.tmp.path().join("host-tools");
        std::fs::create_dir_all(&tools).expect("a directory for the host's tools");
        for tool in ["mount", "sleep"] {
            let out = Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .expect("sh");
            let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            std::fs::copy(&path, tools.join(tool)).unwrap_or_else(|e| {
                panic!("{tool} ({path}): {e} (Debian packages mount, coreutils)")
            });
        }
        let mount = tools.join("mount").display().to_string();
        let mut setup = String::new();
        for dir in &self.dirs {
            let upper = self.tmp.path().join("upper").join(&dir[1..]);
            let work = self.tmp.path().join("work").join(&dir[1..]);
            setup.push_str(&format!(
                "'{mount}' -t overlay overlay -o 'lowerdir={dir},upperdir={},workdir={}' '{dir}' && ",
                upper.display(),
                work.display()
            ));
        }
        setup.push_str(&format!("exec '{}' 86400", tools.join("sleep").display()));
        let mut cmd = match net {
            Some(net) => net.command("unshare"),
            None => Command::new("unshare"),
        };
        cmd.args(["--mount", "--propagation=private", "--", "sh", "-c", &setup]);
        self.holder = Some(hold(cmd, "the node's mount namespace"));
    }

    /// `program` run on the started node: its file system, and its network namespace if any.
    pub fn command(&self, program: &str) -> Command {
        let (_, pid) = self.holder.as_ref().expect("the node is started");
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--target={pid}"))
            .args(["--mount", "--net", "--", program]);
        cmd
    }
}
