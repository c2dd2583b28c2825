//! Retry policy: exponential backoff with jitter, bounded by attempts and elapsed time.
//!
//! The only module that knows the `backoff` crate, which is unmaintained (RUSTSEC-2025-0012):
//! loko uses nothing of it but the jittered interval sequence, so replacing it means rewriting
//! [`Backoff::next_delay`] and nothing else.

use std::time::Duration;

use backoff::backoff::Backoff as _;

/// How a step is retried after a retryable error.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RetryPolicy {
    /// Attempts in one run, the first included; 1 means no retry. Attempts that failed with a
    /// `Retry-After` ([`crate::StepError::retry_after`]) do not count: only `max_elapsed`
    /// bounds how long a server may pace a step.
    pub max_attempts: u32,
    /// The first delay before jitter.
    pub initial: Duration,
    /// The largest delay before jitter.
    pub max_interval: Duration,
    /// Growth of the delay per attempt.
    pub multiplier: f64,
    /// Each delay is drawn uniformly from `delay * (1 ± jitter)`, so that many steps failing
    /// together (a 429 burst) do not retry together.
    pub jitter: f64,
    /// No new attempt starts after this much time since the step's first attempt in this run.
    pub max_elapsed: Option<Duration>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            initial: Duration::from_millis(500),
            max_interval: Duration::from_secs(30),
            multiplier: 2.0,
            jitter: 0.3,
            max_elapsed: Some(Duration::from_secs(15 * 60)),
        }
    }
}

impl RetryPolicy {
    /// No retries: the first error is final.
    pub fn never() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// The delay sequence of one step's attempts.
    pub(crate) fn backoff(&self) -> Backoff {
        let inner = backoff::ExponentialBackoff {
            current_interval: self.initial,
            initial_interval: self.initial,
            randomization_factor: self.jitter.clamp(0.0, 1.0),
            multiplier: self.multiplier.max(1.0),
            max_interval: self.max_interval.max(self.initial),
            // Elapsed time is enforced by the engine against the step's own clock.
            max_elapsed_time: None,
            ..backoff::ExponentialBackoff::default()
        };
        Backoff { inner }
    }
}

/// The delays between attempts of one step.
pub(crate) struct Backoff {
    inner: backoff::ExponentialBackoff,
}

impl Backoff {
    /// The next delay, at least `floor` (a server's `Retry-After`).
    pub(crate) fn next_delay(&mut self, floor: Option<Duration>) -> Duration {
        let delay = self.inner.next_backoff().unwrap_or(self.inner.max_interval);
        floor.map_or(delay, |f| delay.max(f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_with_jitter_and_respect_retry_after() {
        let policy = RetryPolicy {
            initial: Duration::from_millis(100),
            max_interval: Duration::from_millis(400),
            jitter: 0.5,
            ..RetryPolicy::default()
        };
        let mut b = policy.backoff();
        let first = b.next_delay(None);
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(150));
        for _ in 0..10 {
            assert!(b.next_delay(None) <= Duration::from_millis(600));
        }
        assert!(b.next_delay(Some(Duration::from_secs(5))) >= Duration::from_secs(5));
        // Jitter spreads delays: 50 draws are not all equal.
        let draws: std::collections::BTreeSet<_> =
            (0..50).map(|_| policy.backoff().next_delay(None)).collect();
        assert!(draws.len() > 1);
    }
}
