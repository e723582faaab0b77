//! Sagas as stored, read without their types: for tools such as the `eventcore` CLI, which have
//! no saga linked in. Everything here only reads, but for [`request_replay`], which asks the
//! saga's owner to dispatch a dead-lettered command again; [`Sagas`](super::Sagas) reads the
//! same documents typed.

use chrono::{DateTime, Utc};

use super::dispatch::{DeadDeadline, SagaDeadLetter};
use super::storage::{self, collection, corrupt, StoredCommand, StoredInstance};
use super::PendingDeadline;
use crate::runner::{RunnerError, RunnerStore};

/// The checkpoint prefix of saga runners: saga `checkout` runs as runner `saga.checkout`.
const PREFIX: &str = "saga.";

/// The runner (checkpoint and lease) name of saga `saga`.
pub fn runner_name(saga: &str) -> String {
    format!("{PREFIX}{saga}")
}

/// The saga a runner name belongs to: `Some("checkout")` for `saga.checkout`, `None` for other
/// runners (projection and consumer names are `[a-z0-9_]`, so they never look like one).
pub fn saga_of_runner(runner: &str) -> Option<&str> {
    runner.strip_prefix(PREFIX).filter(|name| {
        !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    })
}

/// The names of the sagas that have run on `store` (they have a checkpoint), sorted.
pub async fn saga_names<St: RunnerStore>(store: &St) -> Result<Vec<String>, RunnerError> {
    let mut names: Vec<String> = store
        .checkpoints()
        .await?
        .iter()
        .filter_map(|c| saga_of_runner(&c.name).map(str::to_owned))
        .collect();
    names.sort_unstable();
    Ok(names)
}

/// An instance as stored, its state as JSON.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct StoredSagaInstance {
    /// The saga's name.
    pub saga: String,
    /// The instance id: the key value of its `#[start]` event.
    pub id: String,
    /// The saga's state, as the saga serialized it.
    pub state: serde_json::Value,
    /// Steps run so far (events and deadlines handled).
    pub version: u64,
    /// Whether it has ended.
    pub ended: bool,
    /// Its keys: the id, and values added with `associate`.
    pub associations: Vec<String>,
    /// Its deadlines not yet fired nor cancelled, by due time.
    pub deadlines: Vec<PendingDeadline>,
    /// When its last step committed, by the saga's clock; `None` for instances last stepped
    /// by an eventcore that did not record it.
    pub updated_at: Option<DateTime<Utc>>,
}

fn decode(saga: &str, id: String, body: &[u8]) -> Result<StoredSagaInstance, RunnerError> {
    let stored: StoredInstance =
        serde_json::from_slice(body).map_err(|e| corrupt(&collection(saga, "instances"), &id, e))?;
    Ok(StoredSagaInstance {
        saga: saga.to_owned(),
        id,
        state: stored.state,
        version: stored.version,
        ended: stored.ended,
        associations: stored.associations,
        deadlines: stored.deadlines,
        updated_at: stored.updated_at,
    })
}

/// Every instance of saga `saga`, by id.
pub async fn instances<St: RunnerStore>(
    store: &St,
    saga: &str,
) -> Result<Vec<StoredSagaInstance>, RunnerError> {
    store
        .list_documents(&collection(saga, "instances"))
        .await?
        .into_iter()
        .map(|(id, body)| decode(saga, id, &body))
        .collect()
}

/// The instance `id` of saga `saga`, if there is one.
pub async fn instance<St: RunnerStore>(
    store: &St,
    saga: &str,
    id: &str,
) -> Result<Option<StoredSagaInstance>, RunnerError> {
    store
        .load_documents(&collection(saga, "instances"), vec![id.to_owned()])
        .await?
        .into_iter()
        .next()
        .map(|(id, body)| decode(saga, id, &body))
        .transpose()
}

/// The pending deadlines of saga `saga`, earliest first.
pub async fn deadlines<St: RunnerStore>(store: &St, saga: &str) -> Result<Vec<PendingDeadline>, RunnerError> {
    storage::list(store, saga, "deadlines").await
}

/// The commands of saga `saga` committed and not yet dispatched, their payloads as JSON.
pub async fn pending_commands<St: RunnerStore>(
    store: &St,
    saga: &str,
) -> Result<Vec<StoredCommand>, RunnerError> {
    storage::list(store, saga, "outbox").await
}

/// The dead-lettered commands of saga `saga`.
pub async fn dead_letters<St: RunnerStore>(
    store: &St,
    saga: &str,
) -> Result<Vec<SagaDeadLetter>, RunnerError> {
    storage::list(store, saga, "dead").await
}

/// The deadlines of saga `saga` whose handler kept failing, set aside.
pub async fn dead_deadlines<St: RunnerStore>(
    store: &St,
    saga: &str,
) -> Result<Vec<DeadDeadline>, RunnerError> {
    storage::list(store, saga, "dead_deadlines").await
}

/// Asks the owner of saga `saga` to dispatch its dead-lettered command `key` again, with its
/// original idempotency key; `false` when there is no such letter. The running saga picks the
/// request up within a second or so, in whichever process owns it.
pub async fn request_replay<St: RunnerStore>(store: &St, saga: &str, key: &str) -> Result<bool, RunnerError> {
    let dead = collection(saga, "dead");
    let Some(body) = store
        .load_documents(&dead, vec![key.to_owned()])
        .await?
        .remove(key)
    else {
        return Ok(false);
    };
    let letter: SagaDeadLetter = serde_json::from_slice(&body).map_err(|e| corrupt(&dead, key, &e))?;
    mark_for_replay(store, &dead, letter).await?;
    Ok(true)
}

/// Asks the owner of saga `saga` to dispatch every dead-lettered command again (see
/// [`request_replay`]); returns how many.
pub async fn request_replay_all<St: RunnerStore>(store: &St, saga: &str) -> Result<usize, RunnerError> {
    let dead = collection(saga, "dead");
    let letters = dead_letters(store, saga).await?;
    let requested = letters.len();
    for letter in letters {
        mark_for_replay(store, &dead, letter).await?;
    }
    Ok(requested)
}

/// Writes `letter` back to `dead` with its replay requested.
async fn mark_for_replay<St: RunnerStore>(
    store: &St,
    dead: &str,
    mut letter: SagaDeadLetter,
) -> Result<(), RunnerError> {
    letter.replay_requested = true;
    let body = serde_json::to_vec(&letter).map_err(crate::store::StoreError::backend)?;
    store
        .put_document(dead, &letter.command.key, Some(body.into()))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runner_names_round_trip_and_others_are_not_sagas() {
        assert_eq!(runner_name("checkout"), "saga.checkout");
        assert_eq!(saga_of_runner("saga.checkout"), Some("checkout"));
        for other in ["checkout", "saga.", "saga.Bad-Name", "relay", "summary.rebuild"] {
            assert_eq!(saga_of_runner(other), None, "{other}");
        }
    }
}
