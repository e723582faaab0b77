//! `#[aggregate]` at run time: dispatch of every event, one `Handle` per command, names.

mod design_domain;

use design_domain::*;
use eventcore::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

fn fold(events: &[AccountEvent]) -> Account {
    let mut account = Account::default();
    for event in events {
        account.apply(event);
    }
    account
}

#[test]
fn aggregate_type_and_associated_types() {
    assert_eq!(Account::AGGREGATE_TYPE, "account");
    fn event_set<A: Aggregate<Event = AccountEvent, Error = AccountError>>() {}
    event_set::<Account>();
}

#[test]
fn apply_dispatches_every_variant() {
    let account = fold(&[
        AccountOpened { owner: "ada".into() }.into(),
        MoneyDeposited {
            amount: 100,
            currency: "EUR".into(),
        }
        .into(),
        MoneyWithdrawn { amount: 30 }.into(),
    ]);
    assert!(account.open);
    assert_eq!(account.balance, 70);
}

#[test]
fn every_command_has_a_handle_impl() {
    let account = Account::default();
    let events = Handle::<OpenAccount>::handle(&account, OpenAccount { owner: "ada".into() }).unwrap();
    assert_eq!(
        events,
        [AccountEvent::Opened(AccountOpened { owner: "ada".into() })]
    );

    let account = fold(&events);
    assert_eq!(
        account.handle(OpenAccount { owner: "bob".into() }),
        Err(AccountError::AlreadyOpen)
    );
    let events = account.handle(Deposit { amount: 5 }).unwrap();
    assert_eq!(
        events,
        [AccountEvent::Deposited(MoneyDeposited {
            amount: 5,
            currency: "EUR".into()
        })]
    );
    assert_eq!(
        account.handle(Withdraw { amount: 6 }),
        Err(AccountError::InsufficientFunds)
    );
}

// A name override, an event struct used directly as the event set, and other methods left alone.

#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(aggregate = "lamp")]
struct LampToggled;

#[derive(Debug, Default)]
struct Light {
    on: bool,
}

struct Toggle;

#[derive(Debug, thiserror::Error)]
#[error("never")]
struct Never;

#[aggregate(events = LampToggled, error = Never, name = "lamp")]
impl Light {
    fn is_on(&self) -> bool {
        self.on
    }

    #[command]
    fn toggle(&self, _: Toggle) -> Result<Vec<LampToggled>, Never> {
        Ok(vec![LampToggled])
    }

    #[apply]
    fn toggled(&mut self, _: &LampToggled) {
        self.on = !self.on;
    }
}

#[test]
fn name_override_and_struct_event_set() {
    assert_eq!(Light::AGGREGATE_TYPE, "lamp");
    let mut light = Light::default();
    for event in light.handle(Toggle).unwrap() {
        light.apply(&event);
    }
    assert!(light.is_on());
}

// Snapshot options: a JSON snapshot of the state every N events, at a declared version.

#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
struct Tally {
    sum: i64,
}

#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(aggregate = "tally")]
struct TallyCounted {}

#[aggregate(events = TallyCounted, error = Never, name = "tally", snapshot_every = 5, snapshot_version = 3)]
impl Tally {
    #[apply]
    fn counted(&mut self, _: &TallyCounted) {
        self.sum += 1;
    }
}

#[test]
fn snapshot_options_set_the_policy_and_json_codec() {
    assert_eq!(Tally::SNAPSHOT_POLICY, eventcore::SnapshotPolicy::Every(5));
    assert_eq!(Tally::SNAPSHOT_VERSION, 3);
    let state = Tally { sum: 7 };
    let bytes = state.encode_snapshot().unwrap().unwrap();
    assert_eq!(bytes, br#"{"sum":7}"#);
    assert_eq!(Tally::decode_snapshot(&bytes).unwrap().unwrap(), state);

    // Without the options, no snapshots.
    assert_eq!(Light::SNAPSHOT_POLICY, eventcore::SnapshotPolicy::Never);
    assert!(Light::default().encode_snapshot().is_none());
}
