//! PostgreSQL-specific behaviour of `PostgresStore` (needs `EVENTCORE_POSTGRES_URL`): late
//! commits, rolled-back gaps, lost connections, per-stream locking and migrations.
#![cfg(feature = "postgres")]

use std::time::Duration;

use eventcore::store::postgres::{PostgresStore, SCHEMA_VERSION};
use eventcore::store::{page_is_last, EventFilter};
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
            "ALTER TABLE \"{0}\".events DROP CONSTRAINT events_event_version_check;
             UPDATE \"{0}\".events SET event_version = -3 WHERE stream_id = 's' AND stream_version = 2",
            store.schema()
        );
        client.batch_execute(&sql).await.unwrap();
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
        [1, 2, 3, 4, 5, 6, 7, 8],
        "each migration (events, snapshots, lock-based appends, type index, announced writers, runners, outbox, append functions) is recorded exactly once"
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

/// A set but unreachable server is an error, not a skip: a retryable one.
#[tokio::test]
async fn unreachable_server_is_an_error() {
    let result = PostgresStore::connect("postgres://postgres@127.0.0.1:1/test").await;
    match result {
        Err(error @ StoreError::Unavailable(_)) => assert!(error.is_retryable() && !error.is_ambiguous()),
        other => panic!("expected an unavailable store, got {other:?}"),
    }
}

/// Every message of an error's chain, outermost first.
fn chain(error: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut messages = vec![error.to_string()];
    let mut cause = error.source();
    while let Some(inner) = cause {
        messages.push(inner.to_string());
        cause = inner.source();
    }
    messages
}

/// `read_batch` stops at a position whose transaction is still open, and delivers it (then the
/// later one) once it commits; the head counts what committed.
#[test]
fn read_batch_stops_at_a_late_commit_until_it_commits() {
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
        let all = EventFilter::all();
        let open = store.read_batch(1, &all, 100).await.unwrap();
        assert!(
            open.events.is_empty(),
            "delivered past an open transaction: {open:?}"
        );
        assert_eq!(open.next_position, low.positions[0]);
        assert_eq!(open.head, high.positions[0]);
        assert!(!open.caught_up());
        slow.commit().await.unwrap();
        let batch = store.read_batch(open.next_position, &all, 100).await.unwrap();
        let positions: Vec<u64> = batch.events.iter().map(|e| e.global_position).collect();
        assert_eq!(positions, [low.positions[0], high.positions[0]]);
        assert_eq!(batch.next_position, high.positions[0] + 1);
        assert!(batch.caught_up());
        assert_eq!(store.head_position().await.unwrap(), high.positions[0]);
    });
}

/// A rolled-back append's positions are stepped over by `read_batch` once it has ended.
#[test]
fn read_batch_steps_over_a_rolled_back_gap() {
    run(PostgresHarness, |ctx| async move {
        let store = ctx.store;
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
        let all = EventFilter::all();
        assert!(store.read_batch(1, &all, 10).await.unwrap().events.is_empty());
        doomed.rollback().await.unwrap();
        let batch = store.read_batch(1, &all, 10).await.unwrap();
        assert_eq!(batch.events.len(), 1);
        assert_eq!(batch.events[0].global_position, kept.positions[0]);
        assert_eq!(batch.next_position, kept.positions[0] + 1);
    });
}

/// A filter returns only its types, yet settles on every position: an open transaction writing
/// a type the reader skips still holds the batch back, and a batch of only skipped types moves
/// the checkpoint.
#[test]
fn read_batch_filters_by_type_but_settles_on_every_position() {
    run(PostgresHarness, |ctx| async move {
        let store = ctx.store;
        let typed = |n: u64, ty: &str| {
            let mut e = event(n);
            e.event_type = ty.to_owned();
            e
        };
        store
            .append(
                "a",
                ExpectedVersion::Any,
                vec![typed(1, "x.kept"), typed(2, "x.skipped")],
            )
            .await
            .unwrap();
        let filter = EventFilter::event_types(["x.kept"]);
        let mut slow_client = store.pool().get().await.unwrap();
        let slow = slow_client.transaction().await.unwrap();
        store
            .append_in_transaction(&slow, "slow", ExpectedVersion::Any, vec![typed(3, "x.skipped")])
            .await
            .unwrap();
        store
            .append("b", ExpectedVersion::Any, vec![typed(4, "x.kept")])
            .await
            .unwrap();
        let held = store.read_batch(1, &filter, 10).await.unwrap();
        assert_eq!(held.events.len(), 1);
        assert_eq!(held.events[0].event_type, "x.kept");
        assert_eq!(
            held.next_position, 3,
            "must stop at the open transaction's position"
        );
        slow.commit().await.unwrap();
        let rest = store.read_batch(held.next_position, &filter, 10).await.unwrap();
        assert_eq!(
            rest.events.iter().map(|e| e.global_position).collect::<Vec<_>>(),
            [4]
        );
        assert_eq!(rest.next_position, 5);
        let nothing = store
            .read_batch(1, &EventFilter::event_types(["x.none"]), 10)
            .await
            .unwrap();
        assert!(nothing.events.is_empty());
        assert_eq!(
            nothing.next_position, 5,
            "a batch of skipped types still moves on"
        );
    });
}

/// Pages stop early once their payloads reach `MAX_PAGE_BYTES`, and say so.
#[test]
fn pages_are_bounded_by_bytes() {
    run(PostgresHarness, |ctx| async move {
        let store = PostgresStore::builder()
            .schema(ctx.store.schema())
            .connect(&postgres_url().unwrap())
            .await
            .unwrap();
        let big = |n: u64| {
            let mut e = event(n);
            e.payload = vec![b'x'; 1024 * 1024].into();
            e
        };
        for n in 0..9 {
            store
                .append("big", ExpectedVersion::Any, vec![big(n)])
                .await
                .unwrap();
        }
        let page = store.read_all(1, 100).await.unwrap();
        assert_eq!(page.len(), 8);
        assert!(!page_is_last(&page, 100));
        assert_eq!(store.read_stream("big", 1, 100).await.unwrap().len(), 8);
        let batch = store.read_batch(1, &EventFilter::all(), 100).await.unwrap();
        assert_eq!((batch.events.len(), batch.next_position), (8, 9));
        assert_eq!(store.read_all(9, 100).await.unwrap().len(), 1);
    });
}

/// A re-sent batch returns its original result under every expectation and draws no position;
/// its ids in another stream are duplicates.
#[test]
fn resent_batch_returns_the_original_result_without_a_gap() {
    run(PostgresHarness, |ctx| async move {
        let store = ctx.store;
        store
            .append("a", ExpectedVersion::Any, vec![event(0)])
            .await
            .unwrap();
        let batch = vec![event(1), event(2)];
        let original = store
            .append("a", ExpectedVersion::Exact(1), batch.clone())
            .await
            .unwrap();
        for expected in [
            ExpectedVersion::Any,
            ExpectedVersion::NoStream,
            ExpectedVersion::Exact(1),
            ExpectedVersion::Exact(7),
            ExpectedVersion::StreamExists,
        ] {
            let again = store.append("a", expected, batch.clone()).await.unwrap();
            assert_eq!(again, original, "{expected}");
        }
        let mut client = store.pool().get().await.unwrap();
        let tx = client.transaction().await.unwrap();
        let inside = store
            .append_in_transaction(&tx, "a", ExpectedVersion::NoStream, batch.clone())
            .await
            .unwrap();
        assert_eq!(inside, original);
        tx.commit().await.unwrap();
        match store.append("b", ExpectedVersion::Any, batch.clone()).await {
            Err(StoreError::DuplicateEventId { event_id }) => assert_eq!(event_id, batch[0].event_id),
            other => panic!("expected a duplicate id, got {other:?}"),
        }
        let next = store
            .append("c", ExpectedVersion::Any, vec![event(3)])
            .await
            .unwrap();
        assert_eq!(next.positions, [4], "re-sends and refusals drew no position");
        let found = store.find_event(batch[1].event_id).await.unwrap().unwrap();
        assert_eq!((found.stream_id.as_str(), found.stream_version), ("a", 3));
        assert!(store.find_event(uuid::Uuid::now_v7()).await.unwrap().is_none());
    });
}

/// Defect 6: a writer that queued behind another writer of its stream and lost draws no
/// position, so readers see no gap.
#[test]
fn losing_a_race_draws_no_position() {
    run(PostgresHarness, |ctx| async move {
        let store = ctx.store;
        let mut client = store.pool().get().await.unwrap();
        let holder = client.transaction().await.unwrap();
        let held = store
            .append_in_transaction(&holder, "a", ExpectedVersion::NoStream, vec![event(1)])
            .await
            .unwrap();
        let rivals: Vec<_> = (0..3)
            .map(|n| {
                let store = store.clone();
                tokio::spawn(
                    async move { store.append("a", ExpectedVersion::NoStream, vec![event(n)]).await },
                )
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(300)).await;
        holder.commit().await.unwrap();
        for rival in rivals {
            assert!(matches!(
                rival.await.unwrap(),
                Err(StoreError::VersionConflict { .. })
            ));
        }
        let next = store
            .append("b", ExpectedVersion::Any, vec![event(9)])
            .await
            .unwrap();
        assert_eq!(next.positions, [held.positions[0] + 1], "a lost race left a gap");
    });
}

/// A server error is shown once: its message in `Display`, and no source repeating it.
#[test]
fn server_errors_show_their_message_once() {
    run(PostgresHarness, |ctx| async move {
        let store = ctx.store;
        store
            .append("a", ExpectedVersion::Any, vec![event(0)])
            .await
            .unwrap();
        drop_schema(&store).await;
        let error = store.read_all(1, 10).await.unwrap_err();
        assert!(matches!(error, StoreError::Backend(_)), "{error:?}");
        let messages = chain(&error);
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert!(
            messages[1].contains("does not exist") && messages[1].contains("42P01"),
            "{messages:?}"
        );
        for (i, outer) in messages.iter().enumerate() {
            for inner in &messages[i + 1..] {
                assert!(!outer.contains(inner.as_str()), "{outer:?} repeats {inner:?}");
            }
        }
    });
}

/// A `lock_timeout` makes an append that waits for its stream's lock fail as retryable.
#[test]
fn lock_timeout_makes_a_blocked_append_unavailable() {
    run(PostgresHarness, |ctx| async move {
        let impatient = PostgresStore::builder()
            .schema(ctx.store.schema())
            .lock_timeout(Duration::from_millis(100))
            .connect(&postgres_url().unwrap())
            .await
            .unwrap();
        let mut client = ctx.store.pool().get().await.unwrap();
        let holder = client.transaction().await.unwrap();
        ctx.store
            .append_in_transaction(&holder, "a", ExpectedVersion::Any, vec![event(1)])
            .await
            .unwrap();
        let error = impatient
            .append("a", ExpectedVersion::Any, vec![event(2)])
            .await
            .unwrap_err();
        assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
        assert!(error.is_retryable() && !error.is_ambiguous());
        assert!(
            chain(&error).iter().any(|m| m.contains("55P03")),
            "{:?}",
            chain(&error)
        );
        holder.rollback().await.unwrap();
        impatient
            .append("a", ExpectedVersion::Any, vec![event(3)])
            .await
            .unwrap();
    });
}

/// Defect 7: a schema migrated by a newer eventcore is refused, naming both versions.
#[test]
fn a_schema_from_a_newer_eventcore_is_refused() {
    run(PostgresHarness, |ctx| async move {
        let client = ctx.store.pool().get().await.unwrap();
        client
            .batch_execute(&format!(
                "INSERT INTO \"{}\".schema_migrations (version) VALUES (99)",
                ctx.store.schema()
            ))
            .await
            .unwrap();
        for migrate in [true, false] {
            let error = PostgresStore::builder()
                .schema(ctx.store.schema())
                .migrate(migrate)
                .connect(&postgres_url().unwrap())
                .await
                .unwrap_err();
            let text = chain(&error).join(": ");
            assert!(text.contains("version 99"), "{text}");
            assert!(text.contains(&format!("version {SCHEMA_VERSION}")), "{text}");
        }
    });
}

/// Defect 7: `migrate(false)` creates nothing; it runs on a migrated schema and refuses one
/// that is missing.
#[tokio::test]
async fn migrate_false_only_checks_the_schema() {
    let Some(url) = postgres_url() else { return };
    let schema = unique_schema("ec_nomigrate");
    let error = PostgresStore::builder()
        .schema(schema.clone())
        .migrate(false)
        .connect(&url)
        .await
        .unwrap_err();
    let text = chain(&error).join(": ");
    assert!(
        text.contains("version 0") && text.contains("migrate(false)"),
        "{text}"
    );
    let owner = PostgresStore::builder()
        .schema(schema.clone())
        .connect(&url)
        .await
        .unwrap();
    let app = PostgresStore::builder()
        .schema(schema)
        .migrate(false)
        .connect(&url)
        .await
        .unwrap();
    app.append("s", ExpectedVersion::NoStream, vec![event(0)])
        .await
        .unwrap();
    drop_schema(&owner).await;
}

/// The `LISTEN` backends of a schema.
async fn listeners(store: &PostgresStore) -> Vec<i32> {
    let client = store.pool().get().await.unwrap();
    client
        .query(
            "SELECT pid FROM pg_stat_activity WHERE query = $1",
            &[&format!("LISTEN \"{}_eventcore_events\"", store.schema())],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// Defect 2: the subscriptions of one store share one `LISTEN` connection; when it is lost they
/// keep going (polling) and the store listens again, so notifications wake them once more.
#[test]
fn subscriptions_share_a_listener_that_comes_back() {
    run(PostgresHarness, |ctx| async move {
        let patient = handle_with_poll(&ctx.store, Duration::from_secs(3600)).await;
        let mut subscriptions = Vec::new();
        for _ in 0..3 {
            let mut subscription = patient.subscribe_all(1);
            assert!(within(&mut subscription, Duration::from_millis(200))
                .await
                .is_none());
            subscriptions.push(subscription);
        }
        let pids = listeners(&patient).await;
        assert_eq!(pids.len(), 1, "one LISTEN connection per store: {pids:?}");
        let killer = ctx.store.pool().get().await.unwrap();
        killer
            .execute("SELECT pg_terminate_backend($1)", &[&pids[0]])
            .await
            .unwrap();
        // The listener reconnects (with backoff) and wakes every subscription.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while listeners(&patient).await.len() != 1 || listeners(&patient).await == pids {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the store did not listen again"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        ctx.store
            .append("ping", ExpectedVersion::Any, vec![event(1)])
            .await
            .unwrap();
        for subscription in &mut subscriptions {
            let woken = within(subscription, Duration::from_secs(10)).await;
            assert_eq!(woken.map(|e| e.stream_id), Some("ping".to_owned()));
        }
    });
}

/// A connection lost after an append was sent leaves its outcome unknown: the error is
/// ambiguous (and retryable), and re-sending the same batch stores it once.
#[test]
fn a_connection_lost_after_an_append_was_sent_is_ambiguous() {
    run(PostgresHarness, |ctx| async move {
        let store = ctx.store;
        let mut client = store.pool().get().await.unwrap();
        let holder = client.transaction().await.unwrap();
        store
            .append_in_transaction(&holder, "a", ExpectedVersion::Any, vec![event(0)])
            .await
            .unwrap();
        let batch = vec![event(1), event(2)];
        let sent = {
            let (store, batch) = (store.clone(), batch.clone());
            tokio::spawn(async move { store.append("a", ExpectedVersion::Any, batch).await })
        };
        // The append waits for the stream lock; end its connection there.
        let killer = store.pool().get().await.unwrap();
        let pattern = format!("%\"{}\".append_batch(%", store.schema());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let pid: i32 = loop {
            let row = killer
                .query_opt(
                    "SELECT pid FROM pg_stat_activity WHERE wait_event = 'advisory' AND query LIKE $1",
                    &[&pattern],
                )
                .await
                .unwrap();
            if let Some(row) = row {
                break row.get(0);
            }
            assert!(tokio::time::Instant::now() < deadline, "the append never waited");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        killer
            .execute("SELECT pg_terminate_backend($1)", &[&pid])
            .await
            .unwrap();
        let error = sent.await.unwrap().unwrap_err();
        assert!(error.is_ambiguous() && error.is_retryable(), "{error:?}");
        holder.commit().await.unwrap();
        let first = store
            .append("a", ExpectedVersion::Any, batch.clone())
            .await
            .unwrap();
        let again = store.append("a", ExpectedVersion::Any, batch).await.unwrap();
        assert_eq!(first, again);
        assert_eq!(store.stream_version("a").await.unwrap(), 3);
    });
}

/// Defect 7: waiting for a pooled connection is bounded; the error is retryable.
#[test]
fn pool_wait_is_bounded_and_retryable() {
    run(PostgresHarness, |ctx| async move {
        let small = PostgresStore::builder()
            .schema(ctx.store.schema())
            .pool_size(1)
            .pool_wait_timeout(Duration::from_millis(100))
            .connect(&postgres_url().unwrap())
            .await
            .unwrap();
        let held = small.pool().get().await.unwrap();
        let started = std::time::Instant::now();
        let error = small.read_all(1, 10).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(
            matches!(error, StoreError::Unavailable(_)) && error.is_retryable(),
            "{error:?}"
        );
        drop(held);
        assert!(small.read_all(1, 10).await.unwrap().is_empty());
    });
}

/// A connection to `database` of the test server, driven in the background.
async fn connect_to(database: &str) -> eventcore::store::postgres::tokio_postgres::Client {
    use eventcore::store::postgres::tokio_postgres::{Config, NoTls};
    let mut config: Config = postgres_url().unwrap().parse().unwrap();
    config.dbname(database);
    let (client, connection) = config.connect(NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

/// Opens a transaction on `client` that takes a transaction id and then stays idle: it holds
/// back every snapshot's `xmin` in the cluster until it ends.
async fn idle_transaction(client: &eventcore::store::postgres::tokio_postgres::Client) {
    client
        .batch_execute("BEGIN; SELECT pg_current_xact_id();")
        .await
        .unwrap();
}

/// A rolled-back append (a hole at the next position), then a committed event after it, while
/// an idle transaction that will not write to the store stays open: the subscription and
/// `read_batch` step over the hole at once instead of waiting for the idle transaction.
async fn the_idle_transaction_delays_nothing(
    store: PostgresStore,
    idle: eventcore::store::postgres::tokio_postgres::Client,
) {
    let mut subscription = store.subscribe_all(1);
    assert!(within(&mut subscription, Duration::from_millis(200))
        .await
        .is_none());
    idle_transaction(&idle).await;
    let mut client = store.pool().get().await.unwrap();
    let doomed = client.transaction().await.unwrap();
    store
        .append_in_transaction(&doomed, "doomed", ExpectedVersion::Any, vec![event(1)])
        .await
        .unwrap();
    doomed.rollback().await.unwrap();
    let kept = store
        .append("kept", ExpectedVersion::Any, vec![event(2)])
        .await
        .unwrap();
    assert_eq!(kept.positions, [2], "the rolled-back append left a hole at 1");
    // The idle transaction would stay open for 30 s; delivery must not wait for it.
    let delivered = within(&mut subscription, Duration::from_secs(5)).await;
    assert_eq!(
        delivered.map(|e| e.global_position),
        Some(2),
        "an idle transaction that cannot write to the store stalled delivery"
    );
    let batch = store.read_batch(1, &EventFilter::all(), 10).await.unwrap();
    assert_eq!(
        batch.events.iter().map(|e| e.global_position).collect::<Vec<_>>(),
        [2]
    );
    idle.batch_execute("ROLLBACK").await.unwrap();
}

/// Issue 14: a transaction left open in another database of the cluster delays nothing.
#[test]
fn an_idle_transaction_in_another_database_delays_nothing() {
    run(PostgresHarness, |ctx| async move {
        let idle = connect_to("postgres").await;
        the_idle_transaction_delays_nothing(ctx.store, idle).await;
    });
}

/// Issue 14: a transaction left open in the store's database that never touched the store
/// delays nothing.
#[test]
fn an_idle_transaction_that_never_touched_the_store_delays_nothing() {
    run(PostgresHarness, |ctx| async move {
        let database = postgres_url()
            .unwrap()
            .parse::<eventcore::store::postgres::tokio_postgres::Config>()
            .unwrap();
        let idle = connect_to(database.get_dbname().unwrap()).await;
        the_idle_transaction_delays_nothing(ctx.store, idle).await;
    });
}

/// Issue 14: a writer that drew a position and is slow to commit is waited for, whatever idle
/// transactions are open, and delivered in order when it commits; also from inside a caller's
/// transaction that took its transaction id long before appending.
#[test]
fn a_slow_writer_that_drew_a_position_is_never_skipped() {
    run(PostgresHarness, |ctx| async move {
        let store = ctx.store;
        let idle = connect_to("postgres").await;
        idle_transaction(&idle).await;
        let mut subscription = store.subscribe_all(1);
        let mut slow_client = store.pool().get().await.unwrap();
        let slow = slow_client.transaction().await.unwrap();
        slow.batch_execute("SELECT pg_current_xact_id()").await.unwrap();
        let low = store
            .append_in_transaction(&slow, "slow", ExpectedVersion::Any, vec![event(1), event(2)])
            .await
            .unwrap();
        let mut high = Vec::new();
        for n in 3..6 {
            let fast = store
                .append("fast", ExpectedVersion::Any, vec![event(n)])
                .await
                .unwrap();
            high.extend(fast.positions);
        }
        assert_eq!(low.positions, [1, 2]);
        // Long enough for the gap probes to back off to their longest wait.
        assert!(
            within(&mut subscription, Duration::from_millis(2500))
                .await
                .is_none(),
            "delivered past the positions of a writer still running"
        );
        let batch = store.read_batch(1, &EventFilter::all(), 10).await.unwrap();
        assert!(batch.events.is_empty() && batch.next_position == 1, "{batch:?}");
        slow.commit().await.unwrap();
        let mut delivered = Vec::new();
        for _ in 0..5 {
            let event = within(&mut subscription, Duration::from_secs(10)).await.unwrap();
            delivered.push(event.global_position);
        }
        assert_eq!(delivered, [1, 2, 3, 4, 5]);
        let batch = store.read_batch(1, &EventFilter::all(), 10).await.unwrap();
        assert_eq!(batch.events.len(), 5);
        idle.batch_execute("ROLLBACK").await.unwrap();
    });
}

/// A small deterministic generator (xorshift), one per writer.
struct Dice(u64);

impl Dice {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// One writer of the sustained workload until `stop`: batches of 1–4 events, about one in ten
/// held open 100–500 ms before committing, one in fifty rolled back (after being held open). Returns the committed positions
/// with the moment each append returned.
async fn sustained_writer(
    store: PostgresStore,
    writer: u64,
    stop: tokio::time::Instant,
) -> Vec<(u64, std::time::Instant)> {
    let mut dice = Dice(0x9E37_79B9_7F4A_7C15 ^ (writer + 1).wrapping_mul(0x2545_F491_4F6C_DD1D));
    let stream = format!("writer-{writer}");
    let mut committed = Vec::new();
    while tokio::time::Instant::now() < stop {
        let events: Vec<_> = (0..=dice.below(4)).map(event).collect();
        let roll = dice.below(100);
        if roll < 12 {
            let mut client = store.pool().get().await.unwrap();
            let transaction = client.transaction().await.unwrap();
            let result = store
                .append_in_transaction(&transaction, &stream, ExpectedVersion::Any, events)
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(100 + dice.below(400))).await;
            if roll < 2 {
                transaction.rollback().await.unwrap();
            } else {
                transaction.commit().await.unwrap();
                let now = std::time::Instant::now();
                committed.extend(result.positions.iter().map(|&p| (p, now)));
                store.notify_subscribers().await.unwrap();
            }
        } else {
            let result = store.append(&stream, ExpectedVersion::Any, events).await.unwrap();
            let now = std::time::Instant::now();
            committed.extend(result.positions.iter().map(|&p| (p, now)));
        }
    }
    committed
}

/// Issue 14: under 8 writers appending for 8 s (batches of 1–4, some held open, 2 % rolled
/// back) the subscription keeps up: when the writes stop, nothing committed more than 2 s
/// earlier is still undelivered (a fresh horizon per rolled-back gap left it over 3 s behind
/// and falling further), and every committed event is delivered once, in order.
#[test]
fn a_subscription_keeps_up_under_sustained_writes() {
    run(PostgresHarness, |ctx| async move {
        let store = ctx.store;
        let reader = handle_with_poll(&store, Duration::from_millis(500)).await;
        let delivered = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(u64, std::time::Instant)>::new()));
        let subscriber = {
            let delivered = delivered.clone();
            let mut subscription = reader.subscribe_all(1);
            tokio::spawn(async move {
                while let Some(event) = subscription.next().await {
                    let position = event.unwrap().global_position;
                    delivered
                        .lock()
                        .unwrap()
                        .push((position, std::time::Instant::now()));
                }
            })
        };
        let started = std::time::Instant::now();
        let stop = tokio::time::Instant::now() + Duration::from_secs(8);
        let writers: Vec<_> = (0..8)
            .map(|writer| tokio::spawn(sustained_writer(store.clone(), writer, stop)))
            .collect();
        // The backlog (committed, not yet delivered) sampled while the writes go on.
        let mut samples = Vec::new();
        while tokio::time::Instant::now() < stop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let head = store.head_position().await.unwrap();
            let delivered = delivered.lock().unwrap().last().map_or(0, |d| d.0);
            samples.push(head.saturating_sub(delivered));
        }
        let mut committed = Vec::new();
        for writer in writers {
            committed.extend(writer.await.unwrap());
        }
        let writes_ended = std::time::Instant::now();
        let delivered_then = delivered.lock().unwrap().len();
        committed.sort_unstable_by_key(|c| c.0);
        let expected: Vec<u64> = committed.iter().map(|c| c.0).collect();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while delivered.lock().unwrap().len() < expected.len() {
            assert!(
                std::time::Instant::now() < deadline,
                "the subscription never caught up"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        subscriber.abort();
        let delivered = delivered.lock().unwrap().clone();
        let positions: Vec<u64> = delivered.iter().map(|d| d.0).collect();
        assert_eq!(
            positions, expected,
            "every committed event once, in order, nothing from a rolled-back append"
        );
        let seen_then: std::collections::HashSet<u64> = positions[..delivered_then].iter().copied().collect();
        let oldest_pending = committed
            .iter()
            .filter(|c| !seen_then.contains(&c.0))
            .map(|c| writes_ended.saturating_duration_since(c.1))
            .max()
            .unwrap_or_default();
        eprintln!(
            "{} events in {:?}; backlog samples {samples:?}; undelivered at the end of the writes: {} \
             (oldest committed {oldest_pending:?} earlier)",
            expected.len(),
            writes_ended - started,
            expected.len() - delivered_then,
        );
        assert!(
            oldest_pending < Duration::from_secs(2),
            "the subscription fell behind: an event committed {oldest_pending:?} before the writes \
             ended was still undelivered; backlog samples {samples:?}"
        );
    });
}

/// Issue 14: when the `LISTEN` connection dies, the store reports it (reconnecting, with the
/// error), reconnects with backoff, reports it is back, and live delivery resumes promptly for
/// a subscription that never polls.
#[test]
fn the_listener_reports_its_health_and_comes_back() {
    use eventcore::store::postgres::{ListenerState, LISTENER_APPLICATION_NAME};
    run(PostgresHarness, |ctx| async move {
        let patient = handle_with_poll(&ctx.store, Duration::from_secs(3600)).await;
        assert_eq!(patient.listener_health().state, ListenerState::NotStarted);
        let mut subscription = patient.subscribe_all(1);
        assert!(within(&mut subscription, Duration::from_millis(300))
            .await
            .is_none());
        let before = patient.listener_health();
        assert_eq!(
            (before.state, before.failures, before.last_error.as_deref()),
            (ListenerState::Connected, 0, None)
        );
        let killer = ctx.store.pool().get().await.unwrap();
        let pid: i32 = killer
            .query_one(
                "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND query = $2",
                &[
                    &LISTENER_APPLICATION_NAME,
                    &format!("LISTEN \"{}_eventcore_events\"", patient.schema()),
                ],
            )
            .await
            .unwrap()
            .get(0);
        let mut health = patient.watch_listener_health();
        killer
            .execute("SELECT pg_terminate_backend($1)", &[&pid])
            .await
            .unwrap();
        let mut seen = Vec::new();
        let outcome = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                health.changed().await.unwrap();
                let now = health.borrow_and_update().clone();
                seen.push(now.state);
                if now.state == ListenerState::Connected {
                    return now;
                }
            }
        })
        .await;
        let after = outcome.unwrap_or_else(|_| panic!("the listener did not come back: {seen:?}"));
        assert_eq!(seen, [ListenerState::Reconnecting, ListenerState::Connected]);
        assert_eq!(after.failures, 1);
        assert!(
            after.last_error.is_some() && after.since > before.since,
            "{after:?}"
        );
        ctx.store
            .append("ping", ExpectedVersion::Any, vec![event(1)])
            .await
            .unwrap();
        let woken = within(&mut subscription, Duration::from_secs(5)).await;
        assert_eq!(woken.map(|e| e.stream_id), Some("ping".to_owned()));
        assert_eq!(patient.listener_health().state, ListenerState::Connected);
    });
}
