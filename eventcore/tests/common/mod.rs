//! Shared fixtures of the store tests: hand-written events, a counter aggregate, event builders.
#![allow(dead_code, clippy::unwrap_used)]

use chrono::{DateTime, TimeZone, Utc};
use eventcore::event::{DecodeError, EncodeError, EventDescriptor};
use eventcore::{Aggregate, DomainEvent, Handle, Metadata, NewEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The counter's only event, with `DomainEvent` written by hand (the derive lives elsewhere).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incremented {
    pub by: u32,
}

pub const INCREMENTED: &str = "counter.incremented";

impl DomainEvent for Incremented {
    const EVENT_TYPES: &'static [EventDescriptor] = &[EventDescriptor {
        event_type: INCREMENTED,
        version: 1,
    }];

    fn event_type(&self) -> &'static str {
        INCREMENTED
    }

    fn event_version(&self) -> u32 {
        1
    }

    fn encode_payload(&self) -> Result<Vec<u8>, EncodeError> {
        serde_json::to_vec(self).map_err(|source| EncodeError {
            event_type: INCREMENTED,
            source,
        })
    }

    fn decode_payload(event_type: &str, version: u32, payload: &[u8]) -> Result<Self, DecodeError> {
        if event_type != INCREMENTED {
            return Err(DecodeError::UnknownEventType {
                event_type: event_type.to_owned(),
                known: INCREMENTED.to_owned(),
            });
        }
        if version != 1 {
            return Err(DecodeError::VersionTooNew {
                event_type: event_type.to_owned(),
                version,
                current: 1,
            });
        }
        serde_json::from_slice(payload).map_err(|source| DecodeError::Payload {
            event_type: event_type.to_owned(),
            version,
            source,
        })
    }
}

/// A counter that refuses to go past `LIMIT`.
#[derive(Debug, Default)]
pub struct Counter {
    pub value: u64,
}

pub const LIMIT: u64 = 1000;

pub struct Increment {
    pub by: u32,
}

#[derive(Debug, thiserror::Error)]
#[error("the counter is full")]
pub struct Full;

impl Aggregate for Counter {
    const AGGREGATE_TYPE: &'static str = "counter";
    type Event = Incremented;
    type Error = Full;

    fn apply(&mut self, event: &Incremented) {
        self.value += u64::from(event.by);
    }
}

impl Handle<Increment> for Counter {
    fn handle(&self, command: Increment) -> Result<Vec<Incremented>, Full> {
        if self.value + u64::from(command.by) > LIMIT {
            return Err(Full);
        }
        Ok(vec![Incremented { by: command.by }])
    }
}

/// A minimal event of type `test.happened` with the given JSON payload.
pub fn event(payload: serde_json::Value) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "test.happened".to_owned(),
        event_version: 1,
        aggregate_type: "test".to_owned(),
        aggregate_id: "t-1".to_owned(),
        occurred_at: Utc::now(),
        correlation_id: None,
        causation_id: None,
        metadata: Metadata::new(),
        payload: serde_json::to_vec(&payload).unwrap().into(),
    }
}

/// `n` minimal events numbered from 0 in their payload.
pub fn events(n: usize) -> Vec<NewEvent> {
    (0..n).map(|i| event(serde_json::json!({ "n": i }))).collect()
}

/// An event with every optional field set and values that are easy to mangle.
pub fn full_event(n: u32) -> NewEvent {
    let mut metadata = Metadata::new();
    metadata.insert("tenant".to_owned(), "acme \"quoted\" 'single'".to_owned());
    metadata.insert("unicode".to_owned(), "héllo 🌍 שלום".to_owned());
    metadata.insert("empty".to_owned(), String::new());
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "account.money_deposited".to_owned(),
        event_version: 3,
        aggregate_type: "account".to_owned(),
        aggregate_id: format!("acc-{n}"),
        // Sub-microsecond precision, so a lossy encoding would show.
        occurred_at: Utc
            .timestamp_opt(1_700_000_000 + i64::from(n), 123_456_789)
            .unwrap(),
        correlation_id: Some(format!("corr-{n}")),
        causation_id: Some(format!("cause-{n}")),
        metadata,
        payload: serde_json::to_vec(&serde_json::json!({ "amount": n, "note": "ünïcødé \u{1F4B0}" }))
            .unwrap()
            .into(),
    }
}

/// Times at the edges of what a store must keep exactly.
pub fn edge_times() -> Vec<DateTime<Utc>> {
    vec![
        DateTime::<Utc>::UNIX_EPOCH,
        Utc.timestamp_opt(-1, 999_999_999).unwrap(),
        Utc.timestamp_opt(-62_135_596_800, 1).unwrap(),
        Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
        Utc.with_ymd_and_hms(20_000, 1, 1, 0, 0, 0).unwrap(),
        DateTime::<Utc>::MIN_UTC,
        DateTime::<Utc>::MAX_UTC,
        // A leap second: nanoseconds of 1.5 s within second 59.
        Utc.timestamp_opt(1_483_228_799, 1_500_000_000).unwrap(),
    ]
}
