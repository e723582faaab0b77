//! The one place stored events become typed events: upcasting hooks in here.
//!
//! A stored event of the current version decodes straight into its type. An older version, or a
//! type that was renamed, goes through the registered upcasters (see [`crate::schema`]) first;
//! as an upcaster may split one event into several or retire it, one record decodes into zero or
//! more events, which [`decode_record`] returns as [`DecodedEvents`].

use uuid::Uuid;

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
    pub event_id: Uuid,
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
    decode_payload::<E>(
        &record.event_type,
        record.event_version,
        &record.payload,
        skip_foreign,
    )
    .map_err(|source| RecordDecodeError::new(record, source))
}

/// [`decode_record`] of a stored event's type, version and payload.
pub(crate) fn decode_payload<E: DomainEvent>(
    event_type: &str,
    event_version: u32,
    payload: &[u8],
    skip_foreign: bool,
) -> Result<DecodedEvents<E>, DecodeError> {
    match E::decode_payload(event_type, event_version, payload) {
        Ok(event) => Ok(DecodedEvents::one(event)),
        Err(rejected @ (DecodeError::MissingUpcaster { .. } | DecodeError::UnknownEventType { .. })) => {
            let mut events = Vec::new();
            crate::schema::chain::decode_upcasting(
                event_type,
                event_version,
                payload,
                rejected,
                skip_foreign,
                &mut events,
            )?;
            Ok(DecodedEvents::many(events))
        }
        Err(source) => Err(source),
    }
}

/// The id of event `index` of those one stored event (`stored`) upcasts to.
///
/// Index 0 is the stored id itself. Any other index gets a UUID v8 whose bits are a fixed hash of
/// the stored id and the index: the same on every read and in every process, and never equal to a
/// stored (v7) id. Changing this function would change ids consumers have already seen.
pub fn split_event_id(stored: Uuid, index: usize) -> Uuid {
    if index == 0 {
        return stored;
    }
    let (high, low) = stored.as_u64_pair();
    let index = index as u64; // usize is at most 64 bits on every supported target
    let a = mix(high ^ mix(low ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15)));
    let b = mix(low ^ mix(a ^ index ^ 0xd6e8_feb8_6659_fd93));
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&a.to_be_bytes());
    bytes[8..].copy_from_slice(&b.to_be_bytes());
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// The SplitMix64 finalizer: a fixed, well-spread 64-bit mix.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_ids_are_distinct_v8_and_fixed() {
        let stored = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001);
        assert_eq!(split_event_id(stored, 0), stored);
        let ids: std::collections::BTreeSet<Uuid> = (0..1000).map(|i| split_event_id(stored, i)).collect();
        assert_eq!(ids.len(), 1000);
        assert_eq!(split_event_id(stored, 1).get_version_num(), 8);
        // Pinned: a change here changes ids consumers have already stored.
        assert_eq!(
            split_event_id(stored, 1).to_string(),
            "46dfcb4a-8571-893c-9019-55c18dbf369b"
        );
    }
}
