//! The event bus on Redis Streams, fed by the relay: DESIGN's handler end to end, retries then a
//! dead letter then a replay, bad messages from the wire, a crashed consumer's pending entries,
//! entries trimmed while pending, and competing consumers.
#![cfg(feature = "redis")]
#![allow(missing_docs)] // test types, not API

mod brokers;
mod bus_scenarios;
mod design_domain;

use std::collections::BTreeMap;
use std::time::Duration;

use brokers::Transport;
use bus_scenarios::*;
use eventcore::bus::{Backoff, Broker, EventBus, Rejection};
use eventcore::uuid::Uuid;
use redis::AsyncCommands;

/// A Redis bus under a fresh key prefix, deleted on drop.
struct Fixture {
    url: String,
    prefix: String,
    bus: EventBus<Broker>,
}

impl Fixture {
    async fn new(partitions: u32) -> Option<Self> {
        let url = Transport::Redis.url()?;
        let prefix = Transport::fresh_prefix();
        let bus = Transport::Redis.bus(&url, &prefix, partitions).await;
        Some(Self { url, prefix, bus })
    }

    async fn connection(&self) -> redis::aio::MultiplexedConnection {
        let client = redis::Client::open(self.url.as_str()).unwrap();
        client.get_multiplexed_async_connection().await.unwrap()
    }

    fn stream(&self, partition: u32) -> String {
        format!("{}:events:{partition}", self.prefix)
    }

    async fn cleanup(self) {
        Transport::Redis.cleanup(&self.url, &self.prefix).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn design_handler_over_relay_to_redis() {
    let Some(fixture) = Fixture::new(2).await else {
        return;
    };
    bus_scenarios::design_handler_over_relay(&fixture.bus).await;
    fixture.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_then_a_dead_letter_then_a_replay() {
    let Some(fixture) = Fixture::new(2).await else {
        return;
    };
    bus_scenarios::retries_then_a_dead_letter_then_a_replay(&fixture.bus).await;
    fixture.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_messages_from_the_wire_are_rejected_or_dead_lettered() {
    let Some(fixture) = Fixture::new(1).await else {
        return;
    };
    let mut connection = fixture.connection().await;
    let key = fixture.stream(0);
    let good = deposit_event("account.money_deposited", 2);
    let unknown = deposit_event("account.teleported", 1);
    let mut newer = deposit_event("account.money_deposited", 99);
    newer.stream_id = "account-other".into(); // not held behind the first dead letter
    let source = eventcore::cloudevents::Source::AggregateType;
    for body in [
        "not json at all".to_owned(),
        r#"{"specversion":"1.0"}"#.to_owned(),
        eventcore::cloudevents::to_json(&unknown, &source).unwrap(),
        eventcore::cloudevents::to_json(&newer, &source).unwrap(),
    ] {
        let _: String = connection.xadd(&key, "*", &[("event", body)]).await.unwrap();
    }
    let _: String = connection.xadd(&key, "*", &[("other", "x")]).await.unwrap();
    // A good event on another stream is handled all the same.
    let mut good_other = good.clone();
    good_other.stream_id = "account-fine".into();
    let _: String = connection
        .xadd(
            &key,
            "*",
            &[(
                "event",
                eventcore::cloudevents::to_json(&good_other, &source).unwrap(),
            )],
        )
        .await
        .unwrap();

    let tally = Tally::default();
    let consumer = fixture.bus.subscribe(tally.clone()).start();
    consumer.wait_caught_up(Duration::from_secs(5)).await.unwrap();
    assert_eq!(tally.amounts("account-fine"), [5]);
    let dead = fixture.bus.dead_letters("tally");
    let rejected = dead.rejected().await.unwrap();
    assert_eq!(rejected.len(), 3, "{rejected:#?}");
    assert!(rejected.iter().all(|r| r.kind == Rejection::Malformed));
    assert_eq!(rejected[0].body.as_deref(), Some(&b"not json at all"[..]));
    assert!(
        rejected[1].reason.contains("missing required attribute"),
        "{}",
        rejected[1].reason
    );
    let letters = dead.list().await.unwrap();
    let reasons: BTreeMap<Uuid, String> = letters.iter().map(|l| (l.id, l.error.join(": "))).collect();
    assert!(reasons[&unknown.event_id].contains("unknown event type `account.teleported`"));
    assert!(reasons[&newer.event_id].contains("version 99 is newer"));
    assert!(dead.discard_rejected(&rejected[0].id).await.unwrap());
    assert_eq!(dead.rejected().await.unwrap().len(), 2);
    consumer.stop().await.unwrap();
    fixture.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_consumers_pending_entries_are_reclaimed_and_counted() {
    let Some(fixture) = Fixture::new(1).await else {
        return;
    };
    let ids = publish_deposits(&fixture.bus, &["acc-1"], 3).await;
    let mut connection = fixture.connection().await;
    let key = fixture.stream(0);
    let _: () = connection.xgroup_create(&key, "tally", "0").await.unwrap();
    // A consumer that read everything and died before acknowledging anything.
    let _: redis::streams::StreamReadReply = connection
        .xread_options(
            &[&key],
            &[">"],
            &redis::streams::StreamReadOptions::default().group("tally", "ghost"),
        )
        .await
        .unwrap();
    // The second deposit crashed it three times already.
    let pending: redis::streams::StreamPendingCountReply = connection
        .xpending_count(&key, "tally", "-", "+", 10)
        .await
        .unwrap();
    assert_eq!(pending.ids.len(), 4);
    let second = pending.ids[2].id.clone();
    for _ in 0..2 {
        let _: redis::streams::StreamClaimReply = connection
            .xclaim(&key, "tally", "ghost", 0, &[&second])
            .await
            .unwrap();
    }

    let tally = Tally::default();
    let consumer = fixture
        .bus
        .subscribe(tally.clone())
        .max_attempts(3)
        .backoff(fast_backoff())
        .start();
    consumer.wait_caught_up(Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        tally.amounts("account-acc-1"),
        [1],
        "the rest waits behind the dead letter"
    );
    let dead = fixture.bus.dead_letters("tally");
    let letters = dead.list().await.unwrap();
    assert_eq!(letters.len(), 2, "{letters:#?}");
    assert_eq!((letters[0].id, letters[0].attempts), (ids[1], 3));
    assert!(
        letters[0].error[0].contains("delivered 3 times"),
        "{:?}",
        letters[0].error
    );
    let pending: redis::streams::StreamPendingCountReply = connection
        .xpending_count(&key, "tally", "-", "+", 10)
        .await
        .unwrap();
    assert!(pending.ids.is_empty(), "{pending:?}");
    dead.replay_all().await.unwrap();
    eventually(|| async { dead.count().await.unwrap() == 0 }).await;
    assert_eq!(tally.amounts("account-acc-1"), [1, 2, 3]);
    consumer.stop().await.unwrap();
    fixture.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_trimmed_while_pending_are_recorded_as_lost() {
    let Some(fixture) = Fixture::new(1).await else {
        return;
    };
    publish_deposits(&fixture.bus, &["acc-1"], 2).await;
    let mut connection = fixture.connection().await;
    let key = fixture.stream(0);
    let _: () = connection.xgroup_create(&key, "tally", "0").await.unwrap();
    let _: redis::streams::StreamReadReply = connection
        .xread_options(
            &[&key],
            &[">"],
            &redis::streams::StreamReadOptions::default().group("tally", "ghost"),
        )
        .await
        .unwrap();
    let _: u64 = redis::cmd("XTRIM")
        .arg(&key)
        .arg("MAXLEN")
        .arg(0)
        .query_async(&mut connection)
        .await
        .unwrap();

    let tally = Tally::default();
    let consumer = fixture.bus.subscribe(tally.clone()).start();
    let dead = fixture.bus.dead_letters("tally");
    eventually(|| async { dead.rejected().await.unwrap().len() >= 3 }).await;
    consumer.wait_caught_up(Duration::from_secs(5)).await.unwrap();
    let rejected = dead.rejected().await.unwrap();
    assert_eq!(rejected.len(), 3, "{rejected:#?}");
    assert!(rejected
        .iter()
        .all(|r| r.kind == Rejection::Lost && r.body.is_none()));
    assert!(tally.seen.lock().unwrap().is_empty());
    consumer.stop().await.unwrap();
    fixture.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn competing_consumers_share_partitions_and_keep_streams_in_order() {
    let Some(fixture) = Fixture::new(4).await else {
        return;
    };
    bus_scenarios::competing_consumers_share_partitions_and_keep_streams_in_order(&fixture.bus).await;
    fixture.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handover_in_good_order_is_not_counted_as_an_attempt() {
    let Some(fixture) = Fixture::new(1).await else {
        return;
    };
    publish_deposits(&fixture.bus, &["acc-1"], 13).await;
    let tally = Tally::default();
    let start = || {
        fixture
            .bus
            .subscribe(tally.clone())
            .max_attempts(5)
            .backoff(Backoff::exponential(
                Duration::from_secs(60),
                Duration::from_secs(60),
            ))
            .start()
    };
    let connection = fixture.connection().await;
    let key = fixture.stream(0);
    let poison = |connection: &redis::aio::MultiplexedConnection| {
        let mut connection = connection.clone();
        let key = key.clone();
        async move {
            let pending: redis::streams::StreamPendingCountReply = connection
                .xpending_count(&key, "tally", "-", "+", 10)
                .await
                .unwrap();
            pending
                .ids
                .first()
                .map(|p| (p.consumer.clone(), p.times_delivered))
        }
    };
    let first = start();
    // The poison (13th deposit) failed once and waits a minute for its second attempt.
    eventually(|| async {
        tally.amounts("account-acc-1").len() == 12 && poison(&connection).await.is_some_and(|p| p.1 == 2)
    })
    .await;
    first.stop().await.unwrap();
    let before = poison(&connection).await;
    let second = start();
    eventually(|| async { poison(&connection).await.map(|p| p.0) != before.as_ref().map(|p| p.0.clone()) })
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await; // past the takeover's own steps
    let after = poison(&connection).await;
    assert_eq!(
        after.map(|p| p.1),
        Some(2),
        "the handover is not counted as an attempt"
    );
    second.stop().await.unwrap();
    fixture.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_is_reported_in_events_and_time() {
    let Some(fixture) = Fixture::new(2).await else {
        return;
    };
    bus_scenarios::lag_is_reported_in_events_and_time(&fixture.bus).await;
    fixture.cleanup().await;
}
