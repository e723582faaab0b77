//! `#[derive(DomainEvent)]` at run time: names, versions, payloads, decoding and registration.

mod design_domain;

use design_domain::*;
use eventcore::{DecodeError, DomainEvent, EventDescriptor, SingleEvent};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

fn opened() -> AccountOpened {
    AccountOpened { owner: "ada".into() }
}

fn deposited() -> MoneyDeposited {
    MoneyDeposited {
        amount: 100,
        currency: "EUR".into(),
    }
}

fn withdrawn() -> MoneyWithdrawn {
    MoneyWithdrawn { amount: 30 }
}

#[test]
fn struct_names_and_versions_follow_the_design() {
    assert_eq!(opened().event_type(), "account.opened");
    assert_eq!(opened().event_version(), 1);
    assert_eq!(deposited().event_type(), "account.money_deposited");
    assert_eq!(deposited().event_version(), 2);
    assert_eq!(withdrawn().event_type(), "account.withdrawn");
    assert_eq!(withdrawn().event_version(), 1);
    assert_eq!(<AccountOpened as SingleEvent>::AGGREGATE, Some("account"));
    assert_eq!(<MoneyWithdrawn as SingleEvent>::AGGREGATE, None);
}

#[test]
fn enum_values_answer_with_their_variant() {
    let events: Vec<AccountEvent> = vec![opened().into(), deposited().into(), withdrawn().into()];
    let answers: Vec<_> = events
        .iter()
        .map(|e| (e.event_type(), e.event_version()))
        .collect();
    assert_eq!(
        answers,
        [
            ("account.opened", 1),
            ("account.money_deposited", 2),
            ("account.withdrawn", 1)
        ]
    );
    assert_eq!(
        AccountEvent::from(withdrawn()),
        AccountEvent::Withdrawn(withdrawn())
    );
}

#[test]
fn event_types_list_the_set() {
    let descriptor = |event_type, version| EventDescriptor { event_type, version };
    assert_eq!(AccountOpened::EVENT_TYPES, [descriptor("account.opened", 1)]);
    assert_eq!(
        AccountEvent::EVENT_TYPES,
        [
            descriptor("account.opened", 1),
            descriptor("account.money_deposited", 2),
            descriptor("account.withdrawn", 1)
        ]
    );
}

#[test]
fn payload_is_the_structs_json_alone() {
    let event = AccountEvent::from(deposited());
    let payload = event.encode_payload().unwrap();
    assert_eq!(payload, serde_json::to_vec(&deposited()).unwrap());
    let json: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(json, serde_json::json!({ "amount": 100, "currency": "EUR" }));
}

#[test]
fn every_variant_round_trips() {
    for event in [
        AccountEvent::from(opened()),
        deposited().into(),
        withdrawn().into(),
    ] {
        let payload = event.encode_payload().unwrap();
        let decoded =
            AccountEvent::decode_payload(event.event_type(), event.event_version(), &payload).unwrap();
        assert_eq!(decoded, event);
    }
    let payload = opened().encode_payload().unwrap();
    assert_eq!(
        AccountOpened::decode_payload("account.opened", 1, &payload).unwrap(),
        opened()
    );
}

#[test]
fn unknown_type_lists_the_known_ones() {
    let err = AccountEvent::decode_payload("account.closed", 1, b"{}").unwrap_err();
    match &err {
        DecodeError::UnknownEventType { event_type, known } => {
            assert_eq!(event_type, "account.closed");
            assert_eq!(
                known,
                "account.opened, account.money_deposited, account.withdrawn"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    let err = AccountOpened::decode_payload("account.withdrawn", 1, b"{}").unwrap_err();
    assert!(matches!(err, DecodeError::UnknownEventType { .. }), "{err:?}");
}

#[test]
fn versions_other_than_the_current_are_errors() {
    let payload = serde_json::to_vec(&deposited()).unwrap();
    let err = AccountEvent::decode_payload("account.money_deposited", 3, &payload).unwrap_err();
    assert!(
        matches!(
            err,
            DecodeError::VersionTooNew {
                version: 3,
                current: 2,
                ..
            }
        ),
        "{err:?}"
    );
    let err = AccountEvent::decode_payload("account.money_deposited", 1, &payload).unwrap_err();
    assert!(
        matches!(
            err,
            DecodeError::MissingUpcaster {
                from: 1,
                current: 2,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn a_bad_payload_is_a_payload_error() {
    let err = AccountEvent::decode_payload("account.withdrawn", 1, b"{\"amount\":\"x\"}").unwrap_err();
    assert!(matches!(err, DecodeError::Payload { version: 1, .. }), "{err:?}");
}

#[test]
fn every_struct_is_registered_with_its_schema() {
    let registered: Vec<_> = eventcore::schema::registered_events()
        .filter(|r| r.rust_type.ends_with("design_domain::MoneyDeposited"))
        .collect();
    assert_eq!(registered.len(), 1);
    let entry = registered[0];
    assert_eq!(entry.event_type, "account.money_deposited");
    assert_eq!(entry.version, 2);
    assert_eq!(entry.aggregate, Some("account"));
    assert_eq!(entry.rust_type, "derive_events::design_domain::MoneyDeposited");
    let schema = serde_json::to_value((entry.schema)()).unwrap();
    assert!(schema["properties"]["currency"].is_object(), "{schema}");

    for event_type in [
        "account.opened",
        "account.withdrawn",
        "order_shipped",
        "bank_account.opened",
    ] {
        assert!(
            eventcore::schema::registered_events().any(|r| r.event_type == event_type),
            "{event_type} not registered"
        );
    }
}

// Naming without an aggregate, and with a multi-word aggregate.

#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, PartialEq)]
struct OrderShipped {
    pub order: u64,
}

#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, PartialEq)]
#[event(aggregate = "bank_account", version = 3)]
struct BankAccountOpened;

#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, PartialEq)]
#[event(aggregate = "account", name = "ledger.entry-v2.booked")]
struct EntryBooked(pub i64);

#[test]
fn naming_rules() {
    assert_eq!(OrderShipped::EVENT_TYPE, "order_shipped");
    assert_eq!(<OrderShipped as SingleEvent>::AGGREGATE, None);
    assert_eq!(BankAccountOpened::EVENT_TYPE, "bank_account.opened");
    assert_eq!(BankAccountOpened::EVENT_VERSION, 3);
    assert_eq!(EntryBooked::EVENT_TYPE, "ledger.entry-v2.booked");
    assert_eq!(<EntryBooked as SingleEvent>::AGGREGATE, Some("account"));
}
