//! The simulated clock: real time stretched by the time scale.
//!
//! Every duration of the simulated clouds (provisioning, deprovisioning, DNS propagation,
//! reservation cool-down) is simulated time, so `--time-scale 0.001` turns a 5-minute
//! provisioning into 300 ms without changing any other number. Timestamps the APIs report are
//! simulated too, which keeps them consistent with the states they describe.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

/// Simulated time: `origin_sim` plus real time elapsed since `origin_real`, divided by the scale.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SimClock {
    origin_real: Instant,
    origin_sim: DateTime<Utc>,
    scale: f64,
}

impl SimClock {
    /// A clock that reads `origin_sim` now and runs `1 / scale` times as fast as real time.
    /// `scale` must be finite and positive (checked by the caller).
    pub(crate) fn new(scale: f64, origin_sim: DateTime<Utc>) -> Self {
        SimClock {
            origin_real: Instant::now(),
            origin_sim,
            scale,
        }
    }

    /// Real seconds per simulated second.
    pub(crate) fn scale(self) -> f64 {
        self.scale
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.origin_sim + self.to_sim(self.origin_real.elapsed())
    }

    /// The simulated duration that `real` real time stands for.
    pub(crate) fn to_sim(self, real: Duration) -> chrono::Duration {
        sim_duration(real.as_secs_f64() / self.scale)
    }

    /// The real time a simulated duration takes.
    pub(crate) fn to_real(self, sim: chrono::Duration) -> Duration {
        let secs = sim.as_seconds_f64() * self.scale;
        Duration::try_from_secs_f64(secs.max(0.0)).unwrap_or(Duration::MAX)
    }
}

/// A simulated duration of `secs` seconds, saturating instead of overflowing.
pub(crate) fn sim_duration(secs: f64) -> chrono::Duration {
    const MAX_SECS: f64 = 1.0e12;
    let micros = (secs.clamp(-MAX_SECS, MAX_SECS) * 1.0e6).round();
    // The clamp keeps the value far inside i64's range, so the cast cannot truncate.
    chrono::Duration::microseconds(micros as i64)
}

/// Simulated durations of the clouds' slow operations.
#[derive(Clone, Debug, PartialEq)]
pub struct Timings {
    /// How long a new device stays `queued`.
    pub queued: Duration,
    /// How long it then stays `provisioning`.
    pub provisioning: Duration,
    /// How long a deleted device stays `deprovisioning` before it is gone.
    pub deprovisioning: Duration,
    /// How long a hardware reservation stays unprovisionable after its device is gone.
    pub reservation_cooldown: Duration,
    /// How long a Route53 change stays `PENDING`.
    pub dns_propagation: Duration,
}

impl Default for Timings {
    /// Close to what Packet and Route53 take.
    fn default() -> Self {
        Timings {
            queued: Duration::from_secs(10),
            provisioning: Duration::from_secs(300),
            deprovisioning: Duration::from_secs(60),
            reservation_cooldown: Duration::from_secs(600),
            dns_propagation: Duration::from_secs(60),
        }
    }
}

impl Timings {
    pub(crate) fn queued(&self) -> chrono::Duration {
        sim_time(self.queued)
    }
    pub(crate) fn provisioning(&self) -> chrono::Duration {
        sim_time(self.provisioning)
    }
    pub(crate) fn deprovisioning(&self) -> chrono::Duration {
        sim_time(self.deprovisioning)
    }
    pub(crate) fn reservation_cooldown(&self) -> chrono::Duration {
        sim_time(self.reservation_cooldown)
    }
    pub(crate) fn dns_propagation(&self) -> chrono::Duration {
        sim_time(self.dns_propagation)
    }
}

/// A simulated duration of `d`.
pub(crate) fn sim_time(d: Duration) -> chrono::Duration {
    sim_duration(d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_converts_both_ways() {
        let clock = SimClock::new(0.001, Utc::now());
        assert_eq!(
            clock.to_sim(Duration::from_millis(300)),
            chrono::Duration::seconds(300)
        );
        assert_eq!(
            clock.to_real(chrono::Duration::seconds(300)),
            Duration::from_millis(300)
        );
    }
}
