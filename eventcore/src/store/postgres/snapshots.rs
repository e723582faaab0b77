//! Aggregate snapshots in PostgreSQL: one row per stream, replaced only by newer ones.

use chrono::{DateTime, Utc};

use super::schema::quote_ident;
use super::{backend, PostgresStore};
use crate::store::{validate_stream_id, Snapshot, StoreError};

/// Migration 2: the snapshots table.
pub(super) const MIGRATION_2: &str = "
CREATE TABLE {schema}.snapshots (
    stream_id text PRIMARY KEY,
    stream_version bigint NOT NULL CHECK (stream_version >= 0),
    snapshot_version integer NOT NULL,
    state bytea NOT NULL,
    taken_at timestamptz NOT NULL
);
";

impl PostgresStore {
    /// Upserts `snapshot` unless the stream's stored snapshot is of a later stream version.
    pub(super) async fn save_snapshot_row(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        validate_stream_id(&snapshot.stream_id)?;
        let version = i64::try_from(snapshot.stream_version).map_err(|_| StoreError::Corrupt {
            stream_id: snapshot.stream_id.clone(),
            stream_version: snapshot.stream_version,
            reason: "snapshot stream version out of range".into(),
        })?;
        let snapshot_version = i32::try_from(snapshot.snapshot_version).map_err(|_| StoreError::Corrupt {
            stream_id: snapshot.stream_id.clone(),
            stream_version: snapshot.stream_version,
            reason: "snapshot version out of range".into(),
        })?;
        let s = quote_ident(self.schema());
        let sql = format!(
            "INSERT INTO {s}.snapshots (stream_id, stream_version, snapshot_version, state, taken_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (stream_id) DO UPDATE SET
                 stream_version = excluded.stream_version, snapshot_version = excluded.snapshot_version,
                 state = excluded.state, taken_at = excluded.taken_at
             WHERE excluded.stream_version >= {s}.snapshots.stream_version"
        );
        let client = self.pool().get().await.map_err(backend)?;
        let statement = client.prepare_cached(&sql).await.map_err(backend)?;
        client
            .execute(
                &statement,
                &[
                    &snapshot.stream_id,
                    &version,
                    &snapshot_version,
                    &snapshot.state.as_ref(),
                    &snapshot.taken_at,
                ],
            )
            .await
            .map_err(backend)?;
        Ok(())
    }

    /// The stream's snapshot, if any.
    pub(super) async fn load_snapshot_row(&self, stream_id: &str) -> Result<Option<Snapshot>, StoreError> {
        let s = quote_ident(self.schema());
        let sql = format!(
            "SELECT stream_version, snapshot_version, state, taken_at FROM {s}.snapshots WHERE stream_id = $1"
        );
        let client = self.pool().get().await.map_err(backend)?;
        let statement = client.prepare_cached(&sql).await.map_err(backend)?;
        let Some(row) = client
            .query_opt(&statement, &[&stream_id])
            .await
            .map_err(backend)?
        else {
            return Ok(None);
        };
        let corrupt = |version: u64, reason: String| StoreError::Corrupt {
            stream_id: stream_id.to_owned(),
            stream_version: version,
            reason: format!("snapshot: {reason}"),
        };
        let version: i64 = row.try_get(0).map_err(|e| corrupt(0, e.to_string()))?;
        let stream_version = u64::try_from(version)
            .map_err(|_| corrupt(0, format!("stream version {version} is negative")))?;
        let snapshot_version: i32 = row
            .try_get(1)
            .map_err(|e| corrupt(stream_version, e.to_string()))?;
        let snapshot_version = u32::try_from(snapshot_version).map_err(|_| {
            corrupt(
                stream_version,
                format!("snapshot version {snapshot_version} is negative"),
            )
        })?;
        let state: Vec<u8> = row
            .try_get(2)
            .map_err(|e| corrupt(stream_version, e.to_string()))?;
        let taken_at: DateTime<Utc> = row
            .try_get(3)
            .map_err(|e| corrupt(stream_version, e.to_string()))?;
        Ok(Some(Snapshot {
            stream_id: stream_id.to_owned(),
            stream_version,
            snapshot_version,
            state: state.into(),
            taken_at,
        }))
    }
}
