//! Reading a stored row back as a [`RecordedEvent`], refusing rows that do not fit.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use uuid::Uuid;

use crate::envelope::{Metadata, RecordedEvent};
use crate::store::StoreError;

/// Decodes a row of `EVENT_COLUMNS`; a row that does not fit is [`StoreError::Corrupt`],
/// naming its stream and version when those can be read.
pub(super) fn decode_event(row: &Row) -> Result<RecordedEvent, StoreError> {
    let stream_id: String = row.try_get("stream_id").map_err(|e| corrupt("?", 0, e))?;
    let raw_version: i64 = row
        .try_get("stream_version")
        .map_err(|e| corrupt(&stream_id, 0, e))?;
    let stream_version = u64::try_from(raw_version)
        .ok()
        .filter(|v| *v >= 1)
        .ok_or_else(|| {
            corrupt(
                &stream_id,
                0,
                format!("stream version {raw_version} is not positive"),
            )
        })?;
    let fail = |reason: String| corrupt(&stream_id, stream_version, reason);

    let raw_position: i64 = row.try_get("global_position").map_err(|e| fail(e.to_string()))?;
    let global_position = u64::try_from(raw_position)
        .ok()
        .filter(|p| *p >= 1)
        .ok_or_else(|| fail(format!("global position {raw_position} is not positive")))?;
    let raw_event_version: i32 = row.try_get("event_version").map_err(|e| fail(e.to_string()))?;
    let event_version = u32::try_from(raw_event_version)
        .ok()
        .filter(|v| *v >= 1)
        .ok_or_else(|| fail(format!("event version {raw_event_version} is not positive")))?;
    let metadata_json: serde_json::Value = row.try_get("metadata").map_err(|e| fail(e.to_string()))?;
    let metadata: Metadata = serde_json::from_value(metadata_json)
        .map_err(|e| fail(format!("metadata is not an object of strings: {e}")))?;
    let payload: Vec<u8> = row.try_get("payload").map_err(|e| fail(e.to_string()))?;
    let event_id: Uuid = row.try_get("event_id").map_err(|e| fail(e.to_string()))?;
    let occurred_at: DateTime<Utc> = row.try_get("occurred_at").map_err(|e| fail(e.to_string()))?;

    Ok(RecordedEvent {
        event_id,
        event_type: row.try_get("event_type").map_err(|e| fail(e.to_string()))?,
        event_version,
        aggregate_type: row.try_get("aggregate_type").map_err(|e| fail(e.to_string()))?,
        aggregate_id: row.try_get("aggregate_id").map_err(|e| fail(e.to_string()))?,
        correlation_id: row.try_get("correlation_id").map_err(|e| fail(e.to_string()))?,
        causation_id: row.try_get("causation_id").map_err(|e| fail(e.to_string()))?,
        stream_id: stream_id.clone(),
        stream_version,
        global_position,
        occurred_at,
        metadata,
        payload: Bytes::from(payload),
    })
}

fn corrupt(stream_id: &str, stream_version: u64, reason: impl ToString) -> StoreError {
    StoreError::Corrupt {
        stream_id: stream_id.to_owned(),
        stream_version,
        reason: reason.to_string(),
    }
}
