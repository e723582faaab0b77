//! The local event bus: handlers fed from the store's log, retries, dead letters kept whole,
//! per-stream order behind a dead letter, replay and discard.
#![allow(missing_docs)] // test types, not API

mod design_domain;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use design_domain::*;
use eventcore::bus::{Backoff, EventBus, EventHandler, HandleError, Handled};
use eventcore::prelude::*;
use eventcore::runner::{RunnerState, RunnerStore};

/// Records deposits; fails on an amount of 13 until fixed.
#[derive(Clone, Default)]
struct Ledger {
    seen: Arc<Mutex<Vec<(String, i64)>>>,
    fixed: Arc<AtomicBool>,
}

#[derive(Debug, thiserror::Error)]
#[error("ledger service down")]
struct LedgerDown(#[source] std::io::Error);

impl EventHandler for Ledger {
    const NAME: &'static str = "ledger";
    const HANDLED_EVENT_TYPES: &'static [&'static str] = &["account.money_deposited"];

    async fn handle(&self, record: &RecordedEvent) -> Result<Handled, HandleError> {
        if record.event_type != "account.money_deposited" {
            return Ok(Handled::Skipped);
        }
        let event = record.decode::<AccountEvent>().map_err(|e| HandleError::Decode {
            global_position: record.global_position,
            source: Box::new(e),
        })?;
        let AccountEvent::Deposited(deposit) = event.payload else {
            return Ok(Handled::Skipped);
        };
        if deposit.amount == 13 && !self.fixed.load(Ordering::SeqCst) {
            return Err(HandleError::Handler {
                handler: "deposited",
                source: Box::new(LedgerDown(std::io::Error::other("connection refused"))),
            });
        }
        self.seen
            .lock()
            .unwrap()
            .push((record.aggregate_id.clone(), deposit.amount));
        Ok(Handled::Done)
    }
}

fn fast_backoff() -> Backoff {
    Backoff::exponential(Duration::from_millis(1), Duration::from_millis(4))
}

async fn sqlite() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("bus.db")).await.unwrap();
    (dir, store)
}

#[tokio::test]
async fn design_block_on_memory() {
    bus_block(MemoryStore::new()).await.unwrap();
}

#[tokio::test]
async fn design_block_on_sqlite() {
    let (_dir, store) = sqlite().await;
    bus_block(store).await.unwrap();
}

#[tokio::test]
async fn handlers_run_after_the_commit_and_catch_up() {
    let (_dir, store) = sqlite().await;
    let accounts = Repository::<Account, _>::new(store.clone());
    accounts
        .execute("acc-1", OpenAccount { owner: "ada".into() })
        .await
        .unwrap();
    accounts.execute("acc-1", Deposit { amount: 5 }).await.unwrap();
    let bus = EventBus::local(store.clone());
    let ledger = Ledger::default();
    let consumer = bus.subscribe(ledger.clone()).start();
    accounts.execute("acc-1", Deposit { amount: 7 }).await.unwrap();
    consumer.wait_caught_up(Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        *ledger.seen.lock().unwrap(),
        [("acc-1".into(), 5), ("acc-1".into(), 7)]
    );
    let status = consumer.status().remove(0);
    assert_eq!(
        (status.name.as_str(), status.lag, status.state),
        ("ledger", 0, RunnerState::Live)
    );
    consumer.stop().await.unwrap();
    // Restarted, it resumes from its checkpoint: nothing handled twice.
    let consumer = bus.subscribe(ledger.clone()).start();
    consumer.wait_caught_up(Duration::from_secs(5)).await.unwrap();
    assert_eq!(ledger.seen.lock().unwrap().len(), 2);
    consumer.stop().await.unwrap();
}

#[tokio::test]
async fn a_poison_event_is_dead_lettered_whole_and_replayed_after_a_fix() {
    let (_dir, store) = sqlite().await;
    let accounts = Repository::<Account, _>::new(store.clone());
    for id in ["acc-1", "acc-2"] {
        accounts
            .execute(id, OpenAccount { owner: "ada".into() })
            .await
            .unwrap();
    }
    accounts.execute("acc-1", Deposit { amount: 1 }).await.unwrap();
    let poison = accounts.execute("acc-1", Deposit { amount: 13 }).await.unwrap();
    accounts.execute("acc-1", Deposit { amount: 2 }).await.unwrap(); // waits behind the poison
    accounts.execute("acc-2", Deposit { amount: 3 }).await.unwrap(); // another stream: not blocked
    let bus = EventBus::local(store.clone());
    let ledger = Ledger::default();
    let consumer = bus
        .subscribe(ledger.clone())
        .max_attempts(3)
        .backoff(fast_backoff())
        .start();
    consumer.wait_caught_up(Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        *ledger.seen.lock().unwrap(),
        [("acc-1".into(), 1), ("acc-2".into(), 3)]
    );

    let dead = bus.dead_letters("ledger");
    let letters = dead.list().await.unwrap();
    assert_eq!(letters.len(), 2, "{letters:#?}");
    let first = &letters[0];
    assert_eq!(first.id, poison.events[0].event_id);
    assert_eq!((first.consumer.as_str(), first.attempts), ("ledger", 3));
    assert_eq!(
        first.event.payload_json().unwrap()["amount"],
        13,
        "the payload is kept"
    );
    assert_eq!(first.event.stream_id, "account-acc-1");
    assert_eq!(
        first.error,
        [
            "handler `deposited` failed",
            "ledger service down",
            "connection refused"
        ],
        "the whole error chain, each cause once"
    );
    assert!(first.first_failure <= first.last_failure);
    assert_eq!(letters[1].attempts, 0, "parked behind the poison, never tried");
    assert!(
        letters[1].error[0].contains("waiting behind dead letter"),
        "{:?}",
        letters[1].error
    );
    assert_eq!(dead.count().await.unwrap(), 2);

    // Fixed and replayed: handled once each, in stream order, with the same event ids.
    ledger.fixed.store(true, Ordering::SeqCst);
    assert_eq!(dead.replay_all().await.unwrap(), 2);
    tokio::time::timeout(Duration::from_secs(10), async {
        while dead.count().await.unwrap() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the replayed letters are removed");
    accounts.execute("acc-2", Deposit { amount: 4 }).await.unwrap();
    consumer.wait_caught_up(Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        *ledger.seen.lock().unwrap(),
        [
            ("acc-1".into(), 1),
            ("acc-2".into(), 3),
            ("acc-1".into(), 13),
            ("acc-1".into(), 2),
            ("acc-2".into(), 4)
        ]
    );
    consumer.stop().await.unwrap();
}

#[tokio::test]
async fn an_event_that_does_not_decode_is_dead_lettered_at_once_and_can_be_discarded() {
    let store = MemoryStore::new();
    let mut bad = eventcore::NewEvent::encode(
        &MoneyDeposited {
            amount: 1,
            currency: "EUR".into(),
        },
        "account",
        "acc-9",
    )
    .unwrap();
    bad.payload = br#"{"amount":"lots"}"#.to_vec().into();
    let bad_id = bad.event_id;
    store
        .append("account-acc-9", ExpectedVersion::Any, vec![bad])
        .await
        .unwrap();
    let bus = EventBus::local(store.clone());
    let consumer = bus
        .subscribe(Ledger::default())
        .max_attempts(5)
        .backoff(fast_backoff())
        .start();
    consumer.wait_caught_up(Duration::from_secs(5)).await.unwrap();
    let dead = bus.dead_letters("ledger");
    let letter = dead.get(bad_id).await.unwrap().expect("dead-lettered");
    assert_eq!(
        letter.attempts, 1,
        "a payload that does not decode is not retried"
    );
    assert!(letter.error[0].contains("does not decode"), "{:?}", letter.error);
    assert!(dead.discard(bad_id).await.unwrap());
    assert!(!dead.discard(bad_id).await.unwrap());
    assert_eq!(dead.count().await.unwrap(), 0);
    assert_eq!(store.checkpoint("ledger").await.unwrap().unwrap().position, 2);
    consumer.stop().await.unwrap();
}
