//! A consumer's dead letters, held streams and rejected messages in Redis hashes.

use std::collections::HashMap;

use ::redis::aio::ConnectionManager;
use ::redis::AsyncCommands;
use uuid::Uuid;

use super::RedisTransport;
use crate::bus::dead_letter::DeadLetter;
use crate::bus::letters::RejectedMessage;
use crate::bus::transport::BusError;

/// The hashes of one consumer.
pub(crate) struct RedisLetters {
    connection: ConnectionManager,
    dead: String,
    held: String,
    rejected: String,
}

impl RedisLetters {
    pub(super) fn new(connection: ConnectionManager, transport: &RedisTransport, consumer: &str) -> Self {
        Self {
            connection,
            dead: transport.key("dead", consumer),
            held: transport.key("held", consumer),
            rejected: transport.key("rejected", consumer),
        }
    }

    pub(crate) async fn list(&self) -> Result<Vec<DeadLetter>, BusError> {
        let all: HashMap<String, Vec<u8>> = self.connection.clone().hgetall(&self.dead).await?;
        Ok(all
            .iter()
            .map(|(key, body)| DeadLetter::decode(key, body))
            .collect::<Result<_, _>>()?)
    }

    pub(crate) async fn get(&self, id: Uuid) -> Result<Option<DeadLetter>, BusError> {
        let key = id.to_string();
        let body: Option<Vec<u8>> = self.connection.clone().hget(&self.dead, &key).await?;
        Ok(body.map(|body| DeadLetter::decode(&key, &body)).transpose()?)
    }

    pub(crate) async fn put(&self, letter: &DeadLetter) -> Result<(), BusError> {
        let body = letter.encode()?;
        let _: () = ::redis::pipe()
            .atomic()
            .hset(&self.dead, letter.id.to_string(), body.as_ref())
            .ignore()
            .hset_nx(&self.held, &letter.event.stream_id, letter.id.to_string())
            .ignore()
            .query_async(&mut self.connection.clone())
            .await?;
        Ok(())
    }

    pub(crate) async fn delete(&self, id: Uuid) -> Result<bool, BusError> {
        let removed: u32 = self.connection.clone().hdel(&self.dead, id.to_string()).await?;
        Ok(removed > 0)
    }

    pub(crate) async fn hold(&self, stream_id: &str, letter: Option<Uuid>) -> Result<(), BusError> {
        let mut connection = self.connection.clone();
        match letter {
            Some(letter) => {
                connection
                    .hset::<_, _, _, ()>(&self.held, stream_id, letter.to_string())
                    .await?
            }
            None => connection.hdel::<_, _, ()>(&self.held, stream_id).await?,
        }
        Ok(())
    }

    pub(crate) async fn held(&self, streams: &[&str]) -> Result<HashMap<String, Uuid>, BusError> {
        let letters: Vec<Option<String>> = ::redis::cmd("HMGET")
            .arg(&self.held)
            .arg(streams)
            .query_async(&mut self.connection.clone())
            .await?;
        Ok(streams
            .iter()
            .zip(letters)
            .filter_map(|(stream, letter)| {
                let letter = Uuid::parse_str(&letter?).ok()?;
                Some(((*stream).to_owned(), letter))
            })
            .collect())
    }

    pub(crate) async fn reject(&self, message: &RejectedMessage) -> Result<(), BusError> {
        let body = message.encode()?;
        let _: () = self
            .connection
            .clone()
            .hset(&self.rejected, &message.id, body)
            .await?;
        Ok(())
    }

    pub(crate) async fn rejected(&self) -> Result<Vec<RejectedMessage>, BusError> {
        let all: HashMap<String, Vec<u8>> = self.connection.clone().hgetall(&self.rejected).await?;
        all.iter()
            .map(|(key, body)| RejectedMessage::decode(key, body))
            .collect()
    }

    pub(crate) async fn remove_rejected(&self, id: &str) -> Result<bool, BusError> {
        let removed: u32 = self.connection.clone().hdel(&self.rejected, id).await?;
        Ok(removed > 0)
    }
}
