//! What only the SQLite store does: files, reopening, the schema, and rows corrupted on disk.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::{events, full_event, Counter, Increment, Incremented};
use eventcore::event::DecodeError;
use eventcore::store::{Durability, Snapshot, SqliteOptions};
use eventcore::{
    EventStore, ExpectedVersion, NewEvent, Repository, RepositoryError, SqliteStore, StoreError,
};

async fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(path).await.unwrap()
}

/// A direct connection to the store's file, for looking under the hood.
fn raw(path: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn
}

#[tokio::test]
async fn data_survives_close_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    let store = open(&path).await;
    let clone = store.clone();
    store
        .append(
            "acc-1",
            ExpectedVersion::NoStream,
            (0..3).map(full_event).collect(),
        )
        .await
        .unwrap();
    clone
        .append(
            "acc-2",
            ExpectedVersion::NoStream,
            (3..5).map(full_event).collect(),
        )
        .await
        .unwrap();
    store
        .append("acc-1", ExpectedVersion::Exact(3), vec![full_event(5)])
        .await
        .unwrap();
    let before = store.read_all(1, usize::MAX).await.unwrap();
    assert_eq!(before.len(), 6);
    drop((store, clone));

    let reopened = open(&path).await;
    let after = reopened.read_all(1, usize::MAX).await.unwrap();
    // Every field, including occurred_at to the nanosecond, metadata and correlation/causation.
    assert_eq!(after, before);
    assert_eq!(after[0].occurred_at.timestamp_subsec_nanos(), 123_456_789);
    assert_eq!(after[0].correlation_id.as_deref(), Some("corr-0"));
    assert_eq!(
        after[0].metadata.get("unicode").map(String::as_str),
        Some("héllo 🌍 שלום")
    );
    assert_eq!(reopened.stream_version("acc-1").await.unwrap(), 4);
    assert_eq!(reopened.stream_version("acc-2").await.unwrap(), 2);

    // Writing goes on where it stopped: versions and positions continue.
    assert!(reopened
        .append("acc-1", ExpectedVersion::Exact(3), events(1))
        .await
        .is_err());
    let written = reopened
        .append("acc-1", ExpectedVersion::Exact(4), events(1))
        .await
        .unwrap();
    assert_eq!(written.first_version, 5);
    assert!(written.positions[0] > before.last().unwrap().global_position);
}

#[tokio::test]
async fn repository_state_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    {
        let counters = Repository::<Counter, _>::new(open(&path).await);
        for by in [1, 2, 3] {
            counters.execute("c-1", Increment { by }).await.unwrap();
        }
    }
    let counters = Repository::<Counter, _>::new(open(&path).await);
    let loaded = counters.load("c-1").await.unwrap();
    assert_eq!((loaded.state().value, loaded.version()), (6, 3));
}

#[tokio::test]
async fn file_is_in_wal_mode_with_a_versioned_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    let store = open(&path).await;
    store.append("s", ExpectedVersion::Any, events(1)).await.unwrap();
    let conn = raw(&path);
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(
        version, 5,
        "events (v1), snapshots (v2), stream keys (v3), runners (v4) and outbox (v5) migrations applied"
    );
    // The database itself refuses a second event at one stream version, an event id stored
    // twice, and a stream id with two keys.
    let same_version = conn.execute(
        "INSERT INTO events (event_id, stream_key, stream_version, event_type, event_version, \
         aggregate_type, aggregate_id, occurred_at_secs, occurred_at_nanos, metadata, payload) \
         SELECT randomblob(16), stream_key, stream_version, event_type, event_version, aggregate_type, \
         aggregate_id, occurred_at_secs, occurred_at_nanos, metadata, payload FROM events",
        [],
    );
    assert!(same_version.unwrap_err().to_string().contains("UNIQUE"));
    let same_id = conn.execute(
        "INSERT INTO events (event_id, stream_key, stream_version, event_type, event_version, \
         aggregate_type, aggregate_id, occurred_at_secs, occurred_at_nanos, metadata, payload) \
         SELECT event_id, stream_key, stream_version + 1, event_type, event_version, aggregate_type, \
         aggregate_id, occurred_at_secs, occurred_at_nanos, metadata, payload FROM events",
        [],
    );
    assert!(same_id.unwrap_err().to_string().contains("UNIQUE"));
    let same_stream = conn.execute(
        "INSERT INTO streams (stream_id) SELECT stream_id FROM streams",
        [],
    );
    assert!(same_stream.unwrap_err().to_string().contains("UNIQUE"));
    // Opening again neither fails nor migrates twice.
    drop(open(&path).await);
    assert_eq!(store.read_all(1, 10).await.unwrap().len(), 1);
}

fn snapshot(stream_id: &str, stream_version: u64, state: &[u8]) -> Snapshot {
    Snapshot {
        stream_id: stream_id.to_owned(),
        stream_version,
        snapshot_version: 3,
        state: state.to_vec().into(),
        taken_at: chrono::TimeZone::timestamp_opt(&chrono::Utc, 1_700_000_000, 987_654_321).unwrap(),
    }
}

#[tokio::test]
async fn snapshots_survive_reopen_and_only_newer_ones_replace_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    let store = open(&path).await;
    assert_eq!(store.load_snapshot("it's \"hostile\" 🦀").await.unwrap(), None);
    store
        .save_snapshot(snapshot("it's \"hostile\" 🦀", 6, b"{\"n\":6}"))
        .await
        .unwrap();
    store
        .save_snapshot(snapshot("it's \"hostile\" 🦀", 3, b"{\"n\":3}"))
        .await
        .unwrap();
    store.save_snapshot(snapshot("other", 2, b"{}")).await.unwrap();
    drop(store);

    let store = open(&path).await;
    let kept = store.load_snapshot("it's \"hostile\" 🦀").await.unwrap();
    assert_eq!(kept, Some(snapshot("it's \"hostile\" 🦀", 6, b"{\"n\":6}")));
    store
        .save_snapshot(snapshot("it's \"hostile\" 🦀", 9, b"{\"n\":9}"))
        .await
        .unwrap();
    let replaced = store.load_snapshot("it's \"hostile\" 🦀").await.unwrap().unwrap();
    assert_eq!(
        (replaced.stream_version, &replaced.state[..]),
        (9, &b"{\"n\":9}"[..])
    );
    assert_eq!(
        store
            .load_snapshot("other")
            .await
            .unwrap()
            .unwrap()
            .stream_version,
        2
    );
    assert!(matches!(
        store.save_snapshot(snapshot("", 1, b"{}")).await,
        Err(StoreError::InvalidStreamId { .. })
    ));

    // A malformed snapshot row is a corrupt error, not a panic.
    raw(&path)
        .execute_batch("UPDATE snapshots SET snapshot_version = -1 WHERE stream_id = 'other'")
        .unwrap();
    assert_corrupt(store.load_snapshot("other").await, "other", 2, "snapshot");
}

#[tokio::test]
async fn a_file_with_a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    raw(&path).pragma_update(None, "user_version", 99).unwrap();
    match SqliteStore::open(&path).await {
        Err(StoreError::Backend(error)) => {
            assert!(error.to_string().contains("schema version 99"), "{error}")
        }
        other => panic!("expected a backend error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_a_corrupt_database_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    std::fs::write(&path, vec![0x5a_u8; 8192]).unwrap();
    assert!(matches!(
        SqliteStore::open(&path).await,
        Err(StoreError::CorruptDatabase { reason }) if reason.contains(&path.display().to_string())
    ));
}

#[tokio::test]
async fn reads_do_not_wait_for_a_write_in_progress() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    // A short busy timeout: a read that had to wait for the lock would fail, not just be slow.
    let options = SqliteOptions::new()
        .busy_timeout(Duration::from_millis(50))
        .durability(Durability::Normal);
    let store = SqliteStore::open_with(&path, options).await.unwrap();
    store
        .append("s", ExpectedVersion::NoStream, events(2))
        .await
        .unwrap();

    let other_writer = raw(&path);
    other_writer
        .execute_batch("BEGIN IMMEDIATE; DELETE FROM events;")
        .unwrap();
    assert_eq!(store.read_stream("s", 1, 10).await.unwrap().len(), 2);
    assert_eq!(store.stream_version("s").await.unwrap(), 2);
    // Meanwhile a write cannot get the lock: it fails as retryable and stores nothing.
    let busy = store.append("s", ExpectedVersion::Exact(2), events(1)).await;
    assert!(matches!(&busy, Err(StoreError::Unavailable(_))), "{busy:?}");
    assert!(busy.is_err_and(|e| e.is_retryable() && !e.is_ambiguous()));
    other_writer.execute_batch("ROLLBACK").unwrap();
    store
        .append("s", ExpectedVersion::Exact(2), events(1))
        .await
        .unwrap();
    assert_eq!(store.read_all(1, 10).await.unwrap().len(), 3);
}

#[tokio::test]
async fn max_payload_bytes_is_configurable() {
    let store = SqliteStore::open_in_memory()
        .await
        .unwrap()
        .with_max_payload_bytes(8);
    let mut batch = events(2);
    batch[0].payload = b"12345678".to_vec().into();
    batch[1].payload = b"123456789".to_vec().into();
    assert!(matches!(
        store.append("s", ExpectedVersion::Any, batch).await,
        Err(StoreError::PayloadTooLarge {
            index: 1,
            size: 9,
            limit: 8,
            ..
        })
    ));
    assert_eq!(store.stream_version("s").await.unwrap(), 0);
}

/// A store holding versions 1 to 3 of `counter-c-1`, then `corrupt` run on the file directly.
async fn corrupted(corrupt: &str) -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    {
        let counters = Repository::<Counter, _>::new(open(&path).await);
        for by in [1, 2, 3] {
            counters.execute("c-1", Increment { by }).await.unwrap();
        }
    }
    raw(&path).execute_batch(corrupt).unwrap();
    let store = open(&path).await;
    (dir, store)
}

fn assert_corrupt<T: std::fmt::Debug>(
    result: Result<T, StoreError>,
    stream: &str,
    version: u64,
    reason_part: &str,
) {
    match result {
        Err(StoreError::Corrupt {
            stream_id,
            stream_version,
            reason,
        }) => {
            assert_eq!(
                (stream_id.as_str(), stream_version),
                (stream, version),
                "{reason}"
            );
            assert!(
                reason.contains(reason_part),
                "reason {reason:?} lacks {reason_part:?}"
            );
        }
        other => panic!("expected a corrupt row at {stream} v{version}, got {other:?}"),
    }
}

#[tokio::test]
async fn malformed_rows_are_corrupt_errors_naming_stream_and_version() {
    let cases = [
        (
            "UPDATE events SET metadata = '[1, 2]' WHERE stream_version = 2",
            2,
            "metadata",
        ),
        (
            "UPDATE events SET metadata = '{\"n\": 1}' WHERE stream_version = 2",
            2,
            "metadata",
        ),
        (
            "UPDATE events SET metadata = 'not json' WHERE stream_version = 2",
            2,
            "metadata",
        ),
        (
            "UPDATE events SET event_id = x'0102' WHERE stream_version = 2",
            2,
            "uuid",
        ),
        (
            "UPDATE events SET event_type = CAST(x'ff' AS TEXT) WHERE stream_version = 2",
            2,
            "event_type",
        ),
        (
            "UPDATE events SET aggregate_id = CAST(x'c328' AS TEXT) WHERE stream_version = 2",
            2,
            "aggregate_id",
        ),
        (
            "UPDATE events SET correlation_id = CAST(x'80' AS TEXT) WHERE stream_version = 2",
            2,
            "correlation_id",
        ),
        (
            "UPDATE events SET event_version = 4294967296 WHERE stream_version = 2",
            2,
            "event_version",
        ),
        (
            "UPDATE events SET event_version = -1 WHERE stream_version = 2",
            2,
            "event_version",
        ),
        (
            "UPDATE events SET occurred_at_nanos = 5000000000 WHERE stream_version = 2",
            2,
            "occurred_at",
        ),
        (
            "UPDATE events SET occurred_at_secs = 9223372036854775807 WHERE stream_version = 2",
            2,
            "occurred_at",
        ),
    ];
    for (corrupt, version, reason_part) in cases {
        let (_dir, store) = corrupted(corrupt).await;
        assert_corrupt(
            store.read_stream("counter-c-1", 1, 10).await,
            "counter-c-1",
            version,
            reason_part,
        );
        assert_corrupt(store.read_all(1, 10).await, "counter-c-1", version, reason_part);
        // Rows before the bad one still read.
        assert_eq!(store.read_all(1, 1).await.unwrap().len(), 1, "{corrupt}");
        // The repository reports the store's error, and does not panic.
        let counters = Repository::<Counter, _>::new(store);
        match counters.load("c-1").await {
            Err(RepositoryError::Store(StoreError::Corrupt { stream_id, .. })) => {
                assert_eq!(stream_id, "counter-c-1");
            }
            Err(other) => panic!("{corrupt}: expected a corrupt row, got {other}"),
            Ok(_) => panic!("{corrupt}: a corrupt stream loaded"),
        }
    }
}

#[tokio::test]
async fn a_missing_or_negative_stream_version_is_a_corrupt_error() {
    for corrupt in [
        "DELETE FROM events WHERE stream_version = 2",
        "UPDATE events SET stream_version = -2 WHERE stream_version = 2",
    ] {
        let (_dir, store) = corrupted(corrupt).await;
        assert_corrupt(
            store.read_stream("counter-c-1", 1, 10).await,
            "counter-c-1",
            2,
            "missing",
        );
        assert_eq!(store.read_stream("counter-c-1", 1, 1).await.unwrap().len(), 1);
        assert_eq!(store.read_stream("counter-c-1", 3, 10).await.unwrap().len(), 1);
        let counters = Repository::<Counter, _>::new(store.clone());
        assert!(matches!(
            counters.load("c-1").await,
            Err(RepositoryError::Store(StoreError::Corrupt {
                stream_version: 2,
                ..
            }))
        ));
        if !corrupt.starts_with("DELETE") {
            assert_corrupt(store.read_all(1, 10).await, "counter-c-1", 0, "stream_version");
        }
    }
}

#[tokio::test]
async fn a_stream_id_that_is_not_utf8_is_a_corrupt_error() {
    // Version 3 moved to a stream whose stored id is not UTF-8.
    let (_dir, store) = corrupted(
        "INSERT INTO streams (stream_id) VALUES (CAST(x'636f756e7465722dff' AS TEXT)); \
         UPDATE events SET stream_key = last_insert_rowid() WHERE stream_version = 3",
    )
    .await;
    assert_corrupt(store.read_all(1, 10).await, "counter-\u{fffd}", 3, "stream_id");
    // The intact rows of the stream still read.
    assert_eq!(store.read_stream("counter-c-1", 1, 10).await.unwrap().len(), 2);
}

#[tokio::test]
async fn an_event_whose_stream_key_names_no_stream_is_a_corrupt_error() {
    let (_dir, store) = corrupted("UPDATE events SET stream_key = 999 WHERE stream_version = 2").await;
    assert_corrupt(
        store.read_all(1, 10).await,
        "",
        2,
        "stream_key 999 names no stream",
    );
    assert_eq!(store.read_all(1, 1).await.unwrap().len(), 1);
    // Seen from its stream, the event is missing.
    assert_corrupt(
        store.read_stream("counter-c-1", 1, 10).await,
        "counter-c-1",
        2,
        "missing",
    );
}

#[tokio::test]
async fn a_payload_that_does_not_fit_the_type_fails_at_decode_naming_stream_and_version() {
    for payload in ["'{\"by\": \"three\"}'", "'not json at all'", "x'ff00'"] {
        let (_dir, store) = corrupted(&format!(
            "UPDATE events SET payload = CAST({payload} AS BLOB) WHERE stream_version = 2"
        ))
        .await;
        // The store passes the bytes through: the row itself is well-formed.
        let stored = store.read_stream("counter-c-1", 1, 10).await.unwrap();
        assert_eq!(stored.len(), 3);
        let error = stored[1].decode::<Incremented>().unwrap_err();
        assert_eq!(
            (error.stream_id.as_str(), error.stream_version),
            ("counter-c-1", 2)
        );
        assert!(matches!(error.source, DecodeError::Payload { .. }), "{error:?}");

        let counters = Repository::<Counter, _>::new(store);
        match counters.load("c-1").await {
            Err(RepositoryError::Decode(error)) => {
                assert_eq!(
                    (error.stream_id.as_str(), error.stream_version),
                    ("counter-c-1", 2)
                );
                assert!(error.to_string().contains("counter-c-1"), "{error}");
            }
            Err(other) => panic!("expected a decode error, got {other}"),
            Ok(_) => panic!("a stream with a bad payload loaded"),
        }
    }
}

#[tokio::test]
async fn an_unknown_stored_event_type_fails_at_decode() {
    let (_dir, store) =
        corrupted("UPDATE events SET event_type = 'counter.reset' WHERE stream_version = 3").await;
    let stored = store.read_stream("counter-c-1", 3, 1).await.unwrap();
    let error = stored[0].decode::<Incremented>().unwrap_err();
    assert_eq!(
        (error.stream_id.as_str(), error.stream_version),
        ("counter-c-1", 3)
    );
    assert!(
        matches!(&error.source, DecodeError::UnknownEventType { event_type, .. } if event_type == "counter.reset")
    );
    let counters = Repository::<Counter, _>::new(store);
    assert!(matches!(
        counters.load("c-1").await,
        Err(RepositoryError::Decode(_))
    ));
}

#[tokio::test]
async fn concurrent_repository_commands_conflict_instead_of_overwriting() {
    let dir = tempfile::tempdir().unwrap();
    let counters = Repository::<Counter, _>::new(open(&dir.path().join("events.db")).await);
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let counters = counters.clone();
            tokio::spawn(async move {
                for _ in 0..10 {
                    counters
                        .execute_retrying("c-1", 1_000, &Default::default(), || Increment { by: 1 })
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let loaded = counters.load("c-1").await.unwrap();
    assert_eq!((loaded.state().value, loaded.version()), (60, 60));
}

#[tokio::test]
async fn the_store_is_usable_from_spawned_tasks_and_is_send_sync() {
    fn assert_send_sync<T: Send + Sync + 'static>(_: &T) {}
    let store = SqliteStore::open_in_memory().await.unwrap();
    assert_send_sync(&store);
    let task = tokio::spawn({
        let store = store.clone();
        async move { store.append("s", ExpectedVersion::NoStream, events(1)).await }
    });
    task.await.unwrap().unwrap();
    let new: NewEvent = events(1).remove(0);
    store
        .append("s", ExpectedVersion::Exact(1), vec![new])
        .await
        .unwrap();
    assert_eq!(store.stream_version("s").await.unwrap(), 2);
}

/// The tables eventcore created up to schema version 2, verbatim.
const V2_DDL: &str = "
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
CREATE TABLE snapshots (
    stream_id        TEXT    PRIMARY KEY,
    stream_version   INTEGER NOT NULL,
    snapshot_version INTEGER NOT NULL,
    state            BLOB    NOT NULL,
    taken_at_secs    INTEGER NOT NULL,
    taken_at_nanos   INTEGER NOT NULL
) STRICT;
PRAGMA user_version = 2;
";

#[tokio::test]
async fn a_version_1_file_is_migrated_to_snapshots_and_stream_keys_keeping_its_events() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    // What eventcore wrote before snapshots existed: the version-2 events table alone.
    let conn = raw(&path);
    let v1_ddl = V2_DDL.split("CREATE TABLE snapshots").next().unwrap();
    conn.execute_batch(&format!("{v1_ddl} PRAGMA user_version = 1;"))
        .unwrap();
    let stored: Vec<_> = (1..=3_u32)
        .map(|n| full_event(n).into_recorded("it's \"v1\"", u64::from(n), u64::from(n)))
        .collect();
    for event in &stored {
        insert_v2(&conn, event);
    }
    drop(conn);

    let store = open(&path).await;
    assert_eq!(store.read_stream("it's \"v1\"", 1, 10).await.unwrap(), stored);
    let snapshot = eventcore::Snapshot {
        stream_id: "it's \"v1\"".into(),
        stream_version: 3,
        snapshot_version: 1,
        state: b"{}".to_vec().into(),
        taken_at: chrono::Utc::now(),
    };
    store.save_snapshot(snapshot.clone()).await.unwrap();
    assert_eq!(store.load_snapshot("it's \"v1\"").await.unwrap(), Some(snapshot));
    let written = store
        .append("it's \"v1\"", ExpectedVersion::Exact(3), events(1))
        .await
        .unwrap();
    assert_eq!((written.first_version, written.positions[0]), (4, 4));
    let version: i64 = raw(&path)
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, 5);
}

/// Writes `event` the way eventcore's version-2 code did.
fn insert_v2(conn: &rusqlite::Connection, event: &eventcore::RecordedEvent) {
    let metadata = serde_json::to_string(&event.metadata).unwrap();
    conn.execute(
        "INSERT INTO events (global_position, event_id, stream_id, stream_version, event_type, \
         event_version, aggregate_type, aggregate_id, occurred_at_secs, occurred_at_nanos, \
         correlation_id, causation_id, metadata, payload) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        rusqlite::params![
            i64::try_from(event.global_position).unwrap(),
            &event.event_id.as_bytes()[..],
            event.stream_id,
            i64::try_from(event.stream_version).unwrap(),
            event.event_type,
            event.event_version,
            event.aggregate_type,
            event.aggregate_id,
            event.occurred_at.timestamp(),
            event.occurred_at.timestamp_subsec_nanos(),
            event.correlation_id,
            event.causation_id,
            metadata,
            &event.payload[..],
        ],
    )
    .unwrap();
}

#[tokio::test]
async fn a_version_2_file_is_migrated_to_stream_keys_keeping_events_positions_and_snapshots() {
    let longest = "🌍".repeat(128);
    let hostile = [
        "it's \"hostile\" 🦀",
        "'; DROP TABLE events; --",
        "rtl \u{202E}txet\u{202C} ?1 :name @p $x",
        "%_\\ LIKE ünïcødé שלום",
        "Stream-A",
        "stream-a",
        longest.as_str(),
    ];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    let conn = raw(&path);
    conn.execute_batch(V2_DDL).unwrap();
    // Streams interleaved, a gap in the positions (as rows deleted by hand would leave), and
    // events with and without metadata and correlation.
    let mut expected = Vec::new();
    let mut versions = std::collections::HashMap::new();
    for n in 0..20_u32 {
        let stream = hostile[(n as usize * 3) % hostile.len()];
        let version = versions.entry(stream).or_insert(0_u64);
        *version += 1;
        let position = u64::from(n) + 1 + if n >= 10 { 100 } else { 0 };
        let mut event = full_event(n);
        if n % 3 == 0 {
            event.metadata.clear();
            event.correlation_id = None;
            event.causation_id = None;
        }
        let recorded = event.into_recorded(stream, *version, position);
        insert_v2(&conn, &recorded);
        expected.push(recorded);
    }
    conn.execute(
        "INSERT INTO snapshots VALUES (?1, 3, 3, ?2, 1700000000, 987654321)",
        rusqlite::params![hostile[0], &b"{\"n\":3}"[..]],
    )
    .unwrap();
    drop(conn);

    let store = open(&path).await;
    // The hole is kept, and reading the whole log stops at it rather than step over it.
    let error = store.read_all(1, usize::MAX).await.unwrap_err();
    assert!(
        error
            .to_string()
            .contains("global position 11 is missing; the next stored is 111"),
        "{error}"
    );
    assert_eq!(store.read_all(1, 10).await.unwrap(), expected[..10]);
    assert_eq!(store.read_all(111, usize::MAX).await.unwrap(), expected[10..]);
    for stream in hostile {
        let of_stream: Vec<_> = expected
            .iter()
            .filter(|e| e.stream_id == stream)
            .cloned()
            .collect();
        assert!(!of_stream.is_empty(), "{stream:?}");
        assert_eq!(store.read_stream(stream, 1, usize::MAX).await.unwrap(), of_stream);
        assert_eq!(
            store.stream_version(stream).await.unwrap(),
            of_stream.len() as u64
        );
    }
    assert_eq!(
        store.load_snapshot(hostile[0]).await.unwrap(),
        Some(snapshot(hostile[0], 3, b"{\"n\":3}"))
    );
    let conn = raw(&path);
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, 5);
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        tables,
        [
            "documents",
            "eventcore_outbox",
            "events",
            "runners",
            "snapshots",
            "streams"
        ]
    );
    drop(conn);

    // Writing goes on: versions continue per stream, positions after the highest, and the
    // migrated ids are still known.
    let stream = hostile[1];
    let version = versions[stream];
    let written = store
        .append(stream, ExpectedVersion::Exact(version), events(2))
        .await
        .unwrap();
    assert_eq!(written.first_version, version + 1);
    assert_eq!(written.positions, [121, 122]);
    let mut resent = full_event(99);
    resent.event_id = expected[4].event_id;
    assert!(matches!(
        store.append("fresh", ExpectedVersion::NoStream, vec![resent]).await,
        Err(StoreError::DuplicateEventId { event_id }) if event_id == expected[4].event_id
    ));
    assert!(matches!(
        store
            .append(hostile[0], ExpectedVersion::NoStream, events(1))
            .await,
        Err(StoreError::VersionConflict { .. })
    ));
}

#[tokio::test]
async fn batches_spanning_several_insert_statements_keep_order_positions_and_all_or_nothing() {
    let store = SqliteStore::open_in_memory().await.unwrap();
    // 16 rows go in per statement: cover whole statements, a remainder, and the edges.
    let first = events(37);
    let written = store
        .append("s", ExpectedVersion::NoStream, first.clone())
        .await
        .unwrap();
    assert_eq!((written.first_version, written.last_version), (1, 37));
    assert_eq!(written.positions, (1..=37).collect::<Vec<u64>>());
    let stored = store.read_stream("s", 1, usize::MAX).await.unwrap();
    let ids: Vec<_> = stored.iter().map(|e| e.event_id).collect();
    assert_eq!(ids, first.iter().map(|e| e.event_id).collect::<Vec<_>>());
    for size in [16, 32, 48] {
        let written = store
            .append("other", ExpectedVersion::Any, events(size))
            .await
            .unwrap();
        assert_eq!(written.positions.len(), size);
        assert!(written.positions.windows(2).all(|w| w[1] == w[0] + 1));
    }
    let before = store.read_all(1, usize::MAX).await.unwrap();

    // A duplicate in any statement, or in the single-row rest, reports the first offending
    // event and stores nothing of the batch.
    for at in [0, 15, 16, 31, 40] {
        let mut batch = events(41);
        batch[at].event_id = first[20].event_id;
        match store.append("s", ExpectedVersion::Exact(37), batch).await {
            Err(StoreError::DuplicateEventId { event_id }) => assert_eq!(event_id, first[20].event_id),
            other => panic!("duplicate at {at}: got {other:?}"),
        }
        let mut batch = events(41);
        batch[at].event_id = batch[3].event_id;
        let repeated = batch[3].event_id;
        match store.append("s", ExpectedVersion::Exact(37), batch).await {
            Err(StoreError::DuplicateEventId { event_id }) => assert_eq!(event_id, repeated),
            other => panic!("repeat at {at}: got {other:?}"),
        }
    }
    assert_eq!(store.read_all(1, usize::MAX).await.unwrap(), before);
    assert_eq!(store.stream_version("s").await.unwrap(), 37);
}
