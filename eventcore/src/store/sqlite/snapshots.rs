//! Snapshots in SQLite: one row per stream, replaced only by a snapshot at least as new.

use chrono::{DateTime, Utc};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension};

use crate::store::{Snapshot, StoreError};

const SAVE: &str = "INSERT INTO snapshots \
     (stream_id, stream_version, snapshot_version, taken_at_secs, taken_at_nanos, state) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
     ON CONFLICT (stream_id) DO UPDATE SET stream_version = excluded.stream_version, \
     snapshot_version = excluded.snapshot_version, taken_at_secs = excluded.taken_at_secs, \
     taken_at_nanos = excluded.taken_at_nanos, state = excluded.state \
     WHERE excluded.stream_version >= snapshots.stream_version";

const LOAD: &str = "SELECT stream_version, snapshot_version, taken_at_secs, taken_at_nanos, state \
     FROM snapshots WHERE stream_id = ?1";

/// Stores `snapshot` unless the stream already has a newer one.
pub(super) fn save(conn: &Connection, snapshot: &Snapshot) -> Result<(), StoreError> {
    let stream_version = i64::try_from(snapshot.stream_version).map_err(StoreError::backend)?;
    conn.prepare_cached(SAVE)
        .and_then(|mut statement| {
            statement.execute((
                snapshot.stream_id.as_str(),
                stream_version,
                i64::from(snapshot.snapshot_version),
                snapshot.taken_at.timestamp(),
                i64::from(snapshot.taken_at.timestamp_subsec_nanos()),
                &snapshot.state[..],
            ))
        })
        .map_err(StoreError::backend)?;
    Ok(())
}

/// The stored snapshot of `stream_id`; a malformed row is [`StoreError::Corrupt`].
pub(super) fn load(conn: &Connection, stream_id: &str) -> Result<Option<Snapshot>, StoreError> {
    let mut statement = conn.prepare_cached(LOAD).map_err(StoreError::backend)?;
    statement
        .query_row([stream_id], |row| {
            let integer = |i: usize| -> rusqlite::Result<Option<i64>> {
                Ok(match row.get_ref(i)? {
                    ValueRef::Integer(v) => Some(v),
                    _ => None,
                })
            };
            let state = match row.get_ref(4)? {
                ValueRef::Blob(bytes) | ValueRef::Text(bytes) => Some(bytes::Bytes::copy_from_slice(bytes)),
                _ => None,
            };
            Ok((integer(0)?, integer(1)?, integer(2)?, integer(3)?, state))
        })
        .optional()
        .map_err(StoreError::backend)?
        .map(|(version, snapshot_version, secs, nanos, state)| {
            let corrupt = |reason: &str| StoreError::Corrupt {
                stream_id: stream_id.to_owned(),
                stream_version: version.and_then(|v| u64::try_from(v).ok()).unwrap_or(0),
                reason: format!("snapshot: {reason}"),
            };
            let stream_version = version
                .and_then(|v| u64::try_from(v).ok())
                .ok_or_else(|| corrupt("stream_version is not a non-negative integer"))?;
            let snapshot_version = snapshot_version
                .and_then(|v| u32::try_from(v).ok())
                .ok_or_else(|| corrupt("snapshot_version is out of range"))?;
            let taken_at = secs
                .zip(nanos.and_then(|n| u32::try_from(n).ok()))
                .and_then(|(secs, nanos)| DateTime::<Utc>::from_timestamp(secs, nanos))
                .ok_or_else(|| corrupt("taken_at is not a valid time"))?;
            let state = state.ok_or_else(|| corrupt("state is not a blob"))?;
            Ok(Snapshot {
                stream_id: stream_id.to_owned(),
                stream_version,
                snapshot_version,
                state,
                taken_at,
            })
        })
        .transpose()
}
