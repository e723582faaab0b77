//! PostgreSQL-specific behaviour of `PostgresStore` (needs `EVENTCORE_POSTGRES_URL`): late
//! commits, rolled-back gaps, lost connections, per-stream locking and migrations.
#![cfg(feature = "postgres")]

use std::time::Duration;

use eventcore::store::postgres::PostgresStore;
use eventcore::{EventStore, EventStream, ExpectedVersion, StoreError, SubscribeAll};
use eventcore_testing::conformance::postgres::{drop_schema, postgres_url, unique_schema, PostgresHarness};
use eventcore_testing::conformance::{event, run};
use futures_util::StreamExt;

/// The next event, or `None` if none comes within `wait`.
async fn within(subscription: &mut EventStream, wait: Duration) -> Option<eventcore::RecordedEvent> {
    match tokio::time::timeout(wait, subscription.next()).await {
        Ok(Some(item)) => Some(item.unwrap()),
        Ok(None) => panic!("the subscription ended"),
        Err(_) => None,
    }
}

/// Another handle on the test's schema, with a subscription poll interval of its own.
async fn handle_with_poll(store: &PostgresStore, poll: Duration) -> PostgresStore {
    PostgresStore::builder()
        .schema(store.schema())
        .poll_interval(poll)
        .connect(&postgres_url().unwrap())
        .await
        .unwrap()
}

/// A subscription of another handle (its own pool and `LISTEN` connection, as in another
/// process) that never polls, once it has listened and found the store empty.
async fn idle_subscription_elsewhere(store: &PostgresStore) -> EventStream {
    let patient = handle_with_poll(store, Duration::from_secs(3600)).await;
    let mut subscription = patient.subscribe_all(1);
    assert!(within(&mut subscription, Duration::from_millis(300))
        .await
        .is_none());
    subscription
}

/// The Marten bug: position 1 commits after position 2; the subscriber must deliver 1 then 2,
/// and must not deliver 2 while 1 is still in flight.
#[test]
fn late_commit_with_lower_position_is_delivered_in_order() {
    run(PostgresHarness, |ctx| async move {
        let store = ctx.store;
        let mut slow_client = store.pool().get().await.unwrap();
        let slow = slow_client.transaction().await.unwrap();
        let low = store
            .append_in_transaction(&slow, "slow", ExpectedVersion::NoStream, vec![event(1)])
            .await
            .unwrap();
        let high = store
            .append("fast", ExpectedVersion::NoStream, vec![event(2)])
            .await
            .unwrap();
        assert!(low.positions[0] < high.positions[0]);

        let mut subscription = store.subscribe_all(1);
        assert!(
            within(&mut subscription, Duration::from_millis(700))
                .await
                .is_none(),
            "delivered past a position whose transaction is still open"
        );
        slow.commit().await.unwrap();
        let first = within(&mut subscription, Duration::from_secs(10)).await.unwrap();
        let second = within(&mut subscription, Duration::from_secs(10)).await.unwrap();
        assert_eq!(
            (first.global_position, second.global_position),
            (low.positions[0], high.positions[0])
        );
    });
}

/// A rolled-back append leaves a hole in the positions; the subscriber steps over it.
#[test]
fn rolled_back_gap_is_stepped_over() {
    run(PostgresHarness, |ctx| async move {
        let store = ctx.store;
        let mut subscription = store.subscribe_all(1);
        let mut client = store.pool().get().await.unwrap();
        let doomed = client.transaction().await.unwrap();
        store
            .append_in_transaction(&doomed, "doomed", ExpectedVersion::Any, vec![event(1), event(2)])
            .await
            .unwrap();
        let kept = store
            .append("kept", ExpectedVersion::Any, vec![event(3)])
            .await
            .unwrap();
        assert!(within(&mut subscription, Duration::from_millis(500))
            .await
            .is_none());
        doomed.rollback().await.unwrap();
        let delivered = within(&mut subscription, Duration::from_secs(10)).await.unwrap();
        assert_eq!(delivered.global_position, kept.positions[0]);
        assert_eq!(delivered.stream_id, "kept");
        assert_eq!(store.stream_version("doomed").await.unwrap(), 0);
    });
}

/// A live event reaches an idle subscriber through LISTEN/NOTIFY, long before its poll interval.
#[test]
fn notification_wakes_an_idle_subscription() {
    run(PostgresHarness, |ctx| async move {
        let mut subscription = idle_subscription_elsewhere(&ctx.store).await;
        ctx.store
            .append("ping", ExpectedVersion::Any, vec![event(1)])
            .await
            .unwrap();
        let woken = within(&mut subscription, Duration::from_secs(20)).await;
        assert_eq!(woken.map(|e| e.stream_id), Some("ping".to_owned()));
    });
}

/// A burst of appends shares notifications, yet the last commit of the burst is notified too:
/// a subscriber in another process (another pool) that never polls receives every event.
#[test]
fn a_burst_of_appends_is_notified_to_its_end() {
    run(PostgresHarness, |ctx| async move {
        let mut subscription = idle_subscription_elsewhere(&ctx.store).await;
        for n in 0..50 {
            ctx.store
                .append("burst", ExpectedVersion::Any, vec![event(n)])
                .await
                .unwrap();
        }
        for version in 1..=50 {
            let delivered = within(&mut subscription, Duration::from_secs(20)).await;
            assert_eq!(delivered.map(|e| e.stream_version), Some(version));
        }
    });
}

/// The connection dies before the commit: nothing of the batch is stored.
#[test]
fn lost_connection_mid_append_leaves_nothing() {
    run(PostgresHarness, |ctx| async move {
        let store = ctx.store;
        store
            .append("s", ExpectedVersion::NoStream, vec![event(0)])
            .await
            .unwrap();
        let mut victim = store.pool().get().await.unwrap();
        let pid: i32 = victim
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .unwrap()
            .get(0);
        let transaction = victim.transaction().await.unwrap();
        store
            .append_in_transaction(
                &transaction,
                "s",
                ExpectedVersion::Exact(1),
                (1..50).map(event).collect(),
            )
            .await
            .unwrap();
        let killer = store.pool().get().await.unwrap();
        killer
            .execute("SELECT pg_terminate_backend($1)", &[&pid])
            .await
            .unwrap();
        assert!(transaction.commit().await.is_err());
        drop(victim);
        // The pool discards the dead connection once its task has seen the socket close.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(store.stream_version("s").await.unwrap(), 1);
        assert_eq!(store.read_all(1, 100).await.unwrap().len(), 1);
        store
            .append("s", ExpectedVersion::Exact(1), vec![event(2)])
            .await
            .unwrap();
    });
}

/// A writer holding stream `a` open blocks the next writer of `a` only, never writers of `b`.
#[test]
fn writers_lock_their_stream_only() {
    run(PostgresHarness, |ctx| async move {
        let store = ctx.store;
        let mut client = store.pool().get().await.unwrap();
        let holder = client.transaction().await.unwrap();
        store
            .append_in_transaction(&holder, "a", ExpectedVersion::NoStream, vec![event(1)])
            .await
            .unwrap();

        let other = tokio::time::timeout(
            Duration::from_secs(10),
            store.append("b", ExpectedVersion::NoStream, vec![event(2)]),
        )
        .await;
        assert!(
            matches!(other, Ok(Ok(_))),
            "a writer of another stream was blocked: {other:?}"
        );

        let rival = {
            let store = store.clone();
            tokio::spawn(async move { store.append("a", ExpectedVersion::Exact(0), vec![event(3)]).await })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !rival.is_finished(),
            "the rival writer of `a` must wait for the holder"
        );
        holder.commit().await.unwrap();
        match rival.await.unwrap() {
            Err(StoreError::VersionConflict { expected, actual, .. }) => {
                assert_eq!((expected, actual), (ExpectedVersion::Exact(0), 1));
            }
            other => panic!("expected a version conflict, got {other:?}"),
        }
    });
}

/// Damaged columns other than metadata are reported too.
#[test]
fn corrupt_event_version_is_reported() {
    run(PostgresHarness, |ctx| async move {
        let store = ctx.store;
        store
            .append("s", ExpectedVersion::NoStream, vec![event(0), event(1)])
            .await
            .unwrap();
        let client = store.pool().get().await.unwrap();
        let sql = format!(
            "UPDATE \"{}\".events SET event_version = -3 WHERE stream_id = 's' AND stream_version = 2",
            store.schema()
        );
        client.execute(&sql, &[]).await.unwrap();
        match store.read_stream("s", 1, 10).await {
            Err(StoreError::Corrupt {
                stream_id,
                stream_version,
                reason,
            }) => {
                assert_eq!((stream_id.as_str(), stream_version), ("s", 2));
                assert!(reason.contains("-3"), "{reason}");
            }
            other => panic!("expected a corrupt row, got {other:?}"),
        }
    });
}

/// Several processes starting at once on a new schema migrate it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_starters_migrate_once() {
    let Some(url) = postgres_url() else { return };
    let schema = unique_schema("ec_migrate");
    let starters: Vec<_> = (0..6)
        .map(|_| {
            let (url, schema) = (url.clone(), schema.clone());
            tokio::spawn(async move { PostgresStore::builder().schema(schema).connect(&url).await })
        })
        .collect();
    let mut stores = Vec::new();
    for starter in starters {
        stores.push(starter.await.unwrap().unwrap());
    }
    let client = stores[0].pool().get().await.unwrap();
    let applied: Vec<i32> = client
        .query(
            &format!("SELECT version FROM \"{schema}\".schema_migrations ORDER BY version"),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    stores[1]
        .append("s", ExpectedVersion::NoStream, vec![event(0)])
        .await
        .unwrap();
    assert_eq!(stores[5].stream_version("s").await.unwrap(), 1);
    drop_schema(&stores[0]).await;
    assert_eq!(
        applied,
        [1, 2, 3],
        "each migration (events, snapshots, lock-based appends) is recorded exactly once"
    );
}

/// A schema at version 2 (a stream table and an append function beside the events) upgrades in
/// place: its events, versions and positions stay, and appends continue from its versions.
#[test]
fn a_version_2_schema_upgrades_keeping_its_events() {
    run(PostgresHarness, |ctx| async move {
        let store = ctx.store;
        store
            .append("o'brien", ExpectedVersion::NoStream, vec![event(0), event(1)])
            .await
            .unwrap();
        store
            .append("b", ExpectedVersion::NoStream, vec![event(2)])
            .await
            .unwrap();
        let before = store.read_all(1, 100).await.unwrap();
        // Put back what version 2 had and migration 3 removes.
        let schema = store.schema().to_owned();
        let client = store.pool().get().await.unwrap();
        client
            .batch_execute(&format!(
                "CREATE TABLE \"{schema}\".streams (stream_id text PRIMARY KEY, version bigint NOT NULL);
                 INSERT INTO \"{schema}\".streams SELECT stream_id, max(stream_version)
                     FROM \"{schema}\".events GROUP BY stream_id;
                 CREATE FUNCTION \"{schema}\".append_events(text, smallint, bigint, uuid[], text[],
                     integer[], text[], text[], timestamptz[], text[], text[], jsonb[], bytea[])
                     RETURNS void LANGUAGE sql AS 'SELECT';
                 DELETE FROM \"{schema}\".schema_migrations WHERE version = 3;"
            ))
            .await
            .unwrap();
        drop(client);

        let upgraded = handle_with_poll(&store, Duration::from_millis(100)).await;
        assert_eq!(upgraded.read_all(1, 100).await.unwrap(), before);
        assert_eq!(upgraded.stream_version("o'brien").await.unwrap(), 2);
        upgraded
            .append("o'brien", ExpectedVersion::Exact(2), vec![event(3)])
            .await
            .unwrap();
        let client = upgraded.pool().get().await.unwrap();
        let leftovers: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n \
                 ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = 'streams'",
                &[&schema],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(leftovers, 0, "migration 3 drops the stream table");
    });
}

/// A schema name that is not a plain identifier is refused before anything runs.
#[tokio::test]
async fn bad_schema_names_are_refused() {
    for bad in ["Public", "a-b", "x\"; DROP SCHEMA public; --", "", "pg_temp"] {
        let result = PostgresStore::builder()
            .schema(bad)
            .connect("postgres://nobody@127.0.0.1:1/none")
            .await;
        match result {
            Err(StoreError::Backend(error)) => assert!(error.to_string().contains("schema name"), "{error}"),
            other => panic!("schema {bad:?} must be refused, got {other:?}"),
        }
    }
}

/// A set but unreachable server is an error, not a skip.
#[tokio::test]
async fn unreachable_server_is_an_error() {
    let result = PostgresStore::connect("postgres://postgres@127.0.0.1:1/test").await;
    assert!(matches!(result, Err(StoreError::Backend(_))), "{result:?}");
}
