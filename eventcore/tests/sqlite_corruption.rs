//! A damaged SQLite file is reported, never read past: a row lost to a damaged table page stops
//! `read_all`, `read_batch` and subscriptions with `CorruptDatabase`, and `verify_on_open`
//! refuses the file before anything is appended to it.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::event;
use eventcore::store::{EventFilter, SqliteOptions};
use eventcore::subscription::SubscribeAll;
use eventcore::{EventStore, ExpectedVersion, SqliteStore, StoreError};
use futures_util::StreamExt;

const EVENTS: usize = 300;

/// A store of 300 events (each with a marker naming its position), checkpointed into the main
/// file and closed.
async fn filled(dir: &Path) -> PathBuf {
    let path = dir.join("events.db");
    let store = SqliteStore::open(&path).await.unwrap();
    for batch in 0..EVENTS / 10 {
        let events = (0..10)
            .map(|i| {
                let position = batch * 10 + i + 1;
                event(
                    serde_json::json!({ "marker": format!("marker-{position:04}"), "pad": "x".repeat(100) }),
                )
            })
            .collect();
        store
            .append(&format!("s-{}", batch % 3), ExpectedVersion::Any, events)
            .await
            .unwrap();
    }
    drop(store);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    let (busy, _, _): (i64, i64, i64) = conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!(busy, 0, "the log is in the main file");
    drop(conn);
    path
}

/// Damages the table page holding `marker`: its cell count loses one, so the page's last row
/// (its highest position) silently disappears from reads of the table.
fn drop_last_row_of_page_with(path: &Path, marker: &str) {
    let mut bytes = std::fs::read(path).unwrap();
    let page_size = match u16::from_be_bytes([bytes[16], bytes[17]]) {
        1 => 65536,
        n => usize::from(n),
    };
    let page = (0..bytes.len() / page_size)
        .find(|&i| {
            let page = &bytes[i * page_size..(i + 1) * page_size];
            let header = if i == 0 { 100 } else { 0 };
            page[header] == 0x0D && page.windows(marker.len()).any(|w| w == marker.as_bytes())
        })
        .expect("a table leaf page holds the marker");
    let at = page * page_size + if page == 0 { 100 } else { 0 } + 3;
    let cells = u16::from_be_bytes([bytes[at], bytes[at + 1]]);
    assert!(cells > 1);
    bytes[at..at + 2].copy_from_slice(&(cells - 1).to_be_bytes());
    std::fs::write(path, bytes).unwrap();
}

fn is_corrupt(error: &StoreError) -> bool {
    matches!(error, StoreError::CorruptDatabase { reason } if reason.contains("missing"))
}

#[tokio::test]
async fn a_row_lost_to_a_damaged_page_stops_reads_of_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = filled(dir.path()).await;
    // Undamaged, every position is read.
    let store = SqliteStore::open(&path).await.unwrap();
    assert_eq!(store.read_all(0, 1000).await.unwrap().len(), EVENTS);
    drop(store);
    tokio::time::sleep(Duration::from_millis(100)).await;

    drop_last_row_of_page_with(&path, "marker-0150");
    let store = SqliteStore::open(&path).await.unwrap();
    let error = store.read_all(0, 1000).await.unwrap_err();
    assert!(is_corrupt(&error), "{error:?}");
    assert!(
        error.to_string().contains(&path.display().to_string()),
        "names the file: {error}"
    );

    // Page by page, every event before the hole is read, then the error: nothing is skipped.
    let mut next = 1;
    let error = loop {
        match store.read_all(next, 7).await {
            Ok(page) => {
                assert!(!page.is_empty(), "the end is reached only past the hole");
                for event in &page {
                    assert_eq!(event.global_position, next);
                    next += 1;
                }
            }
            Err(error) => break error,
        }
    };
    assert!(is_corrupt(&error), "{error:?}");
    assert!(
        (2..EVENTS as u64).contains(&next),
        "stopped at the hole, position {next}"
    );

    for filter in [
        EventFilter::all(),
        EventFilter::event_types(["test.happened", "other"]),
    ] {
        let error = store.read_batch(0, &filter, 1000).await.unwrap_err();
        assert!(is_corrupt(&error), "{filter:?}: {error:?}");
    }

    // A subscription delivers every event up to the hole, then the error.
    let mut subscription = store.subscribe_all(0);
    let mut delivered = 0;
    let error = loop {
        let item = tokio::time::timeout(Duration::from_secs(10), subscription.next())
            .await
            .expect("the subscription answers")
            .expect("the subscription ends with the error");
        match item {
            Ok(event) => {
                delivered += 1;
                assert_eq!(event.global_position, delivered, "in order, nothing skipped");
            }
            Err(error) => break error,
        }
    };
    assert!(is_corrupt(&error), "{error:?}");
    let hole = delivered + 1;
    assert!(
        error
            .to_string()
            .contains(&format!("global position {hole} is missing")),
        "{error}"
    );
    assert!(
        (next..next + 7).contains(&hole),
        "the paged reader stopped at the page holding it"
    );
}

#[tokio::test]
async fn verify_on_open_refuses_a_damaged_file_before_any_append() {
    let dir = tempfile::tempdir().unwrap();
    let path = filled(dir.path()).await;
    let verified = SqliteOptions::new().verify_on_open(true);
    drop(SqliteStore::open_with(&path, verified.clone()).await.unwrap());
    tokio::time::sleep(Duration::from_millis(100)).await;

    drop_last_row_of_page_with(&path, "marker-0150");
    let error = SqliteStore::open_with(&path, verified.clone()).await.unwrap_err();
    match &error {
        StoreError::CorruptDatabase { reason } => {
            assert!(
                reason.contains("quick_check") && reason.contains(&path.display().to_string()),
                "{reason}"
            );
        }
        other => panic!("expected CorruptDatabase, got {other:?}"),
    }
    let read_only = SqliteStore::open_with(&path, verified.read_only(true))
        .await
        .unwrap_err();
    assert!(
        matches!(read_only, StoreError::CorruptDatabase { .. }),
        "{read_only:?}"
    );
}

#[tokio::test]
async fn a_rolled_back_append_leaves_no_hole_in_the_positions() {
    // The contiguity check relies on it: without AUTOINCREMENT a rowid is the highest + 1, so a
    // rolled-back insert takes none.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    let store = SqliteStore::open(&path).await.unwrap();
    store
        .append("a", ExpectedVersion::NoStream, vec![event(serde_json::json!(1))])
        .await
        .unwrap();
    let mut duplicate = vec![event(serde_json::json!(2)), event(serde_json::json!(3))];
    duplicate[1].event_id = duplicate[0].event_id;
    assert!(store.append("a", ExpectedVersion::Any, duplicate).await.is_err());
    store
        .transaction(|tx| {
            eventcore::store::UnitOfWork::append(
                tx,
                "b",
                ExpectedVersion::Any,
                vec![event(serde_json::json!(4))],
            )?;
            Err::<(), _>(StoreError::backend(std::io::Error::other("give up")))
        })
        .await
        .unwrap_err();
    let last = store
        .append("a", ExpectedVersion::Any, vec![event(serde_json::json!(5))])
        .await
        .unwrap();
    assert_eq!(last.positions, vec![2]);
    let positions: Vec<u64> = store
        .read_all(0, 10)
        .await
        .unwrap()
        .iter()
        .map(|e| e.global_position)
        .collect();
    assert_eq!(positions, vec![1, 2]);
}

#[tokio::test]
async fn a_store_opened_read_only_reads_and_refuses_writes_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    let store = SqliteStore::open(&path).await.unwrap();
    store
        .append("a", ExpectedVersion::NoStream, vec![event(serde_json::json!(1))])
        .await
        .unwrap();
    let reader = SqliteStore::open_read_only(&path).await.unwrap();
    assert!(reader.is_read_only());
    assert_eq!(reader.read_all(0, 10).await.unwrap().len(), 1);
    let error = reader
        .append("a", ExpectedVersion::Any, vec![event(serde_json::json!(2))])
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::ReadOnly(_)), "{error:?}");
    assert_eq!(error.to_string(), "the event store is read-only");
    // A file that does not exist is not created.
    let missing = SqliteStore::open_read_only(dir.path().join("none.db")).await;
    assert!(missing.is_err());
    assert!(!dir.path().join("none.db").exists());
}
