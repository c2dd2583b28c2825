//! A retired machine's wipe, as a rack machine would run it: the Ignition its kernel fetched
//! is recognised as a wipe by what its script does (`wipefs`, not `flatcar-install`), judged as
//! wipefs(8), dd and systemd would take it; then the machine's disk is empty and the wipe
//! powers it off (`RackInner::wiped`, in `model.rs`). A wipe of a disk the machine does not have
//! fails the boot, in words, as the installer's judge does.

use crate::ignition::NodeIgnition;

use super::shell::shell_commands;

/// What a wipe did to a machine.
pub(crate) struct Wiped {
    /// The disk wiped.
    pub disk: String,
    /// The kernel iPXE asked the mirror for.
    pub kernel_url: String,
}

/// Whether an Ignition fetched by a machine's kernel is a wipe: a file of it runs `wipefs`.
pub(super) fn is_wipe(text: &str) -> bool {
    NodeIgnition::parse(text).files.iter().any(|f| {
        commands(&String::from_utf8_lossy(&f.contents))
            .iter()
            .any(|c| c[0] == "wipefs")
    })
}

/// The script's commands, each word without its quotes (`of='/dev/sda'` is `of=/dev/sda`).
fn commands(script: &str) -> Vec<Vec<String>> {
    shell_commands(script)
        .into_iter()
        .filter(|c| !c.is_empty())
        .map(|c| c.into_iter().map(|w| w.replace(['\'', '"'], "")).collect())
        .collect()
}

/// The disk a wipe Ignition erases, of `disks` (the machine's), or why a real machine would
/// not wipe it: an enabled unit must run the script; `wipefs` must erase (`--all`), partition
/// tables included (`--force`), a disk the machine has; every `dd of=` must be such a disk; the
/// script must power the machine off.
pub(super) fn judge_wipe(text: &str, disks: &[String]) -> Result<String, String> {
    let ignition = NodeIgnition::parse(text);
    if let Some(warning) = ignition.warnings.first() {
        return Err(format!("wipe Ignition: {warning}"));
    }
    let (path, script) = ignition
        .files
        .iter()
        .map(|f| {
            (
                f.path.clone(),
                commands(&String::from_utf8_lossy(&f.contents)),
            )
        })
        .find(|(_, c)| c.iter().any(|c| c[0] == "wipefs"))
        .ok_or("wipe Ignition: no file runs wipefs")?;
    let runs = |text: &str| {
        text.lines()
            .any(|l| l.trim() == format!("ExecStart={path}"))
    };
    if !ignition.units.iter().any(|u| u.enabled && runs(&u.text)) {
        return Err(format!(
            "wipe Ignition: no enabled unit runs {path}: nothing is wiped"
        ));
    }
    let no_such = |disk: &str, by: &str| {
        format!(
            "wipe: {by} {disk}: no such disk (this machine has {})",
            disks.join(", ")
        )
    };
    let mut wiped = None;
    for wipefs in script.iter().filter(|c| c[0] == "wipefs") {
        let has = |long: &str, short: &str| wipefs.iter().any(|w| w == long || w == short);
        if !has("--all", "-a") {
            return Err("wipe: wipefs without --all only lists the signatures (wipefs(8)): nothing is wiped".to_owned());
        }
        if !has("--force", "-f") {
            return Err(
                "wipe: wipefs without --force leaves a block device's partition table (wipefs(8))"
                    .to_owned(),
            );
        }
        // Words from a shell variable (the partitions lsblk lists) are the disk's own.
        for device in wipefs
            .iter()
            .skip(1)
            .filter(|w| !w.starts_with('-') && !w.starts_with('$'))
        {
            if !disks.contains(device) {
                return Err(no_such(device, "wipefs"));
            }
            wiped = Some(device.clone());
        }
    }
    let wiped = wiped.ok_or("wipe: wipefs names no disk")?;
    for dd in script.iter().filter(|c| c[0] == "dd") {
        if let Some(target) = dd.iter().find_map(|w| w.strip_prefix("of="))
            && !disks.iter().any(|d| d == target)
        {
            return Err(no_such(target, "dd of="));
        }
    }
    if !script
        .iter()
        .any(|c| c[0] == "systemctl" && c.iter().any(|w| w == "poweroff"))
    {
        return Err("wipe: the script never powers the machine off".to_owned());
    }
    Ok(wiped)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A wipe Ignition of `script` run by an enabled unit, as loko renders one.
    fn wipe(script: &str) -> String {
        use base64::Engine as _;
        let data = base64::engine::general_purpose::STANDARD.encode(script);
        serde_json::json!({
            "ignition": {"version": "3.3.0"},
            "storage": {"files": [{"path": "/opt/wipe", "mode": 320,
                "contents": {"source": format!("data:;base64,{data}")}}]},
            "systemd": {"units": [{"name": "wipe.service", "enabled": true,
                "contents": "[Service]\nType=oneshot\nExecStart=/opt/wipe\n[Install]\nWantedBy=multi-user.target\n"}]}
        })
        .to_string()
    }

    const SCRIPT: &str = "#!/bin/bash\nset -eux\nwipefs --all --force \"${partitions[@]}\" '/dev/sda'\nblkdiscard --force '/dev/sda' || true\ndd if=/dev/zero of='/dev/sda' bs=512 count=2048\nsystemctl poweroff\n";

    fn disks() -> Vec<String> {
        vec!["/dev/sda".to_owned(), "/dev/nvme0n1".to_owned()]
    }

    #[test]
    fn a_wipe_of_a_disk_the_machine_has_is_taken() {
        assert!(is_wipe(&wipe(SCRIPT)));
        assert_eq!(
            judge_wipe(&wipe(SCRIPT), &disks()),
            Ok("/dev/sda".to_owned())
        );
    }

    #[test]
    fn a_wipe_of_another_disk_or_that_wipes_nothing_is_refused_saying_why() {
        for (script, named) in [
            (
                SCRIPT.replace("/dev/sda", "/dev/sdb"),
                "wipefs /dev/sdb: no such disk (this machine has /dev/sda, /dev/nvme0n1)",
            ),
            (
                SCRIPT.replace("of='/dev/sda'", "of=/dev/sdb"),
                "dd of= /dev/sdb: no such disk",
            ),
            (SCRIPT.replace(" --all", ""), "without --all"),
            (SCRIPT.replace(" --force \"", " \""), "without --force"),
            (SCRIPT.replace("systemctl poweroff\n", ""), "never powers"),
        ] {
            let error = judge_wipe(&wipe(&script), &disks()).expect_err(&script);
            assert!(error.contains(named), "{error}");
        }
        let unrun = wipe(SCRIPT).replace("ExecStart=/opt/wipe", "ExecStart=/opt/other");
        let error = judge_wipe(&unrun, &disks()).expect_err("no unit runs it");
        assert!(error.contains("no enabled unit runs /opt/wipe"), "{error}");
    }
}
