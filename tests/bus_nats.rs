//! The event bus on NATS JetStream, fed by the relay: DESIGN's handler end to end, retries then a
//! dead letter then a replay, bad messages from the wire, and competing consumers.
#![cfg(feature = "nats")]
#![allow(missing_docs)] // test types, not API

mod brokers;
mod bus_scenarios;
mod design_domain;

use std::collections::BTreeMap;
use std::time::Duration;

use brokers::Transport;
use bus_scenarios::*;
use design_domain::*;
use eventcore::bus::{Broker, BusError, EventBus, Rejection, Relay};
use eventcore::integration::{IntegrationMessage, MessageMeta};
use eventcore::prelude::*;
use eventcore::uuid::Uuid;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A note published for other services, of any size.
#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[integration(name = "board.note_posted", version = 1)]
pub struct NotePosted {
    pub text: String,
}

/// A NATS bus under a fresh prefix (its stream and bucket deleted by `cleanup`).
struct Fixture {
    url: String,
    prefix: String,
    bus: EventBus<Broker>,
}

impl Fixture {
    async fn new(partitions: u32) -> Option<Self> {
        let url = Transport::Nats.url()?;
        let prefix = Transport::fresh_prefix();
        let bus = Transport::Nats.bus(&url, &prefix, partitions).await;
        Some(Self { url, prefix, bus })
    }

    async fn jetstream(&self) -> async_nats::jetstream::Context {
        async_nats::jetstream::new(async_nats::connect(&self.url).await.unwrap())
    }

    async fn cleanup(self) {
        Transport::Nats.cleanup(&self.url, &self.prefix).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn design_handler_over_relay_to_nats() {
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
    let jetstream = fixture.jetstream().await;
    let subject = format!("{}.events.0", fixture.prefix);
    let good = deposit_event("account.money_deposited", 2);
    let unknown = deposit_event("account.teleported", 1);
    let mut newer = deposit_event("account.money_deposited", 99);
    newer.stream_id = "account-other".into();
    let mut good_other = good.clone();
    good_other.stream_id = "account-fine".into();
    let source = eventcore::cloudevents::Source::AggregateType;
    for body in [
        "not json at all".to_owned(),
        r#"{"specversion":"1.0"}"#.to_owned(),
        eventcore::cloudevents::to_json(&unknown, &source).unwrap(),
        eventcore::cloudevents::to_json(&newer, &source).unwrap(),
        eventcore::cloudevents::to_json(&good_other, &source).unwrap(),
    ] {
        jetstream
            .publish(subject.clone(), body.into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let tally = Tally::default();
    let consumer = fixture.bus.subscribe(tally.clone()).start();
    consumer.wait_caught_up(Duration::from_secs(5)).await.unwrap();
    assert_eq!(tally.amounts("account-fine"), [5]);
    let dead = fixture.bus.dead_letters("tally");
    let rejected = dead.rejected().await.unwrap();
    assert_eq!(rejected.len(), 2, "{rejected:#?}");
    assert!(rejected.iter().all(|r| r.kind == Rejection::Malformed));
    assert_eq!(rejected[0].body.as_deref(), Some(&b"not json at all"[..]));
    let letters = dead.list().await.unwrap();
    let reasons: BTreeMap<Uuid, String> = letters.iter().map(|l| (l.id, l.error.join(": "))).collect();
    assert!(reasons[&unknown.event_id].contains("unknown event type `account.teleported`"));
    assert!(reasons[&newer.event_id].contains("version 99 is newer"));
    assert!(dead.discard_rejected(&rejected[0].id).await.unwrap());
    assert_eq!(dead.rejected().await.unwrap().len(), 1);
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
async fn an_integration_message_over_the_brokers_size_limit_is_a_clear_error() {
    let Some(fixture) = Fixture::new(1).await else {
        return;
    };
    let note = |text: String| IntegrationMessage::new(&NotePosted { text }, &MessageMeta::new()).unwrap();
    let huge = note("x".repeat(1_048_576));
    let messages = [note("before".into()), huge.clone(), note("after".into())];
    let error = fixture.bus.publish_messages(&messages).await.unwrap_err();
    assert!(
        matches!(error, BusError::TooLarge { event_id, limit: 1_048_576, .. } if event_id == huge.id),
        "{error}"
    );
    // The one before it is published and acknowledged; none after it was sent.
    let jetstream = fixture.jetstream().await;
    let mut stream = jetstream.get_stream(fixture.prefix.to_uppercase()).await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 1);
    fixture.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_over_the_brokers_size_limit_stops_the_relay_there_with_a_clear_error() {
    let Some(fixture) = Fixture::new(1).await else {
        return;
    };
    let store = MemoryStore::new();
    let accounts = Repository::<Account, _>::new(store.clone());
    accounts
        .execute("small", OpenAccount { owner: "ada".into() })
        .await
        .unwrap();
    // Within the store's 1 MiB payload limit, over NATS's 1 MiB message limit once encoded.
    let huge = accounts
        .execute(
            "huge",
            OpenAccount {
                owner: "x".repeat(1_048_540),
            },
        )
        .await
        .unwrap();
    accounts
        .execute("after", OpenAccount { owner: "bob".into() })
        .await
        .unwrap();
    let relay = Relay::new(store.clone(), fixture.bus.clone())
        .backoff(eventcore::bus::Backoff::exponential(
            Duration::from_millis(5),
            Duration::from_millis(20),
        ))
        .start();
    let huge_id = huge.events[0].event_id;
    let huge_position = huge.events[0].global_position;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        let status = relay.status().remove(0);
        if status.last_error.is_some() && status.position == huge_position {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never stopped at it: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let error = status.last_error.unwrap_or_default();
    assert!(error.contains(&huge_id.to_string()), "{error}");
    assert!(
        error.contains("over the broker's limit of 1048576 bytes"),
        "{error}"
    );
    assert!(!error.contains("event store unavailable"), "{error}");
    // What came before it is published; nothing after it is (per-stream order, nothing skipped).
    let jetstream = fixture.jetstream().await;
    let mut stream = jetstream.get_stream(fixture.prefix.to_uppercase()).await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 1);
    relay.stop().await.unwrap();
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
