//! Event handlers: what a bus consumer runs for each event, after the commit, at least once.

use std::future::Future;

use crate::codec::RecordDecodeError;
use crate::envelope::RecordedEvent;

/// A consumer of events: async handlers that react to committed events, at least once.
///
/// Implement it with `#[event_handler]` on an `impl` block of `#[on]` async handlers; a handler
/// takes `&Envelope<E>` or `&E` for an event struct `E` of any aggregate and returns
/// `Result<(), Err>` for any error type. Handlers run at least once per event: make them
/// idempotent (the envelope's `event_id` is stable across redeliveries).
pub trait EventHandler: Send + Sync + 'static {
    /// The consumer's name (default: the snake_case type name): its checkpoint, its lease and
    /// its dead letters.
    const NAME: &'static str;
    /// The current names of the event types it handles, sorted, each once.
    const HANDLED_EVENT_TYPES: &'static [&'static str];

    /// Runs the handler of `record`'s type, decoding it (upcasting an older version) first;
    /// [`Handled::Skipped`] when no handler takes its type.
    fn handle<'a>(
        &'a self,
        record: &'a RecordedEvent,
    ) -> impl Future<Output = Result<Handled, HandleError>> + Send + 'a;
}

/// What [`EventHandler::handle`] did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// A handler took it and succeeded.
    Done,
    /// No handler takes its type.
    Skipped,
}

/// Why an event handler failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandleError {
    /// The event does not decode (unknown version, bad payload): retrying cannot help, so it
    /// goes to the dead letters at once.
    #[error("event at position {global_position} does not decode")]
    Decode {
        /// Its position.
        global_position: u64,
        /// Why.
        #[source]
        source: Box<RecordDecodeError>,
    },
    /// An integration message does not decode into the type asked for (bad payload, missing
    /// upcaster): retrying cannot help, so it goes to the dead letters at once.
    #[error("integration message does not decode")]
    Integration(#[from] Box<crate::integration::IntegrationDecodeError>),
    /// The handler returned an error: retried with backoff, then dead-lettered.
    #[error("handler `{handler}` failed")]
    Handler {
        /// The handler method.
        handler: &'static str,
        /// Its error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

impl HandleError {
    /// Whether a retry may succeed (a handler error), or not (an event that does not decode).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Handler { .. })
    }
}

impl From<crate::integration::IntegrationDecodeError> for HandleError {
    fn from(error: crate::integration::IntegrationDecodeError) -> Self {
        Self::Integration(Box::new(error))
    }
}
