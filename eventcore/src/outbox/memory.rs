//! The outbox of a [`MemoryStore`]: a table of its keyed values, keyed by sequence number.

use bytes::Bytes;
use uuid::Uuid;

use super::source::read_row;
use super::{OutboxError, OutboxSource};
use crate::integration::IntegrationMessage;
use crate::store::{MemoryStore, MemoryTransaction};

const TABLE: &str = "eventcore.outbox";
const SEQUENCE_TABLE: &str = "eventcore.outbox_sequence";
const SEQUENCE_KEY: &str = "next";

/// Inserts `message` under the next sequence number (used by `Outbox::enqueue_memory`).
pub(super) fn insert(
    tx: &mut MemoryTransaction<'_>,
    message: &IntegrationMessage,
) -> Result<(), OutboxError> {
    let json = message.to_cloudevent()?;
    let seq = match tx.get(SEQUENCE_TABLE, SEQUENCE_KEY) {
        Some(bytes) => parse_seq(bytes)?,
        None => 1,
    };
    tx.put(SEQUENCE_TABLE, SEQUENCE_KEY, Bytes::from((seq + 1).to_string()));
    tx.put(TABLE, &key(seq), Bytes::from(json));
    Ok(())
}

fn parse_seq(bytes: &Bytes) -> Result<i64, OutboxError> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| OutboxError::Corrupt {
            seq: 0,
            reason: "the outbox sequence counter is not a number".into(),
        })
}

/// Zero-padded, so key order is sequence order.
fn key(seq: i64) -> String {
    format!("{seq:020}")
}

/// Reads and clears the outbox of a [`MemoryStore`].
///
/// Transactions of a `MemoryStore` run one at a time, so sequence order is commit order.
#[derive(Debug, Clone)]
pub struct MemoryOutbox {
    store: MemoryStore,
}

impl MemoryOutbox {
    /// The outbox of `store`.
    pub fn new(store: MemoryStore) -> Self {
        Self { store }
    }
}

impl OutboxSource for MemoryOutbox {
    async fn claim(&self, limit: usize) -> Result<Vec<IntegrationMessage>, OutboxError> {
        self.store.transaction(|tx| {
            tx.entries(TABLE)
                .take(limit)
                .map(|(key, body)| {
                    let seq = key.parse().unwrap_or(0);
                    let json = std::str::from_utf8(body).map_err(|e| OutboxError::Corrupt {
                        seq,
                        reason: e.to_string(),
                    })?;
                    read_row(seq, json)
                })
                .collect()
        })
    }

    async fn mark_published(&self, ids: &[Uuid]) -> Result<(), OutboxError> {
        self.store.transaction(|tx| {
            let mut published = Vec::new();
            for (key, body) in tx.entries(TABLE) {
                let seq = key.parse().unwrap_or(0);
                let id = std::str::from_utf8(body)
                    .ok()
                    .and_then(|json| read_row(seq, json).ok())
                    .map(|m| m.id);
                if id.is_some_and(|id| ids.contains(&id)) {
                    published.push(key.to_owned());
                }
                if published.len() == ids.len() {
                    break;
                }
            }
            for key in published {
                tx.delete(TABLE, &key);
            }
            Ok(())
        })
    }

    async fn pending(&self) -> Result<u64, OutboxError> {
        Ok(self
            .store
            .transaction(|tx| Ok::<_, OutboxError>(tx.entries(TABLE).count()))? as u64)
    }
}
