//! sushy-tools' Redfish emulator (OpenStack's, on PyPI) with its fake driver: BMCs that loko's
//! Redfish client did not write, behind basic authentication.
//!
//! The fake driver keeps each system's state in a SQLite file under
//! `SUSHY_EMULATOR_STATE_DIR`, so each emulator gets a directory of its own; it applies a
//! reset 1 to 11 seconds after accepting it, as hardware does.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{Killed, free_port, run, wait_for_port};

/// A system of the fake driver.
pub struct FakeSystem {
    /// Its id in `/redfish/v1/Systems/<uuid>`.
    pub uuid: String,
    pub name: String,
    /// `On` or `Off` at start.
    pub power_state: &'static str,
    /// Its NICs' MACs, lowercase.
    pub macs: Vec<String>,
}

/// A running emulator.
pub struct Sushy {
    _child: Killed,
    /// Its base URL, `http://127.0.0.1:<port>`.
    pub url: String,
    pub username: String,
    pub password: String,
}

impl Sushy {
    /// Starts `sushy-emulator` on a free port with the fake driver serving `systems`, accepting
    /// `username`/`password` only (an htpasswd file of bcrypt digests, the one kind it reads).
    pub fn start(dir: &Path, systems: &[FakeSystem], username: &str, password: &str) -> Sushy {
        let port = free_port();
        let htpasswd = dir.join("htpasswd");
        // sushy reads bcrypt digests only (its auth_basic.parse_entry); bcrypt is its dependency.
        let digest = run(Command::new("python3").args([
            "-c",
            "import bcrypt, sys; print(bcrypt.hashpw(sys.argv[1].encode(), bcrypt.gensalt()).decode())",
            password,
        ]));
        std::fs::write(&htpasswd, format!("{username}:{}\n", digest.trim())).unwrap();
        let fake: Vec<String> = systems
            .iter()
            .map(|s| {
                let nics: Vec<String> = s
                    .macs
                    .iter()
                    .map(|m| format!("{{'mac': {m:?}}}"))
                    .collect();
                format!(
                    "{{'uuid': {:?}, 'name': {:?}, 'power_state': {:?}, 'external_notifier': False, 'nics': [{}]}}",
                    s.uuid,
                    s.name,
                    s.power_state,
                    nics.join(", ")
                )
            })
            .collect();
        let config = dir.join("sushy.conf");
        std::fs::write(
            &config,
            format!(
                "SUSHY_EMULATOR_FAKE_DRIVER = True\n\
                 SUSHY_EMULATOR_AUTH_FILE = {:?}\n\
                 SUSHY_EMULATOR_STATE_DIR = {:?}\n\
                 SUSHY_EMULATOR_FAKE_SYSTEMS = [{}]\n",
                htpasswd.display().to_string(),
                dir.join("state").display().to_string(),
                fake.join(", ")
            ),
        )
        .unwrap();
        let child = Command::new("sushy-emulator")
            .arg("--config")
            .arg(&config)
            .args(["-i", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sushy-emulator must be installed (scripts/test runs pip install sushy-tools)");
        let child = Killed(child);
        wait_for_port("127.0.0.1", port, Duration::from_secs(60));
        Sushy {
            _child: child,
            url: format!("http://127.0.0.1:{port}"),
            username: username.to_owned(),
            password: password.to_owned(),
        }
    }
}
