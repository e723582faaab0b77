//! Scenarios every broker bus passes, fed by the relay: `tests/bus_redis.rs` and
//! `tests/bus_nats.rs` run them on a bus of their transport and add what is transport-specific.
#![allow(dead_code)] // each test binary uses a different part

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::design_domain::*;
use eventcore::bus::{Backoff, Broker, EventBus, EventHandler, HandleError, Handled, Relay};
use eventcore::prelude::*;
use eventcore::uuid::Uuid;

/// A handled deposit: stream, stream version, amount, event id.
pub type Seen = (String, u64, i64, Uuid);

/// Records each deposit it handles (stream, version, amount) and fails on an amount of 13 until
/// fixed.
#[derive(Clone, Default)]
pub struct Tally {
    pub seen: Arc<Mutex<Vec<Seen>>>,
    pub fixed: Arc<AtomicBool>,
}

#[derive(Debug, thiserror::Error)]
#[error("ledger service down")]
pub struct LedgerDown;

impl EventHandler for Tally {
    const NAME: &'static str = "tally";
    const HANDLED_EVENT_TYPES: &'static [&'static str] = &["account.money_deposited"];

    async fn handle(&self, record: &RecordedEvent) -> Result<Handled, HandleError> {
        if record.event_type != "account.money_deposited" {
            return Ok(Handled::Skipped);
        }
        let event = record
            .decode::<MoneyDeposited>()
            .map_err(|e| HandleError::Decode {
                global_position: record.global_position,
                source: Box::new(e),
            })?;
        if event.payload.amount == 13 && !self.fixed.load(Ordering::SeqCst) {
            return Err(HandleError::Handler {
                handler: "deposited",
                source: Box::new(LedgerDown),
            });
        }
        self.seen.lock().unwrap().push((
            record.stream_id.clone(),
            record.stream_version,
            event.payload.amount,
            record.event_id,
        ));
        Ok(Handled::Done)
    }
}

impl Tally {
    pub fn amounts(&self, stream: &str) -> Vec<i64> {
        let seen = self.seen.lock().unwrap();
        seen.iter().filter(|s| s.0 == stream).map(|s| s.2).collect()
    }
}

pub fn fast_backoff() -> Backoff {
    Backoff::exponential(Duration::from_millis(5), Duration::from_millis(20))
}

pub async fn eventually<F: std::future::Future<Output = bool>>(mut check: impl FnMut() -> F) {
    for _ in 0..500 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not met within 5 s");
}

/// DESIGN's `Welcome` handler fed by a relay: handled, nothing dead-lettered, no lag.
pub async fn design_handler_over_relay(bus: &EventBus<Broker>) {
    let store = MemoryStore::new();
    let accounts = Repository::<Account, _>::new(store.clone());
    let relay = Relay::new(store.clone(), bus.clone()).start();
    let welcome = Welcome::default();
    let consumer = bus
        .subscribe(welcome.clone())
        .max_attempts(5)
        .backoff(Backoff::exponential(
            Duration::from_millis(100),
            Duration::from_secs(30),
        ))
        .start();
    accounts
        .execute("acc-2", OpenAccount { owner: "bob".into() })
        .await
        .unwrap();
    relay.wait_caught_up(Duration::from_secs(5)).await.unwrap();
    consumer.wait_caught_up(Duration::from_secs(5)).await.unwrap();
    assert!(welcome.sent.lock().unwrap().contains(&"bob".to_string()));
    let dead = bus.dead_letters("welcome");
    assert_eq!(dead.count().await.unwrap(), 0);
    for letter in dead.list().await.unwrap() {
        dead.replay(letter.id).await.unwrap();
    }
    let status = relay.status().remove(0);
    assert_eq!((status.name.as_str(), status.lag), ("relay", 0));
    consumer.stop().await.unwrap();
    relay.stop().await.unwrap();
}

/// A poison deposit retried, dead-lettered with the event parked behind it, then replayed in
/// order with the same event id; the stream flows again. Needs 2 partitions.
pub async fn retries_then_a_dead_letter_then_a_replay(bus: &EventBus<Broker>) {
    let store = MemoryStore::new();
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
    accounts.execute("acc-2", Deposit { amount: 3 }).await.unwrap(); // another stream: not held
    let relay = Relay::new(store.clone(), bus.clone()).start();
    relay.wait_caught_up(Duration::from_secs(5)).await.unwrap();

    let tally = Tally::default();
    let consumer = bus
        .subscribe(tally.clone())
        .max_attempts(3)
        .backoff(fast_backoff())
        .start();
    consumer.wait_caught_up(Duration::from_secs(5)).await.unwrap();
    assert_eq!(tally.amounts("account-acc-1"), [1]);
    assert_eq!(tally.amounts("account-acc-2"), [3]);
    assert!(consumer.status()[0].retries >= 2, "{:?}", consumer.status());

    let dead = bus.dead_letters("tally");
    let letters = dead.list().await.unwrap();
    assert_eq!(letters.len(), 2, "{letters:#?}");
    assert_eq!(letters[0].id, poison.events[0].event_id);
    assert_eq!((letters[0].consumer.as_str(), letters[0].attempts), ("tally", 3));
    assert_eq!(letters[0].event.payload_json().unwrap()["amount"], 13);
    assert_eq!(
        letters[0].error,
        ["handler `deposited` failed", "ledger service down"]
    );
    assert_eq!(letters[1].attempts, 0, "parked behind the poison");
    assert_eq!(dead.get(letters[0].id).await.unwrap().as_ref(), Some(&letters[0]));

    tally.fixed.store(true, Ordering::SeqCst);
    assert_eq!(dead.replay_all().await.unwrap(), 2);
    eventually(|| async { dead.count().await.unwrap() == 0 }).await;
    assert_eq!(
        tally.amounts("account-acc-1"),
        [1, 13, 2],
        "same order, each once"
    );
    let seen = tally.seen.lock().unwrap().clone();
    assert!(
        seen.iter().any(|s| s.3 == poison.events[0].event_id),
        "same event id"
    );

    // The stream is no longer held: new events flow.
    accounts.execute("acc-1", Deposit { amount: 4 }).await.unwrap();
    relay.wait_caught_up(Duration::from_secs(5)).await.unwrap();
    consumer.wait_caught_up(Duration::from_secs(5)).await.unwrap();
    assert_eq!(tally.amounts("account-acc-1"), [1, 13, 2, 4]);
    consumer.stop().await.unwrap();
    relay.stop().await.unwrap();
}

/// A recorded deposit of `amount` as the relay would publish it, at `event_type` and `version`.
pub fn deposit_event(event_type: &str, version: u32) -> RecordedEvent {
    RecordedEvent {
        event_id: Uuid::now_v7(),
        event_type: event_type.to_owned(),
        event_version: version,
        stream_id: "account-wire".to_owned(),
        aggregate_type: "account".to_owned(),
        aggregate_id: "wire".to_owned(),
        stream_version: 1,
        global_position: 1,
        occurred_at: eventcore::chrono::Utc::now(),
        correlation_id: None,
        causation_id: None,
        metadata: Default::default(),
        payload: br#"{"amount":5,"currency":"EUR"}"#.to_vec().into(),
    }
}

/// Publishes deposits of 1..=n on `stream` through a relay and returns their ids.
pub async fn publish_deposits(bus: &EventBus<Broker>, streams: &[&str], n: i64) -> Vec<Uuid> {
    let store = MemoryStore::new();
    let accounts = Repository::<Account, _>::new(store.clone());
    let mut ids = Vec::new();
    for stream in streams {
        accounts
            .execute(stream, OpenAccount { owner: "ada".into() })
            .await
            .unwrap();
        for amount in 1..=n {
            let committed = accounts.execute(stream, Deposit { amount }).await.unwrap();
            ids.push(committed.events[0].event_id);
        }
    }
    let relay = Relay::new(store, bus.clone()).start();
    relay.wait_caught_up(Duration::from_secs(5)).await.unwrap();
    relay.stop().await.unwrap();
    ids
}

/// Two consumers of one handler on 4 partitions: each event handled once, every stream in order.
pub async fn competing_consumers_share_partitions_and_keep_streams_in_order(bus: &EventBus<Broker>) {
    let tally = Tally::default();
    tally.fixed.store(true, Ordering::SeqCst); // 13 is an amount like any other here
    let start = |tally: &Tally| {
        bus.subscribe(tally.clone())
            .lease_ttl(Duration::from_millis(300))
            .batch_size(10)
            .start()
    };
    let first = start(&tally);
    let second = start(&tally);
    let streams = ["s-1", "s-2", "s-3", "s-4", "s-5", "s-6"];
    let ids = publish_deposits(bus, &streams, 20).await;
    first.wait_caught_up(Duration::from_secs(10)).await.unwrap();
    second.wait_caught_up(Duration::from_secs(10)).await.unwrap();
    let seen = tally.seen.lock().unwrap().clone();
    let mut counts: BTreeMap<Uuid, u32> = BTreeMap::new();
    for entry in &seen {
        *counts.entry(entry.3).or_default() += 1;
    }
    assert_eq!(counts.len(), ids.len(), "every event handled");
    assert!(counts.values().all(|&c| c == 1), "each once");
    for stream in streams {
        let amounts = tally.amounts(&format!("account-{stream}"));
        assert_eq!(amounts, (1..=20).collect::<Vec<_>>(), "{stream} in order");
    }
    first.stop().await.unwrap();
    second.stop().await.unwrap();
}

/// Handles deposits only once its gate is open.
#[derive(Clone, Default)]
pub struct Gate {
    pub open: Arc<AtomicBool>,
}

impl EventHandler for Gate {
    const NAME: &'static str = "gate";
    const HANDLED_EVENT_TYPES: &'static [&'static str] = &["account.money_deposited"];

    async fn handle(&self, _: &RecordedEvent) -> Result<Handled, HandleError> {
        while !self.open.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(Handled::Done)
    }
}

/// A consumer behind reports its lag in events and in time (the age of the oldest message it
/// has not acknowledged), and no lag once it caught up.
pub async fn lag_is_reported_in_events_and_time(bus: &EventBus<Broker>) {
    publish_deposits(bus, &["acc-1"], 3).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let gate = Gate::default();
    let consumer = bus
        .subscribe(gate.clone())
        .lease_ttl(Duration::from_millis(600))
        .start();
    eventually(|| async {
        let status = consumer.status().remove(0);
        status.lag > 0 && status.lag_time >= Duration::from_secs(1)
    })
    .await;
    gate.open.store(true, Ordering::SeqCst);
    consumer.wait_caught_up(Duration::from_secs(5)).await.unwrap();
    eventually(|| async {
        let status = consumer.status().remove(0);
        status.lag == 0 && status.lag_time == Duration::ZERO
    })
    .await;
    consumer.stop().await.unwrap();
}
