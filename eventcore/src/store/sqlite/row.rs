//! Writing events as rows and reading rows back, checking every stored value.

use std::borrow::Cow;
use std::sync::LazyLock;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, Row, Statement};
use uuid::Uuid;

use crate::envelope::{Metadata, NewEvent, RecordedEvent};
use crate::store::StoreError;

/// Column names, in the order of the `SELECT` that [`decode`] reads.
const COLUMN_NAMES: [&str; 15] = [
    "global_position",
    "event_id",
    "stream_id",
    "stream_version",
    "event_type",
    "event_version",
    "aggregate_type",
    "aggregate_id",
    "occurred_at_secs",
    "occurred_at_nanos",
    "correlation_id",
    "causation_id",
    "metadata",
    "payload",
    "stream_key",
];
const GLOBAL_POSITION: usize = 0;
const EVENT_ID: usize = 1;
const STREAM_ID: usize = 2;
const STREAM_VERSION: usize = 3;
const EVENT_TYPE: usize = 4;
const EVENT_VERSION: usize = 5;
const AGGREGATE_TYPE: usize = 6;
const AGGREGATE_ID: usize = 7;
const OCCURRED_AT_SECS: usize = 8;
const OCCURRED_AT_NANOS: usize = 9;
const CORRELATION_ID: usize = 10;
const CAUSATION_ID: usize = 11;
const METADATA: usize = 12;
const PAYLOAD: usize = 13;
const STREAM_KEY: usize = 14;

/// Rows per multi-row `INSERT`. One statement keeps its index cursors open from row to row, so
/// each index entry is appended next to the previous one instead of found by a descent from the
/// root; past ~20 rows the gain stops and the bound values cost more than they save.
const CHUNK: usize = 16;

/// Parameters bound per row.
const ROW_PARAMS: usize = 13;

/// `INSERT` of `rows` events. `OR FAIL` stops at a violated constraint without the statement
/// journal a multi-row `OR ABORT` keeps: any error rolls the whole transaction back anyway.
fn insert_sql(rows: usize) -> String {
    let row = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
    let mut sql = String::from(
        "INSERT OR FAIL INTO events (event_id, stream_key, stream_version, event_type, event_version, \
         aggregate_type, aggregate_id, occurred_at_secs, occurred_at_nanos, correlation_id, \
         causation_id, metadata, payload) VALUES ",
    );
    sql.push_str(row);
    for _ in 1..rows {
        sql.push_str(", ");
        sql.push_str(row);
    }
    sql
}

static INSERT_ONE: LazyLock<String> = LazyLock::new(|| insert_sql(1));
static INSERT_CHUNK: LazyLock<String> = LazyLock::new(|| insert_sql(CHUNK));

const EMPTY_METADATA: &str = "{}";

/// Inserts `events` into the stream `stream_key` at consecutive versions from `first_version`
/// (the caller checked that the last one fits), [`CHUNK`] rows per statement.
pub(super) fn insert(
    conn: &Connection,
    stream_key: i64,
    first_version: i64,
    events: &[NewEvent],
) -> rusqlite::Result<()> {
    let mut scratch = Vec::new();
    // Offsets, not a running version: the last version may be `i64::MAX`.
    let mut offset = 0;
    let mut insert_rows = |statement: &mut Statement<'_>, rows: &[NewEvent]| {
        for (row, event) in rows.iter().enumerate() {
            bind(
                statement,
                row,
                &mut scratch,
                stream_key,
                first_version + offset,
                event,
            )?;
            offset += 1;
        }
        statement.raw_execute().map(drop)
    };
    let (full, rest) = events.split_at(events.len() - events.len() % CHUNK);
    if !full.is_empty() {
        let mut statement = conn.prepare_cached(&INSERT_CHUNK)?;
        for chunk in full.chunks_exact(CHUNK) {
            insert_rows(&mut statement, chunk)?;
        }
    }
    if !rest.is_empty() {
        let mut statement = conn.prepare_cached(&INSERT_ONE)?;
        for event in rest {
            insert_rows(&mut statement, std::slice::from_ref(event))?;
        }
    }
    Ok(())
}

/// Binds `event` as row `row` (from 0) of an insert statement; `scratch` is a buffer reused
/// for the metadata JSON (SQLite copies bound text).
fn bind(
    statement: &mut Statement<'_>,
    row: usize,
    scratch: &mut Vec<u8>,
    stream_key: i64,
    stream_version: i64,
    event: &NewEvent,
) -> rusqlite::Result<()> {
    let metadata = if event.metadata.is_empty() {
        EMPTY_METADATA
    } else {
        scratch.clear();
        let to_sql = |e: Box<dyn std::error::Error + Send + Sync>| rusqlite::Error::ToSqlConversionFailure(e);
        serde_json::to_writer(&mut *scratch, &event.metadata).map_err(|e| to_sql(e.into()))?;
        std::str::from_utf8(scratch).map_err(|e| to_sql(e.into()))?
    };
    let at = row * ROW_PARAMS;
    statement.raw_bind_parameter(at + 1, &event.event_id.as_bytes()[..])?;
    statement.raw_bind_parameter(at + 2, stream_key)?;
    statement.raw_bind_parameter(at + 3, stream_version)?;
    statement.raw_bind_parameter(at + 4, event.event_type.as_str())?;
    statement.raw_bind_parameter(at + 5, i64::from(event.event_version))?;
    statement.raw_bind_parameter(at + 6, event.aggregate_type.as_str())?;
    statement.raw_bind_parameter(at + 7, event.aggregate_id.as_str())?;
    statement.raw_bind_parameter(at + 8, event.occurred_at.timestamp())?;
    statement.raw_bind_parameter(at + 9, i64::from(event.occurred_at.timestamp_subsec_nanos()))?;
    statement.raw_bind_parameter(at + 10, event.correlation_id.as_deref())?;
    statement.raw_bind_parameter(at + 11, event.causation_id.as_deref())?;
    statement.raw_bind_parameter(at + 12, metadata)?;
    statement.raw_bind_parameter(at + 13, &event.payload[..])
}

/// Reads one row of the store's event `SELECT`; a malformed value is [`StoreError::Corrupt`].
pub(super) fn decode(row: &Row<'_>) -> Result<RecordedEvent, StoreError> {
    let fields = Fields::locate(row)?;
    let event_id = match fields.value(EVENT_ID)? {
        ValueRef::Blob(bytes) => Uuid::from_slice(bytes).map_err(|_| {
            fields.corrupt(format!(
                "event_id is a blob of {} bytes, not a 16-byte uuid",
                bytes.len()
            ))
        })?,
        other => return Err(fields.wrong_type(EVENT_ID, other)),
    };
    let occurred_at = {
        let secs = fields.integer(OCCURRED_AT_SECS)?;
        let nanos = fields.integer(OCCURRED_AT_NANOS)?;
        u32::try_from(nanos)
            .ok()
            .and_then(|nanos| DateTime::<Utc>::from_timestamp(secs, nanos))
            .ok_or_else(|| fields.corrupt(format!("occurred_at {secs} s + {nanos} ns is not a valid time")))?
    };
    let event_version = {
        let version = fields.integer(EVENT_VERSION)?;
        u32::try_from(version)
            .map_err(|_| fields.corrupt(format!("event_version {version} is out of range")))?
    };
    let metadata = match fields.value(METADATA)? {
        ValueRef::Text(b"{}") => Metadata::new(),
        ValueRef::Text(json) => serde_json::from_slice(json)
            .map_err(|e| fields.corrupt(format!("metadata is not a JSON object of strings: {e}")))?,
        other => return Err(fields.wrong_type(METADATA, other)),
    };
    let payload = match fields.value(PAYLOAD)? {
        ValueRef::Blob(bytes) | ValueRef::Text(bytes) => Bytes::copy_from_slice(bytes),
        other => return Err(fields.wrong_type(PAYLOAD, other)),
    };
    Ok(RecordedEvent {
        event_id,
        event_type: fields.text(EVENT_TYPE)?,
        event_version,
        aggregate_type: fields.text(AGGREGATE_TYPE)?,
        aggregate_id: fields.text(AGGREGATE_ID)?,
        stream_version: fields.stream_version,
        global_position: fields.global_position,
        occurred_at,
        correlation_id: fields.optional_text(CORRELATION_ID)?,
        causation_id: fields.optional_text(CAUSATION_ID)?,
        metadata,
        payload,
        stream_id: fields.stream_id,
    })
}

/// A row being decoded, with the stream and version that name it in errors.
struct Fields<'a, 'stmt> {
    row: &'a Row<'stmt>,
    stream_id: String,
    stream_version: u64,
    global_position: u64,
}

impl<'a, 'stmt> Fields<'a, 'stmt> {
    /// Reads the identifying columns first, so every later error can name the row.
    fn locate(row: &'a Row<'stmt>) -> Result<Self, StoreError> {
        let raw_stream = row.get_ref(STREAM_ID).map_err(StoreError::backend)?;
        let raw_version = row.get_ref(STREAM_VERSION).map_err(StoreError::backend)?;
        let version = match raw_version {
            ValueRef::Integer(v) if v >= 1 => Ok(v.unsigned_abs()),
            ValueRef::Integer(v) => Err(format!("stream_version {v} is not positive")),
            other => Err(format!("stream_version holds {}", type_name(other))),
        };
        let (stream_id, stream_problem) = match raw_stream {
            ValueRef::Text(bytes) => match String::from_utf8_lossy(bytes) {
                Cow::Borrowed(valid) => (valid.to_owned(), None),
                Cow::Owned(lossy) => (lossy, Some("stream_id is not valid UTF-8".to_owned())),
            },
            ValueRef::Null => (String::new(), Some(dangling_key(row))),
            other => (
                String::new(),
                Some(format!("stream_id holds {}", type_name(other))),
            ),
        };
        let mut fields = Self {
            row,
            stream_id,
            stream_version: version.as_ref().map_or(0, |v| *v),
            global_position: 0,
        };
        if let Some(reason) = stream_problem.or(version.err()) {
            return Err(fields.corrupt(reason));
        }
        fields.global_position = match fields.integer(GLOBAL_POSITION)? {
            p if p >= 1 => p.unsigned_abs(),
            p => return Err(fields.corrupt(format!("global_position {p} is not positive"))),
        };
        Ok(fields)
    }

    fn corrupt(&self, reason: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            stream_id: self.stream_id.clone(),
            stream_version: self.stream_version,
            reason: reason.into(),
        }
    }

    fn wrong_type(&self, column: usize, value: ValueRef<'_>) -> StoreError {
        self.corrupt(format!("{} holds {}", COLUMN_NAMES[column], type_name(value)))
    }

    fn value(&self, column: usize) -> Result<ValueRef<'a>, StoreError> {
        self.row.get_ref(column).map_err(StoreError::backend)
    }

    fn integer(&self, column: usize) -> Result<i64, StoreError> {
        match self.value(column)? {
            ValueRef::Integer(v) => Ok(v),
            other => Err(self.wrong_type(column, other)),
        }
    }

    fn text(&self, column: usize) -> Result<String, StoreError> {
        match self.value(column)? {
            ValueRef::Text(bytes) => String::from_utf8(bytes.to_vec())
                .map_err(|_| self.corrupt(format!("{} is not valid UTF-8", COLUMN_NAMES[column]))),
            other => Err(self.wrong_type(column, other)),
        }
    }

    fn optional_text(&self, column: usize) -> Result<Option<String>, StoreError> {
        match self.value(column)? {
            ValueRef::Null => Ok(None),
            _ => self.text(column).map(Some),
        }
    }
}

/// The reason for an event whose `stream_key` has no row in `streams`.
fn dangling_key(row: &Row<'_>) -> String {
    match row.get_ref(STREAM_KEY) {
        Ok(ValueRef::Integer(key)) => format!("stream_key {key} names no stream"),
        Ok(other) => format!("stream_key holds {}", type_name(other)),
        Err(error) => format!("stream_key cannot be read: {error}"),
    }
}

fn type_name(value: ValueRef<'_>) -> &'static str {
    match value {
        ValueRef::Null => "NULL",
        ValueRef::Integer(_) => "an integer",
        ValueRef::Real(_) => "a real",
        ValueRef::Text(_) => "text",
        ValueRef::Blob(_) => "a blob",
    }
}
