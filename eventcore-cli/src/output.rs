//! Printing: aligned tables for people, JSON for scripts.

use std::io::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};
use eventcore::RecordedEvent;
use serde_json::{json, Value};

use crate::error::CliError;

/// Where results go, and in which form.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    json: bool,
}

impl Output {
    /// Tables (`json == false`) or JSON.
    pub fn new(json: bool) -> Self {
        Self { json }
    }

    /// Whether output is JSON.
    pub fn is_json(&self) -> bool {
        self.json
    }

    /// Prints `value` as pretty JSON, or what `human` renders.
    pub fn emit(&self, value: &Value, human: impl FnOnce() -> String) -> Result<(), CliError> {
        let mut text = if self.json {
            serde_json::to_string_pretty(value)
                .map_err(|e| CliError::Usage(format!("cannot print JSON: {e}")))?
        } else {
            human()
        };
        if !text.ends_with('\n') {
            text.push('\n');
        }
        write_out(&text)
    }
}

/// Writes `text` to standard output; a closed pipe (`eventcore ... | head`) ends the command
/// quietly instead of panicking as `print!` does.
pub fn write_out(text: &str) -> Result<(), CliError> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::BrokenPipe => CliError::OutputClosed,
            _ => CliError::Io {
                what: "cannot write to standard output".into(),
                source,
            },
        })
}

/// Columns aligned under their headers, two spaces apart; an empty table says `empty`.
pub fn table(headers: &[&str], rows: &[Vec<String>], empty: &str) -> String {
    if rows.is_empty() {
        return format!("{empty}\n");
    }
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, (cell, width)) in cells.zip(&widths).enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            text.push_str(cell);
            text.extend(std::iter::repeat_n(
                ' ',
                width.saturating_sub(cell.chars().count()),
            ));
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut headers.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

/// A time as people read it: RFC 3339 in UTC, to the millisecond.
pub fn time(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// An optional text, `-` when absent.
pub fn or_dash(text: Option<&str>) -> String {
    text.unwrap_or("-").to_owned()
}

/// The payload as JSON when it is JSON, else as (lossy) text.
pub fn payload(event: &RecordedEvent) -> Value {
    serde_json::from_slice(&event.payload)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&event.payload).into_owned()))
}

/// An event and its whole envelope, as JSON.
pub fn event_json(event: &RecordedEvent) -> Value {
    json!({
        "position": event.global_position,
        "stream_id": event.stream_id,
        "stream_version": event.stream_version,
        "event_id": event.event_id,
        "event_type": event.event_type,
        "event_version": event.event_version,
        "aggregate_type": event.aggregate_type,
        "aggregate_id": event.aggregate_id,
        "occurred_at": time(&event.occurred_at),
        "correlation_id": event.correlation_id,
        "causation_id": event.causation_id,
        "metadata": event.metadata,
        "payload": payload(event),
    })
}

/// The headers of [`event_row`].
pub const EVENT_HEADERS: [&str; 8] = [
    "POSITION",
    "STREAM",
    "VERSION",
    "TYPE",
    "EV",
    "OCCURRED_AT",
    "EVENT_ID",
    "CORRELATION/CAUSATION",
];

/// One event as a table row (see [`EVENT_HEADERS`]).
pub fn event_row(event: &RecordedEvent) -> Vec<String> {
    vec![
        event.global_position.to_string(),
        event.stream_id.clone(),
        event.stream_version.to_string(),
        event.event_type.clone(),
        event.event_version.to_string(),
        time(&event.occurred_at),
        event.event_id.to_string(),
        format!(
            "{}/{}",
            or_dash(event.correlation_id.as_deref()),
            or_dash(event.causation_id.as_deref())
        ),
    ]
}

/// An event as a block of `key: value` lines, with its metadata and pretty payload.
pub fn event_block(event: &RecordedEvent) -> String {
    let mut out = String::new();
    let mut field = |key: &str, value: String| out.push_str(&format!("{key:<15} {value}\n"));
    field("event_id:", event.event_id.to_string());
    field("event_type:", event.event_type.clone());
    field("event_version:", event.event_version.to_string());
    field("stream:", event.stream_id.clone());
    field("stream_version:", event.stream_version.to_string());
    field("position:", event.global_position.to_string());
    field(
        "aggregate:",
        format!("{} {}", event.aggregate_type, event.aggregate_id),
    );
    field("occurred_at:", time(&event.occurred_at));
    field("correlation_id:", or_dash(event.correlation_id.as_deref()));
    field("causation_id:", or_dash(event.causation_id.as_deref()));
    if event.metadata.is_empty() {
        field("metadata:", "-".into());
    } else {
        out.push_str("metadata:\n");
        for (key, value) in &event.metadata {
            out.push_str(&format!("  {key}: {value}\n"));
        }
    }
    let payload = serde_json::to_string_pretty(&payload(event)).unwrap_or_default();
    out.push_str("payload:\n");
    for line in payload.lines() {
        out.push_str("  ");
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_and_say_when_empty() {
        let rows = vec![
            vec!["account-1".to_owned(), "2".to_owned()],
            vec!["a".to_owned(), "10".to_owned()],
        ];
        assert_eq!(
            table(&["STREAM", "VERSION"], &rows, "no streams"),
            "STREAM     VERSION\naccount-1  2\na          10\n"
        );
        assert_eq!(table(&["A"], &[], "no streams"), "no streams\n");
    }
}
