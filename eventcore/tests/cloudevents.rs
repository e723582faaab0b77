//! CloudEvents 1.0 structured-mode conversion: lossless round trips and invalid inputs.

use bytes::Bytes;
use chrono::{TimeZone, Utc};
use eventcore::cloudevents::{dataschema, from_json, to_json, CloudEventError, Source};
use eventcore::{Metadata, RecordedEvent};
use serde_json::{json, Value};

fn record() -> RecordedEvent {
    let mut metadata = Metadata::new();
    metadata.insert("user".into(), "ada".into());
    metadata.insert("weird key \"quoted\"".into(), "{\"not\": \"json\"}\n".into());
    RecordedEvent {
        event_id: uuid::Uuid::now_v7(),
        event_type: "account.money_deposited".into(),
        event_version: 2,
        stream_id: "account-acc 1/ü".into(),
        aggregate_type: "account".into(),
        aggregate_id: "acc 1/ü".into(),
        stream_version: u64::MAX - 1,
        global_position: 1 << 40,
        occurred_at: Utc.timestamp_opt(1_700_000_000, 123_456_789).unwrap(),
        correlation_id: Some("corr-1".into()),
        causation_id: Some("cause-1".into()),
        metadata,
        payload: Bytes::from_static(br#"{"zeta":1,"amount":100,"nested":{"b":[1,2.5,"x"],"a":null}}"#),
    }
}

fn attributes(record: &RecordedEvent) -> Value {
    serde_json::from_str(&to_json(record, &Source::AggregateType).unwrap()).unwrap()
}

#[test]
fn a_full_record_round_trips_byte_for_byte() {
    let original = record();
    let json = to_json(&original, &Source::AggregateType).unwrap();
    assert_eq!(from_json(&json).unwrap(), original);
    assert!(
        json.contains(r#""data":{"zeta":1,"amount":100,"nested":{"b":[1,2.5,"x"],"a":null}}"#),
        "{json}"
    );
}

#[test]
fn a_minimal_record_round_trips() {
    let mut original = record();
    original.correlation_id = None;
    original.causation_id = None;
    original.metadata.clear();
    original.occurred_at = Utc.timestamp_opt(0, 0).unwrap();
    original.payload = Bytes::from_static(b"[]");
    let value = attributes(&original);
    for absent in ["correlationid", "causationid", "metadata"] {
        assert!(value.get(absent).is_none(), "{absent} should be absent");
    }
    assert_eq!(from_json(&value.to_string()).unwrap(), original);
}

#[test]
fn attributes_follow_the_spec() {
    let original = record();
    let value = attributes(&original);
    assert_eq!(value["specversion"], "1.0");
    assert_eq!(value["id"], original.event_id.to_string());
    assert_eq!(value["source"], "eventcore://account");
    assert_eq!(value["type"], "account.money_deposited");
    assert_eq!(value["time"], "2023-11-14T22:13:20.123456789Z");
    assert_eq!(value["subject"], "account-acc 1/ü");
    assert_eq!(value["datacontenttype"], "application/json");
    assert_eq!(value["dataschema"], "eventcore:schema/account.money_deposited/v2");
    assert_eq!(value["dataschema"], dataschema("account.money_deposited", 2));
    assert_eq!(value["eventversion"], "2");
    assert_eq!(value["streamversion"], (u64::MAX - 1).to_string());
    assert_eq!(value["globalposition"], (1u64 << 40).to_string());
    assert_eq!(value["aggregatetype"], "account");
    assert_eq!(value["aggregateid"], "acc 1/ü");
    assert_eq!(value["correlationid"], "corr-1");
    assert_eq!(value["causationid"], "cause-1");
    assert_eq!(value["data"]["amount"], 100);
    for name in value.as_object().unwrap().keys() {
        assert!(
            name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
            "{name}"
        );
    }
}

#[test]
fn a_fixed_source_is_used_and_the_record_still_round_trips() {
    let original = record();
    let json = to_json(&original, &Source::Fixed("https://bank.example/accounts".into())).unwrap();
    let value: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["source"], "https://bank.example/accounts");
    assert_eq!(from_json(&json).unwrap(), original);
}

#[test]
fn unknown_string_extensions_join_the_metadata() {
    let mut value = attributes(&record());
    value["traceparent"] = json!("00-abc-def-01");
    let read = from_json(&value.to_string()).unwrap();
    assert_eq!(read.metadata["traceparent"], "00-abc-def-01");
    assert_eq!(read.metadata["user"], "ada");
}

#[test]
fn a_payload_that_is_not_json_cannot_be_converted() {
    let mut original = record();
    original.payload = Bytes::from_static(b"not json");
    let error = to_json(&original, &Source::AggregateType).unwrap_err();
    assert_eq!(error.attribute(), Some("data"));
}

/// Each invalid input, with the attribute the error must name.
#[test]
fn invalid_inputs_name_the_attribute() {
    type Edit = fn(&mut serde_json::Map<String, Value>);
    let cases: Vec<(&str, Edit, &str)> = vec![
        ("missing id", |a| drop(a.remove("id")), "id"),
        (
            "id not a uuid",
            |a| drop(a.insert("id".into(), json!("abc"))),
            "id",
        ),
        ("missing source", |a| drop(a.remove("source")), "source"),
        (
            "missing specversion",
            |a| drop(a.remove("specversion")),
            "specversion",
        ),
        (
            "wrong specversion",
            |a| drop(a.insert("specversion".into(), json!("0.3"))),
            "specversion",
        ),
        (
            "numeric specversion",
            |a| drop(a.insert("specversion".into(), json!(1.0))),
            "specversion",
        ),
        ("missing type", |a| drop(a.remove("type")), "type"),
        ("missing time", |a| drop(a.remove("time")), "time"),
        (
            "bad time",
            |a| drop(a.insert("time".into(), json!("yesterday"))),
            "time",
        ),
        (
            "time without zone",
            |a| drop(a.insert("time".into(), json!("2024-01-01T00:00:00"))),
            "time",
        ),
        ("missing subject", |a| drop(a.remove("subject")), "subject"),
        (
            "xml content",
            |a| drop(a.insert("datacontenttype".into(), json!("application/xml"))),
            "datacontenttype",
        ),
        ("missing data", |a| drop(a.remove("data")), "data"),
        (
            "base64 data",
            |a| drop(a.insert("data_base64".into(), json!("AAAA"))),
            "data_base64",
        ),
        (
            "numeric extension",
            |a| drop(a.insert("streamversion".into(), json!(3))),
            "streamversion",
        ),
        (
            "boolean extension",
            |a| drop(a.insert("aggregateid".into(), json!(true))),
            "aggregateid",
        ),
        (
            "negative position",
            |a| drop(a.insert("globalposition".into(), json!("-1"))),
            "globalposition",
        ),
        (
            "missing eventversion",
            |a| drop(a.remove("eventversion")),
            "eventversion",
        ),
        (
            "missing aggregatetype",
            |a| drop(a.remove("aggregatetype")),
            "aggregatetype",
        ),
        (
            "upper-case extension",
            |a| drop(a.insert("TraceParent".into(), json!("x"))),
            "TraceParent",
        ),
        (
            "dashed extension",
            |a| drop(a.insert("trace-parent".into(), json!("x"))),
            "trace-parent",
        ),
        (
            "non-string unknown extension",
            |a| drop(a.insert("priority".into(), json!(5))),
            "priority",
        ),
        (
            "metadata not an object",
            |a| drop(a.insert("metadata".into(), json!("[1]"))),
            "metadata",
        ),
        (
            "metadata not a string",
            |a| drop(a.insert("metadata".into(), json!({"a": "b"}))),
            "metadata",
        ),
    ];
    let valid = attributes(&record());
    for (case, edit, attribute) in cases {
        let mut value = valid.as_object().unwrap().clone();
        edit(&mut value);
        let error = from_json(&Value::Object(value).to_string())
            .err()
            .unwrap_or_else(|| panic!("{case}: accepted"));
        assert_eq!(error.attribute(), Some(attribute), "{case}: {error}");
        assert!(error.to_string().contains(attribute), "{case}: {error}");
    }
}

#[test]
fn input_that_is_not_an_object_is_rejected() {
    for input in ["[]", "42", "{", ""] {
        assert!(
            matches!(from_json(input), Err(CloudEventError::NotAnObject(_))),
            "{input}"
        );
    }
}

/// The wire form, built the plain way: every attribute as a JSON value in a sorted map,
/// serialized compactly.
fn reference_json(record: &RecordedEvent, source: &str) -> String {
    use serde_json::value::{to_raw_value, RawValue};
    let mut attributes: std::collections::BTreeMap<&str, Box<RawValue>> = [
        ("id", record.event_id.to_string()),
        ("source", source.to_owned()),
        ("specversion", "1.0".to_owned()),
        ("type", record.event_type.clone()),
        (
            "time",
            record
                .occurred_at
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        ),
        ("subject", record.stream_id.clone()),
        ("datacontenttype", "application/json".to_owned()),
        ("dataschema", dataschema(&record.event_type, record.event_version)),
        ("eventversion", record.event_version.to_string()),
        ("streamversion", record.stream_version.to_string()),
        ("globalposition", record.global_position.to_string()),
        ("aggregatetype", record.aggregate_type.clone()),
        ("aggregateid", record.aggregate_id.clone()),
    ]
    .into_iter()
    .chain(record.correlation_id.clone().map(|c| ("correlationid", c)))
    .chain(record.causation_id.clone().map(|c| ("causationid", c)))
    .chain(
        (!record.metadata.is_empty()).then(|| ("metadata", serde_json::to_string(&record.metadata).unwrap())),
    )
    .map(|(name, value)| (name, to_raw_value(&value).unwrap()))
    .collect();
    let data: &RawValue = serde_json::from_slice(&record.payload).unwrap();
    attributes.insert("data", data.to_owned());
    serde_json::to_string(&attributes).unwrap()
}

#[test]
fn the_wire_form_is_the_sorted_compact_object_byte_for_byte() {
    let mut escapes = record();
    escapes.event_type = "odd\"type\\\u{1}".into();
    escapes.aggregate_type = "agg\ttype\"é".into();
    escapes.stream_id = "line\nbreak".into();
    escapes.occurred_at = Utc.timestamp_opt(1_700_000_000, 120_000_000).unwrap();
    let mut minimal = record();
    minimal.correlation_id = None;
    minimal.causation_id = None;
    minimal.metadata.clear();
    minimal.occurred_at = Utc.timestamp_opt(0, 0).unwrap();
    minimal.payload = Bytes::from_static(b" [1, 2] ");
    for original in [record(), escapes, minimal] {
        let json = to_json(&original, &Source::AggregateType).unwrap();
        let source = format!("eventcore://{}", original.aggregate_type);
        assert_eq!(json, reference_json(&original, &source));
        assert_eq!(from_json(&json).unwrap().event_id, original.event_id);
        let fixed = "https://bank.example/\"accounts\"";
        let json = to_json(&original, &Source::Fixed(fixed.into())).unwrap();
        assert_eq!(json, reference_json(&original, fixed));
    }
}
