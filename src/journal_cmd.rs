//! The commands that act on a journal's store: `loko journal unlock` shows and breaks an etcd
//! lock; `loko journal push` copies a state directory's journal into etcd. Apart from
//! [`crate::journal_location`], which [`crate::target`] needs, so that neither imports the other.

use std::process::ExitCode;

use journal::store::{EtcdConfig, EtcdStore};
use journal::{Journal, JournalError, Location};

use crate::cli::{PushArgs, UnlockArgs};
use crate::failure::{EXIT_LOCKED, EXIT_USAGE, UserError};
use crate::journal_location::{etcd_config, journal_dir, location};
use crate::output::outln;

/// `loko journal unlock SPEC [--force]`.
pub(crate) fn unlock(args: &UnlockArgs) -> anyhow::Result<ExitCode> {
    let state_dir = crate::target::target(&args.global, &args.spec)?.state_dir;
    match location(&args.global, &state_dir)? {
        Location::Dir(dir) => match Journal::open(&dir) {
            Ok(_) => {
                outln!("journal {} is not locked", dir.display());
                Ok(ExitCode::SUCCESS)
            }
            Err(JournalError::Locked { holder, .. }) => Err(UserError {
                message: format!("journal {} is locked by {holder}", dir.display()),
                code: EXIT_LOCKED,
                hint: Some(
                    "a state directory's lock is the operating system's: it is released when its holder exits, and cannot be broken; stop that process if it is stuck"
                        .into(),
                ),
            }
            .into()),
            Err(e) => Err(e.into()),
        },
        Location::Etcd(config) => {
            let held = EtcdStore::holder(&config).map_err(|e| store_failed(&config, e))?;
            let Some(info) = held else {
                outln!("journal {} is not locked", config.url());
                return Ok(ExitCode::SUCCESS);
            };
            outln!(
                "journal {} is locked by {info} (fence {})",
                config.url(),
                info.fence
            );
            if !args.force {
                return Err(UserError {
                    message: "not unlocked".into(),
                    code: EXIT_LOCKED,
                    hint: Some(
                        "a holder that died frees the journal when its lease expires; if it is alive but stuck, pass --force to revoke its lease (its next append is then refused)"
                            .into(),
                    ),
                }
                .into());
            }
            match EtcdStore::force_unlock(&config).map_err(|e| store_failed(&config, e))? {
                Some(revoked) => outln!(
                    "revoked lease {:x} of {}; the journal is free",
                    revoked.lease,
                    revoked.holder
                ),
                None => outln!("the holder released the journal meanwhile; it is free"),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `loko journal push SPEC --to URL`.
pub(crate) fn push(args: &PushArgs) -> anyhow::Result<ExitCode> {
    let target = crate::target::target(&args.global, &args.spec)?;
    let state_dir = target.state_dir.clone();
    // The source is always the state directory's journal; --journal-ca and the like are
    // for the destination.
    let dir = journal_dir(&state_dir);
    if !dir.exists() {
        return Err(UserError::usage(
            format!("no journal at {}", dir.display()),
            "push copies the journal a `loko run` made in the state directory",
        )
        .into());
    }
    let to = etcd_config(&args.global, &args.to)?;
    let source = Journal::open(&dir)?;
    // The copy carries the cluster's identity, recorded now if no run did yet.
    crate::team::bind(&source, &target, &args.spec)?;
    let assets = crate::team::local_assets(&target)?;
    let files = assets.len();
    let n = source.push_to(&to, assets)?;
    outln!(
        "copied {n} records from {} and {files} file(s) of the asset directory (sealed to the spec's ssh_keys) to {}; from now on run loko with --journal {} (or LOKO_JOURNAL), and leave the local copy alone",
        dir.display(),
        to.url(),
        to.url()
    );
    Ok(ExitCode::SUCCESS)
}

fn store_failed(config: &EtcdConfig, e: journal::store::StoreError) -> anyhow::Error {
    let message = format!("journal {}: {e}", config.url());
    match e {
        journal::store::StoreError::Unreachable(_) => UserError {
            message,
            code: EXIT_USAGE,
            hint: Some(crate::failure::UNREACHABLE_HINT.into()),
        }
        .into(),
        _ => anyhow::anyhow!(message),
    }
}
