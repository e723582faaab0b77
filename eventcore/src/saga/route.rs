//! A decoded event on its way to one saga instance: the key it names, its role, the handler call.

use std::fmt;

use uuid::Uuid;

use super::{Saga, SagaContext};

/// What a handler does to its instance's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Role {
    /// `#[start]`: creates the instance for its key unless the key has one.
    Start,
    /// `#[handle]`: a step on the instance of its key.
    Step,
    /// `#[end]`: runs on the instance of its key, then ends it.
    End,
}

type Apply<S> = Box<dyn Fn(&mut S, &mut SagaContext<S>) + Send + Sync>;

/// One event a saga handles, decoded, with the key value that finds its instance.
pub struct SagaRoute<S: Saga> {
    key: String,
    role: Role,
    global_position: u64,
    event_id: Uuid,
    event_type: &'static str,
    apply: Apply<S>,
}

impl<S: Saga> SagaRoute<S> {
    /// A route to the instance of `key` (used by `#[saga]`).
    pub fn new(
        key: String,
        role: Role,
        global_position: u64,
        event_id: Uuid,
        event_type: &'static str,
        apply: impl Fn(&mut S, &mut SagaContext<S>) + Send + Sync + 'static,
    ) -> Self {
        Self {
            key,
            role,
            global_position,
            event_id,
            event_type,
            apply: Box::new(apply),
        }
    }

    /// The key value the event names.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The handler's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The event's position in the store.
    pub fn global_position(&self) -> u64 {
        self.global_position
    }

    /// The event's id (the causation of the commands the step sends).
    pub fn event_id(&self) -> Uuid {
        self.event_id
    }

    /// The event type the handler takes.
    pub fn event_type(&self) -> &'static str {
        self.event_type
    }

    /// Runs the handler.
    pub fn apply_to(&self, saga: &mut S, cx: &mut SagaContext<S>) {
        (self.apply)(saga, cx);
    }
}

impl<S: Saga> fmt::Debug for SagaRoute<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SagaRoute")
            .field("key", &self.key)
            .field("role", &self.role)
            .field("global_position", &self.global_position)
            .field("event_type", &self.event_type)
            .finish_non_exhaustive()
    }
}
