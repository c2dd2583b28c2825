//! `loko run` asks before ordering many servers at once. Pools may hold thousands of nodes
//! (a large cluster needs them), so a count is not capped; instead a run that would create more
//! new devices than a threshold needs a yes: on a terminal a y/N prompt showing the number,
//! elsewhere `--yes` or a higher `--max-new-devices` (`LOKO_MAX_NEW_DEVICES`).
//!
//! And it deletes nothing the user was not shown: every device a run deletes (a scale down, a
//! type change, a removed pool; `20` → `2` is one typo) is listed before anything changes, and
//! needs a yes (`--yes` or `--allow-delete` without a terminal), as `loko destroy` does.

use crate::failure::UserError;
use crate::output::err;

/// The threshold when none is given: more than this many new devices needs a yes.
pub const DEFAULT_MAX_NEW_DEVICES: usize = 100;

/// Whether a run that creates `count` new devices may go on: below or at `threshold`, or with
/// `yes`, it goes on; otherwise it asks on a terminal and refuses without one.
pub fn new_devices(count: usize, threshold: usize, yes: bool) -> anyhow::Result<()> {
    use std::io::IsTerminal as _;
    if count <= threshold || yes {
        return Ok(());
    }
    let what = format!(
        "this run would create {count} new devices, more than the {threshold} loko creates without asking"
    );
    let hint = format!(
        "check the spec's counts with loko plan; to go on, pass --yes, or --max-new-devices {count} (or set LOKO_MAX_NEW_DEVICES={count})"
    );
    if !std::io::stdin().is_terminal() {
        return Err(UserError::usage(what, hint).into());
    }
    if ask(&format!("{what}. Create {count} devices? [y/N] "))? {
        return Ok(());
    }
    Err(UserError::usage("run cancelled: nothing was created", hint).into())
}

/// Whether a run that deletes `doomed` (one line per device) may go on: with none, or with
/// `yes`, it goes on; otherwise it lists them and asks on a terminal, and refuses without one.
pub fn deletions(doomed: &[String], yes: bool, provider: specs::Provider) -> anyhow::Result<()> {
    if doomed.is_empty() {
        return Ok(());
    }
    let (what, question) = match provider {
        specs::Provider::Packet => (
            format!("this run deletes {} device(s):", doomed.len()),
            "Delete them?",
        ),
        specs::Provider::Redfish => (
            format!("this run powers off {} machine(s):", doomed.len()),
            "Power them off?",
        ),
    };
    listed(
        &what,
        doomed,
        yes,
        ("deleting", question, "nothing was deleted"),
        "check the spec's counts and types with loko plan; to delete them, pass --yes (or --allow-delete)",
    )
}

/// Whether a run may take over the devices listed in `adopted` (`loko run --adopt`): with
/// `yes`, it goes on; otherwise it lists them and asks on a terminal, and refuses without one.
pub fn adoptions(adopted: &[String], yes: bool) -> anyhow::Result<()> {
    listed(
        &format!("this run takes over {} device(s):", adopted.len()),
        adopted,
        yes,
        ("adopting", "Take them over?", "nothing was adopted"),
        "to take them over, pass --yes with --adopt",
    )
}

/// `what` and its `lines`, agreed to with `yes`, on a terminal by answering `question`, and
/// refused without one; `(doing, question, cancelled)` word the question and the refusals.
fn listed(
    what: &str,
    lines: &[String],
    yes: bool,
    (doing, question, cancelled): (&str, &str, &str),
    hint: &str,
) -> anyhow::Result<()> {
    use std::io::IsTerminal as _;
    if yes {
        return Ok(());
    }
    let list: String = lines.iter().map(|l| format!("\n  - {l}")).collect();
    if !std::io::stdin().is_terminal() {
        return Err(UserError::usage(
            format!("{what}{list}\nnothing was changed: {doing} needs a yes"),
            hint,
        )
        .into());
    }
    if ask(&format!("{what}{list}\n{question} [y/N] "))? {
        return Ok(());
    }
    Err(UserError::usage(format!("run cancelled: {cancelled}"), hint).into())
}

/// Asks on stderr (stdout may be JSON lines) and reads one line: only `y` or `yes` agree.
fn ask(question: &str) -> anyhow::Result<bool> {
    use std::io::{BufRead as _, Write as _};
    err!("{question}");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_or_below_the_threshold_or_with_yes_it_goes_on() {
        assert!(new_devices(100, 100, false).is_ok());
        assert!(new_devices(0, 0, false).is_ok());
        assert!(new_devices(5000, 100, true).is_ok());
    }

    #[test]
    fn no_deletion_or_a_yes_goes_on() {
        assert!(deletions(&[], false, specs::Provider::Packet).is_ok());
        assert!(deletions(&["device d-1 (w-1)".into()], true, specs::Provider::Packet).is_ok());
    }
}
