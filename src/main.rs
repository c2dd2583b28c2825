//! The `loko` command line: thin glue over the library crates.
//!
//! Exit codes (documented in the README and `loko --help`):
//! 0 done, 1 run failed (resumable), 2 bad spec or usage, 3 journal locked by another run,
//! 130 interrupted.

mod bench_cmd;
mod bench_plot;
mod cli;
mod demo_agent;
mod failure;
mod guard;
mod journal_view;
mod progress;
mod run_cmd;
mod sim_cmd;
mod spec_cmd;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

// Opening a long journal allocates a great deal in a short time (see journal/src/snapshot.rs);
// mimalloc does that about twice as fast as glibc's allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let verbose = cli.verbose > 0;
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(err) => failure::report(&err, verbose),
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run(args) => run_cmd::run(&cli.global, &args).await,
        Command::Plan(args) => run_cmd::plan(&cli.global, &args).await,
        Command::Destroy(args) => run_cmd::destroy(&cli.global, &args).await,
        Command::Status(args) => run_cmd::status(&cli.global, &args).await,
        Command::Graph(args) => run_cmd::graph(&cli.global, &args).await,
        Command::Journal(args) => journal_view::run(&cli.global, &args),
        Command::Validate(args) => spec_cmd::validate(&args),
        Command::Schema => spec_cmd::schema(),
        Command::Sim(args) => sim_cmd::run(&args).await,
        Command::Bench(args) => bench_cmd::bench(&args).await,
    }
}

/// Logs go to stderr through `tracing`: `-v` for info, `-vv` for debug, or `RUST_LOG`.
fn init_tracing(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colors for a terminal, plain text for files and pipes.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .try_init();
}
