//! The event bus: handlers that react to committed events, at least once, in their own time.
//!
//! `#[event_handler]` turns an `impl` block of `#[on]` async handlers into an [`EventHandler`];
//! [`EventBus::subscribe`] runs it as a consumer with retries (exponential backoff with jitter,
//! counted across crashes), [dead letters](DeadLetters) that keep the whole event and its error
//! chain, and per-stream order (an event waits behind an earlier dead letter of its stream).

mod consumer;
mod dead_letter;
mod event_bus;
mod handler;
#[doc(hidden)]
pub mod support;

pub use crate::runner::{Backoff, RetryPolicy, Running};
pub use dead_letter::{DeadLetter, DeadLetters};
pub use event_bus::{EventBus, Subscription};
pub use handler::{EventHandler, HandleError, Handled};

/// A started consumer: wait for it, read its status, stop it.
pub type RunningConsumer<S> = Running<S>;
