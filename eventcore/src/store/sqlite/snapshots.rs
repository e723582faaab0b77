//! Aggregate snapshots in SQLite: one row per stream, replaced by newer ones.

use chrono::DateTime;
use rusqlite::{params, Connection, OptionalExtension};

use crate::store::{Snapshot, StoreError};

/// Stores `snapshot` unless the stream already has one of a later stream version.
pub(super) fn save(conn: &Connection, snapshot: &Snapshot) -> Result<(), StoreError> {
    let version = i64::try_from(snapshot.stream_version).map_err(|_| StoreError::Corrupt {
        stream_id: snapshot.stream_id.clone(),
        stream_version: snapshot.stream_version,
        reason: "snapshot stream version out of range".into(),
    })?;
    conn.prepare_cached(
        "INSERT INTO snapshots (stream_id, stream_version, snapshot_version, state, taken_at_secs, taken_at_nanos)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (stream_id) DO UPDATE SET
             stream_version = excluded.stream_version, snapshot_version = excluded.snapshot_version,
             state = excluded.state, taken_at_secs = excluded.taken_at_secs, taken_at_nanos = excluded.taken_at_nanos
         WHERE excluded.stream_version >= snapshots.stream_version",
    )
    .and_then(|mut statement| {
        statement.execute(params![
            snapshot.stream_id,
            version,
            snapshot.snapshot_version,
            snapshot.state.as_ref(),
            snapshot.taken_at.timestamp(),
            snapshot.taken_at.timestamp_subsec_nanos(),
        ])
    })
    .map_err(StoreError::backend)?;
    Ok(())
}

/// The stream's snapshot, if any.
pub(super) fn load(conn: &Connection, stream_id: &str) -> Result<Option<Snapshot>, StoreError> {
    let row = conn
        .prepare_cached(
            "SELECT stream_version, snapshot_version, state, taken_at_secs, taken_at_nanos
             FROM snapshots WHERE stream_id = ?1",
        )
        .and_then(|mut statement| {
            statement
                .query_row([stream_id], |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, Vec<u8>>(2)?,
                        row.get::<_, i64>(3)?,
                        row.get::<_, i64>(4)?,
                    ))
                })
                .optional()
        })
        .map_err(StoreError::backend)?;
    let Some((version, snapshot_version, state, secs, nanos)) = row else {
        return Ok(None);
    };
    let corrupt = |reason: &str| StoreError::Corrupt {
        stream_id: stream_id.to_owned(),
        stream_version: u64::try_from(version).unwrap_or(0),
        reason: format!("snapshot: {reason}"),
    };
    let stream_version = u64::try_from(version).map_err(|_| corrupt("negative stream version"))?;
    let snapshot_version = u32::try_from(snapshot_version).map_err(|_| corrupt("bad snapshot version"))?;
    let taken_at = u32::try_from(nanos)
        .ok()
        .and_then(|nanos| DateTime::from_timestamp(secs, nanos))
        .ok_or_else(|| corrupt("bad timestamp"))?;
    Ok(Some(Snapshot {
        stream_id: stream_id.to_owned(),
        stream_version,
        snapshot_version,
        state: state.into(),
        taken_at,
    }))
}
