//! The outbox on SQLite (the service's own database and a `SqliteStore`'s) and in memory: a
//! rolled-back transaction publishes nothing, a committed one publishes exactly its messages, in
//! commit order, at least once.
#![allow(missing_docs)] // test types, not API

use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventcore::integration::{IntegrationMessage, MessageMeta};
use eventcore::outbox::{
    install_sqlite, MemoryOutbox, Outbox, OutboxError, OutboxPump, OutboxSource, SqliteOutbox,
};
use eventcore::prelude::*;
use eventcore::rusqlite;
use eventcore::store::UnitOfWork;
use eventcore::uuid::Uuid;
use eventcore::NewEvent;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[integration(name = "shop.order_accepted", version = 1)]
pub struct OrderAccepted {
    pub order: String,
    pub seq: u32,
}

#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(aggregate = "cart")]
pub struct CartCheckedOut {
    pub order: String,
}

fn accepted(order: &str, seq: u32) -> OrderAccepted {
    OrderAccepted {
        order: order.into(),
        seq,
    }
}

type Published = Arc<Mutex<Vec<IntegrationMessage>>>;

/// A publisher that records every batch; `fail_first` batches fail before recording.
fn recorder(
    fail_first: usize,
) -> (
    Published,
    impl Fn(Vec<IntegrationMessage>) -> std::future::Ready<Result<(), std::io::Error>> + Clone,
) {
    let published: Published = Arc::default();
    let sink = published.clone();
    let failures = Arc::new(Mutex::new(fail_first));
    let publish = move |batch: Vec<IntegrationMessage>| {
        let mut left = failures.lock().unwrap();
        if *left > 0 {
            *left -= 1;
            return std::future::ready(Err(std::io::Error::other("broker down")));
        }
        sink.lock().unwrap().extend(batch);
        std::future::ready(Ok(()))
    };
    (published, publish)
}

fn orders(published: &Published) -> Vec<(String, u32)> {
    published
        .lock()
        .unwrap()
        .iter()
        .map(|m| {
            let e = m.decode::<OrderAccepted>().unwrap();
            (e.order, e.seq)
        })
        .collect()
}

fn temp_db() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("service.db");
    (dir, path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_own_database_rollback_publishes_nothing_and_commits_publish_in_order() {
    let (_dir, path) = temp_db();
    let mut conn = rusqlite::Connection::open(&path).unwrap();
    install_sqlite(&conn).unwrap();
    install_sqlite(&conn).unwrap(); // idempotent
    conn.execute_batch("CREATE TABLE orders (id TEXT PRIMARY KEY)")
        .unwrap();

    // Rolled back: neither the row nor its messages exist.
    let tx = conn.transaction().unwrap();
    tx.execute("INSERT INTO orders VALUES ('o-0')", []).unwrap();
    Outbox::enqueue(&tx, &accepted("o-0", 0), &MessageMeta::new()).unwrap();
    drop(tx);

    let mut ids = Vec::new();
    for (order, count) in [("o-1", 3u32), ("o-2", 2)] {
        let tx = conn.transaction().unwrap();
        tx.execute("INSERT INTO orders VALUES (?1)", [order]).unwrap();
        for seq in 0..count {
            let meta = MessageMeta::new()
                .correlation_id(format!("req-{order}"))
                .subject(order);
            ids.push(Outbox::enqueue(&tx, &accepted(order, seq), &meta).unwrap());
        }
        tx.commit().unwrap();
    }
    // Another rolled-back one, after the commits.
    let tx = conn.transaction().unwrap();
    Outbox::enqueue(&tx, &accepted("o-9", 0), &MessageMeta::new()).unwrap();
    tx.rollback().unwrap();

    let pump = OutboxPump::new(SqliteOutbox::open(&path).await.unwrap()).batch_size(2);
    assert_eq!(pump.source().pending().await.unwrap(), 5);
    let (published, publish) = recorder(0);
    assert_eq!(pump.drain(publish.clone()).await.unwrap(), 5);
    assert_eq!(
        orders(&published),
        [
            ("o-1".into(), 0),
            ("o-1".into(), 1),
            ("o-1".into(), 2),
            ("o-2".into(), 0),
            ("o-2".into(), 1)
        ]
    );
    let got: Vec<Uuid> = published.lock().unwrap().iter().map(|m| m.id).collect();
    assert_eq!(got, ids, "message ids are the ids enqueue returned");
    let first = published.lock().unwrap()[0].clone();
    assert_eq!(first.correlation_id.as_deref(), Some("req-o-1"));
    assert_eq!(first.subject.as_deref(), Some("o-1"));
    // Published rows are gone: nothing is published twice without a failure.
    assert_eq!(pump.source().pending().await.unwrap(), 0);
    assert_eq!(pump.drain(publish).await.unwrap(), 0);
    assert_eq!(published.lock().unwrap().len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_publish_keeps_the_batch_and_publishes_it_again_with_the_same_ids() {
    let (_dir, path) = temp_db();
    let mut conn = rusqlite::Connection::open(&path).unwrap();
    install_sqlite(&conn).unwrap();
    let tx = conn.transaction().unwrap();
    for seq in 0..3 {
        Outbox::enqueue(&tx, &accepted("o-1", seq), &MessageMeta::new()).unwrap();
    }
    tx.commit().unwrap();

    let pump = OutboxPump::new(SqliteOutbox::open(&path).await.unwrap());
    let attempts: Arc<Mutex<Vec<Vec<Uuid>>>> = Arc::default();
    let (published, record) = recorder(1);
    let publish = |batch: Vec<IntegrationMessage>| {
        attempts
            .lock()
            .unwrap()
            .push(batch.iter().map(|m| m.id).collect());
        record(batch)
    };
    let error = pump.drain(&publish).await.unwrap_err();
    assert!(matches!(error, OutboxError::Publish(_)), "{error}");
    assert_eq!(pump.source().pending().await.unwrap(), 3, "nothing lost");
    assert_eq!(pump.drain(&publish).await.unwrap(), 3);
    assert_eq!(
        orders(&published),
        [("o-1".into(), 0), ("o-1".into(), 1), ("o-1".into(), 2)]
    );
    let attempts = attempts.lock().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(
        attempts[0], attempts[1],
        "the retry publishes the same messages, same ids"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_reader_per_database_file_at_a_time() {
    let (_dir, path) = temp_db();
    let conn = rusqlite::Connection::open(&path).unwrap();
    install_sqlite(&conn).unwrap();
    let enqueue = |conn: &mut rusqlite::Connection, order: u32| {
        let tx = conn.transaction().unwrap();
        Outbox::enqueue(&tx, &accepted("o", order), &MessageMeta::new()).unwrap();
        tx.commit().unwrap();
    };
    let mut conn = conn;
    enqueue(&mut conn, 1);

    let first = OutboxPump::new(SqliteOutbox::open(&path).await.unwrap());
    let second = OutboxPump::new(SqliteOutbox::open(&path).await.unwrap());
    let (published, publish) = recorder(0);
    assert_eq!(first.source().claim(10).await.unwrap().len(), 1);
    // The first holds the file's outbox lock: the second reads nothing, and publishes nothing.
    assert!(second.source().claim(10).await.unwrap().is_empty());
    assert_eq!(second.drain(publish.clone()).await.unwrap(), 0);
    assert_eq!(second.source().pending().await.unwrap(), 1);
    assert_eq!(first.drain(publish.clone()).await.unwrap(), 1);

    enqueue(&mut conn, 2);
    drop(first); // the lock goes with the last handle of the reader
    assert_eq!(second.drain(publish).await.unwrap(), 1);
    assert_eq!(orders(&published), [("o".into(), 1), ("o".into(), 2)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_row_is_an_error_and_stays() {
    let (_dir, path) = temp_db();
    let conn = rusqlite::Connection::open(&path).unwrap();
    install_sqlite(&conn).unwrap();
    conn.execute(
        "INSERT INTO eventcore_outbox (message_id, name, version, enqueued_at, message) VALUES ('x', 'a', 1, 'now', 'not json')",
        [],
    )
    .unwrap();
    let pump = OutboxPump::new(SqliteOutbox::from_connection(conn));
    let (published, publish) = recorder(0);
    let error = pump.drain(publish).await.unwrap_err();
    assert!(matches!(error, OutboxError::Corrupt { seq: 1, .. }), "{error}");
    assert_eq!(pump.source().pending().await.unwrap(), 1);
    assert!(published.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_transactions_carry_the_outbox_with_appends() {
    let (_dir, path) = temp_db();
    let store = SqliteStore::open(&path).await.unwrap();
    let cart = |id: &str| NewEvent::encode(&CartCheckedOut { order: id.into() }, "cart", id).unwrap();

    // A failing unit of work: the append and the message both vanish.
    let failed = store
        .transaction(move |tx| {
            tx.append("cart-c1", ExpectedVersion::NoStream, vec![cart("c1")])?;
            Outbox::enqueue(tx, &accepted("c1", 0), &MessageMeta::new()).map_err(StoreError::backend)?;
            Err::<(), _>(StoreError::backend(std::io::Error::other("business rule failed")))
        })
        .await;
    assert!(failed.is_err());
    store
        .transaction(move |tx| {
            tx.append("cart-c2", ExpectedVersion::NoStream, vec![cart("c2")])?;
            Outbox::enqueue(tx, &accepted("c2", 0), &MessageMeta::new()).map_err(StoreError::backend)?;
            Ok::<_, StoreError>(())
        })
        .await
        .unwrap();

    let pump = OutboxPump::new(SqliteOutbox::for_store(&store).await.unwrap());
    let (published, publish) = recorder(0);
    pump.drain(publish).await.unwrap();
    assert_eq!(orders(&published), [("c2".into(), 0)]);
    let in_memory = SqliteStore::open_in_memory().await.unwrap();
    assert!(SqliteOutbox::for_store(&in_memory).await.is_err());
    assert_eq!(store.read_stream("cart-c1", 1, 10).await.unwrap().len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_outbox_commits_with_the_transaction() {
    let store = MemoryStore::new();
    let rolled_back = store.transaction(|tx| {
        tx.put("orders", "o-0", "accepted".into());
        Outbox::enqueue_memory(tx, &accepted("o-0", 0), &MessageMeta::new())?;
        Err::<(), _>(OutboxError::Publish("rejected".into()))
    });
    assert!(rolled_back.is_err());
    for order in ["o-1", "o-2", "o-3"] {
        store
            .transaction(|tx| {
                tx.put("orders", order, "accepted".into());
                Outbox::enqueue_memory(tx, &accepted(order, 0), &MessageMeta::new())?;
                Outbox::enqueue_memory(tx, &accepted(order, 1), &MessageMeta::new())
            })
            .unwrap();
    }
    let pump = OutboxPump::new(MemoryOutbox::new(store.clone())).batch_size(4);
    let (published, publish) = recorder(1);
    assert!(pump.drain(publish.clone()).await.is_err());
    assert_eq!(pump.drain(publish).await.unwrap(), 6);
    let expected: Vec<(String, u32)> = ["o-1", "o-2", "o-3"]
        .iter()
        .flat_map(|o| [(o.to_string(), 0), (o.to_string(), 1)])
        .collect();
    assert_eq!(orders(&published), expected);
    assert_eq!(pump.source().pending().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_started_pump_publishes_what_commits_later_and_retries_failures() {
    let store = MemoryStore::new();
    let (published, publish) = recorder(2);
    let running = OutboxPump::new(MemoryOutbox::new(store.clone()))
        .poll_interval(Duration::from_millis(5))
        .backoff(eventcore::runner::Backoff::exponential(
            Duration::from_millis(1),
            Duration::from_millis(5),
        ))
        .start(publish);
    for seq in 0..10 {
        store
            .transaction(|tx| Outbox::enqueue_memory(tx, &accepted("o-1", seq), &MessageMeta::new()))
            .unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while published.lock().unwrap().len() < 10 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        orders(&published),
        (0..10).map(|s| ("o-1".to_string(), s)).collect::<Vec<_>>()
    );
    assert_eq!(running.published(), 10);
    assert_eq!(running.failures(), 2);
    assert!(running.last_error().unwrap().contains("broker down"));
    running.stop().await.unwrap();
}
