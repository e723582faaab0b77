//! What a broker consumer does with each message, whatever the transport: read it as a
//! CloudEvent, check it against the schema registry, run the handler, and judge the outcome
//! (done, retry later, or dead letter); and handle the dead letters an operator asked to replay.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use chrono::Utc;

use super::dead_letter::DeadLetter;
use super::handler::EventHandler;
use super::letters::LetterBox;
use super::transport::BusError;
use crate::cloudevents;
use crate::envelope::RecordedEvent;
use crate::runner::{error_chain, RetryPolicy};
use crate::schema::Registry;

/// What to do with a message after one attempt.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Handled (or not for this consumer): acknowledge it.
    Done,
    /// Failed; try again after the backoff. Holds the error chain.
    Retry(String),
    /// Give up: store this letter, then acknowledge the message.
    Dead(Box<DeadLetter>),
}

/// A consumer's handler with its retry policy and dead-letter box.
pub(crate) struct Inbox<H> {
    pub(crate) handler: Arc<H>,
    pub(crate) retry: RetryPolicy,
    pub(crate) letters: LetterBox,
}

/// The schema registry of this binary, built once.
fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(crate::schema::registry)
}

impl<H: EventHandler> Inbox<H> {
    pub(crate) fn new(handler: Arc<H>, retry: RetryPolicy, letters: LetterBox) -> Self {
        Self {
            handler,
            retry,
            letters,
        }
    }

    /// The attempts allowed per event.
    pub(crate) fn max_attempts(&self) -> u32 {
        self.retry.max_attempts.max(1)
    }

    /// Reads a message body as the event it carries (an integration message as its
    /// [record](crate::integration::IntegrationMessage::to_record)); the reason when it is not one.
    pub(crate) fn decode(body: &[u8]) -> Result<RecordedEvent, String> {
        let text = std::str::from_utf8(body).map_err(|e| format!("the message is not UTF-8: {e}"))?;
        match cloudevents::from_json_unless_kind(text, crate::integration::EVENT_KIND) {
            Some(event) => event.map_err(|e| format!("the message is not an eventcore CloudEvent: {e}")),
            None => crate::integration::IntegrationMessage::from_cloudevent(text)
                .map(|message| message.to_record())
                .map_err(|e| format!("the message is not an integration CloudEvent: {e}")),
        }
    }

    /// Attempt number `attempt` (1-based, counted by the broker's deliveries) at `event`.
    pub(crate) async fn attempt(&self, event: &RecordedEvent, attempt: u32) -> Verdict {
        let max = self.max_attempts();
        if let Err(reason) = validate(event) {
            return self.dead(event, attempt, &reason);
        }
        if attempt > max {
            return self.dead(event, attempt - 1, &Crashed(attempt - 1));
        }
        match self.handler.handle(event).await {
            Ok(_) => Verdict::Done,
            Err(error) if !error.is_retryable() || attempt >= max => self.dead(event, attempt, &error),
            Err(error) => {
                metrics::counter!("eventcore_runner_retries_total", "runner" => H::NAME).increment(1);
                Verdict::Retry(error_chain(&error))
            }
        }
    }

    /// The dead letter of `event` parked behind letter `blocker` of its stream.
    pub(crate) fn parked(&self, event: &RecordedEvent, blocker: uuid::Uuid) -> DeadLetter {
        DeadLetter::new(H::NAME, event, 0, Utc::now(), &Parked(blocker))
    }

    /// The dead letter of `event`, dropped by the broker (retention) while it waited for attempt
    /// `attempt`: the consumer still holds it, so it is kept whole.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn trimmed(&self, event: &RecordedEvent, attempt: u32) -> DeadLetter {
        DeadLetter::new(H::NAME, event, attempt, Utc::now(), &Trimmed)
    }

    fn dead(
        &self,
        event: &RecordedEvent,
        attempts: u32,
        error: &(dyn std::error::Error + 'static),
    ) -> Verdict {
        tracing::warn!(consumer = H::NAME, event_id = %event.event_id, attempts, error = %error, "dead-lettering an event");
        metrics::counter!("eventcore_dead_letters_total", "runner" => H::NAME).increment(1);
        Verdict::Dead(Box::new(DeadLetter::new(
            H::NAME,
            event,
            attempts,
            Utc::now(),
            error,
        )))
    }

    /// Handles the letters whose replay was requested, in position order, each with the full
    /// retry policy: a success removes the letter; a failure keeps it (and the later letters of
    /// its stream) with the new attempts and error.
    pub(crate) async fn replay(&self) -> Result<(), BusError> {
        let mut requested: Vec<DeadLetter> = self
            .letters
            .list()
            .await?
            .into_iter()
            .filter(|letter| letter.replay_requested)
            .collect();
        requested.sort_by_key(DeadLetter::log_order);
        let mut still_failing: HashSet<String> = HashSet::new();
        for mut letter in requested {
            if still_failing.contains(&letter.event.stream_id) {
                continue;
            }
            let mut delays = self.retry.backoff.delays();
            let mut attempt = 1;
            let failed = loop {
                match self.attempt(&letter.event, attempt).await {
                    Verdict::Done => break None,
                    Verdict::Dead(failed) => break Some(failed),
                    Verdict::Retry(_) => {
                        tokio::time::sleep(delays.next().unwrap_or_default()).await;
                        attempt += 1;
                    }
                }
            };
            match failed {
                None => {
                    self.letters.remove(letter.id).await?;
                }
                Some(failed) => {
                    still_failing.insert(letter.event.stream_id.clone());
                    letter.attempts += failed.attempts;
                    letter.last_failure = failed.last_failure;
                    letter.error = failed.error;
                    letter.replay_requested = false;
                    self.letters.put(&letter).await?;
                }
            }
        }
        Ok(())
    }
}

/// Checks an arrived event against the schema registry: its type must be known and its version
/// not newer than this binary's.
fn validate(event: &RecordedEvent) -> Result<(), Undecodable> {
    match registry().latest_version(&event.event_type) {
        None => Err(Undecodable(format!(
            "unknown event type `{}`: not in this binary's schema registry",
            event.event_type
        ))),
        Some(latest) if event.event_version > latest => Err(Undecodable(format!(
            "`{}` version {} is newer than this binary knows (latest {latest})",
            event.event_type, event.event_version
        ))),
        Some(_) => Ok(()),
    }
}

/// An arrived event this binary cannot read.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Undecodable(String);

/// Consumers stopped (crashed or were killed) while handling the event, this many times.
#[derive(Debug, thiserror::Error)]
#[error("delivered {0} times without being handled (consumers crashed, were killed or failed on it)")]
struct Crashed(u32);

/// The event waits behind an earlier dead letter of its stream.
#[derive(Debug, thiserror::Error)]
#[error("waiting behind dead letter {0} of the same stream (events of a stream are handled in order)")]
struct Parked(uuid::Uuid);

/// The broker dropped the event while it waited for a retry.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
#[derive(Debug, thiserror::Error)]
#[error("trimmed from the broker (retention) while waiting for a retry")]
struct Trimmed;
