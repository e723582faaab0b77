//! Helpers the `#[saga]` expansion calls through `__private`.

use serde::de::DeserializeOwned;

use super::SagaError;
use crate::envelope::{Envelope, RecordedEvent};
use crate::event::SingleEvent;

/// Decodes `record` into the events of `E` it stands for, as envelopes of their current type.
pub fn decode_saga_event<'r, E: SingleEvent>(
    saga: &'static str,
    record: &'r RecordedEvent,
) -> Result<impl Iterator<Item = Envelope<E>> + 'r, SagaError> {
    crate::routing::decode_envelopes::<E>(record).map_err(|source| SagaError::Decode {
        saga,
        global_position: record.global_position,
        event_type: record.event_type.clone(),
        event_version: record.event_version,
        source: Box::new(source),
    })
}

/// Decodes a stored deadline of type `D`.
pub fn decode_deadline<D: DeserializeOwned>(
    saga: &'static str,
    deadline: &str,
    payload: &serde_json::Value,
) -> Result<D, SagaError> {
    D::deserialize(payload).map_err(|source| SagaError::Deadline {
        saga,
        deadline: deadline.to_owned(),
        source: Box::new(source),
    })
}

/// The error for a stored deadline of a type no `#[deadline]` handler takes.
pub fn unknown_deadline(saga: &'static str, deadline: &str) -> SagaError {
    SagaError::Deadline {
        saga,
        deadline: deadline.to_owned(),
        source: format!("no `#[deadline]` handler takes `{deadline}`").into(),
    }
}

/// The key value of a handler's `key = field`.
pub fn key_of<K: ToString + ?Sized>(value: &K) -> String {
    value.to_string()
}
