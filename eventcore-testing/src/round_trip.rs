//! Sending an event through the store's encoding and back, as a store would.

use eventcore::{DomainEvent, EncodeError, NewEvent, RecordDecodeError};

/// Why an event would not survive the store.
#[derive(Debug, thiserror::Error)]
pub enum RoundTripError {
    /// The event does not encode.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The encoded event does not decode (or upcast) back.
    #[error(transparent)]
    Decode(#[from] RecordDecodeError),
    /// It decodes, but encodes differently afterwards: something is lost on the way.
    #[error(
        "`{event_type}` changes on a round trip through the store: stored {stored}, read back {read_back}"
    )]
    Lossy {
        /// The event type.
        event_type: String,
        /// The payload as first encoded.
        stored: serde_json::Value,
        /// The payload after decoding and encoding again.
        read_back: serde_json::Value,
    },
}

/// Encodes `event` as a store would, decodes it back (upcasting included) and checks nothing was lost.
///
/// Returns the event as a load would see it.
pub fn round_trip<E: DomainEvent>(event: &E) -> Result<E, RoundTripError> {
    let record = NewEvent::encode(event, "fixture", "fixture")?.into_recorded("fixture-fixture", 1, 1);
    let decoded = record.decode::<E>()?.payload;
    let stored = payload_json(&record.payload);
    let read_back = payload_json(&decoded.encode_payload()?);
    if stored != read_back {
        return Err(RoundTripError::Lossy {
            event_type: event.event_type().to_owned(),
            stored,
            read_back,
        });
    }
    Ok(decoded)
}

/// A payload as JSON, or as a string when it is not JSON (so the difference still shows).
pub(crate) fn payload_json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(bytes).into_owned()))
}
