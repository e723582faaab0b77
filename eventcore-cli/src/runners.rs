//! Every runner's checkpoint against the head: the rows `runners lag` and `projections status`
//! print.

use chrono::{DateTime, Utc};
use eventcore::bus::EventBus;
use eventcore::runner::{recorded_failures, RunnerStore};
use serde_json::{json, Value};

use crate::cli::RunnersCommand;
use crate::error::CliError;
use crate::output::{or_dash, table, time, Output};

/// What kind of runner a checkpoint belongs to, as far as the store tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An event-bus consumer (it keeps delivery markers).
    Consumer,
    /// The shadow checkpoint of a projection rebuild (`NAME.rebuild`).
    Rebuild,
    /// Anything else: projections (documents or tables).
    Projection,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Consumer => "consumer",
            Self::Rebuild => "rebuild",
            Self::Projection => "projection",
        }
    }
}

/// One runner's standing.
#[derive(Debug, Clone)]
pub struct RunnerRow {
    pub name: String,
    pub kind: Kind,
    pub version: u32,
    /// The next position it reads.
    pub position: u64,
    pub head: u64,
    pub lag: u64,
    pub owner: Option<String>,
    pub lease_expires: Option<DateTime<Utc>>,
    /// `running`, `lease expired`, `stopped` or `failed`.
    pub state: &'static str,
    /// The recorded failure: `at position N: error`.
    pub error: Option<String>,
}

impl RunnerRow {
    /// Whether an owner holds an unexpired lease.
    pub fn live_lease(&self) -> bool {
        self.owner.is_some() && self.lease_expires.is_some_and(|at| at > Utc::now())
    }

    /// As JSON.
    pub fn json(&self) -> Value {
        json!({
            "name": self.name,
            "kind": self.kind.name(),
            "version": self.version,
            "position": self.position,
            "head": self.head,
            "lag": self.lag,
            "owner": self.owner,
            "lease_expires": self.lease_expires.as_ref().map(time),
            "state": self.state,
            "error": self.error,
        })
    }
}

/// Every runner of the store, by name, and the head.
pub async fn runner_rows<S: RunnerStore>(store: &S) -> Result<Vec<RunnerRow>, CliError> {
    let head = store.head_position().await?;
    let consumers = EventBus::local(store.clone()).consumers().await?;
    let failures = recorded_failures(store).await?;
    let now = Utc::now();
    Ok(store
        .checkpoints()
        .await?
        .into_iter()
        .map(|checkpoint| {
            let kind = if checkpoint.name.ends_with(".rebuild") {
                Kind::Rebuild
            } else if consumers.contains(&checkpoint.name) {
                Kind::Consumer
            } else {
                Kind::Projection
            };
            let failure = failures.iter().find(|f| f.name == checkpoint.name);
            let live = checkpoint.owner.is_some() && checkpoint.lease_expires.is_some_and(|at| at > now);
            // A failed runner gives its lease up just after recording why; one that runs again
            // clears the record when it starts.
            let state = match (failure, live, checkpoint.owner.is_some()) {
                (Some(_), _, _) => "failed",
                (None, true, _) => "running",
                (None, false, true) => "lease expired",
                (None, false, false) => "stopped",
            };
            RunnerRow {
                kind,
                version: checkpoint.version,
                position: checkpoint.position,
                head,
                lag: (head + 1).saturating_sub(checkpoint.position),
                owner: checkpoint.owner,
                lease_expires: checkpoint.lease_expires,
                state,
                // The recorded error names its position already.
                error: failure.map(|f| f.error.clone()),
                name: checkpoint.name,
            }
        })
        .collect())
}

/// Runs a `runners` command.
pub async fn run<S: RunnerStore>(
    store: &S,
    command: RunnersCommand,
    output: &Output,
) -> Result<(), CliError> {
    match command {
        RunnersCommand::Lag => {
            let rows = runner_rows(store).await?;
            let value = json!(rows.iter().map(RunnerRow::json).collect::<Vec<_>>());
            output.emit(&value, || {
                let cells: Vec<Vec<String>> = rows
                    .iter()
                    .map(|r| {
                        vec![
                            r.name.clone(),
                            r.kind.name().to_owned(),
                            r.position.to_string(),
                            r.head.to_string(),
                            r.lag.to_string(),
                            r.state.to_owned(),
                        ]
                    })
                    .collect();
                table(
                    &["RUNNER", "KIND", "POSITION", "HEAD", "LAG", "STATE"],
                    &cells,
                    "no runners have a checkpoint in this store",
                )
            })?;
        }
    }
    Ok(())
}

/// The status rows for people (used by `projections status`).
pub fn status_table(rows: &[RunnerRow]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                r.version.to_string(),
                r.position.to_string(),
                r.head.to_string(),
                r.lag.to_string(),
                r.state.to_owned(),
                or_dash(r.owner.as_deref()),
                r.lease_expires.as_ref().map_or_else(|| "-".to_owned(), time),
                or_dash(r.error.as_deref()),
            ]
        })
        .collect();
    table(
        &[
            "PROJECTION",
            "VERSION",
            "CHECKPOINT",
            "HEAD",
            "LAG",
            "STATE",
            "OWNER",
            "LEASE_EXPIRES",
            "ERROR",
        ],
        &cells,
        "no projections have a checkpoint in this store",
    )
}
