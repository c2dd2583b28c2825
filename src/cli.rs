//! Command-line definitions.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

const EXIT_CODES: &str = "Exit codes: 0 done, 1 run failed (resumable), 2 bad spec, usage or \
configuration, 3 journal locked by another run (or this run lost its lease on an etcd journal), 4 the cluster differs from the spec (status), \
130 interrupted (Ctrl-C or SIGTERM; resumable).";

/// Provision Kubernetes clusters on Packet (Equinix Metal) bare metal with Flatcar Linux.
#[derive(Debug, Parser)]
#[command(name = "loko", version, after_help = EXIT_CODES)]
pub struct Cli {
    /// More logs on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

/// Where a cluster's state lives: the options of the commands that read or write it.
#[derive(Debug, Args, Default)]
pub struct Global {
    /// Directory of loko's state (the journal, the demo's simulated cloud); default
    /// `<asset_dir>/.loko` of the spec.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Keep the journal in etcd, shared by everyone who reaches it, instead of the state
    /// directory: `etcd://HOST:PORT[,HOST:PORT...]/PREFIX`.
    #[arg(long, value_name = "URL", env = "LOKO_JOURNAL")]
    pub journal: Option<String>,
    /// The CA of etcd's serving certificate (TLS to etcd).
    #[arg(long, value_name = "FILE", env = "LOKO_JOURNAL_CA")]
    pub journal_ca: Option<PathBuf>,
    /// A client certificate for etcd (with --journal-key).
    #[arg(long, value_name = "FILE", env = "LOKO_JOURNAL_CERT")]
    pub journal_cert: Option<PathBuf>,
    /// The client certificate's key.
    #[arg(long, value_name = "FILE", env = "LOKO_JOURNAL_KEY")]
    pub journal_key: Option<PathBuf>,
}

/// `--sim` given to a command that calls no API: accepted by the parser so that the error can
/// say so, instead of clap's advice to pass it as a value (`-- --sim`).
#[derive(Debug, Args)]
pub struct NoSim {
    #[arg(long, hide = true)]
    pub sim: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Bring the cluster to the spec: create it, apply a change, or resume an unfinished run.
    #[command(after_help = "Examples:\n  \
        loko run examples/tutorial.yaml --sim        # the demo: everything simulated in-process\n  \
        PACKET_AUTH_TOKEN=... loko run cluster.yaml  # real Packet and Route53 (AWS credential chain)\n\n\
        A run that failed or was interrupted resumes where it stopped when run again.")]
    Run(RunArgs),
    /// Show what `loko run` would add, change and destroy: read-only calls only (the cluster's
    /// devices and records, when a token is set), nothing changed.
    #[command(after_help = "Example:\n  loko plan examples/tutorial.yaml")]
    Plan(PlanArgs),
    /// Delete every device tagged with the cluster and its DNS records.
    #[command(
        after_help = "Example:\n  loko destroy examples/tutorial.yaml --yes\n\n\
        The asset directory (CA, keys, kubeconfigs) is kept: a later `loko run` reuses it."
    )]
    Destroy(DestroyArgs),
    /// Each node's device (id, state, IPs) and each DNS record, and what differs from the spec.
    #[command(
        after_help = "Examples:\n  loko status cluster.yaml\n  loko status examples/tutorial.yaml --sim"
    )]
    Status(StatusArgs),
    /// Print the provisioning DAG as Graphviz DOT.
    #[command(after_help = "Example:\n  loko graph examples/tutorial.yaml | dot -Tsvg > plan.svg")]
    Graph(GraphArgs),
    /// Show the journal: every run, a run's steps, a step's attempts.
    #[command(
        override_usage = "loko journal [SPEC] [RUN] [--state-dir DIR] [--journal URL] [--step ID] [--json] [--follow [--since RUN]]\n       \
        loko journal unlock SPEC [--force]\n       \
        loko journal push SPEC --to URL",
        after_help = "Examples:\n  \
        loko journal cluster.yaml                  # every run\n  \
        loko journal cluster.yaml 3                # the steps of run 3\n  \
        loko journal cluster.yaml 3 --step device/supernova-controller-0\n  \
        loko journal cluster.yaml 3 --json         # one JSON object per event\n  \
        loko journal cluster.yaml --follow         # watch the run in progress, or the next\n  \
        loko journal cluster.yaml --follow --since 3   # runs 3 on, then the runs to come\n  \
        loko journal --state-dir assets/supernova/.loko 3   # without the spec\n\n\
        A journal shared through etcd (--journal or LOKO_JOURNAL):\n  \
        loko journal push cluster.yaml --to etcd://10.0.0.5:2379/supernova   # move it there\n  \
        loko journal cluster.yaml --journal etcd://10.0.0.5:2379/supernova --follow\n  \
        loko journal unlock cluster.yaml --journal etcd://10.0.0.5:2379/supernova --force"
    )]
    Journal(JournalArgs),
    /// Check a spec without touching any API: every error with its field, line and column.
    #[command(after_help = "Example:\n  loko validate examples/tutorial.yaml")]
    Validate(ValidateArgs),
    /// Print the JSON Schema of spec.yaml, for editors.
    #[command(after_help = "Example:\n  loko schema > spec.schema.json")]
    Schema,
    /// Run the simulator: a Packet API, Route53, SSH-reachable nodes and an apiserver.
    #[command(after_help = "Examples:\n  \
        loko sim --spec cluster.yaml --time-scale 0.01 --state /tmp/sim.json\n  \
        loko sim --listen 127.0.0.1:8080 --time-scale 0.01\n\n\
        It prints its endpoints, what to paste into the spec and the shell, and serves until \
        Ctrl-C or SIGTERM.")]
    Sim(SimArgs),
    /// Create, scale up, scale down, change the type of and destroy clusters of 3 controllers
    /// and 1 to 5000 workers against the simulator, each run against its own lower bound.
    #[command(after_help = "Examples:\n  \
        loko bench                                        # every scenario at 1 to 5000 workers\n  \
        loko bench --workers 1,10 --scenarios create,scale-down --time-scale 0.05\n  \
        loko bench --workers 100,1000 --plot bench.svg\n\n\
        The scenarios run in this order on one cluster per size (create, change type, scale \
        down, scale up, destroy); those not selected but needed before a selected one run \
        unreported. One table row and one JSON line per size and scenario. The bound is the \
        scenario's simulated critical path, including what Packet's rate limit forces; the \
        ratio is the makespan over it.")]
    Bench(BenchArgs),
    /// Print the path of a kubeconfig that reaches the cluster (for `export KUBECONFIG=$(...)`):
    /// the admin one, or where the apiserver's name does not resolve, one by address.
    #[command(after_help = "Example:\n  \
        export KUBECONFIG=$(loko kubeconfig cluster.yaml) && kubectl get nodes")]
    Kubeconfig(KubeconfigArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(after_help = "Examples:\n  \
        loko completion bash > ~/.local/share/bash-completion/completions/loko\n  \
        loko completion zsh > \"${fpath[1]}/_loko\"\n  \
        loko completion fish > ~/.config/fish/completions/loko.fish")]
    Completion(CompletionArgs),
    /// Print loko's man page (roff), with every subcommand.
    #[command(after_help = "Example:\n  \
        loko man > ~/.local/share/man/man1/loko.1 && man loko")]
    Man,
}

/// `loko kubeconfig SPEC`.
#[derive(Debug, Args)]
pub struct KubeconfigArgs {
    /// The spec file.
    pub spec: PathBuf,
    #[command(flatten)]
    pub global: Global,
    /// Even where the apiserver's name resolves: write one that reaches the first controller
    /// at its public address, verifying the apiserver by its name, and print its path.
    #[arg(long)]
    pub by_address: bool,
}

/// `loko completion SHELL`.
#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// The shell to complete in.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// The kinds of run `loko bench` measures, in the order it runs them on one cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// 3 controllers and N workers from nothing.
    Create,
    /// Every pool's type changes: N devices deleted and created again.
    ChangeType,
    /// Every pool to 0: N devices deleted.
    ScaleDown,
    /// Every pool from 0 back: N devices created.
    ScaleUp,
    /// `loko destroy`: N + 3 devices and the DNS records deleted.
    Destroy,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The cluster sizes, in workers (3 controllers each; pools of at most 1000).
    #[arg(long, value_delimiter = ',', default_values_t = [1, 10, 100, 1000, 5000])]
    pub workers: Vec<usize>,
    /// The scenarios to report.
    #[arg(long, value_delimiter = ',', value_enum, default_values_t = [
        Scenario::Create, Scenario::ChangeType, Scenario::ScaleDown, Scenario::ScaleUp,
        Scenario::Destroy,
    ])]
    pub scenarios: Vec<Scenario>,
    /// Real seconds per simulated second. Smaller is quicker, but below 0.2 the simulator's own
    /// work (booting thousands of emulated machines on this host) shows in the figures.
    #[arg(long, default_value_t = 0.2)]
    pub time_scale: f64,
    /// The simulated Packet API's rate limit, in requests per simulated minute; 0 lifts it.
    /// The bounds account for it: no scheduler sends 1000 creates in the first minute.
    #[arg(long, default_value_t = sim::RateLimit::default().requests)]
    pub api_rate_limit: u32,
    /// Keep each cluster's journal in etcd (`etcd://HOST:PORT[,...]/PREFIX`), under
    /// `PREFIX/bench-<pid>-<workers>`, to measure what the shared journal costs.
    #[arg(long, value_name = "URL")]
    pub journal: Option<String>,
    /// Also draw ratio and makespan against workers, one line per scenario, as an SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Run this spec once and print loko's own figures as JSON (what each run's child
    /// process does, against the parent's simulator).
    #[arg(long, hide = true)]
    pub spec: Option<PathBuf>,
    /// With --spec: `loko destroy` instead of `loko run`.
    #[arg(long, hide = true)]
    pub destroy: bool,
    #[arg(long, hide = true, default_value_t = 22)]
    pub ssh_port: u16,
    #[arg(long, hide = true, default_value = "core")]
    pub ssh_user: String,
}

/// The in-process simulator, for the demo and for trying loko without an account.
#[derive(Debug, Args)]
pub struct SimOptions {
    /// Run against a simulator started in this process (state kept in the state directory,
    /// so a resumed demo sees the same cloud); needs no token, agent or network.
    #[arg(long)]
    pub sim: bool,
    /// Real seconds per simulated second: with --sim, the simulator's pace (default 0.01);
    /// without, shrinks loko's own polls and deadlines to match a simulator started with
    /// `loko sim --time-scale` (default 1, real time).
    #[arg(long, value_name = "SCALE")]
    pub time_scale: Option<f64>,
    /// With --sim: a fault plan for the simulator (see sim/faults.example.yaml).
    #[arg(long, value_name = "FILE", requires = "sim")]
    pub sim_faults: Option<PathBuf>,
}

/// The cluster of a command that calls its APIs (`run`, `destroy`, `status`): its spec, where
/// its state lives, and whether the APIs are a simulator's in this process.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// The spec file.
    pub spec: PathBuf,
    #[command(flatten)]
    pub global: Global,
    #[command(flatten)]
    pub sim: SimOptions,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Overwrite DNS records of the cluster's names that loko did not write.
    #[arg(long)]
    pub take_over_dns: bool,
    /// The nodes' SSH port (the simulator's nodes listen on another port than 22).
    #[arg(long, default_value_t = 22)]
    pub ssh_port: u16,
    /// The user loko logs in as (Flatcar's is core).
    #[arg(long, default_value = "core")]
    pub ssh_user: String,
    /// One JSON object per event on stdout instead of lines of text.
    #[arg(long)]
    pub json: bool,
    /// Create more than --max-new-devices devices, and delete the devices the plan deletes,
    /// without asking.
    #[arg(long)]
    pub yes: bool,
    /// Delete the devices the plan deletes (scale down, type change, removed pool) without
    /// asking; required for that when not on a terminal, unless --yes.
    #[arg(long)]
    pub allow_delete: bool,
    /// Take over the devices of this cluster whose journal was lost: those tagged with the
    /// cluster id of this asset directory's CA. They are listed first and need a yes (--yes
    /// without a terminal); devices of another CA are never taken.
    #[arg(long)]
    pub adopt: bool,
    /// Delete the devices of workers leaving the cluster without draining their nodes first
    /// (when the cluster is down and its API cannot be reached).
    #[arg(long)]
    pub skip_drain: bool,
    /// How long a drain asks again for evictions a PodDisruptionBudget refuses, before the
    /// run fails naming the pods and budgets (e.g. 5m, 30s).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub drain_timeout: Option<std::time::Duration>,
    /// Ask before a run creates more new devices than this (without a terminal: refuse).
    #[arg(long, env = "LOKO_MAX_NEW_DEVICES", value_name = "N",
          default_value_t = crate::guard::DEFAULT_MAX_NEW_DEVICES)]
    pub max_new_devices: usize,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The spec file.
    pub spec: PathBuf,
    #[command(flatten)]
    pub global: Global,
    #[command(flatten)]
    pub no_sim: NoSim,
    /// The changes as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Do not list the cloud: the plan from the journal alone. By default, with a token in
    /// the environment, the cluster's devices and records are listed first and what the
    /// journal records but the cloud no longer has is planned again.
    #[arg(long)]
    pub no_refresh: bool,
}

#[derive(Debug, Args)]
pub struct DestroyArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Do not ask for confirmation (required when not on a terminal).
    #[arg(long)]
    pub yes: bool,
    /// One JSON object per event on stdout instead of lines of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// The nodes, records and differences as one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct GraphArgs {
    /// The spec file.
    pub spec: PathBuf,
    #[command(flatten)]
    pub global: Global,
    #[command(flatten)]
    pub no_sim: NoSim,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The spec file.
    pub spec: PathBuf,
    #[command(flatten)]
    pub no_sim: NoSim,
}

#[derive(Debug, Args)]
pub struct SimArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: std::net::SocketAddr,
    /// Real seconds per simulated second: 0.001 makes a 5-minute provisioning take 300 ms.
    #[arg(long, default_value_t = 1.0)]
    pub time_scale: f64,
    /// Fault plan (YAML or JSON), see sim/faults.example.yaml.
    #[arg(long, value_name = "FILE")]
    pub faults: Option<PathBuf>,
    /// Persist the cloud's state here, and resume from it when it exists.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Port of each node's SSH server (on the node's own 127.x.y.z address).
    #[arg(long, default_value_t = 2222)]
    pub ssh_port: u16,
    /// Where the nodes' root directories live (default: beside --state, else a temporary dir).
    #[arg(long, value_name = "DIR")]
    pub node_root: Option<PathBuf>,
    /// Run each node's SSH with a real OpenSSH sshd instead of the embedded server.
    #[arg(long)]
    pub openssh: bool,
    /// The hosted zone that exists from the start.
    #[arg(long, default_value = "example.com", conflicts_with = "spec")]
    pub zone: String,
    /// Seed the simulated cloud from this spec, as `loko run SPEC --sim` does: its project,
    /// hosted zone (name and id) and hardware reservations.
    #[arg(long, value_name = "SPEC")]
    pub spec: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct JournalArgs {
    #[command(subcommand)]
    pub action: Option<JournalAction>,
    /// The spec file (its state directory holds the journal), or with --state-dir, the run.
    #[arg(value_name = "SPEC")]
    pub spec: Option<String>,
    /// The run to show; without it, every run is listed.
    #[arg(value_name = "RUN")]
    pub run: Option<u64>,
    #[command(flatten)]
    pub global: Global,
    /// Print the events of the run in progress (or of the next one) as they are journaled,
    /// until its loko exits. Reads what the running loko publishes; never takes the lock.
    #[arg(long, conflicts_with_all = ["step", "run"])]
    pub follow: bool,
    /// With --follow: also every run from RUN on, then the runs to come.
    #[arg(long, value_name = "RUN", requires = "follow")]
    pub since: Option<u64>,
    #[command(flatten)]
    pub no_sim: NoSim,
    /// Show every attempt of this step (in RUN, or in the last run).
    #[arg(long, value_name = "ID")]
    pub step: Option<String>,
    /// One JSON object per line instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// What `loko journal` does besides showing the journal.
#[derive(Debug, Subcommand)]
pub enum JournalAction {
    /// Show who holds the journal's lock; with --force, break an etcd lock by revoking its
    /// holder's lease (the holder, if alive, is fenced: its next append is refused).
    #[command(
        after_help = "Example:\n  loko journal unlock cluster.yaml --journal etcd://10.0.0.5:2379/supernova --force"
    )]
    Unlock(UnlockArgs),
    /// Copy the journal in the state directory into an empty etcd journal.
    #[command(
        after_help = "Example:\n  loko journal push cluster.yaml --to etcd://10.0.0.5:2379/supernova"
    )]
    Push(PushArgs),
    /// Copy an etcd journal, and the cluster's assets it keeps, into the state directory and
    /// asset directory of this machine (both empty of it): the cluster back to one machine.
    #[command(
        after_help = "Example:\n  loko journal pull cluster.yaml --from etcd://10.0.0.5:2379/supernova"
    )]
    Pull(PullArgs),
}

#[derive(Debug, Args)]
pub struct UnlockArgs {
    /// The spec file.
    #[arg(value_name = "SPEC")]
    pub spec: PathBuf,
    #[command(flatten)]
    pub global: Global,
    /// Revoke the holder's lease. Only for a holder that is stuck: a live run is stopped at
    /// its next append.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// The spec file (its state directory holds the journal to copy).
    #[arg(value_name = "SPEC")]
    pub spec: PathBuf,
    #[command(flatten)]
    pub global: Global,
    /// The etcd journal to copy to: `etcd://HOST:PORT[,HOST:PORT...]/PREFIX`.
    #[arg(long, value_name = "URL")]
    pub to: String,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// The spec file (its state directory receives the journal, its asset_dir the assets).
    #[arg(value_name = "SPEC")]
    pub spec: PathBuf,
    #[command(flatten)]
    pub global: Global,
    /// The etcd journal to copy from: `etcd://HOST:PORT[,HOST:PORT...]/PREFIX`.
    #[arg(long, value_name = "URL")]
    pub from: String,
}
