//! How saga instances, keys, deadlines and outgoing commands are stored: documents of the
//! runner store, one collection each per saga, written with the checkpoint in one transaction.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::instance::Changes;
use super::{OutgoingCommand, PendingDeadline, Saga, SagaError, SagaInstance, SagaInstances};
use crate::runner::{DocumentWrite, RunnerError, RunnerStore};
use crate::store::StoreError;

/// The collection of saga `saga`'s `what` (`instances`, `keys`, `deadlines`, `outbox`, `dead`).
pub(crate) fn collection(saga: &str, what: &str) -> String {
    format!("saga.{saga}.{what}")
}

/// An instance as stored.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct StoredInstance {
    pub(crate) state: serde_json::Value,
    pub(crate) version: u64,
    pub(crate) ended: bool,
    pub(crate) associations: Vec<String>,
    pub(crate) deadlines: Vec<PendingDeadline>,
    /// When its last step committed, by the saga's clock (absent in instances stored before it
    /// was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) updated_at: Option<DateTime<Utc>>,
}

pub(crate) fn corrupt(collection: &str, key: &str, error: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        stream_id: String::new(),
        stream_version: 0,
        reason: format!("document `{key}` of `{collection}`: {error}"),
    }
}

/// Decodes a stored instance of `S`.
pub(crate) fn decode_instance<S: Saga>(id: &str, body: &[u8]) -> Result<SagaInstance<S>, StoreError> {
    let name = collection(S::NAME, "instances");
    let stored: StoredInstance = serde_json::from_slice(body).map_err(|e| corrupt(&name, id, e))?;
    let state = serde_json::from_value(stored.state).map_err(|e| corrupt(&name, id, e))?;
    Ok(SagaInstance {
        id: id.to_owned(),
        state,
        version: stored.version,
        ended: stored.ended,
        associations: stored.associations,
        deadlines: stored.deadlines,
    })
}

fn encode_instance<S: Saga>(instance: &SagaInstance<S>, now: DateTime<Utc>) -> Result<Bytes, SagaError> {
    let serde_error = |source| SagaError::Serde {
        saga: S::NAME,
        instance: instance.id.clone(),
        what: "the state",
        source,
    };
    let stored = StoredInstance {
        state: serde_json::to_value(&instance.state).map_err(serde_error)?,
        version: instance.version,
        ended: instance.ended,
        associations: instance.associations.clone(),
        deadlines: instance.deadlines.clone(),
        updated_at: Some(now),
    };
    serde_json::to_vec(&stored).map(Bytes::from).map_err(serde_error)
}

/// Loads the instances the key values `keys` find, with those keys.
pub(crate) async fn load_by_keys<S: Saga, St: RunnerStore>(
    store: &St,
    keys: Vec<String>,
) -> Result<SagaInstances<S>, StoreError> {
    let keys_collection = collection(S::NAME, "keys");
    let found = store.load_documents(&keys_collection, keys).await?;
    let mut instances = SagaInstances::new();
    let mut ids = Vec::with_capacity(found.len());
    for (key, body) in found {
        let id: String = serde_json::from_slice(&body).map_err(|e| corrupt(&keys_collection, &key, e))?;
        ids.push(id.clone());
        instances.insert_association(key, id);
    }
    ids.sort_unstable();
    ids.dedup();
    for (id, body) in store
        .load_documents(&collection(S::NAME, "instances"), ids)
        .await?
    {
        instances.insert_loaded(decode_instance::<S>(&id, &body)?);
    }
    Ok(instances)
}

/// Loads the instances `ids`.
pub(crate) async fn load_instances<S: Saga, St: RunnerStore>(
    store: &St,
    ids: Vec<String>,
) -> Result<SagaInstances<S>, StoreError> {
    let mut instances = SagaInstances::new();
    for (id, body) in store
        .load_documents(&collection(S::NAME, "instances"), ids)
        .await?
    {
        instances.insert_loaded(decode_instance::<S>(&id, &body)?);
    }
    Ok(instances)
}

/// The writes that commit `changes` (and the outgoing `commands`) of `instances`, stepped at `now`.
pub(crate) fn writes<S: Saga>(
    instances: &SagaInstances<S>,
    changes: Changes,
    commands: &[OutgoingCommand<S::Command>],
    now: DateTime<Utc>,
) -> Result<Vec<DocumentWrite>, SagaError> {
    let mut writes = Vec::new();
    let instances_collection = collection(S::NAME, "instances");
    for id in changes.instances {
        if let Some(instance) = instances.instance(&id) {
            writes.push(DocumentWrite {
                collection: instances_collection.clone(),
                key: id,
                body: Some(encode_instance(instance, now)?),
            });
        }
    }
    let keys_collection = collection(S::NAME, "keys");
    for (value, id) in changes.associations {
        let body = serde_json::to_vec(&id).map_err(|source| SagaError::Serde {
            saga: S::NAME,
            instance: id.clone(),
            what: "a key",
            source,
        })?;
        writes.push(DocumentWrite {
            collection: keys_collection.clone(),
            key: value,
            body: Some(body.into()),
        });
    }
    let deadlines_collection = collection(S::NAME, "deadlines");
    for (key, deadline) in changes.deadlines {
        let body = deadline
            .map(|d| {
                serde_json::to_vec(&d)
                    .map(Bytes::from)
                    .map_err(|source| SagaError::Serde {
                        saga: S::NAME,
                        instance: d.instance.clone(),
                        what: "a deadline",
                        source,
                    })
            })
            .transpose()?;
        writes.push(DocumentWrite {
            collection: deadlines_collection.clone(),
            key,
            body,
        });
    }
    let outbox = collection(S::NAME, "outbox");
    for command in commands {
        writes.push(DocumentWrite {
            collection: outbox.clone(),
            key: command.key.clone(),
            body: Some(encode_command::<S>(command)?),
        });
    }
    Ok(writes)
}

/// An outgoing command as stored: the command as JSON.
pub(crate) type StoredCommand = OutgoingCommand<serde_json::Value>;

fn encode_command<S: Saga>(command: &OutgoingCommand<S::Command>) -> Result<Bytes, SagaError> {
    let serde_error = |source| SagaError::Serde {
        saga: S::NAME,
        instance: command.instance.clone(),
        what: "a command",
        source,
    };
    let stored = StoredCommand {
        key: command.key.clone(),
        instance: command.instance.clone(),
        step: command.step,
        index: command.index,
        causation_id: command.causation_id.clone(),
        idempotency_key: command.idempotency_key.clone(),
        command: serde_json::to_value(&command.command).map_err(serde_error)?,
    };
    serde_json::to_vec(&stored).map(Bytes::from).map_err(serde_error)
}

/// Every stored document of `what` of saga `saga`, decoded as `T`.
pub(crate) async fn list<T: serde::de::DeserializeOwned, St: RunnerStore>(
    store: &St,
    saga: &str,
    what: &str,
) -> Result<Vec<T>, RunnerError> {
    let name = collection(saga, what);
    store
        .list_documents(&name)
        .await?
        .into_iter()
        .map(|(key, body)| {
            serde_json::from_slice(&body).map_err(|source| RunnerError::Document {
                collection: name.clone(),
                key,
                source,
            })
        })
        .collect()
}
