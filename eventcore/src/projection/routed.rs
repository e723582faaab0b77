//! A decoded event on its way to one document: the key it touches and the handler call.

use std::fmt;

use super::ProjectionError;

type Apply<P> = Box<dyn Fn(&mut P) -> Result<(), ProjectionError> + Send + Sync>;

/// One event a projection handles, decoded, with the key of the document it updates.
///
/// Made by [`Projection::route`](super::Projection::route); the runner loads the document for
/// [`key`](Self::key) (or a default one) and calls [`apply_to`](Self::apply_to). The event is
/// decoded once, however often the handler runs (a retried batch applies it again to a freshly
/// loaded document).
pub struct Routed<P> {
    key: String,
    global_position: u64,
    event_type: &'static str,
    apply: Apply<P>,
}

impl<P> Routed<P> {
    /// A route to the document `key`, applying `apply` (used by `#[projection]`).
    pub fn new(
        key: String,
        global_position: u64,
        event_type: &'static str,
        apply: impl Fn(&mut P) -> Result<(), ProjectionError> + Send + Sync + 'static,
    ) -> Self {
        Self {
            key,
            global_position,
            event_type,
            apply: Box::new(apply),
        }
    }

    /// The key of the document this event updates.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The event's position in the whole store.
    pub fn global_position(&self) -> u64 {
        self.global_position
    }

    /// The event type the handler takes (its current name).
    pub fn event_type(&self) -> &'static str {
        self.event_type
    }

    /// Runs the handler on `document`.
    pub fn apply_to(&self, document: &mut P) -> Result<(), ProjectionError> {
        (self.apply)(document)
    }
}

impl<P> fmt::Debug for Routed<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Routed")
            .field("key", &self.key)
            .field("global_position", &self.global_position)
            .field("event_type", &self.event_type)
            .finish_non_exhaustive()
    }
}
