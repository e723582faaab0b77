//! `#[projection]`: the DESIGN "Projections" document projection, keys, envelopes, skipping and
//! decoding rules, checked through `Projection::route` and `ProjectionFixture`.
#![allow(missing_docs)] // test types, not API

mod design_domain;

use design_domain::*;
use eventcore::prelude::*;
use eventcore::projection::{Projection, ProjectionError};
use eventcore_testing::ProjectionFixture;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use stored::record;

#[test]
fn the_design_projection_is_named_and_lists_its_types_sorted() {
    assert_eq!(AccountSummary::NAME, "account_summary");
    assert_eq!(AccountSummary::VERSION, 1);
    assert_eq!(
        AccountSummary::HANDLED_EVENT_TYPES,
        ["account.money_deposited", "account.opened", "account.withdrawn"]
    );
    let mut sorted = AccountSummary::HANDLED_EVENT_TYPES.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted, AccountSummary::HANDLED_EVENT_TYPES);
}

#[test]
fn the_design_projection_folds_one_document_per_account() {
    ProjectionFixture::<AccountSummary>::new()
        .given_for(
            "acc-1",
            vec![
                AccountOpened { owner: "ada".into() }.into(),
                MoneyDeposited {
                    amount: 100,
                    currency: "EUR".into(),
                }
                .into(),
            ],
        )
        .given_for("acc-2", vec![AccountOpened { owner: "bob".into() }.into()])
        .given_for("acc-1", vec![MoneyWithdrawn { amount: 30 }.into()])
        .then_document("acc-1", |summary| {
            assert_eq!(
                (summary.owner.as_str(), summary.balance, summary.movements),
                ("ada", 70, 2)
            );
        })
        .then_document("acc-2", |summary| {
            summary.owner == "bob" && summary.movements == 0
        })
        .then_no_document(ProjectionFixture::<AccountSummary>::DEFAULT_AGGREGATE_ID);
}

#[test]
fn given_without_an_aggregate_id_uses_the_default_key() {
    let fixture = ProjectionFixture::<AccountSummary>::new().given(vec![
        AccountOpened { owner: "ada".into() }.into(),
        AccountEvent::from(MoneyWithdrawn { amount: 5 }).into(),
    ]);
    assert_eq!(fixture.documents().keys().collect::<Vec<_>>(), ["id-1"]);
    let _ = fixture.then_document("id-1", |summary| summary.balance == -5);
}

/// Spending per owner, keyed by a payload field, with envelope handlers.
#[derive(Debug, Default, Serialize, Deserialize)]
struct OwnerActivity {
    accounts: Vec<String>,
    last_position: u64,
    correlation: Option<String>,
}

#[projection(name = "owner_activity", version = 3)]
impl OwnerActivity {
    #[on(key = owner)]
    fn opened(&mut self, e: &Envelope<AccountOpened>) {
        self.accounts.push(e.aggregate_id.clone());
        self.last_position = e.global_position;
        self.correlation.clone_from(&e.correlation_id);
        assert_eq!((e.event_type.as_str(), e.event_version), ("account.opened", 1));
    }
}

#[test]
fn a_key_field_keys_documents_by_payload_and_envelopes_carry_the_record() {
    assert_eq!(
        (OwnerActivity::NAME, OwnerActivity::VERSION),
        ("owner_activity", 3)
    );
    ProjectionFixture::<OwnerActivity>::new()
        .given_for("acc-1", vec![AccountOpened { owner: "ada".into() }.into()])
        .given_for("acc-2", vec![AccountOpened { owner: "bob".into() }.into()])
        .given_for("acc-3", vec![AccountOpened { owner: "ada".into() }.into()])
        .then_document("ada", |doc| {
            assert_eq!(doc.accounts, ["acc-1", "acc-3"]);
            assert_eq!(doc.last_position, 3);
        })
        .then_document("bob", |doc| doc.accounts == ["acc-2"])
        .then_no_document("acc-1");

    let mut opened = record("account.opened", 1, br#"{"owner":"cy"}"#, "acc-9", 42);
    opened.correlation_id = Some("corr-1".into());
    let mut routes = Vec::new();
    OwnerActivity::route(&opened, &mut routes).expect("routes");
    assert_eq!(routes.len(), 1);
    assert_eq!((routes[0].key(), routes[0].global_position()), ("cy", 42));
    let mut doc = OwnerActivity::default();
    routes[0].apply_to(&mut doc).expect("applies");
    assert_eq!(doc.correlation.as_deref(), Some("corr-1"));
    assert_eq!(doc.last_position, 42);
}

#[test]
fn unhandled_types_are_skipped_without_decoding() {
    // Not JSON at all: decoding it would fail, so skipping proves it was never decoded.
    let garbage = record("account.withdrawn", 1, b"not json", "acc-1", 7);
    let mut routes = Vec::new();
    OwnerActivity::route(&garbage, &mut routes).expect("an unhandled type is skipped");
    assert!(routes.is_empty());
    assert_eq!(OwnerActivity::key(&garbage).expect("skipped"), None);
    assert!(!OwnerActivity::handles("account.withdrawn"));
    assert!(OwnerActivity::handles("account.opened"));

    let unknown = record("someone.else", 1, b"{", "x", 8);
    assert_eq!(AccountSummary::key(&unknown).expect("skipped"), None);
}

#[test]
fn an_invalid_payload_of_a_handled_type_is_an_error_naming_its_position() {
    let bad = record("account.withdrawn", 1, b"not json", "acc-1", 7);
    let mut routes = Vec::new();
    let error = AccountSummary::route(&bad, &mut routes).expect_err("a handled type is decoded");
    assert!(routes.is_empty());
    assert!(
        matches!(&error, ProjectionError::Decode { event_type, global_position: 7, .. } if event_type == "account.withdrawn"),
        "{error:?}"
    );
    assert_eq!(
        (error.projection(), error.global_position()),
        ("account_summary", 7)
    );
    let message = error.to_string();
    assert!(
        message.contains("position 7") && message.contains("account_summary"),
        "{message}"
    );
    assert!(std::error::Error::source(&error).is_some());

    // A version newer than the code is a decode error too, never a silent skip.
    let newer = record("account.withdrawn", 9, br#"{"amount":1}"#, "acc-1", 8);
    assert!(AccountSummary::key(&newer).is_err());
}

#[test]
fn key_and_apply_work_on_records() {
    let deposited = record(
        "account.money_deposited",
        2,
        br#"{"amount":5,"currency":"EUR"}"#,
        "acc-4",
        1,
    );
    assert_eq!(
        AccountSummary::key(&deposited).expect("key").as_deref(),
        Some("acc-4")
    );
    let mut doc = AccountSummary::default();
    doc.apply(&deposited).expect("applies");
    doc.apply(&record("account.opened", 1, br#"{"owner":"di"}"#, "acc-4", 2))
        .expect("applies");
    assert_eq!((doc.owner.as_str(), doc.balance, doc.movements), ("di", 5, 1));
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

#[derive(Debug, Default, Serialize, Deserialize)]
struct Customers {
    names: Vec<String>,
    channels: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("the name is empty")]
struct EmptyName;

#[projection]
impl Customers {
    #[on(key = channel)]
    fn signed_up(&mut self, e: &CustomerSignedUp) -> Result<(), EmptyName> {
        if e.name.is_empty() {
            return Err(EmptyName);
        }
        self.names.push(e.name.clone());
        self.channels.push(e.channel.clone());
        Ok(())
    }
}

#[test]
fn stored_events_of_an_older_name_are_upcast_and_handled() {
    assert_eq!(Customers::HANDLED_EVENT_TYPES, ["customer.signed_up"]);
    assert!(Customers::handles("customer.registered"));
    ProjectionFixture::<Customers>::new()
        .given_records(vec![record(
            "customer.registered",
            1,
            br#"{"name":"ed"}"#,
            "c-1",
            1,
        )])
        .given(vec![CustomerSignedUp {
            name: "flo".into(),
            channel: "web".into(),
        }
        .into()])
        .then_document("legacy", |doc| doc.names == ["ed"])
        .then_document("web", |doc| doc.names == ["flo"]);
}

#[test]
fn a_failing_handler_is_an_error_naming_handler_and_position() {
    let empty = record(
        "customer.signed_up",
        2,
        br#"{"name":"","channel":"web"}"#,
        "c-1",
        5,
    );
    let mut doc = Customers::default();
    let error = doc.apply(&empty).expect_err("the handler fails");
    assert!(
        matches!(
            &error,
            ProjectionError::Handler {
                handler: "signed_up",
                global_position: 5,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("the name is empty"), "{error}");
}

mod stored {
    //! Stored records written by hand, as a store would return them.
    use eventcore::{NewEvent, RecordedEvent};

    use super::AccountOpened;

    pub fn record(
        event_type: &str,
        version: u32,
        payload: &[u8],
        aggregate_id: &str,
        position: u64,
    ) -> RecordedEvent {
        let aggregate_type = event_type.split('.').next().unwrap_or("x").to_owned();
        let mut new = NewEvent::encode(
            &AccountOpened { owner: String::new() },
            &aggregate_type,
            aggregate_id,
        )
        .expect("encodes");
        event_type.clone_into(&mut new.event_type);
        new.event_version = version;
        new.payload = payload.to_vec().into();
        new.into_recorded(&format!("{aggregate_type}-{aggregate_id}"), 1, position)
    }
}

#[test]
#[should_panic(
    expected = "then_document: projection `account_summary` has no document `acc-9`; documents: `acc-1`, `acc-2`"
)]
fn a_missing_document_names_the_key_and_lists_the_keys_there_are() {
    let _ = ProjectionFixture::<AccountSummary>::new()
        .given_for("acc-1", vec![AccountOpened { owner: "ada".into() }.into()])
        .given_for("acc-2", vec![AccountOpened { owner: "bob".into() }.into()])
        .then_document("acc-9", |_| ());
}

#[test]
#[should_panic(
    expected = "then_document: the check of document `id-1` of projection `account_summary` failed"
)]
fn a_failed_document_check_names_the_document() {
    let _ = ProjectionFixture::<AccountSummary>::new()
        .given(vec![AccountOpened { owner: "ada".into() }.into()])
        .then_document("id-1", |summary| summary.owner == "bob");
}

#[test]
#[should_panic(expected = "then_no_document: projection `account_summary` has a document `id-1`")]
fn an_unexpected_document_fails_then_no_document() {
    let _ = ProjectionFixture::<AccountSummary>::new()
        .given(vec![AccountOpened { owner: "ada".into() }.into()])
        .then_no_document("id-1");
}

#[test]
#[should_panic(expected = "handler `signed_up` failed on `customer.signed_up` at global position 1")]
fn a_failing_handler_fails_the_given_step() {
    let _ = ProjectionFixture::<Customers>::new().given(vec![CustomerSignedUp {
        name: String::new(),
        channel: "web".into(),
    }
    .into()]);
}

#[test]
#[should_panic(expected = "projection `account_summary` has no document `acc-1`; documents: none")]
fn a_fixture_without_events_has_no_documents() {
    let _ = ProjectionFixture::<AccountSummary>::new().then_document("acc-1", |_| ());
}
