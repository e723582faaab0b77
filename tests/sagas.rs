//! The DESIGN "Sagas" block, and the saga runner end to end with real aggregates behind the
//! dispatcher on Memory and SQLite: the happy path, compensation on a failed or timed-out
//! payment (the clock moved by hand), duplicate starts racing, re-dispatch without duplicate
//! appends, dead-lettered commands.

#![allow(missing_docs)] // test types, not API

mod design_sagas;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use design_sagas::*;
use eventcore::prelude::*;
use eventcore::runner::{Backoff, RetryPolicy, RunnerStore, Running};
use eventcore::saga::{ManualClock, Sagas};

const WAIT: Duration = Duration::from_secs(10);

async fn sqlite() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("shop.db")).await.unwrap();
    (dir, store)
}

#[tokio::test]
async fn design_block_on_memory() {
    sagas_block(MemoryStore::new()).await.unwrap();
}

#[tokio::test]
async fn design_block_on_sqlite() {
    let (_dir, store) = sqlite().await;
    sagas_block(store).await.unwrap();
}

/// Waits until the runner has handled everything, including what its own commands appended.
async fn settle<S: RunnerStore>(running: &Running<S>, store: &S) {
    for _ in 0..50 {
        let head = store.head_position().await.unwrap();
        running.wait_caught_up(WAIT).await.unwrap();
        if store.head_position().await.unwrap() == head {
            return;
        }
    }
    panic!("the saga never settled");
}

async fn types_in<S: EventStore>(store: &S, stream: &str) -> Vec<String> {
    store
        .read_stream(stream, 1, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event_type)
        .collect()
}

async fn place<S: EventStore>(store: &S, order_id: &str, amount: i64) {
    Repository::<Order, _>::new(store.clone())
        .execute(
            order_id,
            PlaceOrder {
                order_id: order_id.into(),
                amount,
            },
        )
        .await
        .unwrap();
}

async fn happy_path<S: RunnerStore>(store: S) {
    let shop = Shop::new(store.clone());
    let sagas = Sagas::new(store.clone()).with::<Checkout, _>(shop.dispatcher());
    let running = sagas.start();
    place(&store, "o-1", 30).await;
    settle(&running, &store).await;

    assert_eq!(types_in(&store, "payment-o-1").await, ["payment.charged"]);
    assert_eq!(types_in(&store, "shipment-o-1").await, ["shipment.order_shipped"]);
    let instance = sagas.instance::<Checkout>("o-1").await.unwrap().unwrap();
    assert!(instance.ended);
    assert_eq!(
        instance.state,
        Checkout {
            amount: 30,
            paid: true
        }
    );
    assert!(instance.deadlines.is_empty(), "the timeout was cancelled");
    assert!(sagas.deadlines::<Checkout>().await.unwrap().is_empty());
    assert!(sagas.pending_commands::<Checkout>().await.unwrap().is_empty());

    // Correlation: the instance; causation: the triggering event; a key per (saga, instance, step, index).
    let placed = store.read_stream("order-o-1", 1, 10).await.unwrap().remove(0);
    let charged = store.read_stream("payment-o-1", 1, 10).await.unwrap().remove(0);
    assert_eq!(charged.correlation_id.as_deref(), Some("o-1"));
    assert_eq!(charged.causation_id, Some(placed.event_id.to_string()));
    let seen = shop.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(
        seen[0].1.idempotency_key.as_deref(),
        Some("saga/checkout/o-1/1/0")
    );
    assert_eq!(
        seen[1].1.idempotency_key.as_deref(),
        Some("saga/checkout/o-1/2/0")
    );

    let stats = sagas.stats::<Checkout>().await.unwrap();
    assert_eq!((stats.active, stats.ended, stats.deadlines_pending), (0, 1, 0));
    running.stop().await.unwrap();
}

#[tokio::test]
async fn happy_path_on_memory() {
    happy_path(MemoryStore::new()).await;
}

#[tokio::test]
async fn happy_path_on_sqlite() {
    let (_dir, store) = sqlite().await;
    happy_path(store).await;
}

async fn payment_failure_cancels<S: RunnerStore>(store: S) {
    let shop = Shop::new(store.clone());
    let sagas = Sagas::new(store.clone()).with::<Checkout, _>(shop.dispatcher());
    let running = sagas.start();
    place(&store, "o-2", CARD_LIMIT + 1).await;
    settle(&running, &store).await;
    assert_eq!(types_in(&store, "payment-o-2").await, ["payment.failed"]);
    assert_eq!(
        types_in(&store, "order-o-2").await,
        ["order.placed", "order.cancelled"]
    );
    let cancelled = store.read_stream("order-o-2", 2, 10).await.unwrap().remove(0);
    let cancelled: OrderCancelled = serde_json::from_slice(&cancelled.payload).unwrap();
    assert_eq!(cancelled.reason, "payment failed");
    let instance = sagas.instance::<Checkout>("o-2").await.unwrap().unwrap();
    assert!(instance.ended && instance.deadlines.is_empty());
    assert!(sagas.deadlines::<Checkout>().await.unwrap().is_empty());
    running.stop().await.unwrap();
}

#[tokio::test]
async fn payment_failure_cancels_on_memory() {
    payment_failure_cancels(MemoryStore::new()).await;
}

#[tokio::test]
async fn payment_failure_cancels_on_sqlite() {
    let (_dir, store) = sqlite().await;
    payment_failure_cancels(store).await;
}

async fn payment_timeout_cancels<S: RunnerStore>(store: S) {
    let shop = Shop::new(store.clone());
    let clock = ManualClock::default();
    let sagas = Sagas::new(store.clone())
        .clock(clock.clone())
        .with::<Checkout, _>(shop.dispatcher());
    let running = sagas.start();
    place(&store, "o-3", shop.silent_amount).await;
    settle(&running, &store).await;
    assert_eq!(sagas.deadlines::<Checkout>().await.unwrap().len(), 1);
    assert_eq!(sagas.stats::<Checkout>().await.unwrap().deadlines_overdue, 0);

    clock.advance(Duration::from_secs(599));
    settle(&running, &store).await;
    assert_eq!(
        types_in(&store, "order-o-3").await,
        ["order.placed"],
        "not due yet"
    );

    clock.advance(Duration::from_secs(2));
    let deadline = tokio::time::Instant::now() + WAIT;
    while types_in(&store, "order-o-3").await.len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "the deadline never fired");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    settle(&running, &store).await;
    assert_eq!(
        types_in(&store, "order-o-3").await,
        ["order.placed", "order.cancelled"]
    );
    let instance = sagas.instance::<Checkout>("o-3").await.unwrap().unwrap();
    assert!(instance.ended);
    assert!(sagas.deadlines::<Checkout>().await.unwrap().is_empty());

    // A late payment for the ended instance starts nothing and sends nothing.
    let sent = shop.seen.lock().unwrap().len();
    Repository::<Payment, _>::new(store.clone())
        .execute(
            "o-3",
            ChargePayment {
                order_id: "o-3".into(),
                amount: 1,
            },
        )
        .await
        .unwrap();
    settle(&running, &store).await;
    assert_eq!(shop.seen.lock().unwrap().len(), sent);
    assert_eq!(
        sagas.instance::<Checkout>("o-3").await.unwrap().unwrap().version,
        2
    );
    running.stop().await.unwrap();
}

#[tokio::test]
async fn payment_timeout_cancels_on_memory() {
    payment_timeout_cancels(MemoryStore::new()).await;
}

#[tokio::test]
async fn payment_timeout_cancels_on_sqlite() {
    let (_dir, store) = sqlite().await;
    payment_timeout_cancels(store).await;
}

async fn racing_starts_make_one_instance<S: RunnerStore>(store: S) {
    let shop = Shop::new(store.clone());
    // Two runners (as in two processes) over one store, and two starts for one key.
    let first = Sagas::new(store.clone()).with::<Checkout, _>(shop.dispatcher());
    let second = Sagas::new(store.clone()).with::<Checkout, _>(shop.dispatcher());
    let (a, b) = (first.start(), second.start());
    let placed = OrderPlaced {
        order_id: "o-4".into(),
        amount: 5,
    };
    for stream in ["order-o-4", "order-o-4-again"] {
        let event =
            eventcore::NewEvent::encode(&placed, "order", stream.trim_start_matches("order-")).unwrap();
        store
            .append(stream, ExpectedVersion::Any, vec![event])
            .await
            .unwrap();
    }
    // One of them owns the saga; the other stands by.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let charges = shop
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(c, _)| matches!(c, ShopCommand::Charge { .. }))
            .count();
        if charges >= 1 && types_in(&store, "shipment-o-4").await.len() == 1 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the saga never ran");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let charges: Vec<_> = shop
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(c, _)| matches!(c, ShopCommand::Charge { .. }))
        .cloned()
        .collect();
    assert_eq!(charges.len(), 1, "{charges:?}");
    assert_eq!(first.instances::<Checkout>().await.unwrap().len(), 1);
    assert_eq!(types_in(&store, "payment-o-4").await, ["payment.charged"]);
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

#[tokio::test]
async fn racing_starts_make_one_instance_on_memory() {
    racing_starts_make_one_instance(MemoryStore::new()).await;
}

#[tokio::test]
async fn racing_starts_make_one_instance_on_sqlite() {
    let (_dir, store) = sqlite().await;
    racing_starts_make_one_instance(store).await;
}

async fn a_redispatch_appends_nothing<S: RunnerStore>(store: S) {
    let shop = Shop::new(store.clone());
    // Every command runs, then its reply is lost once: the runner dispatches it again.
    shop.lose_replies.store(1, std::sync::atomic::Ordering::SeqCst);
    let sagas = Sagas::new(store.clone())
        .dispatch_retry(RetryPolicy {
            max_attempts: 5,
            backoff: Backoff::exponential(Duration::from_millis(1), Duration::from_millis(5)),
        })
        .with::<Checkout, _>(shop.dispatcher());
    let running = sagas.start();
    place(&store, "o-5", 10).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while !sagas
        .instance::<Checkout>("o-5")
        .await
        .unwrap()
        .is_some_and(|i| i.ended)
    {
        assert!(tokio::time::Instant::now() < deadline, "the saga never ended");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    settle(&running, &store).await;
    let seen = shop.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "the charge twice, the shipment once: {seen:?}");
    assert_eq!(seen[0], seen[1], "the same command and context again");
    assert_eq!(types_in(&store, "payment-o-5").await, ["payment.charged"]);
    assert_eq!(types_in(&store, "shipment-o-5").await, ["shipment.order_shipped"]);
    let all = store.read_all(1, 100).await.unwrap();
    assert_eq!(all.len(), 3, "placed, charged, shipped: nothing twice");
    assert!(sagas.dead_letters::<Checkout>().await.unwrap().is_empty());
    running.stop().await.unwrap();
}

#[tokio::test]
async fn a_redispatch_appends_nothing_on_memory() {
    a_redispatch_appends_nothing(MemoryStore::new()).await;
}

#[tokio::test]
async fn a_redispatch_appends_nothing_on_sqlite() {
    let (_dir, store) = sqlite().await;
    a_redispatch_appends_nothing(store).await;
}

#[tokio::test]
async fn a_command_that_keeps_failing_is_dead_lettered_and_the_instance_kept() {
    let (_dir, store) = sqlite().await;
    let payments_up = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(Mutex::new(Vec::new()));
    let (up, log) = (Arc::clone(&payments_up), Arc::clone(&sent));
    let sagas = Sagas::new(store.clone())
        .dispatch_retry(RetryPolicy {
            max_attempts: 3,
            backoff: Backoff::exponential(Duration::from_millis(1), Duration::from_millis(5)),
        })
        .with::<Checkout, _>(move |command: ShopCommand, context: CommandContext| {
            let (up, log) = (Arc::clone(&up), Arc::clone(&log));
            async move {
                if !up.load(Ordering::SeqCst) {
                    return Err(DispatchFailed("payments are down".into()));
                }
                log.lock().unwrap().push((command, context.idempotency_key));
                Ok(())
            }
        });
    let running = sagas.start();
    place(&store, "o-6", 10).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let letters = loop {
        let letters = sagas.dead_letters::<Checkout>().await.unwrap();
        if !letters.is_empty() {
            break letters;
        }
        assert!(tokio::time::Instant::now() < deadline, "never dead-lettered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].attempts, 3);
    assert!(
        letters[0].error.contains("payments are down"),
        "{}",
        letters[0].error
    );
    assert_eq!(letters[0].command.instance, "o-6");
    assert!(sagas.pending_commands::<Checkout>().await.unwrap().is_empty());
    let instance = sagas.instance::<Checkout>("o-6").await.unwrap().unwrap();
    assert!(!instance.ended);
    assert_eq!(sagas.stats::<Checkout>().await.unwrap().dead_letters, 1);

    // Payments are back: the operator replays the letter, and it is dispatched once, with the
    // idempotency key it had.
    payments_up.store(true, Ordering::SeqCst);
    assert!(!sagas.replay_dead_letter::<Checkout>("no-such-key").await.unwrap());
    assert_eq!(sagas.replay_dead_letters::<Checkout>().await.unwrap(), 1);
    let deadline = tokio::time::Instant::now() + WAIT;
    while sent.lock().unwrap().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "never replayed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(sagas.dead_letters::<Checkout>().await.unwrap().is_empty());
    tokio::time::sleep(Duration::from_millis(600)).await; // past another replay scan
    let sent = sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(matches!(sent[0].0, ShopCommand::Charge { .. }));
    assert_eq!(
        sent[0].1.as_deref(),
        Some(letters[0].command.idempotency_key.as_str())
    );
    running.stop().await.unwrap();
}

#[tokio::test]
async fn events_for_keys_without_an_instance_are_skipped_not_retried() {
    let store = MemoryStore::new();
    let shop = Shop::new(store.clone());
    let sagas = Sagas::new(store.clone()).with::<Checkout, _>(shop.dispatcher());
    let running = sagas.start();
    Repository::<Shipment, _>::new(store.clone())
        .execute(
            "nobody",
            ShipOrder {
                order_id: "nobody".into(),
            },
        )
        .await
        .unwrap();
    settle(&running, &store).await;
    assert!(shop.seen.lock().unwrap().is_empty());
    assert!(sagas.instances::<Checkout>().await.unwrap().is_empty());
    let status = &running.status()[0];
    assert_eq!((status.lag, status.retries), (0, 0));
    running.stop().await.unwrap();
}

/// The same runs on PostgreSQL (feature `postgres`, `EVENTCORE_POSTGRES_URL`), each in its own schema.
#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use eventcore::PostgresStore;
    use eventcore_testing::conformance::postgres::{drop_schema, postgres_url, unique_schema};

    async fn store(prefix: &str) -> Option<PostgresStore> {
        let url = postgres_url()?;
        Some(
            PostgresStore::builder()
                .schema(unique_schema(prefix))
                .poll_interval(Duration::from_millis(50))
                .connect(&url)
                .await
                .unwrap(),
        )
    }

    macro_rules! on_postgres {
        ($($name:ident => $body:ident,)*) => {$(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(store) = store("ec_saga").await else {
                    return;
                };
                let outcome = tokio::spawn($body(store.clone())).await;
                drop_schema(&store).await;
                outcome.unwrap();
            }
        )*};
    }

    async fn design_block(store: PostgresStore) {
        sagas_block(store).await.unwrap();
    }

    on_postgres! {
        design_block_on_postgres => design_block,
        happy_path_on_postgres => happy_path,
        payment_failure_cancels_on_postgres => payment_failure_cancels,
        payment_timeout_cancels_on_postgres => payment_timeout_cancels,
        racing_starts_make_one_instance_on_postgres => racing_starts_make_one_instance,
        a_redispatch_appends_nothing_on_postgres => a_redispatch_appends_nothing,
    }
}

#[tokio::test]
async fn a_deadline_that_keeps_failing_is_set_aside_and_holds_back_no_other() {
    let (_dir, store) = sqlite().await;
    let shop = Shop::new(store.clone());
    let clock = ManualClock::default();
    let sagas = Sagas::new(store.clone())
        .clock(clock.clone())
        .retry(RetryPolicy {
            max_attempts: 2,
            backoff: Backoff::exponential(Duration::from_millis(1), Duration::from_millis(5)),
        })
        .with::<Checkout, _>(shop.dispatcher());
    let running = sagas.start();
    place(&store, "o-7", shop.silent_amount).await;
    settle(&running, &store).await;
    running.stop().await.unwrap();

    // A deadline stored by an older version, whose payload no longer decodes, due first.
    let mut instance: serde_json::Value = serde_json::from_slice(
        &store
            .load_documents("saga.checkout.instances", vec!["o-7".into()])
            .await
            .unwrap()["o-7"],
    )
    .unwrap();
    let bogus = serde_json::json!({
        "key": "0000000000000000/000000000000/0000/o-7",
        "instance": "o-7",
        "name": "PaymentTimedOut",
        "due": "2000-01-01T00:00:00Z",
        "payload": { "minutes": "ten" },
    });
    instance["deadlines"]
        .as_array_mut()
        .unwrap()
        .insert(0, bogus.clone());
    for (collection, key, body) in [
        ("saga.checkout.instances", "o-7", &instance),
        ("saga.checkout.deadlines", bogus["key"].as_str().unwrap(), &bogus),
    ] {
        store
            .put_document(collection, key, Some(serde_json::to_vec(body).unwrap().into()))
            .await
            .unwrap();
    }

    let running = sagas.start();
    clock.advance(Duration::from_secs(601));
    let deadline = tokio::time::Instant::now() + WAIT;
    while types_in(&store, "order-o-7").await.len() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the good deadline never fired"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let dead = sagas.dead_deadlines::<Checkout>().await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0].deadline.key.as_str(), dead[0].attempts),
        (bogus["key"].as_str().unwrap(), 2)
    );
    assert!(dead[0].error.contains("PaymentTimedOut"), "{}", dead[0].error);
    assert!(sagas.deadlines::<Checkout>().await.unwrap().is_empty());
    assert!(sagas.instance::<Checkout>("o-7").await.unwrap().unwrap().ended);
    running.stop().await.unwrap();
}
