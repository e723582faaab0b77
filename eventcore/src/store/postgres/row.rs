//! Reading a stored row back as a [`RecordedEvent`], refusing rows that do not fit.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio_postgres::types::{FromSql, Type};
use tokio_postgres::Row;
use uuid::Uuid;

use crate::envelope::{Metadata, RecordedEvent};
use crate::store::{StoreError, StreamRecord};

/// The columns of `STREAM_RECORD_COLUMNS`, in order.
const RECORD_COLUMNS: [&str; 5] = [
    "stream_version",
    "event_id",
    "event_type",
    "event_version",
    "payload",
];

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
    Ok(Fields::read(row)?.into_event())
}

/// Reads a row of `STREAM_RECORD_COLUMNS` of stream `stream_id`, lending its text and payload;
/// `check` names the columns (once per statement suffices).
pub(super) fn stream_record<'a>(
    row: &'a Row,
    stream_id: &str,
    check: bool,
) -> Result<StreamRecord<'a>, StoreError> {
    if check {
        let columns = row.columns();
        if columns.len() != RECORD_COLUMNS.len()
            || columns
                .iter()
                .zip(RECORD_COLUMNS)
                .any(|(c, name)| c.name() != name)
        {
            return Err(corrupt(
                stream_id,
                0,
                "the row does not have the stream record columns",
            ));
        }
    }
    let raw_version: i64 = row.try_get(0).map_err(|e| corrupt(stream_id, 0, e))?;
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
    let fail = |e: tokio_postgres::Error| corrupt(stream_id, stream_version, e);
    let raw_event_version: i32 = row.try_get(3).map_err(fail)?;
    let event_version = u32::try_from(raw_event_version)
        .ok()
        .filter(|v| *v >= 1)
        .ok_or_else(|| {
            corrupt(
                stream_id,
                stream_version,
                format!("event version {raw_event_version} is not positive"),
            )
        })?;
    Ok(StreamRecord {
        event_id: row.try_get(1).map_err(fail)?,
        stream_version,
        event_type: row.try_get(2).map_err(fail)?,
        event_version,
        payload: row.try_get(4).map_err(fail)?,
    })
}

/// One row's values, borrowed from the row.
struct Fields<'a> {
    event_id: Uuid,
    event_type: &'a str,
    event_version: u32,
    aggregate_type: &'a str,
    aggregate_id: &'a str,
    correlation_id: Option<&'a str>,
    causation_id: Option<&'a str>,
    stream_id: &'a str,
    stream_version: u64,
    global_position: u64,
    occurred_at: DateTime<Utc>,
    metadata: Metadata,
    payload: &'a [u8],
}

impl<'a> Fields<'a> {
    fn read(row: &'a Row) -> Result<Self, StoreError> {
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
        let JsonText(metadata_json) = get(row, 11).map_err(fail)?;
        // Most events carry none: skip the parser for the empty object.
        let metadata = if metadata_json == b"{}" {
            Metadata::new()
        } else {
            // Decoded straight from the column's JSON text (no `serde_json::Value` in between).
            serde_json::from_slice(metadata_json)
                .map_err(|e| fail(format!("metadata is not an object of strings: {e}")))?
        };
        Ok(Self {
            payload: get(row, 12).map_err(fail)?,
            event_id: get(row, 3).map_err(fail)?,
            occurred_at: get(row, 8).map_err(fail)?,
            event_type: get(row, 4).map_err(fail)?,
            aggregate_type: get(row, 6).map_err(fail)?,
            aggregate_id: get(row, 7).map_err(fail)?,
            correlation_id: get(row, 9).map_err(fail)?,
            causation_id: get(row, 10).map_err(fail)?,
            stream_id,
            stream_version,
            global_position,
            event_version,
            metadata,
        })
    }

    fn into_event(self) -> RecordedEvent {
        RecordedEvent {
            event_id: self.event_id,
            event_type: self.event_type.to_owned(),
            event_version: self.event_version,
            aggregate_type: self.aggregate_type.to_owned(),
            aggregate_id: self.aggregate_id.to_owned(),
            correlation_id: self.correlation_id.map(str::to_owned),
            causation_id: self.causation_id.map(str::to_owned),
            stream_id: self.stream_id.to_owned(),
            stream_version: self.stream_version,
            global_position: self.global_position,
            occurred_at: self.occurred_at,
            metadata: self.metadata,
            payload: Bytes::copy_from_slice(self.payload),
        }
    }
}

/// A `json` / `jsonb` column's JSON text, borrowed from the row.
struct JsonText<'a>(&'a [u8]);

impl<'a> FromSql<'a> for JsonText<'a> {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        if *ty == Type::JSONB {
            // The binary `jsonb` format: a version byte, then the text.
            match raw.split_first() {
                Some((1, text)) => Ok(Self(text)),
                _ => Err("unsupported jsonb encoding version".into()),
            }
        } else {
            Ok(Self(raw))
        }
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::JSON | Type::JSONB)
    }
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
        let records: Vec<&str> = super::super::schema::STREAM_RECORD_COLUMNS
            .split(',')
            .map(str::trim)
            .collect();
        assert_eq!(records, super::RECORD_COLUMNS);
    }
}
