//! Helpers the `#[projection]` expansion calls through `__private`: routing by stored type name
//! (shared with event handlers), decoding, handler results, and the compile-time list of
//! handled types.

use super::{HandlerError, ProjectionError};
use crate::envelope::{Envelope, RecordedEvent};
use crate::event::SingleEvent;
pub use crate::routing::{handles, routes_to, sorted_event_types, stored_event_types};

/// Decodes `record` into the events of `E` it stands for, as envelopes of their current type.
pub fn decode_handled<'r, E: SingleEvent>(
    projection: &'static str,
    record: &'r RecordedEvent,
) -> Result<impl Iterator<Item = Envelope<E>> + 'r, ProjectionError> {
    crate::routing::decode_envelopes::<E>(record).map_err(|source| ProjectionError::Decode {
        projection,
        global_position: record.global_position,
        event_type: record.event_type.clone(),
        event_version: record.event_version,
        source: Box::new(source),
    })
}

/// What an `#[on]` handler may return: nothing, or `Result<(), E>` for an error type `E`.
#[diagnostic::on_unimplemented(
    message = "an `#[on]` handler cannot return `{Self}`",
    label = "return nothing, or `Result<(), E>` with an error type `E`",
    note = "a failing handler's event is retried by the runner, never skipped"
)]
pub trait HandlerOutput {
    /// The handler's outcome.
    fn into_result(self) -> Result<(), HandlerError>;
}

impl HandlerOutput for () {
    fn into_result(self) -> Result<(), HandlerError> {
        Ok(())
    }
}

impl<E: Into<HandlerError>> HandlerOutput for Result<(), E> {
    fn into_result(self) -> Result<(), HandlerError> {
        self.map_err(Into::into)
    }
}

/// Turns handler `handler`'s output for `event` into the projection's result.
pub fn handler_result<E: SingleEvent, O: HandlerOutput>(
    projection: &'static str,
    handler: &'static str,
    event: &Envelope<E>,
    output: O,
) -> Result<(), ProjectionError> {
    output.into_result().map_err(|source| ProjectionError::Handler {
        projection,
        handler,
        global_position: event.global_position,
        event_type: E::EVENT_TYPE,
        event_id: event.event_id,
        source,
    })
}
