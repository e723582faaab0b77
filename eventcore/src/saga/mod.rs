//! Sagas (process managers): long-running processes across aggregates, driven by events.
//!
//! `#[saga(commands = C)]` on an `impl` block of `#[start]`, `#[handle]`, `#[end]` and
//! `#[deadline]` handlers implements [`Saga`]. One instance lives per key value: a `#[start(key =
//! field)]` event creates it (unless the key already has one), later events find it through
//! their `key` field, and [`SagaContext`] lets a handler send commands, schedule and cancel
//! deadlines, add keys and end the instance.
//!
//! [`Sagas`] runs sagas from the store's log like projections: each batch of steps commits its
//! instances, associations, deadlines and outgoing commands with the checkpoint in one
//! transaction; then the commands are dispatched at least once, each with an idempotency key
//! derived from (saga, instance, step, index), so a re-dispatch after a crash appends nothing
//! new. Deadlines are durable, fall due by a [`Clock`] that tests can move, and fire at least
//! once. `eventcore_testing::SagaFixture` tests a saga without a store.

mod clock;
mod context;
mod dispatch;
mod error;
pub mod inspect;
mod instance;
mod route;
mod runner;
mod storage;
#[doc(hidden)]
pub mod support;

use serde::{de::DeserializeOwned, Serialize};

use crate::envelope::RecordedEvent;

pub use clock::{Clock, ManualClock, SystemClock};
pub use context::{SagaContext, ScheduledDeadline};
pub use dispatch::{CommandDispatcher, DeadDeadline, SagaDeadLetter};
pub use error::SagaError;
pub use instance::{OutgoingCommand, PendingDeadline, SagaInstance, SagaInstances, Skipped, StepOutcome};
pub use route::{Role, SagaRoute};
pub use runner::{SagaStats, Sagas};

/// The commands a saga sends: the `commands = C` of `#[saga(commands = C)]`.
///
/// Kept apart from [`Saga`] so that [`SagaContext<Self>`] names its command type even while the
/// rest of a `#[saga]` block has errors.
pub trait SagaCommands {
    /// What the saga asks other aggregates to do; stored until dispatched, hence serde.
    type Command: Serialize + DeserializeOwned + Send + Sync + 'static;
}

/// A saga: state kept per instance, event handlers keyed by a payload field, deadline handlers.
///
/// Implement it with [`#[saga]`](macro@crate::saga). The state is JSON (serde) and starts as
/// `Default`; deadlines are serde values too.
pub trait Saga: SagaCommands + Serialize + DeserializeOwned + Default + Send + Sync + 'static {
    /// The saga's name, `[a-z0-9_]` (default: the snake_case type name).
    const NAME: &'static str;
    /// The version of its state's shape and logic.
    const VERSION: u32;
    /// The current names of the event types it handles, sorted, each once.
    const HANDLED_EVENT_TYPES: &'static [&'static str];
    /// The names of the deadline types it handles.
    const DEADLINES: &'static [&'static str];

    /// Decodes `record` if a handler takes it, pushing one route per event it becomes.
    fn route(record: &RecordedEvent, routes: &mut Vec<SagaRoute<Self>>) -> Result<(), SagaError>;

    /// Runs the `#[deadline]` handler of the deadline type named `deadline` on its stored `payload`.
    fn on_deadline(
        &mut self,
        deadline: &str,
        payload: &serde_json::Value,
        cx: &mut SagaContext<Self>,
    ) -> Result<(), SagaError>;
}

/// Marks `Self` as a deadline type that saga `S` has a `#[deadline]` handler for.
///
/// Implemented by `#[saga]` once per `#[deadline]` handler; [`SagaContext::schedule`] requires
/// it, so scheduling a deadline nobody handles is a compile error naming the type.
#[diagnostic::on_unimplemented(
    message = "the saga `{S}` has no `#[deadline]` handler for `{Self}`",
    label = "`{Self}` is scheduled here, but `{S}` has no `#[deadline]` for it",
    note = "add `#[deadline] fn name(&mut self, d: &{Self}, cx: &mut SagaContext<Self>) {{ ... }}` to the `#[saga]` block of `{S}`"
)]
pub trait SagaDeadline<S> {
    /// The stored name of the deadline type.
    const DEADLINE: &'static str;
}

/// Marks that saga `Self` has a handler for the event struct `E` (implemented once per handler,
/// so two handlers for one struct under different paths conflict).
pub trait HandlesSagaEvent<E> {}
