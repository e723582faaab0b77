//! `dead-letters list|show|replay|discard`, through [`DeadLetters`]: the store's own (local
//! bus), or a broker bus's with `--redis` / `--nats`.

use std::future::Future;

use eventcore::bus::{Broker, DeadLetter, DeadLetters, EventBus};
use eventcore::runner::{RunnerError, RunnerStore};
use serde_json::{json, Value};

use crate::cli::DeadLettersCommand;
use crate::error::CliError;
use crate::events::parse_id;
use crate::output::{event_block, event_json, table, time, Output};

/// The dead letters of one consumer, on whichever transport keeps them: [`DeadLetters`] has the
/// same calls on every transport, as inherent methods.
pub trait Letters {
    /// Every letter, in log order.
    fn list(&self) -> impl Future<Output = Result<Vec<DeadLetter>, RunnerError>>;
    /// Letter `id`.
    fn get(&self, id: uuid::Uuid) -> impl Future<Output = Result<Option<DeadLetter>, RunnerError>>;
    /// Asks for letter `id` to be replayed; `false` if there is none.
    fn replay(&self, id: uuid::Uuid) -> impl Future<Output = Result<bool, RunnerError>>;
    /// Asks for every letter to be replayed; how many.
    fn replay_all(&self) -> impl Future<Output = Result<usize, RunnerError>>;
    /// Drops letter `id`; `false` if there is none.
    fn discard(&self, id: uuid::Uuid) -> impl Future<Output = Result<bool, RunnerError>>;
}

/// Implements [`Letters`] for `DeadLetters<$store>` by its inherent methods.
macro_rules! letters_by_inherent_methods {
    ($store:ty) => {
        impl Letters for DeadLetters<$store> {
            async fn list(&self) -> Result<Vec<DeadLetter>, RunnerError> {
                DeadLetters::<$store>::list(self).await
            }
            async fn get(&self, id: uuid::Uuid) -> Result<Option<DeadLetter>, RunnerError> {
                DeadLetters::<$store>::get(self, id).await
            }
            async fn replay(&self, id: uuid::Uuid) -> Result<bool, RunnerError> {
                DeadLetters::<$store>::replay(self, id).await
            }
            async fn replay_all(&self) -> Result<usize, RunnerError> {
                DeadLetters::<$store>::replay_all(self).await
            }
            async fn discard(&self, id: uuid::Uuid) -> Result<bool, RunnerError> {
                DeadLetters::<$store>::discard(self, id).await
            }
        }
    };
}

letters_by_inherent_methods!(eventcore::SqliteStore);
#[cfg(feature = "postgres")]
letters_by_inherent_methods!(eventcore::PostgresStore);
letters_by_inherent_methods!(Broker);

/// Runs a `dead-letters` command on `letters`, the dead letters of the command's consumer.
pub async fn run(
    letters: &impl Letters,
    command: DeadLettersCommand,
    output: &Output,
) -> Result<(), CliError> {
    match command {
        DeadLettersCommand::List { consumer } => {
            let list = letters.list().await?;
            let value = json!(list.iter().map(letter_json).collect::<Vec<_>>());
            output.emit(&value, || {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|l| {
                        vec![
                            l.id.to_string(),
                            l.event.global_position.to_string(),
                            l.event.stream_id.clone(),
                            l.event.event_type.clone(),
                            l.attempts.to_string(),
                            time(&l.last_failure),
                            if l.replay_requested { "requested" } else { "-" }.to_owned(),
                            l.error.first().cloned().unwrap_or_default(),
                        ]
                    })
                    .collect();
                table(
                    &[
                        "ID",
                        "POSITION",
                        "STREAM",
                        "TYPE",
                        "ATTEMPTS",
                        "LAST_FAILURE",
                        "REPLAY",
                        "ERROR",
                    ],
                    &rows,
                    &format!("consumer `{consumer}` has no dead letters"),
                )
            })?;
        }
        DeadLettersCommand::Show { consumer, id } => {
            let id = parse_id(&id)?;
            let letter = letters
                .get(id)
                .await?
                .ok_or_else(|| no_letter(&consumer, &id.to_string()))?;
            output.emit(&letter_json(&letter), || {
                let mut out = format!(
                    "dead letter {} of consumer `{}`\nattempts:      {}\nfirst_failure: {}\nlast_failure:  {}\nreplay:        {}\nerror:\n",
                    letter.id,
                    letter.consumer,
                    letter.attempts,
                    time(&letter.first_failure),
                    time(&letter.last_failure),
                    if letter.replay_requested { "requested" } else { "-" },
                );
                for (depth, cause) in letter.error.iter().enumerate() {
                    out.push_str(&format!("  {}{cause}\n", "  ".repeat(depth)));
                }
                out.push_str("event:\n");
                for line in event_block(&letter.event).lines() {
                    out.push_str("  ");
                    out.push_str(line);
                    out.push('\n');
                }
                out
            })?;
        }
        DeadLettersCommand::Replay { consumer, id, all } => {
            let requested = match (id, all) {
                (_, true) => letters.replay_all().await?,
                (Some(id), false) => {
                    let id = parse_id(&id)?;
                    if !letters.replay(id).await? {
                        return Err(no_letter(&consumer, &id.to_string()));
                    }
                    1
                }
                (None, false) => return Err(CliError::Usage("give a letter id or --all".into())),
            };
            output.emit(&json!({ "consumer": consumer, "replay_requested": requested }), || {
                format!(
                    "replay requested for {requested} letter(s) of `{consumer}`: the running consumer handles \
                     them again when it next wakes, and removes each once it succeeds"
                )
            })?;
        }
        DeadLettersCommand::Discard { consumer, id } => {
            let id = parse_id(&id)?;
            if !letters.discard(id).await? {
                return Err(no_letter(&consumer, &id.to_string()));
            }
            output.emit(&json!({ "consumer": consumer, "discarded": id }), || {
                format!("dead letter {id} of `{consumer}` discarded")
            })?;
        }
    }
    Ok(())
}

/// The consumer a command is about.
pub fn consumer_of(command: &DeadLettersCommand) -> &str {
    match command {
        DeadLettersCommand::List { consumer }
        | DeadLettersCommand::Show { consumer, .. }
        | DeadLettersCommand::Replay { consumer, .. }
        | DeadLettersCommand::Discard { consumer, .. } => consumer,
    }
}

/// The dead letters of `consumer` on a broker bus; not found unless the broker knows the
/// consumer or keeps letters of it.
pub async fn broker_letters(bus: &EventBus<Broker>, consumer: &str) -> Result<DeadLetters<Broker>, CliError> {
    let letters = bus.dead_letters(consumer);
    let known = bus
        .consumer_lag()
        .await
        .map_err(|e| CliError::Runner(e.into()))?
        .iter()
        .any(|c| c.consumer == consumer)
        || letters.count().await? > 0;
    if !known {
        return Err(CliError::NotFound(format!(
            "the {} bus knows no consumer named `{consumer}` (see `eventcore lag --{0} URL`)",
            bus.transport_name()
        )));
    }
    Ok(letters)
}

/// The dead letters of `consumer` in the store; not found unless the store knows the consumer.
pub async fn store_letters<S: RunnerStore>(store: &S, consumer: &str) -> Result<DeadLetters<S>, CliError> {
    let bus = EventBus::local(store.clone());
    let known =
        bus.consumers().await?.iter().any(|c| c == consumer) || store.checkpoint(consumer).await?.is_some();
    if !known {
        return Err(CliError::NotFound(format!(
            "no consumer named `{consumer}` in this store (see `eventcore runners lag`)"
        )));
    }
    Ok(bus.dead_letters(consumer))
}

fn no_letter(consumer: &str, id: &str) -> CliError {
    CliError::NotFound(format!("consumer `{consumer}` has no dead letter {id}"))
}

fn letter_json(letter: &DeadLetter) -> Value {
    json!({
        "id": letter.id,
        "consumer": letter.consumer,
        "attempts": letter.attempts,
        "first_failure": time(&letter.first_failure),
        "last_failure": time(&letter.last_failure),
        "error": letter.error,
        "replay_requested": letter.replay_requested,
        "event": event_json(&letter.event),
    })
}
