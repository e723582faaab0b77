//! Retry policy of runners: how often to retry a failing event, and how long to wait between.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// Waits between retries: exponential, with jitter, capped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    min: Duration,
    max: Duration,
}

impl Backoff {
    /// Starts at `min`, doubles each retry up to `max`, each wait with random jitter (so runners
    /// that failed together do not retry together).
    pub fn exponential(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max: max.max(min),
        }
    }

    /// The waits before retries 1, 2, 3, ... (endless).
    pub fn delays(&self) -> impl Iterator<Item = Duration> + Send {
        ExponentialBuilder::default()
            .with_min_delay(self.min)
            .with_max_delay(self.max)
            .with_jitter()
            .without_max_times()
            .build()
    }
}

impl Default for Backoff {
    /// 100 ms doubling up to 30 s.
    fn default() -> Self {
        Self::exponential(Duration::from_millis(100), Duration::from_secs(30))
    }
}

/// When a runner gives up on an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts at one event before the runner stops with it (at least 1).
    pub max_attempts: u32,
    /// Waits between attempts.
    pub backoff: Backoff,
}

impl Default for RetryPolicy {
    /// 5 attempts with the default backoff.
    fn default() -> Self {
        Self {
            max_attempts: 5,
            backoff: Backoff::default(),
        }
    }
}
