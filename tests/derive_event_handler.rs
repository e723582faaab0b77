//! `#[event_handler]`: the DESIGN `Welcome` handler, skipping, decoding (upcasts and splits
//! included), error mapping, the constants, and a `Send` future.
#![allow(missing_docs)] // test types, not API

mod design_domain;

use design_domain::*;
use eventcore::bus::{EventHandler, HandleError, Handled};
use eventcore::prelude::*;
use eventcore::schema::UpcastError;
use eventcore::NewEvent;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};

/// A handler that fails on deposits, takes payloads by `&E`, and follows renames and splits.
#[derive(Default)]
struct Ledger {
    seen: Mutex<Vec<String>>,
}

#[event_handler(name = "ledger_mailer")]
impl Ledger {
    #[on]
    async fn withdrawn(&self, e: &MoneyWithdrawn) -> Result<(), MailDown> {
        self.seen.lock().unwrap().push(format!("withdrawn {}", e.amount));
        Ok(())
    }

    #[on]
    async fn deposited(&self, _: &MoneyDeposited) -> Result<(), MailDown> {
        tokio::task::yield_now().await;
        Err(MailDown)
    }

    #[on]
    async fn signed_up(&self, e: &Envelope<CustomerSignedUp>) -> Result<(), MailDown> {
        let line = format!("{} {} via {}", e.event_type, e.payload.name, e.payload.channel);
        self.seen.lock().unwrap().push(line);
        Ok(())
    }

    #[on]
    async fn entry(&self, e: &LedgerEntry) -> Result<(), MailDown> {
        self.seen.lock().unwrap().push(format!("entry {}", e.amount));
        Ok(())
    }
}

// A renamed event: stored as `customer.registered` v1, read as `customer.signed_up` v2.
#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(name = "customer.registered")]
pub struct CustomerRegistered {
    pub name: String,
}

#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(name = "customer.signed_up", version = 2, upcast_from = CustomerRegistered)]
pub struct CustomerSignedUp {
    pub name: String,
    pub channel: String,
}

impl From<CustomerRegistered> for CustomerSignedUp {
    fn from(old: CustomerRegistered) -> Self {
        Self {
            name: old.name,
            channel: "legacy".into(),
        }
    }
}

// A split: one stored `ledger.entry` v1 with several amounts becomes one v2 event per amount.
#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(name = "ledger.entry", version = 2)]
pub struct LedgerEntry {
    pub amount: i64,
}

#[eventcore::upcaster(event = "ledger.entry", from = 1)]
fn split_entries(payload: serde_json::Value) -> Result<Vec<serde_json::Value>, UpcastError> {
    let amounts = payload["amounts"]
        .as_array()
        .ok_or_else(|| UpcastError::new("no amounts"))?;
    Ok(amounts
        .iter()
        .map(|amount| serde_json::json!({ "amount": amount }))
        .collect())
}

fn recorded<E: DomainEvent>(event: &E, position: u64) -> RecordedEvent {
    NewEvent::encode(event, "account", "acc-1")
        .expect("encodes")
        .into_recorded("account-acc-1", 1, position)
}

/// A record stored as `event_type` v`version` with a raw payload.
fn raw(event_type: &str, version: u32, payload: &[u8], position: u64) -> RecordedEvent {
    let mut new =
        NewEvent::encode(&AccountOpened { owner: String::new() }, "account", "acc-1").expect("encodes");
    event_type.clone_into(&mut new.event_type);
    new.event_version = version;
    new.payload = payload.to_vec().into();
    new.into_recorded("account-acc-1", 1, position)
}

#[tokio::test]
async fn the_design_welcome_handler_pushes_the_owner() {
    let welcome = Welcome::default();
    let opened = recorded(&AccountOpened { owner: "bob".into() }, 1);
    assert_eq!(welcome.handle(&opened).await.expect("handles"), Handled::Done);
    assert_eq!(*welcome.sent.lock().unwrap(), ["bob"]);
}

#[tokio::test]
async fn a_type_no_handler_takes_is_skipped() {
    let welcome = Welcome::default();
    let deposited = recorded(
        &MoneyDeposited {
            amount: 5,
            currency: "EUR".into(),
        },
        2,
    );
    assert_eq!(welcome.handle(&deposited).await.expect("skips"), Handled::Skipped);
    // Skipped without decoding: a payload that would not decode is skipped as well.
    let unknown = raw("account.closed", 1, b"not json", 3);
    assert_eq!(welcome.handle(&unknown).await.expect("skips"), Handled::Skipped);
    assert!(welcome.sent.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_bad_payload_of_a_handled_type_is_a_decode_error() {
    let welcome = Welcome::default();
    let bad = raw("account.opened", 1, br#"{"name":"no owner"}"#, 7);
    let error = welcome.handle(&bad).await.expect_err("does not decode");
    assert!(
        matches!(
            &error,
            HandleError::Decode {
                global_position: 7,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(error.to_string(), "event at position 7 does not decode");
    assert!(std::error::Error::source(&error).is_some());
    assert!(!error.is_retryable());
    assert!(welcome.sent.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_failing_handler_names_the_method_and_keeps_its_error() {
    let ledger = Ledger::default();
    let deposited = recorded(
        &MoneyDeposited {
            amount: 5,
            currency: "EUR".into(),
        },
        4,
    );
    let error = ledger.handle(&deposited).await.expect_err("the handler fails");
    assert!(error.is_retryable());
    assert_eq!(error.to_string(), "handler `deposited` failed");
    let HandleError::Handler { handler, source } = error else {
        panic!("expected a handler error, got {error:?}");
    };
    assert_eq!(handler, "deposited");
    assert!(source.downcast_ref::<MailDown>().is_some());
    assert_eq!(source.to_string(), "mail server unavailable");
}

#[tokio::test]
async fn handlers_take_payloads_renamed_and_split_events() {
    let ledger = Ledger::default();
    let withdrawn = recorded(&MoneyWithdrawn { amount: 3 }, 1);
    assert_eq!(ledger.handle(&withdrawn).await.expect("handles"), Handled::Done);
    let registered = recorded(&CustomerRegistered { name: "cy".into() }, 2);
    assert_eq!(ledger.handle(&registered).await.expect("handles"), Handled::Done);
    let batched = raw("ledger.entry", 1, br#"{"amounts":[1,2,3]}"#, 3);
    assert_eq!(ledger.handle(&batched).await.expect("handles"), Handled::Done);
    assert_eq!(
        *ledger.seen.lock().unwrap(),
        [
            "withdrawn 3",
            "customer.signed_up cy via legacy",
            "entry 1",
            "entry 2",
            "entry 3"
        ]
    );
}

#[test]
fn name_and_handled_event_types() {
    assert_eq!(Welcome::NAME, "welcome");
    assert_eq!(Welcome::HANDLED_EVENT_TYPES, ["account.opened"]);
    assert_eq!(Ledger::NAME, "ledger_mailer");
    assert_eq!(
        Ledger::HANDLED_EVENT_TYPES,
        [
            "account.money_deposited",
            "account.withdrawn",
            "customer.signed_up",
            "ledger.entry"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handle_future_is_send() {
    let welcome = Welcome::default();
    let task_welcome = welcome.clone();
    let opened = recorded(&AccountOpened { owner: "eve".into() }, 1);
    let handled = tokio::spawn(async move { task_welcome.handle(&opened).await })
        .await
        .expect("the task runs");
    assert_eq!(handled.expect("handles"), Handled::Done);
    let ledger = Arc::new(Ledger::default());
    let batched = raw("ledger.entry", 1, br#"{"amounts":[4]}"#, 2);
    let task_ledger = Arc::clone(&ledger);
    tokio::spawn(async move { task_ledger.handle(&batched).await })
        .await
        .expect("the task runs")
        .expect("handles");
    assert_eq!(*welcome.sent.lock().unwrap(), ["eve"]);
    assert_eq!(*ledger.seen.lock().unwrap(), ["entry 4"]);
}
