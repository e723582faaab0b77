//! Where a broker consumer keeps its dead letters, the streams they hold back, and the messages
//! it rejected (not events, or trimmed away before it handled them): in the broker itself.

use std::collections::HashMap;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::dead_letter::DeadLetter;
use super::transport::BusError;

/// Why a message was rejected instead of handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Rejection {
    /// It is not an eventcore CloudEvent (not JSON, or an attribute missing or malformed).
    Malformed,
    /// The broker dropped it (retention trimming) while it was still waiting to be handled.
    Lost,
}

/// A message a broker consumer could not handle as an event: kept for an operator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RejectedMessage {
    /// The broker's id of the message (a Redis entry id, a JetStream sequence).
    pub id: String,
    /// The consumer that rejected it.
    pub consumer: String,
    /// Why.
    pub kind: Rejection,
    /// The reason in words.
    pub reason: String,
    /// The message body as it arrived (absent for a lost message).
    pub body: Option<Vec<u8>>,
    /// When it was rejected.
    pub at: DateTime<Utc>,
}

impl RejectedMessage {
    /// A rejected message of `consumer`.
    pub(crate) fn new(
        consumer: &str,
        id: String,
        kind: Rejection,
        reason: String,
        body: Option<Bytes>,
    ) -> Self {
        tracing::warn!(consumer, id, ?kind, reason, "rejecting a message");
        metrics::counter!("eventcore_rejected_messages_total", "runner" => consumer.to_owned()).increment(1);
        Self {
            id,
            consumer: consumer.to_owned(),
            kind,
            reason,
            body: body.map(|b| b.to_vec()),
            at: Utc::now(),
        }
    }

    pub(crate) fn encode(&self) -> Result<Vec<u8>, BusError> {
        serde_json::to_vec(self).map_err(|e| BusError::Store(crate::store::StoreError::backend(e)))
    }

    pub(crate) fn decode(key: &str, body: &[u8]) -> Result<Self, BusError> {
        serde_json::from_slice(body).map_err(|e| {
            BusError::Store(crate::store::StoreError::Corrupt {
                stream_id: String::new(),
                stream_version: 0,
                reason: format!("rejected message `{key}`: {e}"),
            })
        })
    }
}

/// The dead-letter box of one consumer on one broker.
pub(crate) enum LetterBox {
    #[cfg(feature = "redis")]
    Redis(super::redis::RedisLetters),
    #[cfg(feature = "nats")]
    Nats(Box<super::nats::NatsLetters>),
}

macro_rules! each {
    ($self:ident, $letters:ident => $body:expr) => {
        match $self {
            #[cfg(feature = "redis")]
            LetterBox::Redis($letters) => $body,
            #[cfg(feature = "nats")]
            LetterBox::Nats($letters) => $body,
        }
    };
}

impl LetterBox {
    /// Every letter.
    pub(crate) async fn list(&self) -> Result<Vec<DeadLetter>, BusError> {
        each!(self, letters => letters.list().await)
    }

    /// Letter `id`.
    pub(crate) async fn get(&self, id: Uuid) -> Result<Option<DeadLetter>, BusError> {
        each!(self, letters => letters.get(id).await)
    }

    /// Writes `letter`; its stream is held behind it unless an earlier letter already holds it.
    pub(crate) async fn put(&self, letter: &DeadLetter) -> Result<(), BusError> {
        each!(self, letters => letters.put(letter).await)
    }

    /// Removes letter `id`, releasing its stream unless another letter of the stream remains;
    /// `false` if there was none.
    ///
    /// The hold moves first and the letter goes second: whoever sees the letter gone also sees
    /// its stream released, and a crash in between leaves a letter that holds nothing back.
    pub(crate) async fn remove(&self, id: Uuid) -> Result<bool, BusError> {
        let Some(letter) = self.get(id).await? else {
            return Ok(false);
        };
        self.rehold(&letter.event.stream_id, Some(id)).await?;
        each!(self, letters => letters.delete(id).await)?;
        Ok(true)
    }

    /// Holds `stream_id` behind its earliest letter other than `leaving`, or releases it.
    async fn rehold(&self, stream_id: &str, leaving: Option<Uuid>) -> Result<Option<Uuid>, BusError> {
        let next = self
            .list()
            .await?
            .into_iter()
            .filter(|other| other.event.stream_id == stream_id && Some(other.id) != leaving)
            .min_by_key(DeadLetter::log_order)
            .map(|other| other.id);
        each!(self, letters => letters.hold(stream_id, next).await)?;
        Ok(next)
    }

    /// Of `streams`, those held behind a letter, with the letter's id. A hold whose letter is
    /// gone (a process died while removing it) is moved to the stream's next letter or released.
    pub(crate) async fn held(&self, streams: &[&str]) -> Result<HashMap<String, Uuid>, BusError> {
        if streams.is_empty() {
            return Ok(HashMap::new());
        }
        let mut held = each!(self, letters => letters.held(streams).await)?;
        let mut stale = Vec::new();
        for (stream_id, letter) in &held {
            if self.get(*letter).await?.is_none() {
                stale.push(stream_id.clone());
            }
        }
        for stream_id in stale {
            match self.rehold(&stream_id, None).await? {
                Some(next) => held.insert(stream_id, next),
                None => held.remove(&stream_id),
            };
        }
        Ok(held)
    }

    /// Records a rejected message.
    pub(crate) async fn reject(&self, message: &RejectedMessage) -> Result<(), BusError> {
        each!(self, letters => letters.reject(message).await)
    }

    /// Every rejected message, oldest first.
    pub(crate) async fn rejected(&self) -> Result<Vec<RejectedMessage>, BusError> {
        let mut rejected = each!(self, letters => letters.rejected().await)?;
        rejected.sort_by_key(|message| message.at);
        Ok(rejected)
    }

    /// Drops rejected message `id`.
    pub(crate) async fn remove_rejected(&self, id: &str) -> Result<bool, BusError> {
        each!(self, letters => letters.remove_rejected(id).await)
    }
}
