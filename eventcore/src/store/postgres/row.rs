//! Reading a stored row back as a [`RecordedEvent`], refusing rows that do not fit.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio_postgres::types::{FromSql, Json};
use tokio_postgres::Row;
use uuid::Uuid;

use crate::envelope::{Metadata, RecordedEvent};
use crate::store::StoreError;

/// The leading columns of every event query, in `EVENT_COLUMNS` order: rows are read by
/// position (a lookup by name scans the columns for every value of every row).
const COLUMNS: [&str; 13] = [
    "global_position",
    "stream_id",
    "stream_version",
    "event_id",
    "event_type",
    "event_version",
    "aggregate_type",
    "aggregate_id",
    "occurred_at",
    "correlation_id",
    "causation_id",
    "metadata",
    "payload",
];

/// Decodes the rows of one query of `EVENT_COLUMNS`, as [`decode_event`].
pub(super) fn decode_events(rows: &[Row]) -> Result<Vec<RecordedEvent>, StoreError> {
    // The rows of one statement share their columns: check them once.
    if let Some(first) = rows.first() {
        check_columns(first)?;
    }
    let mut events = Vec::with_capacity(rows.len());
    for row in rows {
        events.push(decode_checked(row)?);
    }
    Ok(events)
}

/// Decodes a row of `EVENT_COLUMNS`; a row that does not fit is [`StoreError::Corrupt`],
/// naming its stream and version when those can be read.
pub(super) fn decode_event(row: &Row) -> Result<RecordedEvent, StoreError> {
    check_columns(row)?;
    decode_checked(row)
}

/// Refuses a row whose leading columns are not `EVENT_COLUMNS`.
fn check_columns(row: &Row) -> Result<(), StoreError> {
    let columns = row.columns();
    if columns.len() < COLUMNS.len() || columns.iter().zip(COLUMNS).any(|(c, name)| c.name() != name) {
        return Err(corrupt("?", 0, "the row does not have the event columns"));
    }
    Ok(())
}

/// [`decode_event`] of a row whose columns were checked.
fn decode_checked(row: &Row) -> Result<RecordedEvent, StoreError> {
    let stream_id: &str = get(row, 1).map_err(|e| corrupt("?", 0, e))?;
    let raw_version: i64 = get(row, 2).map_err(|e| corrupt(stream_id, 0, e))?;
    let stream_version = u64::try_from(raw_version)
        .ok()
        .filter(|v| *v >= 1)
        .ok_or_else(|| {
            corrupt(
                stream_id,
                0,
                format!("stream version {raw_version} is not positive"),
            )
        })?;
    let fail = |reason: String| corrupt(stream_id, stream_version, reason);

    let raw_position: i64 = get(row, 0).map_err(fail)?;
    let global_position = u64::try_from(raw_position)
        .ok()
        .filter(|p| *p >= 1)
        .ok_or_else(|| fail(format!("global position {raw_position} is not positive")))?;
    let raw_event_version: i32 = get(row, 5).map_err(fail)?;
    let event_version = u32::try_from(raw_event_version)
        .ok()
        .filter(|v| *v >= 1)
        .ok_or_else(|| fail(format!("event version {raw_event_version} is not positive")))?;
    // Decoded straight from the column's JSON text (no `serde_json::Value` in between).
    let Json(metadata): Json<Metadata> =
        get(row, 11).map_err(|e| fail(format!("metadata is not an object of strings: {e}")))?;
    let payload: &[u8] = get(row, 12).map_err(fail)?;
    let event_id: Uuid = get(row, 3).map_err(fail)?;
    let occurred_at: DateTime<Utc> = get(row, 8).map_err(fail)?;
    let event_type: &str = get(row, 4).map_err(fail)?;
    let aggregate_type: &str = get(row, 6).map_err(fail)?;
    let aggregate_id: &str = get(row, 7).map_err(fail)?;
    let correlation_id: Option<&str> = get(row, 9).map_err(fail)?;
    let causation_id: Option<&str> = get(row, 10).map_err(fail)?;

    Ok(RecordedEvent {
        event_id,
        event_type: event_type.to_owned(),
        event_version,
        aggregate_type: aggregate_type.to_owned(),
        aggregate_id: aggregate_id.to_owned(),
        correlation_id: correlation_id.map(str::to_owned),
        causation_id: causation_id.map(str::to_owned),
        stream_id: stream_id.to_owned(),
        stream_version,
        global_position,
        occurred_at,
        metadata,
        payload: Bytes::copy_from_slice(payload),
    })
}

/// Column `index` of `row`, with the column's name in the error.
fn get<'a, T: FromSql<'a>>(row: &'a Row, index: usize) -> Result<T, String> {
    row.try_get(index)
        .map_err(|e| format!("column {}: {e}", COLUMNS.get(index).unwrap_or(&"?")))
}

fn corrupt(stream_id: &str, stream_version: u64, reason: impl ToString) -> StoreError {
    StoreError::Corrupt {
        stream_id: stream_id.to_owned(),
        stream_version,
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::COLUMNS;

    #[test]
    fn positions_follow_the_queries_columns() {
        let queried: Vec<&str> = super::super::schema::EVENT_COLUMNS
            .split(',')
            .map(str::trim)
            .collect();
        assert_eq!(queried, COLUMNS);
    }
}
