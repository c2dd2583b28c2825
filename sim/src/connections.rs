//! Serving a listener's connections, each on its own task, for the servers a node runs (its
//! embedded SSH server, its apiserver emulator).
//!
//! The connections live in a set owned by the accepting task, so that aborting that task (a
//! node stopping, an emulator dropped) ends every connection too, as powering a machine off
//! would.

use std::future::Future;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// Accepts connections on `listener` until the task running this is aborted, and runs
/// `connection` for each. `server` names the server in the log line of a failed accept.
pub(crate) async fn serve_connections<F, Fut>(
    listener: TcpListener,
    server: &'static str,
    mut connection: F,
) where
    F: FnMut(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(%error, "{server} accept failed");
                        continue;
                    }
                };
                connections.spawn(connection(tcp, peer));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}
