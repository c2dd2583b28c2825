//! A cluster run by a team from any machine: its journal is bound to the cluster's identity,
//! so a spec of another cluster pointed at it is refused before anything else; and a journal
//! in etcd keeps the cluster's assets, sealed to the spec's recipients, which every operator's
//! asset directory caches (see [`assets`]).

pub(crate) mod assets;

use std::path::Path;
use std::sync::Arc;

use journal::{ClusterIdentity, Journal, JournalError};
use specs::DesiredCluster;
use steps::assets::AssetDir;

use crate::failure::{EXIT_USAGE, UserError};
use crate::output::errln;
use crate::target::spec_target::Target;

/// The identity the spec's cluster has (with a random id, kept only if it is the first).
pub(crate) fn wanted(desired: &DesiredCluster) -> anyhow::Result<ClusterIdentity> {
    let s = &desired.settings;
    let identity = ClusterIdentity::new(
        s.cluster_name.as_str(),
        s.dns_zone.as_str(),
        // A rack (`provider: redfish`) has no Packet project: its identity is its name and zone,
        // or its name and API address when it has no zone.
        s.project_id.as_ref().map_or("", |p| p.as_str()),
    )
    .map_err(|e| anyhow::anyhow!("cannot make the cluster's random id: {e}"))?;
    Ok(match &s.api_address {
        Some(address) => identity.at_api_address(&address.to_string()),
        None => identity,
    })
}

/// Refuses `target` when its journal records another cluster than its spec names. Reads the
/// journal without its lock; a journal without an identity passes (its next run records it).
pub(crate) fn check(target: &Target, spec: &Path) -> anyhow::Result<()> {
    let Some(recorded) = journal::recorded_identity(&target.journal)? else {
        return Ok(());
    };
    let wanted = wanted(&target.desired)?;
    match recorded.same_cluster(&wanted) {
        true => Ok(()),
        false => Err(other_cluster(
            &target.journal.to_string(),
            &recorded,
            &wanted,
            spec,
        )),
    }
}

/// Binds the journal a run holds to the spec's cluster: recorded at the first run (or the
/// first of a journal from before identities), refused when it is another's.
pub(crate) fn bind(journal: &Journal, target: &Target, spec: &Path) -> anyhow::Result<()> {
    match journal.bind_identity(&wanted(&target.desired)?) {
        Ok(_) => Ok(()),
        Err(JournalError::OtherCluster {
            path,
            recorded,
            wanted,
        }) => Err(other_cluster(
            &path.display().to_string(),
            &recorded,
            &wanted,
            spec,
        )),
        Err(e) => Err(e.into()),
    }
}

fn other_cluster(
    journal: &str,
    recorded: &ClusterIdentity,
    wanted: &ClusterIdentity,
    spec: &Path,
) -> anyhow::Error {
    UserError::usage(
        format!(
            "journal {journal} belongs to cluster {recorded}; {} names {wanted}",
            spec.display()
        ),
        "a journal holds one cluster, and a cluster's name, zone, project and API address cannot change (its certificates and records carry them): use the spec of the cluster the journal holds, or give another cluster's spec its own --journal (another etcd prefix) or asset_dir",
    )
    .into()
}

/// Those the cluster's assets are sealed to: the spec's `recipients` (its `ssh_keys` when it
/// names none).
pub(crate) fn recipients(desired: &DesiredCluster) -> anyhow::Result<vault::Recipients> {
    vault::Recipients::parse(&desired.recipients()).map_err(|e| {
        UserError::usage(
            format!("recipients: {e}"),
            "the cluster's assets are sealed to the spec's recipients (or its ssh_keys): list each operator's age or SSH public key",
        )
        .into()
    })
}

/// For a command holding `journal`: when its store keeps the assets (etcd), fills the asset
/// directory `dir` from it (see [`assets::fill_cache`]), seals again what is sealed to other
/// recipients than the spec's, hands over the local files the store lacks, and returns `dir`
/// telling the journal of every file written from now on, with the re-seal's facts for the run
/// to journal (`previous`, the last run's cluster, says who was added and removed). A journal
/// in a directory leaves `dir` as it is.
pub(crate) fn share_assets(
    journal: &Journal,
    dir: AssetDir,
    desired: &DesiredCluster,
    previous: Option<&DesiredCluster>,
) -> anyhow::Result<(AssetDir, Option<engine::Resealed>)> {
    if !journal.keeps_assets() {
        return Ok((dir, None));
    }
    let recipients = recipients(desired)?;
    let to = recipients.fingerprint();
    let stored = journal.stored_assets()?;
    let filled =
        assets::fill_cache(&dir, &stored, &to, vault::Identities::discover).map_err(refusal)?;
    if !filled.replaced.is_empty() {
        errln!(
            "note: {} file(s) of {} written from the journal's store (missing or different here)",
            filled.replaced.len(),
            dir.root().display()
        );
    }
    let new_keys = desired.recipients();
    let team = Arc::new(assets::TeamAssets::new(recipients, filled.index));
    let mut resealed = None;
    if !filled.sealed_to_others.is_empty() {
        // The recipients changed: everything stored is sealed again to the new ones, with the
        // run's first record, so that one removed opens nothing written from now on.
        let identities = vault::Identities::discover().map_err(|source| {
            refusal(assets::TeamAssetError::Vault {
                path: filled.sealed_to_others[0].clone(),
                source,
            })
        })?;
        let from = assets::reseal(&stored, &filled.sealed_to_others, &team, &identities)
            .map_err(refusal)?;
        let from: Vec<String> = from.into_iter().collect();
        errln!(
            "note: the recipients changed ({} -> {to}): {} stored file(s) sealed again to the spec's recipients",
            from.join(", "),
            filled.sealed_to_others.len()
        );
        resealed = Some(resealed_facts(
            from,
            to,
            filled.sealed_to_others.len(),
            previous,
            &new_keys,
        ));
    }
    team.upload_local(&dir).map_err(refusal)?;
    journal.attach_assets(Arc::clone(&team) as _);
    Ok((dir.with_sink(team), resealed))
}

/// What the run journals of a re-seal. Who was added and removed is known when the last run's
/// recipients are what the files were sealed to (`from`); otherwise (a journal pushed from
/// elsewhere, a cluster destroyed since) only the digests are.
fn resealed_facts(
    from: Vec<String>,
    to: String,
    files: usize,
    previous: Option<&DesiredCluster>,
    next: &[String],
) -> engine::Resealed {
    let changed = previous
        .map(DesiredCluster::recipients)
        .filter(|keys| {
            vault::Recipients::parse(keys).is_ok_and(|r| from.contains(&r.fingerprint()))
        })
        .and_then(|keys| specs::recipients_changed(&keys, next))
        .unwrap_or_default();
    let named = |entries: Vec<String>| entries.iter().map(|e| public_name(e)).collect();
    engine::Resealed {
        from,
        to,
        files: files as u64,
        added: named(changed.added),
        removed: named(changed.removed),
    }
}

/// A recipient as the journal names it: an age recipient as written, an SSH key by its type
/// and OpenSSH fingerprint (what `ssh-keygen -l` prints), never its comment.
fn public_name(entry: &str) -> String {
    let entry = entry.trim();
    let kind = entry.split_whitespace().next().unwrap_or(entry);
    match steps::ssh::public_key_blob(entry) {
        Some(blob) if !kind.starts_with("age1") => {
            format!("{kind} {}", steps::ssh::fingerprint(&blob))
        }
        _ => kind.to_owned(),
    }
}

/// An `assets_resealed` event in a sentence: how many files, the recipients' digests before and
/// after, and who was added and removed. `None` for any other event.
pub(crate) fn resealed_text(event: &journal::Event) -> Option<String> {
    let journal::Event::AssetsResealed {
        from,
        to,
        files,
        added,
        removed,
    } = event
    else {
        return None;
    };
    let mut text = format!(
        "assets sealed again to new recipients: {files} file(s), recipients {} -> {to}",
        from.join(", ")
    );
    for (word, keys) in [("added", added), ("removed", removed)] {
        if !keys.is_empty() {
            text.push_str(&format!("; {word}: {}", keys.join(", ")));
        }
    }
    Some(text)
}

/// For a command that only reads (`loko kubeconfig`, `loko journal pull`): fills the asset
/// directory of `target` from its journal's store, without the journal's lock. Nothing for a
/// journal in a directory.
pub(crate) fn fill_from_store(target: &Target) -> anyhow::Result<()> {
    if !matches!(target.journal, journal::Location::Etcd(_)) {
        return Ok(());
    }
    let stored = journal::stored_assets(&target.journal)?;
    let recipients = recipients(&target.desired)?;
    let dir = AssetDir::create(&target.assets)?;
    assets::fill_cache(
        &dir,
        &stored,
        &recipients.fingerprint(),
        vault::Identities::discover,
    )
    .map_err(refusal)?;
    Ok(())
}

/// Every file of the asset directory of `target`, sealed to its recipients, for a journal
/// pushed into etcd.
pub(crate) fn local_assets(target: &Target) -> anyhow::Result<Vec<journal::AssetPut>> {
    use journal::AssetOutbox as _;
    let team = assets::TeamAssets::new(recipients(&target.desired)?, Default::default());
    team.upload_local(&AssetDir::create(&target.assets)?)
        .map_err(refusal)?;
    Ok(team.take())
}

/// A vault refusal (no identity, not a recipient) as the operator's usage error.
fn refusal(e: assets::TeamAssetError) -> anyhow::Error {
    match e {
        assets::TeamAssetError::Vault { .. } => UserError {
            message: e.to_string(),
            code: EXIT_USAGE,
            hint: Some(
                "the cluster's assets are sealed to the spec's ssh_keys: loko opens them with your private key (LOKO_IDENTITY, ~/.config/loko/identity.txt or ~/.ssh/id_ed25519); a member of the team adds your public key to ssh_keys and runs loko once"
                    .into(),
            ),
        }
        .into(),
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_are_named_by_public_key_as_ssh_keygen_prints_it() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("id");
        let made = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "alice@laptop", "-f"])
            .arg(&key)
            .status()
            .unwrap();
        assert!(made.success());
        let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
        let listed = std::process::Command::new("ssh-keygen")
            .arg("-lf")
            .arg(key.with_extension("pub"))
            .output()
            .unwrap();
        let printed = String::from_utf8(listed.stdout).unwrap();
        let fingerprint = printed.split_whitespace().nth(1).unwrap();
        assert_eq!(public_name(&public), format!("ssh-ed25519 {fingerprint}"));
        let age = "age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq";
        assert_eq!(public_name(&format!(" {age} ")), age);
    }

    #[test]
    fn without_the_last_runs_recipients_only_the_digests_are_journaled() {
        let keys = ["age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq".to_owned()];
        let facts = resealed_facts(vec!["0".repeat(64)], "1".repeat(64), 4, None, &keys);
        assert_eq!(
            (facts.from, facts.to.len(), facts.files),
            (vec!["0".repeat(64)], 64, 4)
        );
        assert!(facts.added.is_empty() && facts.removed.is_empty());
    }
}
