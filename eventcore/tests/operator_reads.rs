//! The reads operators' tools use: stream listings and lease expiries (on PostgreSQL, the
//! `eventcore-cli` tests cover both).

use std::time::Duration;

use eventcore::runner::RunnerStore;
use eventcore::store::StreamInfo;
use eventcore::{EventStore, ExpectedVersion, MemoryStore, NewEvent};

fn event(stream: &str) -> NewEvent {
    NewEvent {
        event_id: eventcore::uuid::Uuid::now_v7(),
        event_type: "thing.happened".into(),
        event_version: 1,
        aggregate_type: "thing".into(),
        aggregate_id: stream.into(),
        occurred_at: eventcore::chrono::Utc::now(),
        correlation_id: None,
        causation_id: None,
        metadata: Default::default(),
        payload: b"{}".to_vec().into(),
    }
}

fn info(stream_id: &str, version: u64) -> StreamInfo {
    StreamInfo {
        stream_id: stream_id.into(),
        version,
    }
}

async fn lists_streams<S: EventStore>(store: S) {
    for (stream, events) in [("thing-b", 2), ("thing-a", 1), ("other-x", 3), ("thing-c", 1)] {
        for _ in 0..events {
            store
                .append(stream, ExpectedVersion::Any, vec![event(stream)])
                .await
                .unwrap();
        }
    }
    assert_eq!(
        store.list_streams("", None, 100).await.unwrap(),
        [
            info("other-x", 3),
            info("thing-a", 1),
            info("thing-b", 2),
            info("thing-c", 1)
        ]
    );
    assert_eq!(
        store.list_streams("thing-", Some("thing-a"), 1).await.unwrap(),
        [info("thing-b", 2)]
    );
    assert_eq!(store.list_streams("thing-", None, 0).await.unwrap(), []);
    assert_eq!(store.list_streams("%", None, 10).await.unwrap(), []);
    assert_eq!(store.list_streams("nothing", None, 10).await.unwrap(), []);
}

#[tokio::test]
async fn memory_store_lists_streams_by_prefix_and_page() {
    lists_streams(MemoryStore::new()).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sqlite_store_lists_streams_by_prefix_and_page() {
    lists_streams(eventcore::SqliteStore::open_in_memory().await.unwrap()).await;
}

async fn reports_lease_expiry<S: RunnerStore>(store: S) {
    let before = eventcore::chrono::Utc::now();
    let lease = store
        .acquire_lease("summary", "me", Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    let held = store.checkpoint("summary").await.unwrap().unwrap();
    let expires = held.lease_expires.expect("a held lease has an expiry");
    assert!(
        expires > before + Duration::from_secs(50),
        "{expires} vs {before}"
    );
    assert!(
        expires < before + Duration::from_secs(70),
        "{expires} vs {before}"
    );
    store.release_lease(&lease).await.unwrap();
    let released = store.checkpoints().await.unwrap();
    assert_eq!(released.len(), 1);
    assert_eq!(
        (released[0].owner.as_deref(), released[0].lease_expires),
        (None, None)
    );
}

#[tokio::test]
async fn memory_store_reports_lease_expiry() {
    reports_lease_expiry(MemoryStore::new()).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sqlite_store_reports_lease_expiry() {
    reports_lease_expiry(eventcore::SqliteStore::open_in_memory().await.unwrap()).await;
}
