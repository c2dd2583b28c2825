//! A team runs one cluster from any machine: the journal is bound to the cluster it holds, so a
//! spec of another cluster pointed at it is refused by every command, before anything else.

use std::path::Path;
use std::process::{Command, Output};

const LOKO: &str = env!("CARGO_BIN_EXE_loko");

fn loko(dir: &Path, args: &[&str]) -> Output {
    Command::new(LOKO)
        .current_dir(dir)
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("LOKO_JOURNAL")
        .output()
        .expect("run loko")
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

/// A copy of the tutorial named `name` (another cluster when not "supernova"), in `dir`.
fn spec_named(dir: &Path, name: &str) -> String {
    let tutorial = std::fs::read_to_string(loko_tests::rendered::example_path("tutorial.yaml"))
        .expect("the tutorial");
    let file = format!("{name}.yaml");
    std::fs::write(
        dir.join(&file),
        tutorial.replace("cluster_name: supernova", &format!("cluster_name: {name}")),
    )
    .expect("write the spec");
    file
}

/// Every command that names a spec refuses one of another cluster than `journal` holds, naming
/// both; `extra` points it at that journal.
fn every_command_refuses(dir: &Path, spec: &str, journal: &str, extra: &[&str]) {
    let commands: [&[&str]; 7] = [
        &["plan", spec],
        &["status", spec],
        &["run", spec, "--sim", "--yes"],
        &["destroy", spec, "--sim", "--yes"],
        &["journal", spec],
        &["kubeconfig", spec],
        &[
            "journal",
            "push",
            spec,
            "--to",
            "etcd://127.0.0.1:1/elsewhere",
        ],
    ];
    for command in commands {
        let out = loko(dir, &[command, extra].concat());
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command:?}: {err}");
        assert!(
            err.contains(&format!(
                "journal {journal} belongs to cluster \"supernova\" (zone packet.example.com, project "
            )) && err.contains(&format!("{spec} names \"nova\"")),
            "{command:?}: {err}"
        );
    }
}

#[test]
fn a_journal_refuses_the_spec_of_another_cluster_in_a_directory_and_in_etcd() {
    let etcd = loko_tests::Etcd::start(1);
    let url = etcd.url("shared");
    // Each journal with a simulated cloud of its own, in a directory of its own.
    let (in_etcd, in_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let run = |dir: &Path, extra: &[&str]| {
        let supernova = spec_named(dir, "supernova");
        let args = [&["run", &supernova, "--sim", "--time-scale", "0.02"], extra].concat();
        let out = loko(dir, &args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        spec_named(dir, "nova")
    };

    let nova = run(in_etcd.path(), &["--journal", &url]);
    every_command_refuses(in_etcd.path(), &nova, &url, &["--journal", &url]);
    // The cluster's own spec is not refused.
    let plan = loko(
        in_etcd.path(),
        &["plan", "supernova.yaml", "--journal", &url],
    );
    assert!(plan.status.success(), "{}", text(&plan.stderr));

    let nova = run(in_dir.path(), &[]);
    let state = in_dir.path().join("assets/supernova/.loko");
    let journal = state.join("journal").display().to_string();
    let state = state.display().to_string();
    every_command_refuses(in_dir.path(), &nova, &journal, &["--state-dir", &state]);
}

/// The digest in a stored asset's facts line (`loko-asset 1 sha256=... recipients=...`).
fn stored_digest(path: &str, value: &[u8]) -> String {
    let line = value.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    assert!(line.starts_with("loko-asset 1 "), "{path}: {line}");
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("sha256="))
        .unwrap_or_else(|| panic!("{path}: no digest in {line}"))
        .to_owned()
}

/// Every record of the etcd journal at `url` whose step wrote files finds them in the store, as
/// the record says they are (the digests the journal holds), and no stored value holds a private
/// key or a token in plaintext.
pub(crate) fn assert_every_record_has_its_assets(url: &str, what: &str) {
    use journal::{Journal, Location};
    let location = Location::Etcd(journal::store::EtcdConfig::parse(url).unwrap());
    let stored: std::collections::BTreeMap<String, Vec<u8>> = journal::stored_assets(&location)
        .unwrap()
        .into_iter()
        .collect();
    for (path, value) in &stored {
        let body = &value[value.iter().position(|b| *b == b'\n').unwrap() + 1..];
        assert!(
            body.starts_with(b"age-encryption.org/v1\n"),
            "{what}: {path} is not sealed"
        );
    }
    let digest_of = |path: &str| {
        let value = stored
            .get(path)
            .unwrap_or_else(|| panic!("{what}: {path} is missing from the store"));
        stored_digest(path, value)
    };
    let state = Journal::open_read_only(&location).unwrap().state();
    let mut checked = 0;
    use engine::decode_outputs;
    use steps::kinds::{IgnitionKind, ManifestsKind, PkiKind};
    use steps::step_name::StepName;
    for (step, result) in &state.ledger {
        let outputs = &result.outputs;
        match StepName::from(step) {
            StepName::Pki => {
                for path in decode_outputs::<PkiKind>(outputs).unwrap().sha256.keys() {
                    digest_of(path);
                    checked += 1;
                }
            }
            StepName::Kubeconfigs => {
                // Its `kubelet_sha256` is of the kubeconfig Ignition embeds, not of a file.
                digest_of("auth/kubeconfig-kubelet");
                digest_of("auth/kubeconfig");
                digest_of("auth/bootstrap-token.json");
                checked += 3;
            }
            StepName::Manifests => {
                let report = decode_outputs::<ManifestsKind>(outputs).unwrap().files;
                for (path, digest) in &report.files {
                    assert_eq!(&digest_of(path), digest, "{what}: {path}");
                    checked += 1;
                }
            }
            StepName::Ignition(host) => {
                let digest = decode_outputs::<IgnitionKind>(outputs)
                    .unwrap()
                    .ignition_sha256;
                assert_eq!(digest_of(&format!("ignition/{host}.ign")), digest, "{what}");
                checked += 1;
            }
            _ => {}
        }
    }
    eprintln!(
        "{what}: {checked} stored file(s) of {} records checked",
        state.ledger.len()
    );
}

/// One member of the team: a HOME of their own with an identity made by ssh-keygen, their own
/// ssh-agent holding it, and a directory of their own for the spec and its asset directory.
struct Operator {
    home: std::path::PathBuf,
    dir: std::path::PathBuf,
    agent: Option<loko_tests::SshAgent>,
    public: String,
}

impl Operator {
    fn new(root: &Path, name: &str, identity: bool) -> Operator {
        let home = root.join(name).join("home");
        let dir = root.join(name).join("work");
        std::fs::create_dir_all(home.join(".ssh")).unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        if !identity {
            return Operator {
                home,
                dir,
                agent: None,
                public: String::new(),
            };
        }
        let key = home.join(".ssh/id_ed25519");
        let made = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
            .arg(&key)
            .status()
            .unwrap();
        assert!(made.success(), "ssh-keygen");
        let agent = loko_tests::SshAgent::start(&root.join(name));
        agent.add(&key);
        let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
        Operator {
            home,
            dir,
            agent: Some(agent),
            public: public.trim().to_owned(),
        }
    }

    /// `loko ARGS` as this operator, against the world's simulator and the journal at `url`.
    fn loko(&self, w: &loko_tests::world::World, url: &str, args: &[&str]) -> Output {
        let mut command = w.command(args);
        command
            .current_dir(&self.dir)
            .env("HOME", &self.home)
            .env("LOKO_JOURNAL", url)
            .env_remove("LOKO_IDENTITY");
        if url.is_empty() {
            command.env_remove("LOKO_JOURNAL");
        }
        match &self.agent {
            Some(agent) => command.env("SSH_AUTH_SOCK", &agent.socket),
            None => command.env_remove("SSH_AUTH_SOCK"),
        };
        let out = command.output().expect("run loko");
        eprintln!(
            "{}: loko {args:?} exited {:?}\n{}{}",
            self.dir.display(),
            out.status.code(),
            text(&out.stdout),
            text(&out.stderr)
        );
        out
    }

    fn ok(&self, w: &loko_tests::world::World, url: &str, args: &[&str]) -> String {
        let out = self.loko(w, url, args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    }

    /// Writes this operator's copy of `spec` with `workers` in the helium pool.
    fn write_spec(&self, spec: &str, workers: u32) {
        let spec = spec.replace("    count: 2\n", &format!("    count: {workers}\n"));
        std::fs::write(self.dir.join("cluster.yaml"), spec).unwrap();
    }

    fn files(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![self.dir.join("assets")];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                match entry.file_type().unwrap().is_dir() {
                    true => stack.push(entry.path()),
                    false => out.push(entry.path().display().to_string()),
                }
            }
        }
        out
    }
}

/// The proof of issue 28: two operators with their own HOME, identity, ssh-agent and empty asset
/// directory share one cluster through its journal in a real etcd. A creates it; B, from
/// nothing, plans nothing to do, scales a pool, and gets a kubeconfig kubectl accepts; A follows
/// B's run and then plans nothing to do; B destroys. A third person without an identity, and a
/// fourth whose key is not in `ssh_keys`, get a clear refusal and no secret. No etcd value holds
/// a private key or the token in plaintext.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_operators_run_one_cluster_from_their_own_machines() {
    use loko_tests::world::{World, WorldConfig};
    let etcd = loko_tests::Etcd::start(1);
    let url = etcd.url("team");
    let w = World::start(
        LOKO,
        WorldConfig {
            time_scale: 0.01,
            moto: false,
            openssh: false,
        },
    )
    .await;
    let example = std::fs::read_to_string(w.spec_from_example("tutorial")).unwrap();
    let root = w.root.clone();
    let a = Operator::new(&root, "a", true);
    let b = Operator::new(&root, "b", true);
    // A third member of the team at first, removed later.
    let e = Operator::new(&root, "e", true);
    let spec = example.replacen(
        "ssh_keys:\n",
        &format!("ssh_keys:\n  - \"{}\"\n  - \"{}\"\n", a.public, b.public),
        1,
    );
    let team = |members: &[&Operator]| {
        let lines: String = members
            .iter()
            .map(|m| format!("  - \"{}\"\n", m.public))
            .collect();
        format!("{spec}recipients:\n{lines}")
    };
    let spec = team(&[&a, &b, &e]);
    a.write_spec(&spec, 2);
    b.write_spec(&spec, 2);

    a.ok(&w, &url, &["run", "cluster.yaml"]);
    assert!(b.files().is_empty());
    let plan = b.ok(&w, &url, &["plan", "cluster.yaml"]);
    assert!(plan.contains("Devices to create: 0."), "{plan}");
    let status = b.ok(&w, &url, &["status", "cluster.yaml"]);
    assert!(status.contains("The cluster matches the spec."), "{status}");

    let follower = {
        let mut command = w.command(&["journal", "cluster.yaml", "--follow", "--json"]);
        command
            .current_dir(&a.dir)
            .env("HOME", &a.home)
            .env("LOKO_JOURNAL", &url)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        loko_tests::Killed(command.spawn().unwrap())
    };
    b.write_spec(&spec, 3);
    b.ok(&w, &url, &["run", "cluster.yaml", "--yes"]);
    assert_eq!(w.devices().live.len(), 4, "one controller, three workers");
    let followed = follow_output(follower);
    assert!(
        followed.lines().any(|l| l.contains("\"run\":2")),
        "A followed B's run: {followed}"
    );
    a.write_spec(&spec, 3);
    let plan = a.ok(&w, &url, &["plan", "cluster.yaml"]);
    assert!(plan.contains("Devices to create: 0."), "{plan}");

    // A removes E from the team: the next run seals everything stored again, to A and B.
    let spec = team(&[&a, &b]);
    a.write_spec(&spec, 3);
    b.write_spec(&spec, 3);
    let out = a.loko(&w, &url, &["run", "cluster.yaml", "--yes"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("note: the recipients changed"),
        "{}",
        text(&out.stderr)
    );
    let location = journal::Location::Etcd(journal::store::EtcdConfig::parse(&url).unwrap());
    let stored = journal::stored_assets(&location).unwrap();
    assert_the_reseal_is_journaled(&w, &a, &url, [&[&a, &b, &e], &[&a, &b]], &e, stored.len());
    let removed = vault::Identities::load(&[e.home.join(".ssh/id_ed25519")]).unwrap();
    let kept = vault::Identities::load(&[a.home.join(".ssh/id_ed25519")]).unwrap();
    for (path, value) in &stored {
        let sealed = &value[value.iter().position(|c| *c == b'\n').unwrap() + 1..];
        assert!(
            matches!(
                vault::open(&removed, sealed),
                Err(vault::VaultError::NotARecipient { .. })
            ),
            "{path} still opens for a removed recipient"
        );
        vault::open(&kept, sealed).unwrap_or_else(|err| panic!("{path}: {err}"));
    }

    let kubeconfig = b.ok(&w, &url, &["kubeconfig", "cluster.yaml"]);
    let nodes = Command::new("kubectl")
        .args([
            "--kubeconfig",
            kubeconfig.trim(),
            "get",
            "nodes",
            "-o",
            "name",
        ])
        .output()
        .expect("kubectl");
    assert!(nodes.status.success(), "{}", text(&nodes.stderr));
    assert!(
        text(&nodes.stdout).lines().count() >= 1,
        "{}",
        text(&nodes.stdout)
    );

    let nobody = Operator::new(&root, "c", false);
    let stranger = Operator::new(&root, "d", true);
    for (who, refusal) in [(&nobody, "no identity"), (&stranger, "not a recipient")] {
        std::fs::write(
            who.dir.join("cluster.yaml"),
            spec.replace("count: 2", "count: 3"),
        )
        .unwrap();
        let out = who.loko(&w, &url, &["kubeconfig", "cluster.yaml"]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
        assert!(text(&out.stderr).contains(refusal), "{}", text(&out.stderr));
        assert!(who.files().is_empty(), "{:?}", who.files());
    }

    let token = std::fs::read_to_string(a.dir.join("assets/auth/bootstrap-token.json")).unwrap();
    let token: serde_json::Value = serde_json::from_str(&token).unwrap();
    let secret = token["secret"]
        .as_str()
        .expect("the token's secret")
        .to_owned();
    let everything = etcd.ctl(&["get", "--prefix", "/loko/v1/"]);
    for plaintext in ["-----BEGIN", "AGE-SECRET-KEY", &secret] {
        assert!(!everything.contains(plaintext), "{plaintext} in etcd");
    }
    assert_every_record_has_its_assets(&url, "after B's run");

    // The cluster back to one machine: A pulls it into a new directory, and uses it there
    // without etcd.
    let mut pulled = Operator::new(&root, "pulled", false);
    pulled.home = a.home.clone();
    pulled.write_spec(&spec, 3);
    let copied = pulled.ok(
        &w,
        &url,
        &["journal", "pull", "cluster.yaml", "--from", &url],
    );
    assert!(copied.contains("copied"), "{copied}");
    let ca = std::fs::read(pulled.dir.join("assets/tls/ca.key")).unwrap();
    assert_eq!(ca, std::fs::read(a.dir.join("assets/tls/ca.key")).unwrap());
    let plan = pulled.ok(&w, "", &["plan", "cluster.yaml"]);
    assert!(plan.contains("Devices to create: 0."), "{plan}");
    assert!(pulled.dir.join("assets/.loko/journal/IDENTITY").exists());

    b.ok(&w, &url, &["destroy", "cluster.yaml", "--yes"]);
    assert!(w.devices().live.is_empty());
}

/// The last run journaled the re-seal from the recipients `teams[0]` to `teams[1]`, which
/// removed `removed`: `loko journal SPEC RUN` says so with both digests and the removed key's
/// fingerprint (as `ssh-keygen -l` prints it), and `--json` carries the event.
fn assert_the_reseal_is_journaled(
    w: &loko_tests::world::World,
    who: &Operator,
    url: &str,
    teams: [&[&Operator]; 2],
    removed: &Operator,
    files: usize,
) {
    let [from, to] = teams.map(|team| {
        let keys: Vec<String> = team.iter().map(|m| m.public.clone()).collect();
        vault::Recipients::parse(&keys).unwrap().fingerprint()
    });
    let listed = who.ok(w, url, &["journal", "cluster.yaml", "--json"]);
    let last: serde_json::Value = serde_json::from_str(listed.lines().last().unwrap()).unwrap();
    let run = last["run"].to_string();
    let key = removed.home.join(".ssh/id_ed25519.pub");
    let printed = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(&key)
        .output()
        .unwrap();
    let fingerprint = text(&printed.stdout)
        .split_whitespace()
        .nth(1)
        .expect("ssh-keygen -l prints the fingerprint second")
        .to_owned();

    let shown = who.ok(w, url, &["journal", "cluster.yaml", &run]);
    let line = shown
        .lines()
        .find(|l| l.contains("assets sealed again"))
        .unwrap_or_else(|| panic!("no re-seal in run {run}: {shown}"));
    assert!(line.contains(&format!("{from} -> {to}")), "{line}");
    assert!(
        line.contains(&format!("removed: ssh-ed25519 {fingerprint}")),
        "{line}"
    );
    assert!(!line.contains("added"), "{line}");

    let records = who.ok(w, url, &["journal", "cluster.yaml", &run, "--json"]);
    let events: Vec<serde_json::Value> = records
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["event"].clone())
        .filter(|e| e.get("assets_resealed").is_some())
        .collect();
    assert_eq!(
        events,
        [serde_json::json!({"assets_resealed": {
            "from": [from],
            "to": to,
            "files": files,
            "added": [],
            "removed": [format!("ssh-ed25519 {fingerprint}")],
        }})],
        "{records}"
    );
}

/// What a `--follow` printed, once it ends by itself or after 20 s.
fn follow_output(mut child: loko_tests::Killed) -> String {
    use std::io::Read as _;
    let pid = child.0.id();
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(20));
        let _ = Command::new("kill").arg(pid.to_string()).status();
    });
    let mut out = String::new();
    child
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let _ = child.0.wait();
    out
}
