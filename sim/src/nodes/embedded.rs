//! The embedded SSH backend: an in-process SSH server (russh) per node.
//!
//! Only public-key authentication for user `core` against the Ignition's keys is accepted. Every
//! `exec`, `shell` and `sftp` request runs `/bin/sh <node>/.sim/exec` with the request in
//! `SSH_ORIGINAL_COMMAND`, exactly as the OpenSSH backend's `ForceCommand` does, so both backends
//! share one command environment. The sftp subsystem is OpenSSH's own `sftp-server`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use russh::keys::{PrivateKey, PublicKey};
use russh::server::{Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, ChannelMsg, MethodKind, MethodSet};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio::process::Command;

use crate::connections::serve_connections;
use crate::ignition::SSH_USER;

/// Everything one node's embedded SSH server needs.
pub(super) struct EmbeddedSsh {
    config: Arc<russh::server::Config>,
    authorized: Arc<Vec<PublicKey>>,
    wrapper: Arc<PathBuf>,
}

impl EmbeddedSsh {
    pub(super) fn new(host_key: PrivateKey, authorized: Vec<PublicKey>, wrapper: PathBuf) -> Self {
        let config = russh::server::Config {
            server_id: russh::SshId::Standard("SSH-2.0-loko_sim".into()),
            methods: MethodSet::from(&[MethodKind::PublicKey][..]),
            keys: vec![host_key],
            auth_rejection_time: Duration::from_millis(100),
            auth_rejection_time_initial: Some(Duration::ZERO),
            inactivity_timeout: Some(Duration::from_secs(3600)),
            ..Default::default()
        };
        EmbeddedSsh {
            config: Arc::new(config),
            authorized: Arc::new(authorized),
            wrapper: Arc::new(wrapper),
        }
    }

    /// Accepts connections until the task running this is aborted.
    pub(super) async fn serve(self, listener: TcpListener) {
        serve_connections(listener, "embedded sshd", |tcp, peer| {
            let handler = SshSession {
                authorized: self.authorized.clone(),
                wrapper: self.wrapper.clone(),
                channels: HashMap::new(),
                peer,
            };
            let config = self.config.clone();
            async move {
                match russh::server::run_stream(config, tcp, handler).await {
                    Ok(session) => {
                        let _disconnect = DisconnectOnDrop(session.handle());
                        if let Err(error) = session.await {
                            tracing::debug!(%peer, %error, "SSH session ended with an error");
                        }
                    }
                    Err(error) => tracing::debug!(%peer, %error, "SSH handshake failed"),
                }
            }
        })
        .await;
    }
}

/// Disconnects the client when dropped, so that a stopped node drops its SSH sessions as a
/// powered-off machine would.
struct DisconnectOnDrop(russh::server::Handle);

impl Drop for DisconnectOnDrop {
    fn drop(&mut self) {
        let handle = self.0.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                // Fails when the session already ended, which is fine.
                let _ = handle
                    .disconnect(
                        russh::Disconnect::ByApplication,
                        "node powered off".to_owned(),
                        String::new(),
                    )
                    .await;
            });
        }
    }
}

struct SshSession {
    authorized: Arc<Vec<PublicKey>>,
    wrapper: Arc<PathBuf>,
    channels: HashMap<ChannelId, Channel<Msg>>,
    peer: SocketAddr,
}

impl SshSession {
    fn admits(&self, user: &str, key: &PublicKey) -> bool {
        user == SSH_USER
            && self
                .authorized
                .iter()
                .any(|authorized| authorized.key_data() == key.key_data())
    }

    /// Runs `command` (empty for a shell) through the node wrapper on the session's channel.
    fn run(
        &mut self,
        channel: ChannelId,
        command: String,
        session: &mut Session,
    ) -> Result<(), russh::Error> {
        let Some(channel_handle) = self.channels.remove(&channel) else {
            return session.channel_failure(channel);
        };
        let mut child = Command::new("/bin/sh");
        child
            .arg(self.wrapper.as_path())
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("SSH_ORIGINAL_COMMAND", &command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let child = match child.spawn() {
            Ok(child) => child,
            Err(error) => {
                tracing::warn!(%error, "cannot spawn the node command wrapper");
                return session.channel_failure(channel);
            }
        };
        session.channel_success(channel)?;
        tokio::spawn(pump(channel_handle, child));
        Ok(())
    }
}

/// Connects a command's stdio to an SSH channel and reports its exit status.
async fn pump(channel: Channel<Msg>, mut child: tokio::process::Child) {
    let (mut reader, writer) = channel.split();
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let stdin_task = tokio::spawn(async move {
        let mut stdin = stdin;
        while let Some(message) = reader.wait().await {
            match message {
                ChannelMsg::Data { data } => {
                    if let Some(pipe) = stdin.as_mut()
                        && pipe.write_all(&data).await.is_err()
                    {
                        stdin = None;
                    }
                }
                ChannelMsg::Eof | ChannelMsg::Close => {
                    // Closing stdin is what lets `tar -x` or `cat > file` finish.
                    stdin = None;
                }
                _ => {}
            }
        }
        drop(stdin);
    });
    let out = copy_to(stdout, writer.make_writer());
    let err = copy_to(stderr, writer.make_writer_ext(Some(1)));
    let (_, _, status) = tokio::join!(out, err, child.wait());
    let code = match status {
        Ok(status) => status
            .code()
            .map_or(255, |code| u32::try_from(code).unwrap_or(255)),
        Err(error) => {
            tracing::warn!(%error, "waiting for a node command failed");
            255
        }
    };
    // The client may already be gone; there is nobody left to tell then.
    let _ = writer.exit_status(code).await;
    let _ = writer.eof().await;
    let _ = writer.close().await;
    stdin_task.abort();
}

async fn copy_to(source: Option<impl AsyncRead + Unpin>, mut sink: impl AsyncWrite + Unpin) {
    if let Some(mut source) = source {
        if let Err(error) = tokio::io::copy(&mut source, &mut sink).await {
            tracing::debug!(%error, "forwarding command output stopped");
        }
        let _ = sink.flush().await;
    }
}

impl russh::server::Handler for SshSession {
    type Error = russh::Error;

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(if self.admits(user, offer.public_key) {
            Auth::Accept
        } else {
            Auth::reject()
        })
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        let admitted = self.admits(user, key.public_key);
        tracing::debug!(peer = %self.peer, user, admitted, "SSH public key authentication");
        Ok(if admitted {
            Auth::Accept
        } else {
            Auth::reject()
        })
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.channels.insert(channel.id(), channel);
        reply.accept().await;
        Ok(())
    }

    /// A terminal is granted (OpenSSH clients give up when an explicit `-t` is refused) but not
    /// emulated: commands still run on pipes, so an interactive shell has no prompt or job control.
    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _col_width: u32,
        _row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let command = String::from_utf8_lossy(data).into_owned();
        self.run(channel, command, session)
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.run(channel, String::new(), session)
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if name == "sftp" {
            self.run(channel, "sftp".to_owned(), session)
        } else {
            session.channel_failure(channel)
        }
    }
}
