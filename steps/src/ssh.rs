//! SSH to the nodes: ssh2 (libssh2) with keys from ssh-agent, as the tutorial does, and host
//! keys pinned to the ones loko put into each node's Ignition, so that even the first
//! connection to a fresh node is verified.
//!
//! Errors say which of these happened, because users of the Terraform modules saw a missing
//! agent key only as handshake failures or timeouts deep into an apply (peer lesson):
//! - the node does not answer yet (connection refused, timeout): retryable;
//! - the node answered with another host key: refused, never retried;
//! - no agent, or no key of the agent is accepted: permanent, with what to do.
//!
//! ssh2 is blocking; async callers use [`Ssh::run`], which runs on tokio's blocking pool.

use std::collections::BTreeSet;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use sha2::{Digest as _, Sha256};

/// Environment variable of the agent's socket.
pub const AGENT_ENV: &str = "SSH_AUTH_SOCK";

/// A node to reach.
#[derive(Clone, Debug)]
pub struct SshTarget {
    /// For messages: the node's hostname.
    pub node: String,
    pub addr: SocketAddr,
    pub user: String,
    /// The node's host public key in OpenSSH form (`ssh-ed25519 AAAA... comment`).
    pub host_key: String,
}

/// What a remote command printed and how it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandOutput {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

/// An SSH failure on one node.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("ssh {node} ({addr}): not reachable yet: {reason}")]
    Unreachable {
        node: String,
        addr: SocketAddr,
        reason: String,
    },
    #[error(
        "ssh {node} ({addr}): host key mismatch: expected {expected}, the node presented {presented}; refusing to connect (the node may have been replaced or the connection intercepted)"
    )]
    HostKeyMismatch {
        node: String,
        addr: SocketAddr,
        expected: String,
        presented: String,
    },
    #[error("ssh {node}: no ssh-agent: {reason}{hint}")]
    NoAgent {
        node: String,
        reason: String,
        /// What to do: start an agent, when it is the user's; nothing to add when it is the
        /// one loko serves itself (`--sim`), whose socket the reason names.
        hint: &'static str,
    },
    #[error(
        "ssh {node} ({addr}): no key of ssh-agent was accepted for user {user} ({tried} tried); add the private key of one of ssh_keys to the agent (`ssh-add`)"
    )]
    AuthRejected {
        node: String,
        addr: SocketAddr,
        user: String,
        tried: usize,
    },
    #[error("ssh {node} ({addr}): {what}: {reason}")]
    Session {
        node: String,
        addr: SocketAddr,
        what: &'static str,
        reason: String,
    },
    #[error("ssh {node}: invalid pinned host key: {reason}")]
    BadPinnedKey { node: String, reason: String },
    #[error(
        "ssh port {port} refused every connection for {}s on every node tried ({nodes}), and no node ever accepted one: nothing listens there",
        waited.as_secs()
    )]
    PortRefused {
        port: u16,
        /// The nodes tried, comma-separated.
        nodes: String,
        waited: Duration,
    },
}

impl SshError {
    /// True for failures that may pass by trying again later (the node is still booting, or
    /// the connection dropped).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            SshError::Unreachable { .. } | SshError::Session { .. }
        )
    }
}

impl From<SshError> for engine::StepError {
    fn from(e: SshError) -> engine::StepError {
        if e.is_retryable() {
            engine::StepError::retryable(e)
        } else {
            engine::StepError::permanent(e)
        }
    }
}

/// The SHA256 fingerprint of a public key blob, as OpenSSH prints it (`SHA256:...`).
pub fn fingerprint(blob: &[u8]) -> String {
    format!("SHA256:{}", STANDARD_NO_PAD.encode(Sha256::digest(blob)))
}

/// The key blob of an OpenSSH public key line (`type base64 [comment]`).
pub fn public_key_blob(line: &str) -> Option<Vec<u8>> {
    let b64 = line.split_whitespace().nth(1)?;
    STANDARD.decode(b64).ok()
}

/// The public keys the agent holds (at `socket`, else at `SSH_AUTH_SOCK`), as blobs. Used
/// before any device is created to check that one of them is in the spec's `ssh_keys`.
pub fn agent_keys(socket: Option<&Path>) -> Result<Vec<Vec<u8>>, String> {
    if socket.is_none() && std::env::var_os(AGENT_ENV).is_none() {
        return Err(format!("{AGENT_ENV} is not set"));
    }
    let session = ssh2::Session::new().map_err(|e| e.to_string())?;
    let mut agent = session.agent().map_err(|e| e.to_string())?;
    if let Some(socket) = socket {
        agent
            .set_identity_path(socket)
            .map_err(|e| format!("agent socket {}: {e}", socket.display()))?;
    }
    agent
        .connect()
        .map_err(|e| format!("cannot connect to the agent: {e}"))?;
    agent
        .list_identities()
        .map_err(|e| format!("cannot list the agent's keys: {e}"))?;
    let keys = agent
        .identities()
        .map_err(|e| format!("cannot list the agent's keys: {e}"))?
        .iter()
        .map(|k| k.blob().to_vec())
        .collect();
    let _ = agent.disconnect();
    Ok(keys)
}

/// Whether the nodes' SSH port refuses connections everywhere, as it does when loko was told
/// the wrong port; shared by every clone of an [`Ssh`], so by every SSH step of a run.
#[derive(Debug, Default)]
pub struct RefusedPort {
    state: Mutex<Refusals>,
}

#[derive(Debug, Default)]
struct Refusals {
    first: Option<Instant>,
    nodes: BTreeSet<String>,
    /// Some node accepted a connection: refusals are then nodes still booting, never the port.
    accepted: bool,
    /// The verdict, once given: every later refusal repeats it.
    verdict: Option<(u16, String, Duration)>,
}

impl RefusedPort {
    fn accepted(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.accepted = true;
        }
    }

    /// Records a refusal by `target`; the error to stop with once refusals everywhere have
    /// lasted `limit`.
    fn refused(&self, target: &SshTarget, limit: Duration) -> Option<SshError> {
        let mut state = self.state.lock().ok()?;
        if state.accepted {
            return None;
        }
        let first = *state.first.get_or_insert_with(Instant::now);
        state.nodes.insert(target.node.clone());
        if state.verdict.is_none() && first.elapsed() >= limit {
            let nodes = state.nodes.iter().cloned().collect::<Vec<_>>().join(", ");
            state.verdict = Some((target.addr.port(), nodes, first.elapsed()));
        }
        let (port, nodes, waited) = state.verdict.clone()?;
        Some(SshError::PortRefused {
            port,
            nodes,
            waited,
        })
    }

    /// The port that refused everywhere, once a step stopped on it.
    pub fn verdict(&self) -> Option<u16> {
        let state = self.state.lock().ok()?;
        state.verdict.as_ref().map(|(port, _, _)| *port)
    }
}

/// Runs commands on nodes.
#[derive(Clone, Debug)]
pub struct Ssh {
    pub connect_timeout: Duration,
    /// Timeout of each blocking libssh2 call (0 = none); long commands should print progress
    /// or be polled rather than block past it.
    pub io_timeout: Duration,
    /// The ssh-agent socket; `None` means `SSH_AUTH_SOCK`, as the tutorial has it.
    pub agent: Option<PathBuf>,
    /// How long every node may refuse connections, none ever accepting one, before that is
    /// taken for a wrong port rather than nodes still booting. A refusal (unlike a timeout)
    /// comes from a running kernel with its network up and nothing listening on the port.
    /// Packet turns a device `active` when the booted OS checks in (Ignition's `packet` OEM
    /// config enables Flatcar's `packet-phone-home.service` for that), and Flatcar's
    /// sshd is socket-activated (`sshd.socket`, listening from early boot), so a node that
    /// refuses does so for seconds; two minutes of refusals on every node is a port nobody
    /// listens on. Runs against the simulator scale it with a floor (see the binary's wiring).
    pub refusal_limit: Duration,
    /// Every SSH step's refusals, to tell a wrong port from a node that boots.
    pub refused: Arc<RefusedPort>,
}

impl Default for Ssh {
    fn default() -> Self {
        Ssh {
            connect_timeout: Duration::from_secs(10),
            io_timeout: Duration::from_secs(15 * 60),
            agent: None,
            refusal_limit: Duration::from_secs(2 * 60),
            refused: Arc::default(),
        }
    }
}

impl Ssh {
    /// Runs `command` on `target` with `stdin` as its standard input.
    pub async fn run(
        &self,
        target: &SshTarget,
        command: &str,
        stdin: Vec<u8>,
    ) -> Result<CommandOutput, SshError> {
        let (ssh, target2, command) = (self.clone(), target.clone(), command.to_owned());
        tokio::task::spawn_blocking(move || ssh.run_blocking(&target2, &command, &stdin))
            .await
            .unwrap_or_else(|e| {
                Err(SshError::Session {
                    node: target.node.clone(),
                    addr: target.addr,
                    what: "ssh task",
                    reason: e.to_string(),
                })
            })
    }

    /// The blocking form of [`Ssh::run`].
    pub fn run_blocking(
        &self,
        target: &SshTarget,
        command: &str,
        stdin: &[u8],
    ) -> Result<CommandOutput, SshError> {
        let session = self.connect(target)?;
        let fail = |what: &'static str| {
            move |e: ssh2::Error| SshError::Session {
                node: target.node.clone(),
                addr: target.addr,
                what,
                reason: e.to_string(),
            }
        };
        let io_fail = |what: &'static str| {
            move |e: std::io::Error| SshError::Session {
                node: target.node.clone(),
                addr: target.addr,
                what,
                reason: e.to_string(),
            }
        };
        let mut channel = session.channel_session().map_err(fail("open channel"))?;
        channel.exec(command).map_err(fail("exec"))?;
        if !stdin.is_empty() {
            channel.write_all(stdin).map_err(io_fail("send input"))?;
        }
        channel.send_eof().map_err(fail("send eof"))?;
        let mut stdout = String::new();
        channel
            .read_to_string(&mut stdout)
            .map_err(io_fail("read output"))?;
        let mut stderr = String::new();
        channel
            .stderr()
            .read_to_string(&mut stderr)
            .map_err(io_fail("read errors"))?;
        channel.wait_close().map_err(fail("close channel"))?;
        let status = channel.exit_status().map_err(fail("exit status"))?;
        Ok(CommandOutput {
            status,
            stdout,
            stderr,
        })
    }

    fn connect(&self, target: &SshTarget) -> Result<ssh2::Session, SshError> {
        let unreachable = |reason: String| SshError::Unreachable {
            node: target.node.clone(),
            addr: target.addr,
            reason,
        };
        let expected = public_key_blob(&target.host_key).ok_or_else(|| SshError::BadPinnedKey {
            node: target.node.clone(),
            reason: "not an OpenSSH public key line".into(),
        })?;
        let tcp = match TcpStream::connect_timeout(&target.addr, self.connect_timeout) {
            Ok(tcp) => {
                self.refused.accepted();
                tcp
            }
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                return Err(self
                    .refused
                    .refused(target, self.refusal_limit)
                    .unwrap_or_else(|| unreachable(e.to_string())));
            }
            Err(e) => return Err(unreachable(e.to_string())),
        };
        let mut session = ssh2::Session::new().map_err(|e| unreachable(e.to_string()))?;
        session.set_timeout(self.io_timeout.as_millis().min(u32::MAX as u128) as u32);
        session.set_tcp_stream(tcp);
        // A handshake that fails is a node whose sshd is not ready (or closed on us).
        session
            .handshake()
            .map_err(|e| unreachable(format!("handshake: {e}")))?;
        let presented = session.host_key().map(|(blob, _)| blob.to_vec());
        if presented.as_deref() != Some(expected.as_slice()) {
            return Err(SshError::HostKeyMismatch {
                node: target.node.clone(),
                addr: target.addr,
                expected: fingerprint(&expected),
                presented: presented.map_or("no key".into(), |b| fingerprint(&b)),
            });
        }
        self.authenticate(&session, target)?;
        Ok(session)
    }

    fn authenticate(&self, session: &ssh2::Session, target: &SshTarget) -> Result<(), SshError> {
        let no_agent = |reason: String| SshError::NoAgent {
            node: target.node.clone(),
            reason,
            hint: match self.agent {
                None => {
                    "; start one and add the key of one of ssh_keys (`eval $(ssh-agent) && ssh-add ~/.ssh/id_ed25519`)"
                }
                Some(_) => "",
            },
        };
        if self.agent.is_none() && std::env::var_os(AGENT_ENV).is_none() {
            return Err(no_agent(format!("{AGENT_ENV} is not set")));
        }
        let mut agent = session.agent().map_err(|e| no_agent(e.to_string()))?;
        if let Some(socket) = &self.agent {
            agent
                .set_identity_path(socket)
                .map_err(|e| no_agent(format!("agent socket {}: {e}", socket.display())))?;
        }
        agent.connect().map_err(|e| no_agent(e.to_string()))?;
        agent
            .list_identities()
            .map_err(|e| no_agent(e.to_string()))?;
        let identities = agent.identities().map_err(|e| no_agent(e.to_string()))?;
        for identity in &identities {
            if agent.userauth(&target.user, identity).is_ok() && session.authenticated() {
                return Ok(());
            }
        }
        Err(SshError::AuthRejected {
            node: target.node.clone(),
            addr: target.addr,
            user: target.user.clone(),
            tried: identities.len(),
        })
    }
}

/// Builds a tar stream of files for `tar -x` on the node: the one copy mechanism that works
/// with any sshd (no sftp or scp needed on the node).
pub fn tar_archive(files: &[(String, Vec<u8>, u32)]) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, content, mode) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(*mode);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, path, content.as_slice())?;
    }
    builder.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_lines_parse() {
        // Equality with `ssh-keygen -l` is tested against the real tool in tests/ssh_openssh.rs.
        let line =
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGsBkVUcjSDOlOIOJjJ0S5k2kcLR8TPPGL8bKfXPJ0E1 test";
        let blob = public_key_blob(line).unwrap();
        assert_eq!(fingerprint(&blob).len(), "SHA256:".len() + 43);
        assert!(public_key_blob("ssh-ed25519").is_none());
        assert!(public_key_blob("ssh-ed25519 !!!notbase64").is_none());
    }

    fn target(node: &str) -> SshTarget {
        SshTarget {
            node: node.into(),
            addr: "127.0.0.1:2222".parse().unwrap(),
            user: "core".into(),
            host_key: String::new(),
        }
    }

    #[test]
    fn refusals_are_a_wrong_port_only_past_the_limit_and_while_no_node_accepted() {
        let refused = RefusedPort::default();
        assert!(
            refused
                .refused(&target("a"), Duration::from_secs(60))
                .is_none()
        );
        let err = refused.refused(&target("b"), Duration::ZERO).unwrap();
        assert!(err.to_string().contains("(a, b)"), "{err}");
        assert!(!err.is_retryable());
        assert_eq!(refused.verdict(), Some(2222));

        let booting = RefusedPort::default();
        booting.accepted();
        assert!(booting.refused(&target("a"), Duration::ZERO).is_none());
        assert_eq!(booting.verdict(), None);
    }

    #[test]
    fn tar_archives_hold_the_files_with_modes() {
        let bytes = tar_archive(&[("a/b.key".into(), b"secret".to_vec(), 0o600)]).unwrap();
        let mut archive = tar::Archive::new(bytes.as_slice());
        let mut entries = archive.entries().unwrap();
        let mut entry = entries.next().unwrap().unwrap();
        assert_eq!(entry.path().unwrap().to_str(), Some("a/b.key"));
        assert_eq!(entry.header().mode().unwrap(), 0o600);
        let mut s = String::new();
        entry.read_to_string(&mut s).unwrap();
        assert_eq!(s, "secret");
    }
}
