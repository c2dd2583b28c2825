//! A resource class's concurrency limit that hands a freed place to the waiting step that comes
//! first in the DAG, not to the one that asked first.
//!
//! Why not a FIFO semaphore: steps give their place back while they only wait
//! ([`crate::StepContext::wait`]) and queue again afterwards, so with a FIFO the order of a
//! thousand device creates is whatever order their waits happened to end in. The DAG declares
//! the critical path first (controllers before workers), and under a class limit or an API rate
//! limit those are the steps whose delay delays the whole run.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

/// At most `limit` holders at a time; waiters are served by priority (lower first), then in the
/// order they came.
pub(crate) struct ClassLimit {
    state: Mutex<State>,
}

struct State {
    free: usize,
    next_seq: u64,
    waiters: BinaryHeap<Waiter>,
}

struct Waiter {
    priority: usize,
    seq: u64,
    grant: oneshot::Sender<Permit>,
}

/// A place in a class; dropping it frees the place.
pub(crate) struct Permit {
    limit: Arc<ClassLimit>,
    /// False only for a permit that never reached its waiter (it had gone), which is not a
    /// place anyone holds.
    armed: bool,
}

impl ClassLimit {
    pub(crate) fn new(limit: usize) -> Arc<ClassLimit> {
        Arc::new(ClassLimit {
            state: Mutex::new(State {
                free: limit,
                next_seq: 0,
                waiters: BinaryHeap::new(),
            }),
        })
    }

    /// Waits for a place. Cancel-safe: a waiter dropped before or after it was granted a place
    /// does not keep it.
    pub(crate) async fn acquire(self: &Arc<Self>, priority: usize) -> Permit {
        let granted = {
            let mut state = self.lock();
            if state.free > 0 {
                state.free -= 1;
                return Permit {
                    limit: Arc::clone(self),
                    armed: true,
                };
            }
            let (tx, rx) = oneshot::channel();
            let seq = state.next_seq;
            state.next_seq += 1;
            state.waiters.push(Waiter {
                priority,
                seq,
                grant: tx,
            });
            rx
        };
        match granted.await {
            Ok(permit) => permit,
            // The sender is only dropped unsent when the limit itself is dropped, which cannot
            // happen while `self` is borrowed here.
            Err(_) => unreachable!("a class limit dropped a waiter while it was alive"),
        }
    }

    fn release(self: &Arc<Self>) {
        let mut state = self.lock();
        while let Some(waiter) = state.waiters.pop() {
            let permit = Permit {
                limit: Arc::clone(self),
                armed: true,
            };
            match waiter.grant.send(permit) {
                Ok(()) => return,
                // That waiter was cancelled; the place goes to the next one.
                Err(mut unsent) => unsent.armed = false,
            }
        }
        state.free += 1;
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every change to the state is a single push, pop or counter step: a panic elsewhere
        // cannot leave it half-changed.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.armed {
            self.limit.release();
        }
    }
}

// The heap pops its greatest element: the lowest priority number, then the earliest arrival.
impl Ord for Waiter {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.priority, other.seq).cmp(&(self.priority, self.seq))
    }
}

impl PartialOrd for Waiter {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Waiter {
    fn eq(&self, other: &Self) -> bool {
        (self.priority, self.seq) == (other.priority, other.seq)
    }
}

impl Eq for Waiter {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_freed_place_goes_to_the_first_in_the_plan_then_the_first_to_ask() {
        let limit = ClassLimit::new(1);
        let held = limit.acquire(0).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        // Ask in the order 5, 3, 9, 3: the places must go 3, 3 (in asking order), 5, 9.
        for (i, priority) in [5usize, 3, 9, 3].into_iter().enumerate() {
            let (limit, order) = (Arc::clone(&limit), Arc::clone(&order));
            tasks.push(tokio::spawn(async move {
                let _place = limit.acquire(priority).await;
                order.lock().unwrap().push((priority, i));
            }));
            // Let each one queue before the next asks.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        drop(held);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![(3, 1), (3, 3), (5, 0), (9, 2)]);
    }

    #[tokio::test]
    async fn a_cancelled_waiter_does_not_keep_a_place() {
        let limit = ClassLimit::new(1);
        let held = limit.acquire(0).await;
        let cancelled = tokio::spawn({
            let limit = Arc::clone(&limit);
            async move { limit.acquire(0).await }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        cancelled.abort();
        assert!(cancelled.await.is_err());
        drop(held);
        let again = tokio::time::timeout(Duration::from_secs(5), limit.acquire(1)).await;
        assert!(again.is_ok(), "the place was lost to a cancelled waiter");
        drop(again);
        // Both places of a limit of 2 come back after use.
        let two = ClassLimit::new(2);
        let (a, b) = (two.acquire(0).await, two.acquire(0).await);
        drop((a, b));
        let _c = two.acquire(0).await;
        let _d = two.acquire(0).await;
    }
}
