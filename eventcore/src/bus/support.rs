//! Helpers the `#[event_handler]` expansion calls through `__private`: decoding into
//! [`HandleError::Decode`], and turning a handler's `Result<(), E>` into [`HandleError::Handler`].

use super::HandleError;
use crate::envelope::{Envelope, RecordedEvent};
use crate::event::SingleEvent;

/// Marks that event handler `Self` has an `#[on]` handler for the event struct `E`.
///
/// Implemented by `#[event_handler]`, once per handler, so two handlers for one struct conflict.
pub trait HandlesEvent<E> {}

/// Decodes `record` into the events of `E` it stands for, as envelopes of their current type.
pub fn decode_event<'r, E: SingleEvent>(
    record: &'r RecordedEvent,
) -> Result<impl Iterator<Item = Envelope<E>> + Send + 'r, HandleError> {
    crate::routing::decode_envelopes::<E>(record).map_err(|source| HandleError::Decode {
        global_position: record.global_position,
        source: Box::new(source),
    })
}

/// What an `#[on]` handler of an event handler returns: `Result<(), E>`.
#[diagnostic::on_unimplemented(
    message = "an `#[on]` handler of an `#[event_handler]` cannot return `{Self}`",
    label = "return `Result<(), E>` with an error type `E`",
    note = "a failing handler's event is retried with backoff, then dead-lettered"
)]
pub trait HandlerResult {
    /// The handler's error type.
    type Error;
    /// The handler's outcome.
    fn into_result(self) -> Result<(), Self::Error>;
}

impl<E> HandlerResult for Result<(), E> {
    type Error = E;
    fn into_result(self) -> Result<(), E> {
        self
    }
}

/// The handler's output as a `Result`.
pub fn handler_result<O: HandlerResult>(output: O) -> Result<(), O::Error> {
    output.into_result()
}

/// What an `#[on]` handler of an event handler fails with: a `std::error::Error` that can cross
/// threads, boxed into [`HandleError::Handler`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an error type: an `#[on]` handler's error implements `std::error::Error`",
    label = "implement `std::error::Error + Send + Sync + 'static` for `{Self}`",
    note = "a failing handler's error is kept with the event when it is dead-lettered"
)]
pub trait EventHandlerError: std::error::Error + Send + Sync + 'static {}

impl<E: std::error::Error + Send + Sync + 'static> EventHandlerError for E {}

/// The error of handler method `handler`.
pub fn handler_failed<E: EventHandlerError>(handler: &'static str, error: E) -> HandleError {
    HandleError::Handler {
        handler,
        source: Box::new(error),
    }
}
