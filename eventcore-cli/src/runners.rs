//! Every runner's checkpoint against the head: the rows `runners lag` and `projections status`
//! print.

use chrono::{DateTime, Utc};
use eventcore::bus::{Broker, ConsumerLag, EventBus};
use eventcore::runner::{recorded_failures, recorded_kinds, RunnerKind, RunnerStore};
use eventcore::saga::inspect::saga_of_runner;
use serde_json::{json, Value};

use crate::cli::RunnersCommand;
use crate::error::CliError;
use crate::output::{or_dash, table, time, Output};

/// What kind of runner a checkpoint belongs to, as far as the store tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An event-bus consumer (it keeps delivery markers).
    Consumer,
    /// A saga (`saga.NAME`).
    Saga,
    /// A relay to a broker bus (it records its kind).
    Relay,
    /// A projection into its own tables (it records its kind).
    TableProjection,
    /// The shadow checkpoint of a projection rebuild (`NAME.rebuild`).
    Rebuild,
    /// Anything else: document projections (and runners that recorded no kind).
    Projection,
}

impl Kind {
    /// Its name in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Consumer => "consumer",
            Self::Saga => "saga",
            Self::Relay => "relay",
            Self::TableProjection => "table_projection",
            Self::Rebuild => "rebuild",
            Self::Projection => "projection",
        }
    }

    /// Whether it is a projection of some sort (what `projections status` lists).
    pub fn is_projection(self) -> bool {
        matches!(self, Self::Projection | Self::TableProjection | Self::Rebuild)
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
    let recorded = recorded_kinds(store).await?;
    let now = Utc::now();
    Ok(store
        .checkpoints()
        .await?
        .into_iter()
        .map(|checkpoint| {
            let recorded = recorded
                .iter()
                .find(|(name, _)| *name == checkpoint.name)
                .map(|(_, kind)| *kind);
            let kind = if saga_of_runner(&checkpoint.name).is_some() {
                Kind::Saga
            } else if checkpoint.name.ends_with(".rebuild") {
                Kind::Rebuild
            } else if consumers.contains(&checkpoint.name) {
                Kind::Consumer
            } else {
                match recorded {
                    Some(RunnerKind::Relay) => Kind::Relay,
                    Some(RunnerKind::TableProjection) => Kind::TableProjection,
                    _ => Kind::Projection,
                }
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

/// Runs a `runners` command; with `bus`, the broker's consumers join the table.
pub async fn run<S: RunnerStore>(
    store: &S,
    command: RunnersCommand,
    bus: Option<&Bus>,
    output: &Output,
) -> Result<(), CliError> {
    match command {
        RunnersCommand::Lag => {
            let rows = runner_rows(store).await?;
            let broker = match bus {
                Some(bus) => broker_rows(bus).await?,
                None => Vec::new(),
            };
            let value = json!(rows
                .iter()
                .map(RunnerRow::json)
                .chain(broker.iter().map(BrokerRow::json))
                .collect::<Vec<_>>());
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
                    .chain(broker.iter().map(BrokerRow::cells))
                    .collect();
                table(
                    &["RUNNER", "KIND", "NEXT", "HEAD", "LAG", "STATE"],
                    &cells,
                    "no runners have a checkpoint in this store",
                )
            })?;
        }
    }
    Ok(())
}

/// The broker bus given with `--redis` / `--nats`.
pub type Bus = EventBus<Broker>;

/// One consumer as the broker counts it.
pub struct BrokerRow {
    transport: &'static str,
    lag: ConsumerLag,
}

/// The broker's consumers on `bus`.
pub async fn broker_rows(bus: &Bus) -> Result<Vec<BrokerRow>, CliError> {
    let transport = bus.transport_name();
    Ok(bus
        .consumer_lag()
        .await
        .map_err(|e| CliError::Runner(e.into()))?
        .into_iter()
        .map(|lag| BrokerRow { transport, lag })
        .collect())
}

impl BrokerRow {
    /// Messages it has not handled yet: handed out and unacknowledged, and not yet handed out.
    fn total(&self) -> Option<u64> {
        self.lag.undelivered.map(|u| u + self.lag.pending)
    }

    fn json(&self) -> Value {
        json!({
            "name": self.lag.consumer,
            "kind": format!("{}_consumer", self.transport),
            "partitions": self.lag.partitions,
            "pending": self.lag.pending,
            "undelivered": self.lag.undelivered,
            "lag": self.total(),
        })
    }

    fn cells(&self) -> Vec<String> {
        vec![
            self.lag.consumer.clone(),
            format!("{} consumer", self.transport),
            "-".to_owned(),
            "-".to_owned(),
            self.total().map_or_else(|| "?".to_owned(), |n| n.to_string()),
            format!(
                "{} unacked, {} undelivered",
                self.lag.pending,
                self.lag
                    .undelivered
                    .map_or_else(|| "?".to_owned(), |n| n.to_string())
            ),
        ]
    }
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
            "NEXT",
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
