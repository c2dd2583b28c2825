//! `loko journal pull SPEC --from URL`: a cluster whose journal is in etcd brought back to this
//! machine: its records into the state directory's journal, its assets (opened with this
//! operator's identity) into the asset directory. The reverse of `loko journal push`.

use std::process::ExitCode;

use journal::{Journal, Location};

use crate::cli::PullArgs;
use crate::failure::UserError;
use crate::journal_location::{etcd_config, journal_dir};
use crate::output::outln;
use crate::target::Target;

pub(crate) fn pull(args: &PullArgs) -> anyhow::Result<ExitCode> {
    let local = crate::target::target(&args.global, &args.spec)?;
    let dir = journal_dir(&local.state_dir);
    if dir.exists() {
        return Err(UserError::usage(
            format!("a journal exists at {}", dir.display()),
            "pull copies into a state directory without a journal: choose another --state-dir, or move that one away",
        )
        .into());
    }
    let from = etcd_config(&args.global, &args.from)?;
    // The etcd journal must be this spec's cluster's, as for every command.
    let remote = Target {
        journal: Location::Etcd(from.clone()),
        ..local
    };
    crate::team::check(&remote, &args.spec)?;
    // The assets first: a refused identity leaves no journal behind.
    crate::team::fill_from_store(&remote)?;
    let n = Journal::pull_from(&from, &dir)?;
    outln!(
        "copied {n} records from {} to {}, and its assets into {}; run loko without --journal (and LOKO_JOURNAL) to use them",
        from.url(),
        dir.display(),
        remote.assets.display()
    );
    Ok(ExitCode::SUCCESS)
}
