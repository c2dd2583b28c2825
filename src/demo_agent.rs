//! The demo's own ssh-agent: `loko run --sim` needs no agent of the user's, no key and no
//! OpenSSH install, so it serves one throwaway Ed25519 key on a socket in the state directory,
//! speaking the agent protocol (draft-miller-ssh-agent) that libssh2 uses: list identities and
//! sign. The key is kept (mode 0600) so that a resumed demo uses the same one.

use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use ssh_key::{Algorithm, LineEnding, PrivateKey};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{UnixListener, UnixStream};

const FAILURE: u8 = 5;
const REQUEST_IDENTITIES: u8 = 11;
const IDENTITIES_ANSWER: u8 = 12;
const SIGN_REQUEST: u8 = 13;
const SIGN_RESPONSE: u8 = 14;
/// Requests larger than this are not an agent client's.
const MAX_MESSAGE: usize = 256 * 1024;

/// A running agent; it stops when dropped.
pub struct DemoAgent {
    pub socket: PathBuf,
    /// The key's OpenSSH public line, to add to the nodes' authorized keys.
    pub public_line: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for DemoAgent {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.socket);
    }
}

impl DemoAgent {
    /// Loads the key at `dir/demo_ed25519` (creating it) and serves it on `dir/agent.sock`.
    pub fn start(dir: &Path) -> anyhow::Result<DemoAgent> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let key = load_or_create(&dir.join("demo_ed25519"))?;
        let public_line = key
            .public_key()
            .to_openssh()
            .context("cannot encode the demo key")?;
        let socket = dir.join("agent.sock");
        let _ = std::fs::remove_file(&socket);
        let listener = UnixListener::bind(&socket)
            .with_context(|| format!("cannot listen on {}", socket.display()))?;
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot restrict {}", socket.display()))?;
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let key = key.clone();
                tokio::spawn(async move {
                    if let Err(e) = serve(stream, &key).await {
                        tracing::debug!("demo agent connection ended: {e}");
                    }
                });
            }
        });
        Ok(DemoAgent {
            socket,
            public_line: public_line.trim().to_owned(),
            task,
        })
    }
}

fn load_or_create(path: &Path) -> anyhow::Result<PrivateKey> {
    match std::fs::read_to_string(path) {
        Ok(text) => PrivateKey::from_openssh(text.trim())
            .with_context(|| format!("{} is not an OpenSSH private key", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = PrivateKey::random(&mut ssh_key::rand_core::OsRng, Algorithm::Ed25519)
                .context("cannot generate the demo key")?;
            let text = key
                .to_openssh(LineEnding::LF)
                .context("cannot encode the demo key")?;
            use std::io::Write as _;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            file.write_all(text.as_bytes())
                .and_then(|()| file.sync_all())
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

async fn serve(mut stream: UnixStream, key: &PrivateKey) -> anyhow::Result<()> {
    let blob = key.public_key().to_bytes()?;
    loop {
        let len = match stream.read_u32().await {
            Ok(len) => len as usize,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        anyhow::ensure!((1..=MAX_MESSAGE).contains(&len), "message of {len} bytes");
        let mut message = vec![0; len];
        stream.read_exact(&mut message).await?;
        let reply = match message[0] {
            REQUEST_IDENTITIES => {
                let mut out = vec![IDENTITIES_ANSWER];
                out.extend(1u32.to_be_bytes());
                put_string(&mut out, &blob);
                put_string(&mut out, b"loko demo");
                out
            }
            SIGN_REQUEST => sign(&message[1..], &blob, key).unwrap_or_else(|| vec![FAILURE]),
            _ => vec![FAILURE],
        };
        stream.write_u32(reply.len() as u32).await?;
        stream.write_all(&reply).await?;
    }
}

/// `string key_blob, string data, uint32 flags` → `SIGN_RESPONSE string signature`.
fn sign(body: &[u8], blob: &[u8], key: &PrivateKey) -> Option<Vec<u8>> {
    let (requested, rest) = take_string(body)?;
    let (data, _flags) = take_string(rest)?;
    if requested != blob {
        return None;
    }
    let signature: ssh_key::Signature = signature::Signer::try_sign(key, data).ok()?;
    // `string algorithm, string signature blob` (RFC 4253 section 6.6).
    let mut encoded = Vec::new();
    put_string(&mut encoded, signature.algorithm().as_str().as_bytes());
    put_string(&mut encoded, signature.as_bytes());
    let mut out = vec![SIGN_RESPONSE];
    put_string(&mut out, &encoded);
    Some(out)
}

fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend((bytes.len() as u32).to_be_bytes());
    out.extend(bytes);
}

fn take_string(input: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = u32::from_be_bytes(input.get(..4)?.try_into().ok()?) as usize;
    let rest = &input[4..];
    Some((rest.get(..len)?, &rest[len..]))
}
