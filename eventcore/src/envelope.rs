//! The event envelope: a payload with its identity, position, time and causal context.

use std::collections::BTreeMap;

use bytes::Bytes;
use chrono::{DateTime, SubsecRound, Utc};
use uuid::Uuid;

use crate::codec::{self, RecordDecodeError};
use crate::event::{DecodeError, DomainEvent, EncodeError};

/// Free-form string metadata carried with an event.
pub type Metadata = BTreeMap<String, String>;

/// A stored event with its payload still encoded: what every store reads and writes.
pub type RecordedEvent = Envelope<Bytes>;

/// A stored event and everything known about it; `P` is the payload (JSON bytes, or a decoded event).
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope<P> {
    /// Unique id of the event (UUID v7, so ids sort by creation time).
    pub event_id: Uuid,
    /// Event type name, for example `account.opened`.
    pub event_type: String,
    /// Schema version of the payload.
    pub event_version: u32,
    /// The stream the event belongs to.
    pub stream_id: String,
    /// Type of the aggregate that emitted the event.
    pub aggregate_type: String,
    /// Id of the aggregate that emitted the event.
    pub aggregate_id: String,
    /// 1-based position of the event in its stream.
    pub stream_version: u64,
    /// 1-based position of the event in the whole store.
    pub global_position: u64,
    /// When the event was created.
    pub occurred_at: DateTime<Utc>,
    /// Id shared by every event caused, directly or not, by one original request.
    pub correlation_id: Option<String>,
    /// Id of the message (command or event) that directly caused this event.
    pub causation_id: Option<String>,
    /// Free-form metadata.
    pub metadata: Metadata,
    /// The payload.
    pub payload: P,
}

impl RecordedEvent {
    /// Decodes the payload into `E`, upcasting older versions first.
    ///
    /// The envelope carries the decoded event's (current) type and version. When upcasting turns
    /// this record into zero or several events, this is [`DecodeError::NotOneEvent`]: readers that
    /// must accept such upcasters use [`decode_all`](Self::decode_all).
    pub fn decode<E: DomainEvent>(&self) -> Result<Envelope<E>, RecordDecodeError> {
        let mut events = codec::decode_record::<E>(self)?;
        match (events.next(), events.len()) {
            (Some(event), 0) => Ok(self.decoded(event)),
            (first, rest) => Err(RecordDecodeError::new(
                self,
                DecodeError::NotOneEvent {
                    event_type: self.event_type.clone(),
                    version: self.event_version,
                    count: rest + usize::from(first.is_some()),
                },
            )),
        }
    }

    /// Decodes the payload into every event of `E` it upcasts to (usually one).
    ///
    /// Each envelope keeps this record's stream, positions, time and context, and carries its
    /// own event's type and version. The first event keeps this record's id; when an upcaster
    /// splits the record, event `i > 0` gets [`codec::split_event_id`]`(id, i)`: distinct, and the
    /// same on every read, so consumers that deduplicate by event id see each event once.
    pub fn decode_all<E: DomainEvent>(&self) -> Result<Vec<Envelope<E>>, RecordDecodeError> {
        Ok(codec::decode_record::<E>(self)?
            .enumerate()
            .map(|(i, event)| {
                let mut envelope = self.decoded(event);
                envelope.event_id = codec::split_event_id(self.event_id, i);
                envelope
            })
            .collect())
    }

    fn decoded<E: DomainEvent>(&self, event: E) -> Envelope<E> {
        let mut envelope = self.with_payload(event);
        if envelope.event_type != envelope.payload.event_type() {
            envelope.payload.event_type().clone_into(&mut envelope.event_type);
        }
        envelope.event_version = envelope.payload.event_version();
        envelope
    }

    /// The payload parsed as a JSON value.
    pub fn payload_json(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_slice(&self.payload)
    }
}

impl<P> Envelope<P> {
    /// The same envelope around another payload.
    pub fn with_payload<Q>(&self, payload: Q) -> Envelope<Q> {
        Envelope {
            event_id: self.event_id,
            event_type: self.event_type.clone(),
            event_version: self.event_version,
            stream_id: self.stream_id.clone(),
            aggregate_type: self.aggregate_type.clone(),
            aggregate_id: self.aggregate_id.clone(),
            stream_version: self.stream_version,
            global_position: self.global_position,
            occurred_at: self.occurred_at,
            correlation_id: self.correlation_id.clone(),
            causation_id: self.causation_id.clone(),
            metadata: self.metadata.clone(),
            payload,
        }
    }
}

/// An event to append: everything but the positions, which the store assigns.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// Unique id; re-sending the same id lets a store detect a duplicate.
    pub event_id: Uuid,
    /// Event type name.
    pub event_type: String,
    /// Schema version of the payload.
    pub event_version: u32,
    /// Type of the emitting aggregate.
    pub aggregate_type: String,
    /// Id of the emitting aggregate.
    pub aggregate_id: String,
    /// Creation time.
    pub occurred_at: DateTime<Utc>,
    /// Correlation id.
    pub correlation_id: Option<String>,
    /// Causation id.
    pub causation_id: Option<String>,
    /// Free-form metadata.
    pub metadata: Metadata,
    /// JSON payload.
    pub payload: Bytes,
}

impl NewEvent {
    /// Encodes `event` with a fresh v7 id and the current time, for the given aggregate.
    ///
    /// The time is truncated to microseconds, the precision every store keeps (PostgreSQL's
    /// `timestamptz` among them), so an envelope reads back exactly as it was written.
    pub fn encode<E: DomainEvent>(
        event: &E,
        aggregate_type: impl Into<String>,
        aggregate_id: impl Into<String>,
    ) -> Result<Self, EncodeError> {
        Ok(Self {
            event_id: Uuid::now_v7(),
            event_type: event.event_type().to_owned(),
            event_version: event.event_version(),
            aggregate_type: aggregate_type.into(),
            aggregate_id: aggregate_id.into(),
            occurred_at: Utc::now().trunc_subsecs(6),
            correlation_id: None,
            causation_id: None,
            metadata: Metadata::new(),
            payload: Bytes::from(event.encode_payload()?),
        })
    }

    /// Copies the correlation, causation and metadata of `context` onto the event.
    pub fn with_context(mut self, context: &CommandContext) -> Self {
        self.correlation_id.clone_from(&context.correlation_id);
        self.causation_id.clone_from(&context.causation_id);
        self.metadata.extend(context.metadata.clone());
        self
    }

    /// The recorded event this becomes at the given positions.
    pub fn into_recorded(self, stream_id: &str, stream_version: u64, global_position: u64) -> RecordedEvent {
        let payload = self.payload.clone();
        self.into_envelope(stream_id, stream_version, global_position, payload)
    }

    /// The envelope this becomes at the given positions, around `payload`.
    pub fn into_envelope<P>(
        self,
        stream_id: &str,
        stream_version: u64,
        global_position: u64,
        payload: P,
    ) -> Envelope<P> {
        Envelope {
            event_id: self.event_id,
            event_type: self.event_type,
            event_version: self.event_version,
            stream_id: stream_id.to_owned(),
            aggregate_type: self.aggregate_type,
            aggregate_id: self.aggregate_id,
            stream_version,
            global_position,
            occurred_at: self.occurred_at,
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            metadata: self.metadata,
            payload,
        }
    }
}

/// The causal context of a command, copied onto every event it produces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CommandContext {
    /// Correlation id for all produced events.
    pub correlation_id: Option<String>,
    /// Causation id for all produced events (typically the command's or triggering event's id).
    pub causation_id: Option<String>,
    /// Metadata for all produced events.
    pub metadata: Metadata,
    /// Makes the command idempotent: its events get ids derived from this key, so running it
    /// again with the same key on the same aggregate appends nothing.
    pub idempotency_key: Option<String>,
}

impl CommandContext {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the correlation id.
    pub fn correlation_id(mut self, id: impl Into<String>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }

    /// Sets the causation id.
    pub fn causation_id(mut self, id: impl Into<String>) -> Self {
        self.causation_id = Some(id.into());
        self
    }

    /// Adds one metadata entry.
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Sets the idempotency key: running the command again with the same key on the same
    /// aggregate appends nothing and returns the first run's outcome (see
    /// [`Repository::execute_with`](crate::Repository::execute_with)).
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// The id of the `index`-th event a command appends to `stream_id` in this context: derived
    /// from the idempotency key when there is one (a UUID v5, the same on every run), else a
    /// fresh UUID v7.
    pub fn event_id(&self, stream_id: &str, index: usize) -> Uuid {
        match &self.idempotency_key {
            Some(key) => Uuid::new_v5(
                &IDEMPOTENCY_NAMESPACE,
                format!("{stream_id}\0{key}\0{index}").as_bytes(),
            ),
            None => Uuid::now_v7(),
        }
    }

    /// A context for work caused by `event`: same correlation (or the event's id), caused by the event.
    pub fn caused_by<P>(event: &Envelope<P>) -> Self {
        let event_id = event.event_id.to_string();
        Self {
            correlation_id: Some(event.correlation_id.clone().unwrap_or_else(|| event_id.clone())),
            causation_id: Some(event_id),
            metadata: Metadata::new(),
            idempotency_key: None,
        }
    }
}

/// The UUID v5 namespace of event ids derived from idempotency keys.
const IDEMPOTENCY_NAMESPACE: Uuid = Uuid::from_u128(0x6a1f_3c5e_2b7d_4e90_8c41_d2f6_a9b0_7e13);
