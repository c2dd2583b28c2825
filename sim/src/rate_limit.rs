//! Packet's rate limit: its configuration and the fixed windows the gate counts requests in.

use std::time::{Duration, Instant};

/// Packet's rate limit: at most `requests` per `window` of simulated time, per simulator.
#[derive(Clone, Debug, PartialEq)]
pub struct RateLimit {
    /// Requests allowed per window.
    pub requests: u32,
    /// The window, in simulated time like every duration of the simulator: with a time scale,
    /// `Retry-After` and `X-RateLimit-Reset` count simulated seconds too, so a client that
    /// scales its waits alike keeps the real API's precision (a whole second of a minute)
    /// instead of losing a whole real second of a window that lasts a few.
    pub window: Duration,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            requests: 600,
            window: Duration::from_secs(60),
        }
    }
}

/// Fixed windows of real time, back to back from the first request (or the first after
/// [`RateWindow::default`] replaced it), each letting at most `RateLimit::requests` Packet
/// requests through: window k is `[first + k·window, first + (k+1)·window)`, as a limit that
/// resets on the minute.
///
/// The windows keep their schedule when a client pauses: one that waits out a 429's
/// `Retry-After` (whole seconds, so rounded up) starts late into the next window but does not
/// push the windows after it back. A window that opened with the first request after a pause
/// would carry every rounding of a long run of windows into the last one, a delay no client
/// could avoid and that a benchmark's bound (`(k-1)/requests` windows before the k-th request)
/// does not allow for.
#[derive(Default)]
pub(crate) struct RateWindow {
    first: Option<Instant>,
    /// The window `used` counts in, by number from `first`.
    index: u128,
    used: u32,
}

pub(crate) struct RateDecision {
    pub(crate) allowed: bool,
    pub(crate) remaining: u32,
    pub(crate) reset: Duration,
}

impl RateWindow {
    pub(crate) fn take(&mut self, limit: &RateLimit, now: Instant) -> RateDecision {
        let first = *self.first.get_or_insert(now);
        let elapsed = now.saturating_duration_since(first);
        let window = limit.window.max(Duration::from_nanos(1));
        let index = elapsed.as_nanos() / window.as_nanos();
        if index != self.index {
            self.index = index;
            self.used = 0;
        }
        let allowed = self.used < limit.requests;
        if allowed {
            self.used += 1;
        }
        let ends = window.as_nanos() * (index + 1);
        RateDecision {
            allowed,
            remaining: limit.requests.saturating_sub(self.used),
            reset: Duration::from_nanos(
                u64::try_from(ends - elapsed.as_nanos()).unwrap_or(u64::MAX),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_windows_keep_their_schedule_when_clients_pause() {
        let limit = RateLimit {
            requests: 2,
            window: Duration::from_secs(60),
        };
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut w = RateWindow::default();
        assert!(w.take(&limit, at(0)).allowed);
        assert!(w.take(&limit, at(10)).allowed);
        let refused = w.take(&limit, at(15));
        assert!(!refused.allowed);
        assert_eq!(refused.reset, Duration::from_secs(45));
        // A client back 1 s late (a rounded-up `Retry-After`) is in window 1, which still
        // ends at 120 s, not at 121 s.
        let late = w.take(&limit, at(61));
        assert!(late.allowed);
        assert_eq!(late.reset, Duration::from_secs(59));
        assert!(w.take(&limit, at(119)).allowed);
        assert!(!w.take(&limit, at(119)).allowed);
        assert!(w.take(&limit, at(120)).allowed, "window 2 opens on time");
        // A long pause skips windows; the schedule stays.
        let later = w.take(&limit, at(1000));
        assert!(later.allowed);
        assert_eq!(later.reset, Duration::from_secs(20));
        // Restarted: the next request opens window 0.
        let mut w = RateWindow::default();
        assert_eq!(w.take(&limit, at(1001)).reset, Duration::from_secs(60));
    }
}
