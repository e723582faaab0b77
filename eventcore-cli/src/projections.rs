//! `projections status` and `projections rebuild`.

use std::time::Duration;

use eventcore::runner::RunnerStore;
use serde_json::json;

use crate::cli::ProjectionsCommand;
use crate::error::CliError;
use crate::output::{or_dash, time, Output};
use crate::runners::{runner_rows, status_table, Kind, RunnerRow};

/// How long the tool holds a projection's lease while resetting it.
const RESET_LEASE: Duration = Duration::from_secs(30);

/// Runs a `projections` command.
pub async fn run<S: RunnerStore>(
    store: &S,
    command: ProjectionsCommand,
    output: &Output,
) -> Result<(), CliError> {
    match command {
        ProjectionsCommand::Status => {
            let rows: Vec<RunnerRow> = runner_rows(store)
                .await?
                .into_iter()
                .filter(|r| r.kind.is_projection())
                .collect();
            let value = json!(rows.iter().map(RunnerRow::json).collect::<Vec<_>>());
            output.emit(&value, || status_table(&rows))?;
            Ok(())
        }
        ProjectionsCommand::Rebuild { name, force } => rebuild(store, &name, force, output).await,
    }
}

/// Empties projection `name`'s documents and moves its checkpoint to the start, in one
/// transaction, under its lease (see the command's help).
async fn rebuild<S: RunnerStore>(
    store: &S,
    name: &str,
    force: bool,
    output: &Output,
) -> Result<(), CliError> {
    let rows = runner_rows(store).await?;
    let row = rows.iter().find(|r| r.name == name).ok_or_else(|| {
        CliError::NotFound(format!(
            "no projection named `{name}` has a checkpoint in this store"
        ))
    })?;
    match row.kind {
        Kind::Consumer => {
            return Err(CliError::Refused(format!(
                "`{name}` is an event-bus consumer, not a projection: replaying it would repeat its side effects"
            )))
        }
        Kind::Rebuild => {
            return Err(CliError::Refused(format!(
                "`{name}` is the shadow copy of a rebuild in progress (or abandoned); rebuild the projection itself"
            )))
        }
        Kind::Saga => {
            return Err(CliError::Refused(format!(
                "`{name}` is a saga: replaying it would run its steps again and send their commands again"
            )))
        }
        Kind::Relay => {
            return Err(CliError::Refused(format!(
                "`{name}` is a relay: resetting it would publish every event to the bus again"
            )))
        }
        Kind::TableProjection => {
            return Err(CliError::Refused(format!(
                "`{name}` is a table projection: the tool cannot clear its tables, and a replay would apply \
                 every event to them again. Rebuild it from your code (`Projections::rebuild`), or empty its \
                 tables yourself"
            )))
        }
        Kind::Projection => {}
    }
    if row.live_lease() && !force {
        return Err(CliError::Refused(format!(
            "projection `{name}` is running: {} holds its lease until {}. Stop the service first, or pass \
             --force to fence it out (it then takes its lease back and replays from the start)",
            or_dash(row.owner.as_deref()),
            row.lease_expires.as_ref().map_or_else(|| "-".to_owned(), time),
        )));
    }
    let owner = format!("eventcore-cli/{}", std::process::id());
    // Fence out any owner: its next write fails, and it reads the reset checkpoint when it
    // takes the lease back.
    let lease = store.take_over_lease(name, &owner, RESET_LEASE).await?;
    let shadow = format!("{name}.rebuild");
    let reset = async {
        store.clear_documents(&shadow).await?;
        // Swapping in the (empty) shadow deletes the documents and sets the checkpoint at once.
        store.swap_documents(&lease, &shadow, name, 1, row.version).await
    }
    .await;
    let released = store.release_lease(&lease).await;
    reset?;
    released?;
    let value = json!({ "projection": name, "reset": true, "position": 1, "was_at": row.position, "forced": force && row.live_lease() });
    output.emit(&value, || {
        format!(
            "projection `{name}` reset: documents deleted, checkpoint moved from {} to 1; its runner replays \
             every event when it next takes its lease (start the service, or wait for the running one)",
            row.position
        )
    })?;
    Ok(())
}
