//! `dead-letters list|show|replay|discard`, through the local bus's [`DeadLetters`].

use eventcore::bus::{DeadLetter, DeadLetters, EventBus};
use eventcore::runner::RunnerStore;
use serde_json::{json, Value};

use crate::cli::DeadLettersCommand;
use crate::error::CliError;
use crate::events::parse_id;
use crate::output::{event_block, event_json, table, time, Output};

/// Runs a `dead-letters` command.
pub async fn run<S: RunnerStore>(
    store: &S,
    command: DeadLettersCommand,
    output: &Output,
) -> Result<(), CliError> {
    match command {
        DeadLettersCommand::List { consumer } => {
            let letters = letters_of(store, &consumer).await?;
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
            let letters = letters_of(store, &consumer).await?;
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
            let letters = letters_of(store, &consumer).await?;
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
            let letters = letters_of(store, &consumer).await?;
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

/// The dead letters of `consumer`; not found unless the store knows the consumer.
async fn letters_of<S: RunnerStore>(store: &S, consumer: &str) -> Result<DeadLetters<S>, CliError> {
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
