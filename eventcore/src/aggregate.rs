//! Aggregates: consistency boundaries rebuilt from their events and deciding on commands.

use crate::event::DomainEvent;

/// An event-sourced aggregate: state folded from its events.
///
/// `#[aggregate]` on an `impl` block implements it, with one [`Handle`] per `#[command]`
/// and `apply` dispatching to the `#[apply]` methods through a `match`:
///
/// ```
/// # use eventcore::prelude::*;
/// # use serde::{Deserialize, Serialize};
/// # use schemars::JsonSchema;
/// # #[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
/// # #[event(aggregate = "counter")]
/// # pub struct Incremented { pub by: u32 }
/// # #[derive(DomainEvent, Debug, Clone, PartialEq)]
/// # pub enum CounterEvent { Incremented(Incremented) }
/// #[derive(Debug, Default)]
/// pub struct Counter { pub value: u64 }
///
/// pub struct Increment { pub by: u32 }
///
/// #[derive(Debug, thiserror::Error)]
/// #[error("the counter is full")]
/// pub struct CounterFull;
///
/// #[aggregate(events = CounterEvent, error = CounterFull)]   // aggregate type "counter"
/// impl Counter {
///     #[command]
///     fn increment(&self, cmd: Increment) -> Result<Vec<CounterEvent>, CounterFull> {
///         if self.value >= 10 { return Err(CounterFull); }
///         Ok(vec![Incremented { by: cmd.by }.into()])
///     }
///     #[apply]
///     fn incremented(&mut self, e: &Incremented) { self.value += u64::from(e.by); }
/// }
///
/// assert_eq!(<Counter as Aggregate>::AGGREGATE_TYPE, "counter");
/// ```
pub trait Aggregate: Default + Send + Sync + 'static {
    /// The aggregate type name, which prefixes its stream ids.
    const AGGREGATE_TYPE: &'static str;
    /// The closed set of events the aggregate emits and applies.
    type Event: DomainEvent;
    /// The business error its commands return.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Folds one event into the state. Must not fail: the event has already happened.
    fn apply(&mut self, event: &Self::Event);

    /// When the repository stores a snapshot of the state (default: never).
    const SNAPSHOT_POLICY: SnapshotPolicy = SnapshotPolicy::Never;

    /// Version of the snapshot format; a stored snapshot of another version is ignored and rebuilt.
    const SNAPSHOT_VERSION: u32 = 1;

    /// Encodes the state for a snapshot; `None` when the aggregate does not snapshot.
    fn encode_snapshot(&self) -> Option<Result<Vec<u8>, serde_json::Error>> {
        None
    }

    /// Decodes a snapshot written by [`encode_snapshot`](Self::encode_snapshot).
    fn decode_snapshot(_bytes: &[u8]) -> Option<Result<Self, serde_json::Error>> {
        None
    }
}

/// When to store a snapshot of an aggregate's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotPolicy {
    /// Never: every load replays the whole stream.
    Never,
    /// After an append that reaches or crosses a multiple of this many events.
    Every(u64),
}

impl SnapshotPolicy {
    /// Whether an append moving the stream from `before` to `after` calls for a snapshot.
    pub fn is_due(self, before: u64, after: u64) -> bool {
        match self {
            Self::Never | Self::Every(0) => false,
            Self::Every(n) => after / n > before / n,
        }
    }
}

/// Implements the snapshot hooks of [`Aggregate`] with serde JSON; `#[aggregate(snapshot_every = N)]` uses it.
pub fn encode_snapshot_json<A: serde::Serialize>(state: &A) -> Option<Result<Vec<u8>, serde_json::Error>> {
    Some(serde_json::to_vec(state))
}

/// Decodes a JSON snapshot; the counterpart of [`encode_snapshot_json`].
pub fn decode_snapshot_json<A: serde::de::DeserializeOwned>(
    bytes: &[u8],
) -> Option<Result<A, serde_json::Error>> {
    Some(serde_json::from_slice(bytes))
}

/// An aggregate decides on a command of type `C`, producing events or a business error.
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not handle the command `{C}`",
    label = "no `#[command]` method of `{Self}` takes `{C}`",
    note = "add `#[command] fn name(&self, cmd: {C}) -> Result<Vec<Event>, Error>` to the `#[aggregate]` impl"
)]
pub trait Handle<C>: Aggregate {
    /// Decides on `command` against the current state. Returns the events to append.
    fn handle(&self, command: C) -> Result<Vec<Self::Event>, Self::Error>;
}

/// Applies one event struct `E` to the aggregate: what an `#[apply]` method becomes.
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no `#[apply]` handler for the event `{E}`",
    label = "`{E}` is in the event set but never applied",
    note = "add `#[apply] fn name(&mut self, event: &{E})` to the `#[aggregate]` impl"
)]
pub trait Apply<E> {
    /// Folds `event` into the state.
    fn apply_event(&mut self, event: &E);
}

/// Routes an event set's value to the matching [`Apply`] of aggregate `A`.
///
/// `#[derive(DomainEvent)]` implements it for every `A` that applies all the set's events,
/// as a `match` over the variants: no maps, no type ids, no boxing.
pub trait Dispatch<A: ?Sized> {
    /// Calls `aggregate`'s handler for this event.
    fn dispatch(&self, aggregate: &mut A);
}
