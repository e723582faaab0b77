//! A consumer's dead letters, held streams and rejected messages in a JetStream key-value bucket:
//! keys `{consumer}.dead.{event id}`, `{consumer}.held.{stream hash}` and
//! `{consumer}.rejected.{stream sequence}`.

use std::collections::HashMap;

use async_nats::jetstream::kv;
use bytes::Bytes;
use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::bus::dead_letter::DeadLetter;
use crate::bus::letters::RejectedMessage;
use crate::bus::transport::BusError;

/// The keys of one consumer.
pub(crate) struct NatsLetters {
    store: kv::Store,
    consumer: String,
}

/// What a held-stream key holds (its key is a hash of the stream id).
#[derive(Serialize, Deserialize)]
struct Hold {
    stream_id: String,
    letter: Uuid,
}

impl NatsLetters {
    pub(super) fn new(store: kv::Store, consumer: &str) -> Self {
        Self {
            store,
            consumer: consumer.to_owned(),
        }
    }

    fn key(&self, kind: &str, id: &str) -> String {
        format!("{}.{kind}.{id}", self.consumer)
    }

    fn held_key(&self, stream_id: &str) -> String {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in stream_id.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        self.key("held", &format!("{hash:016x}"))
    }

    /// The values of every key starting with `{consumer}.{kind}.`.
    async fn all(&self, kind: &str) -> Result<Vec<(String, Bytes)>, BusError> {
        let prefix = self.key(kind, "");
        let keys: Vec<String> = self
            .store
            .keys()
            .await
            .map_err(BusError::nats)?
            .try_collect()
            .await
            .map_err(BusError::nats)?;
        let mut values = Vec::new();
        for key in keys.into_iter().filter(|k| k.starts_with(&prefix)) {
            if let Some(value) = self.store.get(&key).await.map_err(BusError::nats)? {
                values.push((key[prefix.len()..].to_owned(), value));
            }
        }
        Ok(values)
    }

    pub(crate) async fn list(&self) -> Result<Vec<DeadLetter>, BusError> {
        Ok(self
            .all("dead")
            .await?
            .iter()
            .map(|(key, body)| DeadLetter::decode(key, body))
            .collect::<Result<_, _>>()?)
    }

    pub(crate) async fn get(&self, id: Uuid) -> Result<Option<DeadLetter>, BusError> {
        let key = id.to_string();
        let body = self
            .store
            .get(self.key("dead", &key))
            .await
            .map_err(BusError::nats)?;
        Ok(body.map(|body| DeadLetter::decode(&key, &body)).transpose()?)
    }

    pub(crate) async fn put(&self, letter: &DeadLetter) -> Result<(), BusError> {
        self.store
            .put(self.key("dead", &letter.id.to_string()), letter.encode()?)
            .await
            .map_err(BusError::nats)?;
        if self.held(&[letter.event.stream_id.as_str()]).await?.is_empty() {
            self.hold(&letter.event.stream_id, Some(letter.id)).await?;
        }
        Ok(())
    }

    pub(crate) async fn delete(&self, id: Uuid) -> Result<bool, BusError> {
        if self.get(id).await?.is_none() {
            return Ok(false);
        }
        self.store
            .purge(self.key("dead", &id.to_string()))
            .await
            .map_err(BusError::nats)?;
        Ok(true)
    }

    pub(crate) async fn hold(&self, stream_id: &str, letter: Option<Uuid>) -> Result<(), BusError> {
        let key = self.held_key(stream_id);
        match letter {
            Some(letter) => {
                let hold = Hold {
                    stream_id: stream_id.to_owned(),
                    letter,
                };
                let body = serde_json::to_vec(&hold)
                    .map_err(|e| BusError::Store(crate::store::StoreError::backend(e)))?;
                self.store.put(key, body.into()).await.map_err(BusError::nats)?;
            }
            None => self.store.purge(key).await.map_err(BusError::nats)?,
        }
        Ok(())
    }

    pub(crate) async fn held(&self, streams: &[&str]) -> Result<HashMap<String, Uuid>, BusError> {
        let mut held = HashMap::new();
        for stream in streams {
            let Some(body) = self
                .store
                .get(self.held_key(stream))
                .await
                .map_err(BusError::nats)?
            else {
                continue;
            };
            // A value that does not decode holds nothing back (it is rewritten by the next letter).
            if let Ok(hold) = serde_json::from_slice::<Hold>(&body) {
                if hold.stream_id == *stream {
                    held.insert(hold.stream_id, hold.letter);
                }
            }
        }
        Ok(held)
    }

    pub(crate) async fn reject(&self, message: &RejectedMessage) -> Result<(), BusError> {
        self.store
            .put(self.key("rejected", &message.id), message.encode()?.into())
            .await
            .map_err(BusError::nats)?;
        Ok(())
    }

    pub(crate) async fn rejected(&self) -> Result<Vec<RejectedMessage>, BusError> {
        self.all("rejected")
            .await?
            .iter()
            .map(|(key, body)| RejectedMessage::decode(key, body))
            .collect()
    }

    pub(crate) async fn remove_rejected(&self, id: &str) -> Result<bool, BusError> {
        let key = self.key("rejected", id);
        if self.store.get(&key).await.map_err(BusError::nats)?.is_none() {
            return Ok(false);
        }
        self.store.purge(key).await.map_err(BusError::nats)?;
        Ok(true)
    }
}
