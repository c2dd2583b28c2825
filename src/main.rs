//! The `loko` command line: thin glue over the library crates.
//!
//! Exit codes (documented in the README and `loko --help`):
//! 0 done, 1 run failed (resumable), 2 bad spec, usage or configuration, 3 journal locked by
//! another run, 4 the cluster differs from the spec (`loko status`), 130 interrupted (Ctrl-C or
//! SIGTERM), 141 stdout closed by its reader.

mod adopt;
mod bench_cmd;
mod bench_plot;
mod bench_timeline;
mod cli;
mod completion_cmd;
mod demo_agent;
mod failure;
mod guard;
mod journal_cmd;
mod journal_location;
mod journal_view;
mod kubeconfig_cmd;
mod notices;
mod output;
mod progress;
mod pull_cmd;
mod rack_run;
mod refresh;
mod run_cmd;
mod setup;
mod sim_cmd;
mod sim_rack;
mod sim_session;
mod spec_cmd;
mod status_cmd;
mod target;
mod team;
mod wiring;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command, JournalAction};
use crate::output::errln;

// Opening a long journal allocates a great deal in a short time (see journal/src/snapshot.rs);
// mimalloc does that about twice as fast as glibc's allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc 3's include/mimalloc.h (libmimalloc-sys names no
/// constant for it), and its default.
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
const PURGE_DELAY_DEFAULT_MS: std::os::raw::c_long = 1000;

/// mimalloc 3 gives freed memory back to the OS a second after it is freed (its
/// `purge_delay`, 1000 ms), so the bursts of a run (a journal snapshot of megabytes, thousands
/// of steps starting, a listing of 5,000 devices every few seconds) stayed resident on top of
/// each other: a 5,000-worker type change peaked at 291 MB, and at 251 MB with no delay. The
/// cost is a system call per freed span, little beside a run's HTTP and journal I/O.
fn purge_freed_memory_at_once() {
    // SAFETY: mimalloc's options are integers read and written atomically at any time.
    unsafe {
        // Only the option this expects: another mimalloc, or MIMALLOC_PURGE_DELAY set by
        // the user, is left as it is.
        if libmimalloc_sys::mi_option_get(PURGE_DELAY) == PURGE_DELAY_DEFAULT_MS {
            libmimalloc_sys::mi_option_set(PURGE_DELAY, 0);
        }
    }
}

fn main() -> ExitCode {
    purge_freed_memory_at_once();
    let cli = Cli::parse();
    // The one redactor of the process, handed to all that prints or journals: the commands tell
    // it the token and keys they read, and steps what they learn (see journal::Redactor).
    let redactor = journal::Redactor::new();
    init_tracing(cli.verbose, &redactor);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            errln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let verbose = cli.verbose > 0;
    match runtime.block_on(dispatch(cli, &redactor)) {
        Ok(code) => code,
        Err(err) => failure::report(&err, verbose, &redactor),
    }
}

async fn dispatch(cli: Cli, redactor: &journal::Redactor) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run(args) => run_cmd::run(&args.cluster.global, &args, redactor).await,
        Command::Plan(args) => {
            no_sim("plan", &args.no_sim)?;
            run_cmd::plan(&args.global, &args, redactor).await
        }
        Command::Destroy(args) => run_cmd::destroy(&args.cluster.global, &args, redactor).await,
        Command::Status(args) => status_cmd::status(&args.cluster.global, &args, redactor).await,
        Command::Graph(args) => {
            no_sim("graph", &args.no_sim)?;
            run_cmd::graph(&args.global, &args).await
        }
        Command::Journal(args) => {
            no_sim("journal", &args.no_sim)?;
            match &args.action {
                Some(JournalAction::Unlock(unlock)) => journal_cmd::unlock(unlock),
                Some(JournalAction::Push(push)) => journal_cmd::push(push),
                Some(JournalAction::Pull(pull)) => pull_cmd::pull(pull),
                None => journal_view::run(&args.global, &args).await,
            }
        }
        Command::Validate(args) => {
            no_sim("validate", &args.no_sim)?;
            spec_cmd::validate(&args)
        }
        Command::Schema => spec_cmd::schema(),
        Command::Sim(args) => sim_cmd::run(&args).await,
        Command::Bench(args) => bench_cmd::bench(&args, redactor).await,
        Command::Kubeconfig(args) => kubeconfig_cmd::kubeconfig(&args),
        Command::Completion(args) => completion_cmd::completion(&args),
        Command::Man => completion_cmd::man(),
    }
}

/// `--sim` means something only to commands that call an API: the others say so.
fn no_sim(command: &str, flag: &cli::NoSim) -> anyhow::Result<()> {
    if !flag.sim {
        return Ok(());
    }
    Err(failure::UserError::usage(
        format!("loko {command} calls no API, so it takes no --sim"),
        format!(
            "drop --sim: loko {command} reads the spec and its journal, the demo's as any other; \
             --sim is for run, destroy and status"
        ),
    )
    .into())
}

/// Logs go to stderr through `tracing`: `-v` for info, `-vv` for debug, or `RUST_LOG`.
fn init_tracing(verbose: u8, redactor: &journal::Redactor) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    // The AWS SDK warns at length (a kilobyte a line) about every credential source it tried;
    // the preflight says what is missing in one line, so its warnings wait for -vv.
    let default = match verbose {
        0 | 1 => format!("{default},aws_config=error,aws_runtime=error"),
        _ => default.to_owned(),
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer({
            let redactor = redactor.clone();
            move || LogWriter(redactor.clone())
        })
        // Colors for a terminal (not under NO_COLOR), plain text for files and pipes.
        .with_ansi(console::colors_enabled_stderr())
        .without_time()
        .try_init();
}

/// Where log lines go: stderr, above the progress line, with secrets and request signatures
/// redacted (the AWS SDK's trace logs print each signed request: its credential and signature).
struct LogWriter(journal::Redactor);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = redact_log(&self.0, &String::from_utf8_lossy(buf));
        progress::suspended(|| std::io::stderr().write_all(text.as_bytes()))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// [`journal::Redactor::redact`], and the values of SigV4's `Credential=` (the access key id) and
/// `Signature=`, and of session token headers, whatever key they belong to.
fn redact_log(redactor: &journal::Redactor, text: &str) -> String {
    let mut out = redactor.redact(text);
    for marker in [
        "Credential=",
        "Signature=",
        "x-amz-security-token: ",
        "X-Amz-Security-Token=",
    ] {
        out = redact_after(&out, marker);
    }
    out
}

/// Replaces what follows each `marker`, up to a delimiter, with [`journal::REDACTED`].
fn redact_after(text: &str, marker: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(marker) {
        let value = &rest[at + marker.len()..];
        let end = value
            .find(['/', ',', ' ', '"', '&', '\n', '\'', ')'])
            .unwrap_or(value.len());
        out.push_str(&rest[..at + marker.len()]);
        if end > 0 {
            out.push_str(journal::REDACTED);
        }
        rest = &value[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The option index is the purge delay of the mimalloc linked in: no other option of
    /// mimalloc 3 defaults to 1000, and setting it reads back.
    #[test]
    fn the_purge_delay_option_is_the_one_named() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        // SAFETY: as in `purge_freed_memory_at_once`.
        let (before, after) = unsafe {
            let before = libmimalloc_sys::mi_option_get(PURGE_DELAY);
            purge_freed_memory_at_once();
            (before, libmimalloc_sys::mi_option_get(PURGE_DELAY))
        };
        assert_eq!((before, after), (PURGE_DELAY_DEFAULT_MS, 0));
    }
}
