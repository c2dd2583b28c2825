//! Command-line definitions.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

const EXIT_CODES: &str = "Exit codes: 0 done, 1 run failed (resumable), 2 bad spec or usage, \
3 journal locked by another run, 130 interrupted.";

/// Provision Kubernetes clusters on Packet (Equinix Metal) bare metal with Flatcar Linux.
#[derive(Debug, Parser)]
#[command(name = "loko", version, after_help = EXIT_CODES)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    /// More logs on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// Directory of loko's state (the journal); default `<asset_dir>/.loko` of the spec.
    #[arg(long, global = true, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the journal: every run, a run's steps, a step's attempts.
    #[command(after_help = "Examples:\n  \
        loko journal --state-dir assets/supernova/.loko            # every run\n  \
        loko journal --state-dir assets/supernova/.loko 3          # the steps of run 3\n  \
        loko journal --state-dir assets/supernova/.loko 3 --step device/supernova-controller-0\n  \
        loko journal --state-dir assets/supernova/.loko 3 --json   # one JSON object per event")]
    Journal(JournalArgs),
}

#[derive(Debug, Args)]
pub struct JournalArgs {
    /// The run to show; without it, every run is listed.
    pub run: Option<u64>,
    /// Show every attempt of this step (in RUN, or in the last run).
    #[arg(long, value_name = "ID")]
    pub step: Option<String>,
    /// One JSON object per line instead of tables.
    #[arg(long)]
    pub json: bool,
}
