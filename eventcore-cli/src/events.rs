//! `events show`, `events tail` and `head`.

use std::time::Duration;

use eventcore::store::EventFilter;
use eventcore::EventStore;
use serde_json::json;
use uuid::Uuid;

use crate::cli::EventsCommand;
use crate::error::CliError;
use crate::output::{event_block, event_json, event_row, table, write_out, Output, EVENT_HEADERS};

/// Parses an event or letter id.
pub fn parse_id(id: &str) -> Result<Uuid, CliError> {
    Uuid::parse_str(id.trim())
        .map_err(|e| CliError::Usage(format!("`{id}` is not an event id (a UUID): {e}")))
}

/// Runs an `events` command.
pub async fn run<S: EventStore>(store: &S, command: EventsCommand, output: &Output) -> Result<(), CliError> {
    match command {
        EventsCommand::Show { event_id } => {
            let id = parse_id(&event_id)?;
            let event = store
                .find_event(id)
                .await?
                .ok_or_else(|| CliError::NotFound(format!("no event with id {id} in this store")))?;
            output.emit(&event_json(&event), || event_block(&event))?;
        }
        EventsCommand::Tail { from, limit, follow } => {
            let head = store.head_position().await?;
            let limit = limit.max(1);
            let from = from.unwrap_or_else(|| (head + 1).saturating_sub(limit as u64).max(1));
            if follow {
                return follow_log(store, from, limit, output).await;
            }
            let batch = store.read_batch(from, &EventFilter::all(), limit).await?;
            let value = json!({
                "events": batch.events.iter().map(event_json).collect::<Vec<_>>(),
                "next_position": batch.next_position,
                "head": batch.head,
            });
            output.emit(&value, || {
                let rows: Vec<Vec<String>> = batch.events.iter().map(event_row).collect();
                format!(
                    "{}head {}; next: --from {}",
                    table(&EVENT_HEADERS, &rows, "no events from there"),
                    batch.head,
                    batch.next_position
                )
            })?;
        }
    }
    Ok(())
}

/// How often `--follow` looks for new events.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

/// Prints the log from `from` as it grows, until the process is interrupted.
async fn follow_log<S: EventStore>(
    store: &S,
    from: u64,
    limit: usize,
    output: &Output,
) -> Result<(), CliError> {
    let mut position = from;
    let mut header = true;
    loop {
        let batch = store.read_batch(position, &EventFilter::all(), limit).await?;
        if !batch.events.is_empty() {
            if output.is_json() {
                for event in &batch.events {
                    write_out(&format!("{}\n", event_json(event)))?;
                }
            } else {
                let rows: Vec<Vec<String>> = batch.events.iter().map(event_row).collect();
                let text = table(&EVENT_HEADERS, &rows, "");
                let skip = if header { 0 } else { 1 };
                let lines: String = text.lines().skip(skip).map(|l| format!("{l}\n")).collect();
                write_out(&lines)?;
                header = false;
            }
        }
        let moved = batch.next_position > position;
        position = batch.next_position.max(position);
        if !moved {
            tokio::time::sleep(FOLLOW_POLL).await;
        }
    }
}

/// Runs `head`.
pub async fn head<S: EventStore>(store: &S, output: &Output) -> Result<(), CliError> {
    let head = store.head_position().await?;
    output.emit(&json!({ "head": head }), || head.to_string())?;
    Ok(())
}
