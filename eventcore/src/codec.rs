//! The one place stored events become typed events: upcasting hooks in here.

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

/// Decodes a recorded event into `E`.
pub(crate) fn decode_record<E: DomainEvent>(record: &RecordedEvent) -> Result<E, RecordDecodeError> {
    E::decode_payload(&record.event_type, record.event_version, &record.payload).map_err(|source| {
        RecordDecodeError {
            stream_id: record.stream_id.clone(),
            stream_version: record.stream_version,
            event_id: record.event_id,
            source,
        }
    })
}
