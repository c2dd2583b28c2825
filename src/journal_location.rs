//! Where a cluster's journal lives, and the commands that act on its store: `--journal` (or
//! `LOKO_JOURNAL`) picks etcd over the state directory for every command that reads or writes
//! the journal; `loko journal unlock` shows and breaks an etcd lock; `loko journal push`
//! copies a state directory's journal into etcd.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use journal::store::{EtcdConfig, EtcdStore, EtcdTls};
use journal::{Journal, JournalError, Location};

use crate::cli::{Global, PushArgs, UnlockArgs};
use crate::failure::{EXIT_LOCKED, EXIT_USAGE, UserError};
use crate::output::outln;

/// The journal's directory inside the state directory.
pub fn journal_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("journal")
}

/// The journal of the cluster whose state directory is `state_dir`: etcd when `--journal`
/// (or `LOKO_JOURNAL`) names it, else the state directory's `journal`.
pub(crate) fn location(global: &Global, state_dir: &Path) -> anyhow::Result<Location> {
    match &global.journal {
        Some(url) => Ok(Location::Etcd(etcd_config(global, url)?)),
        None if tls(global).is_some() => Err(UserError::usage(
            "--journal-ca, --journal-cert and --journal-key are for an etcd journal",
            "add --journal etcd://HOST:PORT/PREFIX (or set LOKO_JOURNAL), or drop them",
        )
        .into()),
        None => Ok(Location::Dir(journal_dir(state_dir))),
    }
}

/// `url` with the TLS files of `global`.
pub(crate) fn etcd_config(global: &Global, url: &str) -> anyhow::Result<EtcdConfig> {
    let mut config = EtcdConfig::parse(url).map_err(|e| {
        UserError::usage(
            format!("--journal: {e}"),
            "write it as etcd://HOST:PORT[,HOST:PORT...]/PREFIX, e.g. etcd://10.0.0.5:2379/supernova",
        )
    })?;
    config.tls = tls(global);
    Ok(config)
}

fn tls(global: &Global) -> Option<EtcdTls> {
    let tls = EtcdTls {
        ca: global.journal_ca.clone(),
        cert: global.journal_cert.clone(),
        key: global.journal_key.clone(),
    };
    (tls != EtcdTls::default()).then_some(tls)
}

/// Opens (and locks) the journal at `location`, creating a state directory if needed; its
/// events pass through `redactor` (the process's, which knows what the run reads).
pub(crate) fn open_journal(
    location: &Location,
    redactor: &journal::Redactor,
) -> anyhow::Result<Arc<Journal>> {
    if let Location::Dir(dir) = location
        && let Some(state_dir) = dir.parent()
    {
        std::fs::create_dir_all(state_dir).map_err(|e| UserError {
            message: format!(
                "cannot create the state directory {}: {e}",
                state_dir.display()
            ),
            code: EXIT_USAGE,
            hint: Some("choose a writable place with --state-dir".into()),
        })?;
    }
    Ok(Arc::new(Journal::open_redacting(
        location,
        redactor.clone(),
    )?))
}

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
