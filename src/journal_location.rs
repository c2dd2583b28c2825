//! Where a cluster's journal lives: `--journal` (or `LOKO_JOURNAL`) picks etcd over the state
//! directory for every command that reads or writes the journal. The commands that act on its
//! store are in [`crate::journal_cmd`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use journal::store::{EtcdConfig, EtcdTls};
use journal::{Journal, Location};

use crate::cli::Global;
use crate::failure::{EXIT_USAGE, UserError};

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
