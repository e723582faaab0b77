//! The status every runner reports: one struct read by the API, tools and tests.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

/// What a runner is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RunnerState {
    /// Started, not yet holding its lease (another process owns it).
    Standby,
    /// Reading the backlog towards the head.
    CatchingUp,
    /// At the head, handling new events as they commit.
    Live,
    /// Replaying from the start into a shadow copy, to swap it in at the head.
    Rebuilding,
    /// Stopped by an error it kept failing with; `last_error` says which, at which position.
    Failed,
    /// Stopped on request.
    Stopped,
}

impl fmt::Display for RunnerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Standby => "standby",
            Self::CatchingUp => "catching up",
            Self::Live => "live",
            Self::Rebuilding => "rebuilding",
            Self::Failed => "failed",
            Self::Stopped => "stopped",
        })
    }
}

/// A runner's progress and health.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RunnerStatus {
    /// The runner's name (a projection's, a consumer's).
    pub name: String,
    /// Its version.
    pub version: u32,
    /// The next position it reads: everything below is handled.
    pub position: u64,
    /// The store's head when last looked at.
    pub head: u64,
    /// Events between its position and the head.
    pub lag: u64,
    /// How far behind the head it is in time: the age of the oldest event it has yet to handle
    /// (zero when caught up).
    pub lag_time: Duration,
    /// What it is doing.
    pub state: RunnerState,
    /// The last error, with the position it happened at; kept until the runner moves past it.
    pub last_error: Option<String>,
    /// Events handled per second over the last batch.
    pub events_per_second: f64,
    /// Retries since it started.
    pub retries: u64,
    /// When the status last changed.
    pub updated_at: DateTime<Utc>,
}

impl RunnerStatus {
    /// The status of a runner that has not read anything yet.
    pub(crate) fn new(name: &str, version: u32) -> Self {
        Self {
            name: name.to_owned(),
            version,
            position: 1,
            head: 0,
            lag: 0,
            lag_time: Duration::ZERO,
            state: RunnerState::Standby,
            last_error: None,
            events_per_second: 0.0,
            retries: 0,
            updated_at: Utc::now(),
        }
    }

    /// Whether it has handled everything up to `head`.
    pub fn reached(&self, head: u64) -> bool {
        self.position > head
    }
}

/// The sending half of a runner's status, with the metrics it mirrors.
#[derive(Debug)]
pub(crate) struct StatusBoard {
    sender: watch::Sender<RunnerStatus>,
}

impl StatusBoard {
    pub(crate) fn new(name: &str, version: u32) -> Self {
        Self {
            sender: watch::Sender::new(RunnerStatus::new(name, version)),
        }
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<RunnerStatus> {
        self.sender.subscribe()
    }

    pub(crate) fn current(&self) -> RunnerStatus {
        self.sender.borrow().clone()
    }

    /// Changes the status and publishes it (and its gauges).
    pub(crate) fn update(&self, change: impl FnOnce(&mut RunnerStatus)) {
        self.sender.send_modify(|status| {
            change(status);
            status.lag = (status.head + 1).saturating_sub(status.position);
            status.updated_at = Utc::now();
            let name = status.name.clone();
            metrics::gauge!("eventcore_runner_lag_events", "runner" => name.clone()).set(status.lag as f64);
            metrics::gauge!("eventcore_runner_lag_seconds", "runner" => name)
                .set(status.lag_time.as_secs_f64());
        });
    }
}
