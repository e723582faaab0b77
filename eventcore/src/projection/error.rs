//! What can go wrong folding one stored event into a projection's document.

use crate::codec::RecordDecodeError;

/// A boxed error returned by a projection's handler.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A projection could not fold a stored event: it did not decode, or a handler failed.
///
/// Either way the event is not skipped: the runner retries it or stops with this error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProjectionError {
    /// A stored event of a handled type does not decode (or upcast) into the handler's event.
    #[error(
        "projection `{projection}` cannot decode `{event_type}` version {event_version} \
         at global position {global_position}: {source}"
    )]
    Decode {
        /// The projection's name.
        projection: &'static str,
        /// The event's position in the whole store.
        global_position: u64,
        /// The stored event type.
        event_type: String,
        /// The stored version.
        event_version: u32,
        /// Why it does not decode (names the event id and stream).
        #[source]
        source: Box<RecordDecodeError>,
    },
    /// An `#[on]` handler returned an error.
    #[error(
        "projection `{projection}`: handler `{handler}` failed on `{event_type}` \
         at global position {global_position}: {source}"
    )]
    Handler {
        /// The projection's name.
        projection: &'static str,
        /// The handler method.
        handler: &'static str,
        /// The event's position in the whole store.
        global_position: u64,
        /// The event type (current name).
        event_type: &'static str,
        /// The event's id.
        event_id: uuid::Uuid,
        /// What the handler returned.
        #[source]
        source: HandlerError,
    },
}

impl ProjectionError {
    /// The name of the projection that failed.
    pub fn projection(&self) -> &'static str {
        match self {
            Self::Decode { projection, .. } | Self::Handler { projection, .. } => projection,
        }
    }

    /// The global position of the event it failed on.
    pub fn global_position(&self) -> u64 {
        match self {
            Self::Decode { global_position, .. } | Self::Handler { global_position, .. } => *global_position,
        }
    }
}
