//! The SQLite schema, created and upgraded by versioned migrations tracked in `PRAGMA user_version`.

use rusqlite::{Connection, TransactionBehavior};

use super::sqlite_error;
use crate::store::StoreError;

/// Migration `i` upgrades a database at `user_version` `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    V1_EVENTS,
    V2_SNAPSHOTS,
    V3_STREAM_KEYS,
    V4_RUNNERS,
    crate::outbox::SQLITE_MIGRATION,
];

/// The schema version this code writes and reads.
pub(super) const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Version 1: the event log.
///
/// `global_position` is the rowid: assigned under the single writer lock, so positions grow in
/// commit order. The two `UNIQUE` constraints make the database itself refuse a duplicate event
/// id or two events at one stream version. `occurred_at` is split into whole seconds and
/// nanoseconds so every `DateTime<Utc>` round-trips exactly.
const V1_EVENTS: &str = "
CREATE TABLE events (
    global_position   INTEGER PRIMARY KEY,
    event_id          BLOB    NOT NULL UNIQUE,
    stream_id         TEXT    NOT NULL,
    stream_version    INTEGER NOT NULL,
    event_type        TEXT    NOT NULL,
    event_version     INTEGER NOT NULL,
    aggregate_type    TEXT    NOT NULL,
    aggregate_id      TEXT    NOT NULL,
    occurred_at_secs  INTEGER NOT NULL,
    occurred_at_nanos INTEGER NOT NULL,
    correlation_id    TEXT,
    causation_id      TEXT,
    metadata          TEXT    NOT NULL,
    payload           BLOB    NOT NULL,
    UNIQUE (stream_id, stream_version)
) STRICT;
";

/// Version 2: aggregate snapshots, one per stream.
const V2_SNAPSHOTS: &str = "
CREATE TABLE snapshots (
    stream_id        TEXT    PRIMARY KEY,
    stream_version   INTEGER NOT NULL,
    snapshot_version INTEGER NOT NULL,
    state            BLOB    NOT NULL,
    taken_at_secs    INTEGER NOT NULL,
    taken_at_nanos   INTEGER NOT NULL
) STRICT;
";

/// Version 3: streams get an integer key, so the event rows and the `(stream, version)` index
/// hold two integers instead of the text id.
///
/// `streams` maps each stream id (text, kept verbatim) to its `stream_key`; a stream's current
/// version is still the highest `stream_version` of its events, read from the unique index, so
/// there is no second copy of it to disagree. Existing events keep their `global_position` (the
/// rowid is copied) and are renumbered into keys in order of first appearance; the `NOT NULL` on
/// `stream_key` aborts the migration rather than drop an event whose stream found no key.
const V3_STREAM_KEYS: &str = "
CREATE TABLE streams (
    stream_key INTEGER PRIMARY KEY,
    stream_id  TEXT    NOT NULL UNIQUE
) STRICT;
INSERT INTO streams (stream_id)
    SELECT stream_id FROM events GROUP BY stream_id ORDER BY MIN(global_position);
CREATE TABLE events_v3 (
    global_position   INTEGER PRIMARY KEY,
    event_id          BLOB    NOT NULL UNIQUE,
    stream_key        INTEGER NOT NULL,
    stream_version    INTEGER NOT NULL,
    event_type        TEXT    NOT NULL,
    event_version     INTEGER NOT NULL,
    aggregate_type    TEXT    NOT NULL,
    aggregate_id      TEXT    NOT NULL,
    occurred_at_secs  INTEGER NOT NULL,
    occurred_at_nanos INTEGER NOT NULL,
    correlation_id    TEXT,
    causation_id      TEXT,
    metadata          TEXT    NOT NULL,
    payload           BLOB    NOT NULL,
    UNIQUE (stream_key, stream_version)
) STRICT;
INSERT INTO events_v3
    SELECT e.global_position, e.event_id, s.stream_key, e.stream_version, e.event_type, e.event_version,
           e.aggregate_type, e.aggregate_id, e.occurred_at_secs, e.occurred_at_nanos, e.correlation_id,
           e.causation_id, e.metadata, e.payload
    FROM events AS e LEFT JOIN streams AS s ON s.stream_id = e.stream_id
    ORDER BY e.global_position;
DROP TABLE events;
ALTER TABLE events_v3 RENAME TO events;
";

/// Version 4: runners (projections, consumers, relays, sagas): a checkpoint and lease per
/// runner, and the documents of document projections, keyed by collection and key.
const V4_RUNNERS: &str = "
CREATE TABLE runners (
    name          TEXT    PRIMARY KEY,
    position      INTEGER NOT NULL,
    version       INTEGER NOT NULL,
    fence         INTEGER NOT NULL,
    owner         TEXT,
    lease_expires INTEGER NOT NULL
) STRICT;
CREATE TABLE documents (
    collection TEXT NOT NULL,
    key        TEXT NOT NULL,
    body       BLOB NOT NULL,
    PRIMARY KEY (collection, key)
) STRICT, WITHOUT ROWID;
";

/// The database has a schema version this code does not know (written by a newer eventcore).
#[derive(Debug, thiserror::Error)]
#[error("the SQLite event store has schema version {found}; this eventcore knows versions up to {supported}")]
pub(super) struct UnknownSchemaVersion {
    found: i64,
    supported: i64,
}

/// Brings the database to [`SCHEMA_VERSION`], in one write transaction (safe against a
/// concurrent opener: the second one finds the work done).
pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sqlite_error)?;
    let found: i64 = tx
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(sqlite_error)?;
    let applied = match usize::try_from(found) {
        Ok(applied) if found <= SCHEMA_VERSION => applied,
        _ => {
            return Err(StoreError::backend(UnknownSchemaVersion {
                found,
                supported: SCHEMA_VERSION,
            }))
        }
    };
    if found == SCHEMA_VERSION {
        return Ok(());
    }
    for migration in &MIGRATIONS[applied..] {
        tx.execute_batch(migration).map_err(sqlite_error)?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(sqlite_error)?;
    tx.commit().map_err(sqlite_error)
}

/// The database of a read-only store must already have [`SCHEMA_VERSION`]: it cannot migrate.
#[derive(Debug, thiserror::Error)]
#[error("the SQLite event store has schema version {found}, not {SCHEMA_VERSION}; open it read-write once to migrate it")]
pub(super) struct NotMigrated {
    found: i64,
}

/// Checks, without writing, that the database has the current schema.
pub(super) fn check(conn: &Connection) -> Result<(), StoreError> {
    let found: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(sqlite_error)?;
    if found == SCHEMA_VERSION {
        Ok(())
    } else if found > SCHEMA_VERSION {
        Err(StoreError::backend(UnknownSchemaVersion {
            found,
            supported: SCHEMA_VERSION,
        }))
    } else {
        Err(StoreError::ReadOnly(Box::new(NotMigrated { found })))
    }
}
