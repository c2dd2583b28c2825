//! The parts of a node's Ignition (spec 3.x) that the emulated node acts on.
//!
//! The parser is deliberately tolerant: real Ignition files carry far more than an emulated node
//! needs, and a node whose Ignition lacks keys or files must still boot (and then refuse SSH logins,
//! as a real Flatcar node would).

use std::fmt;

use base64::Engine as _;
use serde_json::Value;

/// The user whose `sshAuthorizedKeys` admit SSH logins, as on Flatcar.
pub const SSH_USER: &str = "core";
/// Where Flatcar's sshd reads its Ed25519 host key.
pub const HOST_KEY_PATH: &str = "/etc/ssh/ssh_host_ed25519_key";

/// Where Lokomotive's iPXE install Ignition puts the node's real Ignition for `flatcar-install`.
pub const POSTINSTALL_IGNITION_PATH: &str = "/opt/postinstall-ignition.json";

/// A file from `storage.files` whose contents were inline (`data:` URL).
#[derive(Clone, PartialEq, Eq)]
pub struct IgnitionFile {
    /// Absolute path on the node.
    pub path: String,
    /// Decoded contents.
    pub contents: Vec<u8>,
    /// File mode, if given.
    pub mode: Option<u32>,
}

impl fmt::Debug for IgnitionFile {
    // Contents can hold private keys: never print them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IgnitionFile")
            .field("path", &self.path)
            .field("len", &self.contents.len())
            .field("mode", &self.mode)
            .finish()
    }
}

/// A systemd unit from `systemd.units`, with its drop-ins' contents appended in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnitionUnit {
    /// Unit name, e.g. `bootkube.service`.
    pub name: String,
    /// Whether Ignition enables it (it then counts as running once the node booted).
    pub enabled: bool,
    /// Unit text followed by drop-in texts.
    pub text: String,
    /// Whether the Ignition gives the unit's text (otherwise the system's unit of that name is
    /// meant, with the drop-ins added).
    pub has_contents: bool,
}

/// What an emulated node takes from its Ignition.
#[derive(Debug, Clone, Default)]
pub struct NodeIgnition {
    /// `sshAuthorizedKeys` of user `core`, one OpenSSH public key line each.
    pub authorized_keys: Vec<String>,
    /// Inline files; the host key is among them.
    pub files: Vec<IgnitionFile>,
    /// Units declared by the Ignition.
    pub units: Vec<IgnitionUnit>,
    /// Why parts of the Ignition were ignored (unparsable JSON, remote sources), for the node log.
    pub warnings: Vec<String>,
}

impl NodeIgnition {
    /// Reads an Ignition JSON document; never fails, unusable parts end up in `warnings`.
    pub fn parse(user_data: &str) -> Self {
        let mut ignition = NodeIgnition::default();
        if user_data.trim().is_empty() {
            ignition.warnings.push("user_data is empty".to_owned());
            return ignition;
        }
        let document: Value = match serde_json::from_str(user_data) {
            Ok(value) => value,
            Err(error) => {
                ignition
                    .warnings
                    .push(format!("user_data is not Ignition JSON: {error}"));
                return ignition;
            }
        };
        ignition.read_users(&document);
        ignition.read_files(&document);
        ignition.read_units(&document);
        // An iPXE install Ignition runs flatcar-install with the real Ignition and reboots into
        // it; the emulated node skips the install and boots the installed system directly.
        if let Some(installed) = ignition.file(POSTINSTALL_IGNITION_PATH) {
            let text = String::from_utf8_lossy(&installed.contents).into_owned();
            if serde_json::from_str::<Value>(&text).is_ok() {
                let mut installed = NodeIgnition::parse(&text);
                installed.warnings.splice(0..0, ignition.warnings);
                return installed;
            }
            ignition.warnings.push(format!(
                "{POSTINSTALL_IGNITION_PATH} is not JSON; booting the install Ignition"
            ));
        }
        ignition
    }

    fn read_users(&mut self, document: &Value) {
        let users = document
            .pointer("/passwd/users")
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        for user in users {
            if user.get("name").and_then(Value::as_str) != Some(SSH_USER) {
                continue;
            }
            let keys = user
                .get("sshAuthorizedKeys")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str);
            self.authorized_keys
                .extend(keys.map(|key| key.trim().to_owned()));
        }
    }

    fn read_files(&mut self, document: &Value) {
        let files = document
            .pointer("/storage/files")
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        for file in files {
            let Some(path) = file.get("path").and_then(Value::as_str) else {
                continue;
            };
            let source = file
                .pointer("/contents/source")
                .and_then(Value::as_str)
                .unwrap_or("data:,");
            if file
                .pointer("/contents/compression")
                .and_then(Value::as_str)
                .is_some_and(|compression| !compression.is_empty())
            {
                self.warnings.push(format!(
                    "{path}: compressed contents are not supported, skipped"
                ));
                continue;
            }
            match decode_data_url(source) {
                Some(contents) => self.files.push(IgnitionFile {
                    path: path.to_owned(),
                    contents,
                    mode: file
                        .get("mode")
                        .and_then(Value::as_u64)
                        .and_then(|mode| u32::try_from(mode).ok()),
                }),
                None => self.warnings.push(format!(
                    "{path}: only inline data: URLs are supported, skipped"
                )),
            }
        }
    }

    fn read_units(&mut self, document: &Value) {
        let units = document
            .pointer("/systemd/units")
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        for unit in units {
            let Some(name) = unit.get("name").and_then(Value::as_str) else {
                continue;
            };
            let contents = unit.get("contents").and_then(Value::as_str);
            let mut text = contents.unwrap_or_default().to_owned();
            let dropins = unit
                .get("dropins")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|dropin| dropin.get("contents").and_then(Value::as_str));
            for dropin in dropins {
                text.push('\n');
                text.push_str(dropin);
            }
            self.units.push(IgnitionUnit {
                name: name.to_owned(),
                enabled: unit
                    .get("enabled")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                text,
                has_contents: contents.is_some(),
            });
        }
    }

    /// The inline file at `path`, if the Ignition writes one.
    pub fn file(&self, path: &str) -> Option<&IgnitionFile> {
        self.files.iter().rev().find(|file| file.path == path)
    }

    /// The SSH host key (an OpenSSH or PEM private key), if the Ignition sets one.
    pub fn host_key(&self) -> Option<String> {
        self.file(HOST_KEY_PATH)
            .map(|file| String::from_utf8_lossy(&file.contents).into_owned())
    }

    /// Whether the Ignition declares `unit` (`bootkube` and `bootkube.service` both match).
    pub fn declares_unit(&self, unit: &str) -> bool {
        self.units.iter().any(|declared| {
            declared.name == unit || declared.name.strip_suffix(".service") == Some(unit)
        })
    }
}

/// Decodes an RFC 2397 `data:` URL (base64 or percent-encoded); `None` for other URLs.
pub fn decode_data_url(url: &str) -> Option<Vec<u8>> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    if meta.split(';').any(|part| part == "base64") {
        let unescaped: String = percent_encoding::percent_decode_str(data)
            .decode_utf8_lossy()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        base64::engine::general_purpose::STANDARD
            .decode(unescaped.as_bytes())
            .ok()
    } else {
        Some(percent_encoding::percent_decode_str(data).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_base64_and_percent_encoded_data_urls() {
        assert_eq!(decode_data_url("data:;base64,aGk="), Some(b"hi".to_vec()));
        assert_eq!(
            decode_data_url("data:text/plain;charset=utf-8;base64,aGk="),
            Some(b"hi".to_vec())
        );
        assert_eq!(decode_data_url("data:,a%20b%0A"), Some(b"a b\n".to_vec()));
        assert_eq!(decode_data_url("https://example.com/x"), None);
    }

    #[test]
    fn reads_keys_files_and_units() {
        let ignition = serde_json::json!({
            "ignition": {"version": "3.3.0"},
            "passwd": {"users": [
                {"name": "other", "sshAuthorizedKeys": ["ssh-ed25519 AAAAother"]},
                {"name": "core", "sshAuthorizedKeys": ["ssh-ed25519 AAAAcore me@host "]}
            ]},
            "storage": {"files": [
                {"path": HOST_KEY_PATH, "mode": 384, "contents": {"source": "data:,KEY"}},
                {"path": "/etc/remote", "contents": {"source": "https://example.com/x"}}
            ]},
            "systemd": {"units": [{
                "name": "kubelet.service", "enabled": true,
                "contents": "ExecStart=/kubelet \\\n  --node-labels=node-role.kubernetes.io/master,node-role.kubernetes.io/controller=true \\\n  --kubeconfig=/etc/kubernetes/kubeconfig"
            }]}
        });
        let parsed = NodeIgnition::parse(&ignition.to_string());
        assert_eq!(parsed.authorized_keys, ["ssh-ed25519 AAAAcore me@host"]);
        assert_eq!(parsed.host_key().as_deref(), Some("KEY"));
        assert_eq!(parsed.file(HOST_KEY_PATH).and_then(|f| f.mode), Some(0o600));
        assert_eq!(parsed.warnings.len(), 1, "{:?}", parsed.warnings);
        assert!(parsed.declares_unit("kubelet"));
        assert!(!parsed.declares_unit("bootkube"));
    }

    #[test]
    fn an_install_ignition_boots_into_the_postinstall_ignition() {
        let installed = serde_json::json!({
            "ignition": {"version": "3.3.0"},
            "passwd": {"users": [{"name": "core", "sshAuthorizedKeys": ["ssh-ed25519 AAAAinstalled"]}]}
        })
        .to_string();
        let install = serde_json::json!({
            "ignition": {"version": "3.3.0"},
            "passwd": {"users": [{"name": "core", "sshAuthorizedKeys": ["ssh-ed25519 AAAAinstaller"]}]},
            "storage": {"files": [{
                "path": POSTINSTALL_IGNITION_PATH,
                "contents": {"source": format!(
                    "data:;base64,{}",
                    base64::engine::general_purpose::STANDARD.encode(&installed)
                )}
            }]}
        });
        let parsed = NodeIgnition::parse(&install.to_string());
        assert_eq!(parsed.authorized_keys, ["ssh-ed25519 AAAAinstalled"]);
    }

    #[test]
    fn tolerates_garbage() {
        let parsed = NodeIgnition::parse("#!ipxe\nnot json");
        assert!(parsed.authorized_keys.is_empty());
        assert_eq!(parsed.warnings.len(), 1);
        assert!(NodeIgnition::parse("{}").warnings.is_empty());
    }
}
