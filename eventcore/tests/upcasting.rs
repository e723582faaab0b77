//! Upcasting on load: typed and raw steps, renames, one-to-many, missing steps, and the registry
//! that describes them. Events are registered by hand, as `#[derive(DomainEvent)]` would.

#![allow(missing_docs)]

#[macro_use]
mod support;

use bytes::Bytes;
use eventcore::schema::{registry, RegistryIssue, UpcastError, Upcasted};
use eventcore::{
    Aggregate, DecodeError, DomainEvent, EventDescriptor, EventStore, ExpectedVersion, MemoryStore, NewEvent,
    Repository, RepositoryError, SingleEvent,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
pub struct DepositedV1 {
    pub amount: i64,
}
hand_event!(DepositedV1, "acct.deposited", 1, Some("acct"));

#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
pub struct DepositedV2 {
    pub amount: i64,
    pub currency: String,
}
hand_event!(DepositedV2, "acct.deposited", 2, Some("acct"));

impl From<DepositedV1> for DepositedV2 {
    fn from(old: DepositedV1) -> Self {
        Self {
            amount: old.amount,
            currency: "EUR".into(),
        }
    }
}
hand_typed_upcaster!(DepositedV1 => DepositedV2);

/// The current version: amounts in cents.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
pub struct Deposited {
    pub cents: i64,
    pub currency: String,
}
hand_event!(Deposited, "acct.deposited", 3, Some("acct"));

fn deposited_v2_to_v3(mut payload: Value) -> Result<Vec<Upcasted>, UpcastError> {
    let object = payload
        .as_object_mut()
        .ok_or_else(|| UpcastError::new("payload is not an object"))?;
    let amount = object
        .remove("amount")
        .and_then(|a| a.as_i64())
        .ok_or_else(|| UpcastError::missing_field("amount"))?;
    object.insert("cents".into(), json!(amount * 100));
    Ok(vec![Upcasted::new("acct.deposited", 3, payload)])
}
hand_upcaster!(deposited_v2_to_v3, "acct.deposited", 2 => [("acct.deposited", 3)]);

/// A renamed type: `acct.credited` v1 became `acct.deposited` v2.
fn credited_to_deposited(payload: Value) -> Result<Vec<Upcasted>, UpcastError> {
    let sum = payload["sum"]
        .as_i64()
        .ok_or_else(|| UpcastError::missing_field("sum"))?;
    Ok(vec![Upcasted::new(
        "acct.deposited",
        2,
        json!({ "amount": sum, "currency": "USD" }),
    )])
}
hand_upcaster!(credited_to_deposited, "acct.credited", 1 => [("acct.deposited", 2)]);

/// One to many: a batch of deposits becomes one event per amount (none for an empty batch).
fn split_batch(payload: Value) -> Result<Vec<Upcasted>, UpcastError> {
    let amounts = payload["amounts"]
        .as_array()
        .ok_or_else(|| UpcastError::missing_field("amounts"))?;
    Ok(amounts
        .iter()
        .map(|a| Upcasted::new("acct.deposited", 3, json!({ "cents": a, "currency": "EUR" })))
        .collect())
}
hand_upcaster!(split_batch, "acct.batch_deposited", 1 => [("acct.deposited", 3)]);

#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
pub struct ClosedV1 {}
hand_event!(ClosedV1, "acct.closed", 1, Some("acct"));

/// Version 2 of `acct.closed` with no upcaster from version 1: a deliberate gap.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
pub struct Closed {
    pub reason: String,
}
hand_event!(Closed, "acct.closed", 2, Some("acct"));

/// Declares version 3 of `acct.deposited` but produces version 2.
fn lies_about_output(payload: Value) -> Result<Vec<Upcasted>, UpcastError> {
    Ok(vec![Upcasted::new("acct.deposited", 2, payload)])
}
hand_upcaster!(lies_about_output, "acct.bogus", 1 => [("acct.deposited", 3)]);

fn twice_a(payload: Value) -> Result<Vec<Upcasted>, UpcastError> {
    Ok(vec![Upcasted::new("acct.deposited", 3, payload)])
}
fn twice_b(payload: Value) -> Result<Vec<Upcasted>, UpcastError> {
    Ok(vec![Upcasted::new("acct.deposited", 3, payload)])
}
hand_upcaster!(twice_a, "acct.twice", 1 => [("acct.deposited", 3)]);
hand_upcaster!(twice_b, "acct.twice", 1 => [("acct.deposited", 3)]);

fn loop_a_to_b(payload: Value) -> Result<Vec<Upcasted>, UpcastError> {
    Ok(vec![Upcasted::new("acct.loop_b", 1, payload)])
}
fn loop_b_to_a(payload: Value) -> Result<Vec<Upcasted>, UpcastError> {
    Ok(vec![Upcasted::new("acct.loop_a", 1, payload)])
}
hand_upcaster!(loop_a_to_b, "acct.loop_a", 1 => [("acct.loop_b", 1)]);
hand_upcaster!(loop_b_to_a, "acct.loop_b", 1 => [("acct.loop_a", 1)]);

#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
pub struct DupOne {}
hand_event!(DupOne, "acct.dup", 1, None);
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
pub struct DupTwo {}
hand_event!(DupTwo, "acct.dup", 1, None);

#[derive(Debug, Clone, PartialEq)]
pub enum AcctEvent {
    Deposited(Deposited),
    Closed(Closed),
}

impl DomainEvent for AcctEvent {
    const EVENT_TYPES: &'static [EventDescriptor] = &[Deposited::DESCRIPTOR, Closed::DESCRIPTOR];
    fn event_type(&self) -> &'static str {
        match self {
            Self::Deposited(e) => e.event_type(),
            Self::Closed(e) => e.event_type(),
        }
    }
    fn event_version(&self) -> u32 {
        match self {
            Self::Deposited(e) => e.event_version(),
            Self::Closed(e) => e.event_version(),
        }
    }
    fn encode_payload(&self) -> Result<Vec<u8>, eventcore::EncodeError> {
        match self {
            Self::Deposited(e) => e.encode_payload(),
            Self::Closed(e) => e.encode_payload(),
        }
    }
    fn decode_payload(t: &str, v: u32, p: &[u8]) -> Result<Self, DecodeError> {
        match t {
            Deposited::EVENT_TYPE => Deposited::decode_payload(t, v, p).map(Self::Deposited),
            Closed::EVENT_TYPE => Closed::decode_payload(t, v, p).map(Self::Closed),
            _ => Err(eventcore::__private::unknown_event_type(t, Self::EVENT_TYPES)),
        }
    }
}

#[derive(Debug, Default)]
pub struct Acct {
    cents: i64,
    deposits: usize,
    closed: bool,
}

impl Aggregate for Acct {
    const AGGREGATE_TYPE: &'static str = "acct";
    type Event = AcctEvent;
    type Error = std::convert::Infallible;
    fn apply(&mut self, event: &AcctEvent) {
        match event {
            AcctEvent::Deposited(d) => {
                self.cents += d.cents;
                self.deposits += 1;
            }
            AcctEvent::Closed(_) => self.closed = true,
        }
    }
}

fn stored(event_type: &str, version: u32, payload: Value) -> NewEvent {
    NewEvent {
        event_id: uuid::Uuid::now_v7(),
        event_type: event_type.into(),
        event_version: version,
        aggregate_type: "acct".into(),
        aggregate_id: "a".into(),
        occurred_at: chrono::Utc::now(),
        correlation_id: None,
        causation_id: None,
        metadata: Default::default(),
        payload: Bytes::from(serde_json::to_vec(&payload).unwrap()),
    }
}

async fn load_with<S: EventStore>(store: S, id: &str, events: Vec<NewEvent>) -> Result<Acct, DecodeError> {
    let repository = Repository::<Acct, _>::new(store.clone());
    store
        .append(
            &Repository::<Acct, S>::stream_id(id),
            ExpectedVersion::NoStream,
            events,
        )
        .await
        .unwrap();
    match repository.load(id).await {
        Ok(loaded) => Ok(loaded.into_state()),
        Err(RepositoryError::Decode(error)) => Err(error.source),
        Err(other) => panic!("unexpected error: {other}"),
    }
}

async fn versions_one_to_three_load<S: EventStore>(store: S) {
    let state = load_with(
        store,
        "mixed",
        vec![
            stored("acct.deposited", 1, json!({ "amount": 1 })),
            stored("acct.deposited", 2, json!({ "amount": 2, "currency": "EUR" })),
            stored("acct.deposited", 3, json!({ "cents": 3, "currency": "EUR" })),
            stored("acct.credited", 1, json!({ "sum": 4 })),
            stored("acct.closed", 2, json!({ "reason": "done" })),
        ],
    )
    .await
    .unwrap();
    assert_eq!(state.cents, 100 + 200 + 3 + 400);
    assert_eq!(state.deposits, 4);
    assert!(state.closed);
}

#[tokio::test]
async fn versions_one_two_three_and_a_rename_load_on_memory_store() {
    versions_one_to_three_load(MemoryStore::new()).await;
}

#[tokio::test]
async fn one_to_many_and_one_to_zero_upcasters_apply_every_produced_event() {
    let state = load_with(
        MemoryStore::new(),
        "batch",
        vec![
            stored("acct.batch_deposited", 1, json!({ "amounts": [5, 6, 7] })),
            stored("acct.batch_deposited", 1, json!({ "amounts": [] })),
            stored("acct.deposited", 3, json!({ "cents": 1, "currency": "EUR" })),
        ],
    )
    .await
    .unwrap();
    assert_eq!((state.cents, state.deposits), (19, 4));
}

#[tokio::test]
async fn a_missing_step_names_the_type_and_the_version() {
    let error = load_with(
        MemoryStore::new(),
        "closed",
        vec![stored("acct.closed", 1, json!({}))],
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&error, DecodeError::MissingUpcaster { event_type, from: 1, current: 2 } if event_type == "acct.closed"),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "no upcaster for `acct.closed` from version 1 (current version is 2)"
    );
}

#[tokio::test]
async fn a_version_newer_than_the_code_is_version_too_new() {
    let error = load_with(
        MemoryStore::new(),
        "new",
        vec![stored("acct.deposited", 4, json!({ "cents": 1 }))],
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            error,
            DecodeError::VersionTooNew {
                version: 4,
                current: 3,
                ..
            }
        ),
        "{error:?}"
    );
}

fn record(event_type: &str, version: u32, payload: Value) -> eventcore::RecordedEvent {
    stored(event_type, version, payload).into_recorded("acct-r", 1, 1)
}

fn upcast_error(event_type: &str, payload: Value) -> UpcastError {
    match record(event_type, 1, payload)
        .decode_all::<AcctEvent>()
        .unwrap_err()
        .source
    {
        DecodeError::Upcast { source, .. } => *source,
        other => panic!("expected an upcast error, got {other:?}"),
    }
}

#[test]
fn a_split_event_gets_distinct_ids_that_are_stable_across_reads() {
    let batch = record("acct.batch_deposited", 1, json!({ "amounts": [1, 2, 3] }));
    let ids = |record: &eventcore::RecordedEvent| -> Vec<uuid::Uuid> {
        record
            .decode_all::<AcctEvent>()
            .unwrap()
            .iter()
            .map(|e| e.event_id)
            .collect()
    };
    let first = ids(&batch);
    assert_eq!(first.len(), 3);
    assert_eq!(first[0], batch.event_id, "the first event keeps the stored id");
    let distinct: std::collections::BTreeSet<_> = first.iter().collect();
    assert_eq!(distinct.len(), 3, "{first:?}");
    assert_eq!(ids(&batch.clone()), first, "a second read gives the same ids");
    let unsplit = record("acct.deposited", 1, json!({ "amount": 2 }));
    assert_eq!(ids(&unsplit), vec![unsplit.event_id]);
}

#[test]
fn decode_insists_on_one_event_and_decode_all_returns_each() {
    let batch = record("acct.batch_deposited", 1, json!({ "amounts": [1, 2] }));
    let error = batch.decode::<AcctEvent>().unwrap_err();
    assert!(
        matches!(error.source, DecodeError::NotOneEvent { count: 2, .. }),
        "{error:?}"
    );
    let all = batch.decode_all::<AcctEvent>().unwrap();
    assert_eq!(all.len(), 2);
    for envelope in &all {
        assert_eq!(
            (envelope.event_type.as_str(), envelope.event_version),
            ("acct.deposited", 3)
        );
        assert_eq!(envelope.stream_version, batch.stream_version);
    }
    let old = record("acct.deposited", 1, json!({ "amount": 2 }))
        .decode::<AcctEvent>()
        .unwrap();
    assert_eq!(old.event_version, 3);
    assert_eq!(
        old.payload,
        AcctEvent::Deposited(Deposited {
            cents: 200,
            currency: "EUR".into()
        })
    );
}

#[test]
fn a_failing_upcaster_is_an_error_naming_the_step() {
    let error = record("acct.deposited", 2, json!({ "currency": "EUR" }))
        .decode::<AcctEvent>()
        .unwrap_err();
    assert_eq!(
        error.source.to_string(),
        "upcasting `acct.deposited` from version 2 failed: missing field `amount`"
    );
    let typed = record("acct.deposited", 1, json!({ "amount": "x" }))
        .decode::<AcctEvent>()
        .unwrap_err();
    assert!(
        matches!(&typed.source, DecodeError::Upcast { source, .. } if matches!(**source, UpcastError::Payload { version: 1, .. })),
        "{typed:?}"
    );
}

#[test]
fn undeclared_output_ambiguous_steps_and_cycles_are_errors() {
    assert!(matches!(
        upcast_error("acct.bogus", json!({})),
        UpcastError::UndeclaredOutput { version: 2, .. }
    ));
    match upcast_error("acct.twice", json!({})) {
        UpcastError::Ambiguous { count: 2, names, .. } => assert_eq!(names, "twice_a, twice_b"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        upcast_error("acct.loop_a", json!({})),
        UpcastError::TooManySteps(_)
    ));
}

#[test]
fn the_registry_lists_versions_and_the_upcasters_leading_to_them() {
    let registry = registry();
    assert_eq!(registry.versions("acct.deposited"), vec![1, 2, 3]);
    let v2 = registry.get("acct.deposited", 2).unwrap();
    let mut sources: Vec<_> = v2
        .upcasters
        .iter()
        .map(|u| (u.event_type.as_str(), u.from_version))
        .collect();
    sources.sort();
    assert_eq!(sources, vec![("acct.credited", 1), ("acct.deposited", 1)]);
    assert_eq!(v2.rust_type, "upcasting::DepositedV2");
    assert_eq!(
        v2.schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert_eq!(v2.schema["required"], json!(["amount", "currency"]));
}

#[test]
fn the_registry_json_is_sorted_stable_and_reads_back() {
    let json = registry().to_json();
    assert_eq!(json, registry().to_json());
    let value: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["format_version"], 1);
    let keys: Vec<(String, u64)> = value["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["event_type"].as_str().unwrap().to_owned(),
                e["version"].as_u64().unwrap(),
            )
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    for field in [
        "event_type",
        "version",
        "aggregate",
        "rust_type",
        "schema",
        "upcasters",
    ] {
        assert!(value["events"][0].get(field).is_some(), "missing {field}");
    }
    assert_eq!(eventcore::schema::Registry::from_json(&json).unwrap(), registry());
    let newer = json.replacen("\"format_version\": 1", "\"format_version\": 99", 1);
    assert!(eventcore::schema::Registry::from_json(&newer).is_err());
}

#[test]
fn validate_reports_every_gap_and_ambiguity_at_once() {
    let report = registry().validate().unwrap_err();
    let described: Vec<String> = report.issues.iter().map(ToString::to_string).collect();
    assert!(report.issues.iter().any(|i| matches!(i, RegistryIssue::Gap { from, latest: Some(2), .. } if from.event_type == "acct.closed" && from.version == 1)), "{described:#?}");
    assert!(
        report
            .issues
            .iter()
            .any(|i| matches!(i, RegistryIssue::AmbiguousUpcaster { names, .. } if names.len() == 2)),
        "{described:#?}"
    );
    assert!(
        report.issues.iter().any(
            |i| matches!(i, RegistryIssue::DuplicateEvent { event, .. } if event.event_type == "acct.dup")
        ),
        "{described:#?}"
    );
    assert!(
        report
            .issues
            .iter()
            .any(|i| matches!(i, RegistryIssue::Cycle { .. })),
        "{described:#?}"
    );
    assert_eq!(
        described.iter().filter(|d| d.contains("acct.deposited")).count(),
        0,
        "the deposited chain is complete: {described:#?}"
    );
    assert!(described.contains(&"`acct.closed` v1 cannot be upcast to a current version: no upcaster from `acct.closed` v1 (newest registered version is 2)".to_owned()), "{described:#?}");
    assert_eq!(report.issues.len(), 5, "{described:#?}");
}
