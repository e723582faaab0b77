//! Old payloads through the upcasters, as a load would read them: for testing schema evolution
//! without hand-built `NewEvent`s.

use bytes::Bytes;
use eventcore::{DomainEvent, NewEvent, RecordDecodeError};

/// The events of `E` a load reads from a payload stored as `event_type` at `version`: the
/// registered upcasters run as they would on a stored event (renames, splits and retirements
/// included, so the result may hold zero, one or several events).
///
/// ```ignore
/// let events: Vec<BookEvent> = upcast("book.lent", 1, json!({ "member": "ada" }))?;
/// assert_eq!(events, vec![BookLent { member: "ada".into(), due: None }.into()]);
/// ```
pub fn upcast<E: DomainEvent>(
    event_type: &str,
    version: u32,
    payload: serde_json::Value,
) -> Result<Vec<E>, RecordDecodeError> {
    let record = stored(event_type, version, &payload).into_recorded("fixture-fixture", 1, 1);
    Ok(record.decode_all::<E>()?.into_iter().map(|e| e.payload).collect())
}

/// A stored event of `event_type` at `version` with `payload`, as an old writer left it.
pub(crate) fn stored(event_type: &str, version: u32, payload: &serde_json::Value) -> NewEvent {
    NewEvent {
        event_id: uuid::Uuid::now_v7(),
        event_type: event_type.to_owned(),
        event_version: version,
        aggregate_type: "fixture".to_owned(),
        aggregate_id: "fixture".to_owned(),
        occurred_at: chrono::Utc::now(),
        correlation_id: None,
        causation_id: None,
        metadata: eventcore::Metadata::new(),
        payload: Bytes::from(payload.to_string()),
    }
}
