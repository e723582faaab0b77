//! The one place stored events become typed events: upcasting hooks in here.
//!
//! A stored event of the current version decodes straight into its type. An older version, or a
//! type that was renamed, goes through the registered upcasters (see [`crate::schema`]) first;
//! as an upcaster may split one event into several or retire it, one record decodes into zero or
//! more events, which [`decode_record`] returns as [`DecodedEvents`].

use crate::envelope::RecordedEvent;
use crate::event::{DecodeError, DomainEvent};

/// A stored event could not be decoded; names the stream, the version and the cause.
#[derive(Debug, thiserror::Error)]
#[error("cannot decode event {event_id} at version {stream_version} of stream `{stream_id}`: {source}")]
pub struct RecordDecodeError {
    /// The stream holding the event.
    pub stream_id: String,
    /// The event's position in that stream.
    pub stream_version: u64,
    /// The event's id.
    pub event_id: uuid::Uuid,
    /// Why it could not be decoded.
    #[source]
    pub source: DecodeError,
}

impl RecordDecodeError {
    /// The error `source` about `record`.
    pub fn new(record: &RecordedEvent, source: DecodeError) -> Self {
        Self {
            stream_id: record.stream_id.clone(),
            stream_version: record.stream_version,
            event_id: record.event_id,
            source,
        }
    }
}

/// The events one record decodes into, in order: usually exactly one, with no allocation.
#[derive(Debug)]
pub struct DecodedEvents<E>(Inner<E>);

#[derive(Debug)]
enum Inner<E> {
    One(Option<E>),
    Many(std::vec::IntoIter<E>),
}

impl<E> DecodedEvents<E> {
    /// Exactly one event.
    pub fn one(event: E) -> Self {
        Self(Inner::One(Some(event)))
    }

    /// Any number of events, in order.
    pub fn many(events: Vec<E>) -> Self {
        Self(Inner::Many(events.into_iter()))
    }
}

impl<E> Iterator for DecodedEvents<E> {
    type Item = E;

    fn next(&mut self) -> Option<E> {
        match &mut self.0 {
            Inner::One(event) => event.take(),
            Inner::Many(events) => events.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let len = match &self.0 {
            Inner::One(event) => usize::from(event.is_some()),
            Inner::Many(events) => events.len(),
        };
        (len, Some(len))
    }
}

impl<E> ExactSizeIterator for DecodedEvents<E> {}

/// Decodes a recorded event into the events of `E` it stands for, upcasting older versions.
///
/// A current-version event costs one decode and no upcaster lookup. A stored version with no
/// upcaster path is [`DecodeError::MissingUpcaster`] naming the type and the version with no
/// step; a version newer than the code is [`DecodeError::VersionTooNew`].
pub fn decode_record<E: DomainEvent>(record: &RecordedEvent) -> Result<DecodedEvents<E>, RecordDecodeError> {
    decode(record, false)
}

/// Like [`decode_record`], but of what upcasting produces, only the events of `E` are kept.
///
/// For readers of some event types only (projections): a stored event that an upcaster splits
/// into an event of `E` and events of other types yields the former and skips the latter.
pub fn decode_record_of<E: DomainEvent>(
    record: &RecordedEvent,
) -> Result<DecodedEvents<E>, RecordDecodeError> {
    decode(record, true)
}

fn decode<E: DomainEvent>(
    record: &RecordedEvent,
    skip_foreign: bool,
) -> Result<DecodedEvents<E>, RecordDecodeError> {
    match E::decode_payload(&record.event_type, record.event_version, &record.payload) {
        Ok(event) => Ok(DecodedEvents::one(event)),
        Err(rejected @ (DecodeError::MissingUpcaster { .. } | DecodeError::UnknownEventType { .. })) => {
            let mut events = Vec::new();
            crate::schema::chain::decode_upcasting(
                &record.event_type,
                record.event_version,
                &record.payload,
                rejected,
                skip_foreign,
                &mut events,
            )
            .map_err(|source| RecordDecodeError::new(record, source))?;
            Ok(DecodedEvents::many(events))
        }
        Err(source) => Err(RecordDecodeError::new(record, source)),
    }
}
