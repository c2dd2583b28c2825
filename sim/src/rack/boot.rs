//! What a rack machine's firmware and installer do with the boot server's answers: iPXE runs
//! the script (following `chain`), the kernel boots with its `ignition.config.url`, Ignition
//! runs the installer, whose `flatcar-install -d <disk> -i <file>` writes the node's Ignition to
//! the disk. Each step is judged as the real program would take it; the first that would fail
//! on a real machine is the machine's failure, in words.

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::ignition::NodeIgnition;

use super::shell::shell_commands;
use super::wipe::{Wiped, is_wipe, judge_wipe};

/// Flatcar's PXE kernel and initrd, by the names its release directories use.
const KERNEL: &str = "flatcar_production_pxe.vmlinuz";
const INITRD: &str = "flatcar_production_pxe_image.cpio.gz";
/// iPXE follows a chain of scripts; a loop is a machine that never boots.
const MAX_CHAIN: usize = 4;

/// What a machine installed: the node's Ignition, written to its disk by `flatcar-install`.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Installed {
    /// The node's Ignition.
    pub ignition: String,
    /// The disk it went to.
    pub disk: String,
    /// The kernel iPXE asked the mirror for.
    pub kernel_url: String,
}

/// What a network boot did to the machine's disks.
pub(crate) enum NetworkBoot {
    /// Flatcar installed with the node's Ignition; the machine reboots into it.
    Installed(Installed),
    /// A disk wiped (`wipe.rs`); the machine powers off.
    Wiped(Wiped),
}

/// Boots a machine from `filename` (what DHCP hands its NIC) with the NIC's `mac`, and installs
/// Flatcar on one of `disks`, or wipes one.
pub(crate) async fn network_boot(
    filename: &str,
    mac: &str,
    disks: &[String],
) -> Result<NetworkBoot, String> {
    let script = ipxe_script(filename, mac).await?;
    let ignition_url = expand(&script.ignition_url, mac);
    let installer = fetch(&ignition_url, "the kernel's ignition.config.url").await?;
    if is_wipe(&installer) {
        let disk = judge_wipe(&installer, disks)?;
        return Ok(NetworkBoot::Wiped(Wiped {
            disk,
            kernel_url: script.kernel_url,
        }));
    }
    let (disk, node_ignition_url, inline) = judge_installer(&installer, disks)?;
    let ignition =
        match (node_ignition_url, inline) {
            (Some(url), _) => fetch(&url, "the installer's curl").await?,
            (None, Some(text)) => text,
            (None, None) => return Err(
                "the installer's flatcar-install -i file is neither downloaded nor in its Ignition"
                    .to_owned(),
            ),
        };
    if let Err(error) = serde_json::from_str::<serde_json::Value>(&ignition) {
        return Err(format!(
            "the node's Ignition is not JSON ({error}): Ignition would fail the installed system's first boot"
        ));
    }
    Ok(NetworkBoot::Installed(Installed {
        ignition,
        disk,
        kernel_url: script.kernel_url,
    }))
}

struct BootScript {
    kernel_url: String,
    ignition_url: String,
}

/// Fetches and runs iPXE scripts from `filename` until one boots a kernel.
async fn ipxe_script(filename: &str, mac: &str) -> Result<BootScript, String> {
    let mut url = filename.to_owned();
    for _ in 0..MAX_CHAIN {
        let text = fetch(&expand(&url, mac), "iPXE").await?;
        if !text.starts_with("#!ipxe") {
            return Err(format!("{url} is not an iPXE script (no #!ipxe)"));
        }
        match judge_script(&text)? {
            Step::Chain(next) => url = next,
            Step::Boot(script) => return Ok(script),
        }
    }
    Err(format!(
        "iPXE chained more than {MAX_CHAIN} times from {filename}"
    ))
}

enum Step {
    Chain(String),
    Boot(BootScript),
}

fn judge_script(text: &str) -> Result<Step, String> {
    let (mut kernel, mut initrd, mut boots) = (None, None, false);
    for line in text.lines().map(str::trim) {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("chain") => {
                let next = words.next().ok_or("iPXE: chain without a URL")?;
                return Ok(Step::Chain(next.to_owned()));
            }
            Some("kernel") => kernel = Some(words.map(str::to_owned).collect::<Vec<_>>()),
            Some("initrd") => initrd = words.next().map(str::to_owned),
            Some("boot") => boots = true,
            _ => {}
        }
    }
    let kernel = kernel.ok_or("iPXE: the script loads no kernel")?;
    let (kernel_url, args) = kernel.split_first().ok_or("iPXE: kernel without a URL")?;
    let initrd = initrd.ok_or(
        "iPXE: the script loads no initrd: Flatcar's PXE kernel has no root filesystem without it",
    )?;
    if !boots {
        return Err("iPXE: the script never says boot".to_owned());
    }
    if !kernel_url.ends_with(&format!("/{KERNEL}")) {
        return Err(format!(
            "iPXE: the kernel {kernel_url} is not Flatcar's {KERNEL}"
        ));
    }
    if !initrd.ends_with(&format!("/{INITRD}")) {
        return Err(format!(
            "iPXE: the initrd {initrd} is not Flatcar's {INITRD}"
        ));
    }
    let arg = |name: &str| {
        args.iter()
            .find_map(|a| a.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
    };
    // iPXE names an initrd by its URL's last segment; the kernel finds it by that name.
    if arg("initrd") != Some(INITRD) {
        return Err(format!(
            "kernel: initrd={} does not name the initrd loaded ({INITRD})",
            arg("initrd").unwrap_or("(none)")
        ));
    }
    if arg("flatcar.first_boot").is_none() {
        return Err("kernel: no flatcar.first_boot: Ignition does not run".to_owned());
    }
    let ignition_url = arg("ignition.config.url")
        .or_else(|| arg("flatcar.config.url"))
        .ok_or("kernel: no ignition.config.url: Ignition has nothing to run")?;
    Ok(Step::Boot(BootScript {
        kernel_url: kernel_url.clone(),
        ignition_url: ignition_url.to_owned(),
    }))
}

/// The installer's Ignition, as Ignition and then its script would run it: the install disk,
/// and where `flatcar-install -i` reads the node's Ignition from (a URL the script downloads,
/// or a file of the installer's Ignition).
fn judge_installer(
    text: &str,
    disks: &[String],
) -> Result<(String, Option<String>, Option<String>), String> {
    let ignition = NodeIgnition::parse(text);
    if let Some(warning) = ignition.warnings.first() {
        return Err(format!("installer Ignition: {warning}"));
    }
    let script = ignition
        .files
        .iter()
        .map(|f| String::from_utf8_lossy(&f.contents).into_owned())
        .find(|f| f.contains("flatcar-install"))
        .ok_or("installer Ignition: no file runs flatcar-install")?;
    if !ignition.units.iter().any(|u| u.text.contains("ExecStart=")) {
        return Err("installer Ignition: no unit runs the installer".to_owned());
    }
    let commands = shell_commands(&script);
    let install = commands
        .iter()
        .find(|c| c.first().map(String::as_str) == Some("flatcar-install"))
        .ok_or("installer: flatcar-install is not a command of the script")?;
    let option = |words: &[String], flag: &str| {
        words
            .iter()
            .position(|w| w == flag)
            .and_then(|i| words.get(i + 1).cloned())
    };
    let disk = option(install, "-d")
        .ok_or("installer: flatcar-install without -d: it would pick a disk itself (-s) or fail")?;
    if !disks.contains(&disk) {
        return Err(format!(
            "installer: flatcar-install -d {disk}: no such disk (this machine has {})",
            disks.join(", ")
        ));
    }
    let file = option(install, "-i")
        .ok_or("installer: flatcar-install without -i: the installed system has no Ignition")?;
    if !commands.iter().any(|c| {
        c.first().map(String::as_str) == Some("systemctl") && c.iter().any(|w| w == "reboot")
    }) {
        return Err("installer: the script never reboots into the installed system".to_owned());
    }
    let download = commands.iter().find_map(|c| {
        (c.first().map(String::as_str) == Some("curl")
            && option(c, "-o").as_deref() == Some(file.as_str()))
        .then(|| c.iter().skip(1).find(|w| w.starts_with("http")).cloned())
        .flatten()
    });
    let inline = ignition
        .file(&file)
        .map(|f| String::from_utf8_lossy(&f.contents).into_owned());
    Ok((disk, download, inline))
}

/// iPXE's expansion of the NIC's MAC in a URL (`netX`: the NIC it booted from; the machine
/// has one).
fn expand(url: &str, mac: &str) -> String {
    url.replace("${net0/mac}", mac)
        .replace("${netX/mac}", mac)
        .replace("${mac}", mac)
        .replace("${mac:hexhyp}", &mac.replace(':', "-"))
}

/// One HTTP GET, as iPXE and curl make it: the body of a 200, or what failed.
async fn fetch(url: &str, what: &str) -> Result<String, String> {
    let fail = |why: String| format!("{what}: GET {url}: {why}");
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| fail("only http:// is served on a boot network here".to_owned()))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let stream = TcpStream::connect(authority)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| fail(e.to_string()))?;
    tokio::spawn(connection);
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, authority)
        .body(Empty::<Bytes>::new())
        .map_err(|e| fail(e.to_string()))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| fail(e.to_string()))?
        .to_bytes();
    if !status.is_success() {
        return Err(fail(format!("answered {}", status.as_u16())));
    }
    String::from_utf8(body.to_vec()).map_err(|_| fail("the body is not UTF-8".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRIPT: &str = "#!ipxe\nkernel http://m/amd64-usr/current/flatcar_production_pxe.vmlinuz initrd=flatcar_production_pxe_image.cpio.gz flatcar.first_boot=yes ignition.config.url=http://b/ignition?mac=${net0/mac}\ninitrd http://m/amd64-usr/current/flatcar_production_pxe_image.cpio.gz\nboot\n";

    #[test]
    fn a_typhoon_like_script_boots_and_each_missing_part_is_named() {
        let Ok(Step::Boot(script)) = judge_script(SCRIPT) else {
            panic!("the script does not boot");
        };
        assert_eq!(
            expand(&script.ignition_url, "52:54:00:00:00:01"),
            "http://b/ignition?mac=52:54:00:00:00:01"
        );
        for (broken, named) in [
            (SCRIPT.replace("boot\n", ""), "never says boot"),
            (
                SCRIPT.replace(" flatcar.first_boot=yes", ""),
                "flatcar.first_boot",
            ),
            (
                SCRIPT.replace(
                    "initrd=flatcar_production_pxe_image.cpio.gz",
                    "initrd=initrd.img",
                ),
                "initrd=initrd.img",
            ),
            (
                SCRIPT.replace(" ignition.config.url=", " ignition.url="),
                "no ignition.config.url",
            ),
            (SCRIPT.replace("pxe.vmlinuz", "vmlinuz"), "is not Flatcar's"),
        ] {
            let Err(error) = judge_script(&broken) else {
                panic!("{broken} boots");
            };
            assert!(error.contains(named), "{error}");
        }
    }

    #[test]
    fn typhoons_installer_script_reads_as_commands() {
        let script = "#!/bin/bash -ex\ncurl --retry 10 \"http://m/ignition?mac=x&os=installed\" -o ignition.json\nflatcar-install \\\n  -d /dev/sda \\\n  -C stable \\\n  -i ignition.json\nudevadm settle\nsystemctl reboot\n";
        let commands = shell_commands(script);
        assert_eq!(
            commands[0],
            [
                "curl",
                "--retry",
                "10",
                "http://m/ignition?mac=x&os=installed",
                "-o",
                "ignition.json"
            ]
        );
        assert_eq!(
            commands[1],
            [
                "flatcar-install",
                "-d",
                "/dev/sda",
                "-C",
                "stable",
                "-i",
                "ignition.json"
            ]
        );
    }
}
