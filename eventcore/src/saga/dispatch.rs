//! Dispatching the commands sagas send: from the durable list, at least once, retried with
//! backoff, then dead-lettered.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::storage::{collection, StoredCommand};
use crate::envelope::CommandContext;
use crate::runner::{error_chain, DocumentWrite, Lease, RetryPolicy, RunnerStore};
use crate::store::StoreError;

/// Where a saga's commands go: usually a router to the repositories of the target aggregates,
/// calling `execute_with(id, command, context)` so the command's idempotency key applies.
///
/// Any `Fn(C, CommandContext) -> impl Future<Output = Result<(), E>>` is one. An `Err` is
/// retried with backoff, then the command is dead-lettered; business outcomes (a refused
/// payment) should come back as events instead.
pub trait CommandDispatcher<C>: Send + Sync + 'static {
    /// Why a dispatch failed.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Sends `command` with `context` (correlation: the saga instance; causation: the
    /// triggering event or deadline; a deterministic idempotency key).
    fn dispatch(
        &self,
        command: C,
        context: CommandContext,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

impl<C, F, Fut, E> CommandDispatcher<C> for F
where
    F: Fn(C, CommandContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send,
    E: std::error::Error + Send + Sync + 'static,
{
    type Error = E;

    fn dispatch(&self, command: C, context: CommandContext) -> impl Future<Output = Result<(), E>> + Send {
        self(command, context)
    }
}

/// Dispatched commands removed from the stored list per transaction.
const REMOVALS_PER_COMMIT: usize = 100;

/// A command that failed every attempt (or does not decode), kept with its error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SagaDeadLetter {
    /// The command as stored: instance, step, index, causation, idempotency key, JSON.
    pub command: StoredCommand,
    /// Attempts made.
    pub attempts: u32,
    /// The last error, with its causes.
    pub error: String,
    /// When it was dead-lettered.
    pub failed_at: DateTime<Utc>,
    /// An operator asked to dispatch it again ([`Sagas::replay_dead_letter`]); the saga's
    /// owner moves it back to the pending commands.
    ///
    /// [`Sagas::replay_dead_letter`]: super::Sagas::replay_dead_letter
    #[serde(default)]
    pub replay_requested: bool,
}

impl SagaDeadLetter {
    /// Its key: the command's, unique within its saga.
    pub fn key(&self) -> &str {
        &self.command.key
    }
}

/// A deadline whose handler kept failing (a payload that no longer decodes), kept with its error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadDeadline {
    /// The deadline as stored.
    pub deadline: super::PendingDeadline,
    /// Attempts made.
    pub attempts: u32,
    /// The last error, with its causes.
    pub error: String,
    /// When it was dead-lettered.
    pub failed_at: DateTime<Utc>,
}

/// A command waiting to be dispatched, with its retry state in this process.
#[derive(Debug)]
struct Pending {
    command: StoredCommand,
    attempts: u32,
    next_at: Option<Instant>,
}

/// The commands of one saga not yet dispatched, in key order (an instance's in step order).
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    pending: BTreeMap<String, Pending>,
}

impl Outbox {
    /// Replaces the queue with the stored list.
    pub(crate) async fn reload<St: RunnerStore>(&mut self, store: &St, saga: &str) -> Result<(), StoreError> {
        let name = collection(saga, "outbox");
        self.pending.clear();
        for (key, body) in store.list_documents(&name).await? {
            match serde_json::from_slice::<StoredCommand>(&body) {
                Ok(command) => {
                    self.pending.insert(
                        key,
                        Pending {
                            command,
                            attempts: 0,
                            next_at: None,
                        },
                    );
                }
                Err(error) => {
                    tracing::error!(saga, key, %error, "a stored saga command does not decode; left in place");
                }
            }
        }
        Ok(())
    }

    /// Moves the dead letters an operator asked to replay back to the pending commands, in one
    /// fenced transaction each batch: never in both lists, never in neither. They are then
    /// dispatched with their original idempotency keys, so one that did apply appends nothing.
    pub(crate) async fn take_replays<St: RunnerStore>(
        &mut self,
        store: &St,
        saga: &'static str,
        checkpoint: (&Lease, u64, u32),
    ) -> Result<usize, StoreError> {
        let (outbox, dead) = (collection(saga, "outbox"), collection(saga, "dead"));
        let mut writes = Vec::new();
        let mut commands = Vec::new();
        for (key, body) in store.list_documents(&dead).await? {
            let letter = match serde_json::from_slice::<SagaDeadLetter>(&body) {
                Ok(letter) if letter.replay_requested => letter,
                Ok(_) => continue,
                Err(error) => {
                    tracing::error!(saga, key, %error, "a saga dead letter does not decode; left in place");
                    continue;
                }
            };
            let command = serde_json::to_vec(&letter.command).map_err(StoreError::backend)?;
            writes.push(DocumentWrite {
                collection: outbox.clone(),
                key: key.clone(),
                body: Some(command.into()),
            });
            writes.push(DocumentWrite {
                collection: dead.clone(),
                key,
                body: None,
            });
            commands.push(letter.command);
        }
        if commands.is_empty() {
            return Ok(0);
        }
        let (lease, position, version) = checkpoint;
        store.commit_writes(lease, writes, position, version).await?;
        tracing::info!(
            saga,
            replayed = commands.len(),
            "dead-lettered saga commands replayed"
        );
        let replayed = commands.len();
        self.extend(commands);
        Ok(replayed)
    }

    /// Adds committed commands.
    pub(crate) fn extend(&mut self, commands: impl IntoIterator<Item = StoredCommand>) {
        for command in commands {
            self.pending.insert(
                command.key.clone(),
                Pending {
                    command,
                    attempts: 0,
                    next_at: None,
                },
            );
        }
    }

    /// When the next retry is due.
    pub(crate) fn next_retry(&self) -> Option<Instant> {
        self.pending.values().filter_map(|p| p.next_at).min()
    }

    /// Dispatches every command that is due, in order per instance (a failing command holds
    /// back the later ones of its instance); removes the dispatched ones from the store.
    pub(crate) async fn dispatch_due<C, D, St>(
        &mut self,
        store: &St,
        saga: &'static str,
        dispatcher: &D,
        retry: &RetryPolicy,
        checkpoint: (&Lease, u64, u32),
    ) -> Result<(), StoreError>
    where
        C: serde::de::DeserializeOwned,
        D: CommandDispatcher<C>,
        St: RunnerStore,
    {
        let outbox = collection(saga, "outbox");
        let dead = collection(saga, "dead");
        let mut held_back: HashSet<String> = HashSet::new();
        // Removed from the stored list in batches: a crash before the removal only re-dispatches
        // (idempotently), and one commit per command would halve the rate.
        let mut dispatched: Vec<DocumentWrite> = Vec::new();
        let keys: Vec<String> = self.pending.keys().cloned().collect();
        for key in keys {
            let Some(pending) = self.pending.get_mut(&key) else {
                continue;
            };
            if held_back.contains(&pending.command.instance) {
                // Waits for the earlier command, not for a retry time of its own.
                pending.next_at = None;
                continue;
            }
            if pending.next_at.is_some_and(|at| at > Instant::now()) {
                held_back.insert(pending.command.instance.clone());
                continue;
            }
            let context = pending.command.context();
            let outcome = match serde_json::from_value::<C>(pending.command.command.clone()) {
                Ok(command) => dispatcher
                    .dispatch(command, context)
                    .await
                    .map_err(|e| (error_chain(&e), true)),
                Err(e) => Err((format!("the command does not decode: {e}"), false)),
            };
            match outcome {
                Ok(()) => {
                    metrics::counter!("eventcore_saga_commands_total", "saga" => saga).increment(1);
                    self.pending.remove(&key);
                    dispatched.push(DocumentWrite {
                        collection: outbox.clone(),
                        key,
                        body: None,
                    });
                    if dispatched.len() >= REMOVALS_PER_COMMIT {
                        let (lease, position, version) = checkpoint;
                        store
                            .commit_writes(lease, std::mem::take(&mut dispatched), position, version)
                            .await?;
                    }
                }
                Err((error, retryable)) => {
                    pending.attempts += 1;
                    let attempts = pending.attempts;
                    let instance = pending.command.instance.clone();
                    if retryable && attempts < retry.max_attempts.max(1) {
                        let delay = retry
                            .backoff
                            .delays()
                            .nth(usize::try_from(attempts.saturating_sub(1)).unwrap_or(0))
                            .unwrap_or_default();
                        pending.next_at = Some(Instant::now() + delay);
                        metrics::counter!("eventcore_saga_dispatch_retries_total", "saga" => saga)
                            .increment(1);
                        tracing::warn!(saga, instance, attempts, error, "a saga command failed; retrying");
                        held_back.insert(instance);
                        continue;
                    }
                    tracing::error!(saga, instance, attempts, error, "a saga command is dead-lettered");
                    metrics::counter!("eventcore_saga_dead_letters_total", "saga" => saga).increment(1);
                    let letter = SagaDeadLetter {
                        command: pending.command.clone(),
                        attempts,
                        error,
                        failed_at: Utc::now(),
                        replay_requested: false,
                    };
                    let body = serde_json::to_vec(&letter).map_err(StoreError::backend)?;
                    // Moved in one fenced transaction: never in both lists, never in neither.
                    let (lease, position, version) = checkpoint;
                    let writes = vec![
                        DocumentWrite {
                            collection: dead.clone(),
                            key: key.clone(),
                            body: Some(body.into()),
                        },
                        DocumentWrite {
                            collection: outbox.clone(),
                            key: key.clone(),
                            body: None,
                        },
                    ];
                    let mut writes = writes;
                    writes.append(&mut dispatched);
                    store.commit_writes(lease, writes, position, version).await?;
                    self.pending.remove(&key);
                }
            }
        }
        if !dispatched.is_empty() {
            let (lease, position, version) = checkpoint;
            store.commit_writes(lease, dispatched, position, version).await?;
        }
        Ok(())
    }
}
