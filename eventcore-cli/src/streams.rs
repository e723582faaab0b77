//! `streams list` and `streams show`.

use eventcore::store::validate_stream_id;
use eventcore::EventStore;
use serde_json::json;

use crate::cli::StreamsCommand;
use crate::error::CliError;
use crate::output::{event_json, event_row, table, Output, EVENT_HEADERS};

/// Runs a `streams` command.
pub async fn run<S: EventStore>(store: &S, command: StreamsCommand, output: &Output) -> Result<(), CliError> {
    match command {
        StreamsCommand::List { prefix, after, limit } => {
            let streams = store.list_streams(&prefix, after.as_deref(), limit).await?;
            let value = json!(streams
                .iter()
                .map(|s| json!({ "stream_id": s.stream_id, "version": s.version }))
                .collect::<Vec<_>>());
            output.emit(&value, || {
                let rows: Vec<Vec<String>> = streams
                    .iter()
                    .map(|s| vec![s.stream_id.clone(), s.version.to_string()])
                    .collect();
                table(&["STREAM", "VERSION"], &rows, "no streams")
            })?;
        }
        StreamsCommand::Show { stream, from, limit } => {
            validate_stream_id(&stream).map_err(|e| CliError::Usage(e.to_string()))?;
            let version = store.stream_version(&stream).await?;
            if version == 0 {
                return Err(CliError::NotFound(format!("no stream `{stream}` in this store")));
            }
            let events = store.read_stream(&stream, from.max(1), limit).await?;
            // The next page starts after the last event shown, if the stream goes on.
            let next = events
                .last()
                .map(|e| e.stream_version + 1)
                .filter(|next| *next <= version);
            let value = json!({
                "stream_id": stream,
                "version": version,
                "events": events.iter().map(event_json).collect::<Vec<_>>(),
                "next_version": next,
            });
            output.emit(&value, || {
                let rows: Vec<Vec<String>> = events.iter().map(event_row).collect();
                let more = next.map(|n| format!("more: --from {n}\n")).unwrap_or_default();
                format!(
                    "stream {stream} at version {version}\n{}{more}",
                    table(&EVENT_HEADERS, &rows, "no events in that range")
                )
            })?;
        }
    }
    Ok(())
}
