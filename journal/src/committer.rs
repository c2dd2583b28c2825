//! The committer: one thread that flushes once for every batch of waiting appenders (group
//! commit), so a hundred steps finishing together cost one fsync, not a hundred.

use std::sync::{Arc, mpsc};

use tokio::sync::oneshot;

use crate::feed;
use crate::store::{Store, StoreError};

/// An appender waiting for the flush that makes its record durable.
pub(crate) type Waiter = oneshot::Sender<Result<(), StoreError>>;

/// The committer: one thread that flushes once for every batch of waiting appenders.
///
/// Dropping it closes the queue and joins the thread, so that when a `Journal` is dropped the
/// store is closed (and its file lock released) before `drop` returns.
pub(crate) struct Committer {
    queue: Option<mpsc::Sender<Waiter>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Committer {
    pub(crate) fn spawn(
        store: Arc<dyn Store>,
        feed: Arc<feed::Feed>,
    ) -> std::io::Result<Committer> {
        let (tx, rx) = mpsc::channel::<Waiter>();
        let thread = std::thread::Builder::new()
            .name("journal-commit".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut batch = vec![first];
                    batch.extend(rx.try_iter());
                    // Taken before the flush, so every record published is durable.
                    let published = feed.take();
                    let result = store.flush();
                    if result.is_ok() {
                        feed.publish(&published);
                    }
                    for waiter in batch {
                        // The appender may have gone (its task was cancelled); the flush stands.
                        let _ = waiter.send(result.clone());
                    }
                }
                feed.close();
            })?;
        Ok(Committer {
            queue: Some(tx),
            thread: Some(thread),
        })
    }

    pub(crate) fn send(&self, waiter: Waiter) -> Result<(), mpsc::SendError<Waiter>> {
        match &self.queue {
            Some(queue) => queue.send(waiter),
            None => Err(mpsc::SendError(waiter)),
        }
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        self.queue.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
