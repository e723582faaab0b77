//! Integration events end to end on Redis and NATS: a domain event translated by the relay, an
//! outbox row committed in the service's own SQLite transaction (and a rolled-back one that never
//! arrives), and messages that do not decode dead-lettered with their reason.
#![cfg(any(feature = "redis", feature = "nats"))]
#![allow(missing_docs)] // test types, not API

mod brokers;
mod design_domain;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use brokers::Transport;
use design_domain::*;
use eventcore::bus::{Backoff, Broker, EventBus, HandleError, Relay};
use eventcore::integration::{Integrated, IntegrationHandler, IntegrationMessage, MessageMeta, Translate};
use eventcore::outbox::{install_sqlite, Outbox, OutboxPump, OutboxSource, SqliteOutbox};
use eventcore::prelude::*;
use eventcore::uuid::Uuid;
use eventcore::CommandContext;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[integration(name = "crm.customer_joined", version = 1)]
pub struct CustomerJoined {
    pub customer: String,
}

impl From<&Envelope<AccountOpened>> for CustomerJoined {
    fn from(e: &Envelope<AccountOpened>) -> Self {
        Self {
            customer: e.payload.owner.clone(),
        }
    }
}

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[integration(name = "billing.invoice_paid", version = 1)]
pub struct InvoicePaid {
    pub invoice: String,
}

/// What the consumer saw: the decoded event (as text), the message id, correlation, causation.
type Seen = (String, Uuid, Option<String>, Option<String>);

#[derive(Clone, Default)]
struct Crm {
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl IntegrationHandler for Crm {
    const NAME: &'static str = "crm";
    const HANDLED_NAMES: &'static [&'static str] = &[CustomerJoined::NAME, InvoicePaid::NAME];

    async fn handle(&self, message: &IntegrationMessage) -> Result<(), HandleError> {
        let text = if message.is::<CustomerJoined>() {
            format!("joined {}", message.decode::<CustomerJoined>()?.customer)
        } else {
            format!("paid {}", message.decode::<InvoicePaid>()?.invoice)
        };
        let seen = (
            text,
            message.id,
            message.correlation_id.clone(),
            message.causation_id.clone(),
        );
        self.seen.lock().unwrap().push(seen);
        Ok(())
    }
}

/// A message of `CustomerJoined` about `subject`, to be broken by the caller.
fn message(subject: &str) -> IntegrationMessage {
    let event = CustomerJoined { customer: "x".into() };
    IntegrationMessage::new(&event, &MessageMeta::new().subject(subject)).unwrap()
}

async fn scenario(bus: &EventBus<Broker>) {
    let crm = Crm::default();
    let consumer = bus
        .subscribe(Integrated(crm.clone()))
        .max_attempts(3)
        .backoff(Backoff::exponential(
            Duration::from_millis(10),
            Duration::from_millis(50),
        ))
        .start();

    // A domain event leaves as an integration event; a deposit stays inside.
    let store = MemoryStore::new();
    let accounts = Repository::<Account, _>::new(store.clone());
    let relay = Relay::new(store.clone(), bus.clone())
        .integration(Translate::new().event::<AccountOpened, CustomerJoined>())
        .start();
    let context = CommandContext::new().correlation_id("req-1");
    let opened = accounts
        .execute_with("acc-1", OpenAccount { owner: "ada".into() }, &context)
        .await
        .unwrap();
    accounts.execute("acc-1", Deposit { amount: 5 }).await.unwrap();
    let opened_id = opened.events[0].event_id;

    // A service that is not event-sourced: its own SQLite database and transactions.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("billing.db");
    let mut conn = rusqlite::Connection::open(&path).unwrap();
    install_sqlite(&conn).unwrap();
    conn.execute("CREATE TABLE invoices (id TEXT, paid INTEGER)", [])
        .unwrap();
    let meta = MessageMeta::new()
        .source("billing")
        .subject("inv-1")
        .correlation_id("req-2");
    let tx = conn.transaction().unwrap();
    tx.execute("INSERT INTO invoices VALUES ('inv-1', 1)", [])
        .unwrap();
    let paid_id = Outbox::enqueue(
        &tx,
        &InvoicePaid {
            invoice: "inv-1".into(),
        },
        &meta,
    )
    .unwrap();
    tx.commit().unwrap();
    let tx = conn.transaction().unwrap();
    tx.execute("INSERT INTO invoices VALUES ('inv-2', 1)", [])
        .unwrap();
    Outbox::enqueue(
        &tx,
        &InvoicePaid {
            invoice: "inv-2".into(),
        },
        &meta,
    )
    .unwrap();
    tx.rollback().unwrap();
    let outbox = SqliteOutbox::open(&path).await.unwrap();
    let pump = bus.publish_outbox(OutboxPump::new(outbox.clone()).poll_interval(Duration::from_millis(20)));

    // Messages that do not decode: an unknown name, a newer version, a payload of another shape.
    let mut unknown = message("bad-1");
    unknown.name = "crm.nobody_knows".into();
    let mut newer = message("bad-2");
    newer.version = 2;
    let mut shapeless = message("bad-3");
    shapeless.data = br#"{"customer":42}"#.to_vec().into();
    bus.publish_messages(&[unknown.clone(), newer.clone(), shapeless.clone()])
        .await
        .unwrap();

    relay.wait_caught_up(Duration::from_secs(10)).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while outbox.pending().await.unwrap() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the outbox was not published"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    consumer.wait_caught_up(Duration::from_secs(10)).await.unwrap();

    let mut seen = crm.seen.lock().unwrap().clone();
    seen.sort();
    let joined_id = Uuid::new_v5(&opened_id, CustomerJoined::NAME.as_bytes());
    assert_eq!(
        seen,
        vec![
            (
                "joined ada".to_owned(),
                joined_id,
                Some("req-1".to_owned()),
                Some(opened_id.to_string())
            ),
            ("paid inv-1".to_owned(), paid_id, Some("req-2".to_owned()), None),
        ]
    );

    let dead = bus.dead_letters("crm").list().await.unwrap();
    let reason = |id: Uuid| {
        let letter = dead
            .iter()
            .find(|l| l.event.event_id == id)
            .expect("dead-lettered");
        (letter.attempts, letter.error.join(": "))
    };
    assert_eq!(dead.len(), 3, "{dead:#?}");
    let (_, why) = reason(unknown.id);
    assert!(why.contains("unknown event type `crm.nobody_knows`"), "{why}");
    let (_, why) = reason(newer.id);
    assert!(why.contains("newer"), "{why}");
    let (attempts, why) = reason(shapeless.id);
    assert_eq!(attempts, 1, "a payload that does not decode is not retried");
    assert!(why.contains("does not decode"), "{why}");
    let letter = dead.iter().find(|l| l.event.event_id == shapeless.id).unwrap();
    assert_eq!(IntegrationMessage::from_record(&letter.event), shapeless);

    // Messages have no store position: the letters of one key keep the order the messages were
    // published in (here against the order of their ids), and a discarded letter hands its
    // key's hold to the next one.
    let mut poison = message("bad-4");
    poison.data = br#"{"customer":7}"#.to_vec().into();
    poison.id = Uuid::from_u128(u128::MAX - 1);
    let mut parked = message("bad-4");
    parked.id = Uuid::from_u128(1);
    parked.time = poison.time + eventcore::chrono::Duration::milliseconds(1);
    bus.publish_messages(&[poison.clone(), parked.clone()])
        .await
        .unwrap();
    consumer.wait_caught_up(Duration::from_secs(10)).await.unwrap();
    let letters = bus.dead_letters("crm");
    // A replay that fails again rewrites the poison's letter after the parked one's.
    assert!(letters.replay(poison.id).await.unwrap());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while letters
        .get(poison.id)
        .await
        .unwrap()
        .is_some_and(|l| l.replay_requested)
    {
        assert!(tokio::time::Instant::now() < deadline, "the replay did not run");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let of_key = |all: Vec<eventcore::bus::DeadLetter>| {
        all.into_iter()
            .filter(|l| l.event.aggregate_id == "bad-4")
            .map(|l| (l.id, l.attempts))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        of_key(letters.list().await.unwrap()),
        [(poison.id, 2), (parked.id, 0)]
    );
    assert!(letters.discard(poison.id).await.unwrap());
    let mut later = message("bad-4");
    later.time = parked.time + eventcore::chrono::Duration::milliseconds(1);
    bus.publish_messages(std::slice::from_ref(&later)).await.unwrap();
    consumer.wait_caught_up(Duration::from_secs(10)).await.unwrap();
    let behind = letters.get(later.id).await.unwrap().expect("parked");
    assert!(
        behind.error.join(": ").contains(&parked.id.to_string()),
        "{behind:#?}"
    );

    pump.stop().await.unwrap();
    relay.stop().await.unwrap();
    consumer.stop().await.unwrap();
}

async fn over(transport: Transport) {
    let Some(url) = transport.url() else {
        return;
    };
    let prefix = Transport::fresh_prefix();
    scenario(&transport.bus(&url, &prefix, 2).await).await;
    transport.cleanup(&url, &prefix).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integration_events_travel_over_redis() {
    over(Transport::Redis).await;
}

#[cfg(feature = "nats")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integration_events_travel_over_nats() {
    over(Transport::Nats).await;
}
