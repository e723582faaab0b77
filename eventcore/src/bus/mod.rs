//! The event bus: handlers that react to committed events, at least once, in their own time.
//!
//! `#[event_handler]` turns an `impl` block of `#[on]` async handlers into an [`EventHandler`].

mod handler;
#[doc(hidden)]
pub mod support;

pub use crate::runner::{Backoff, RetryPolicy};
pub use handler::{EventHandler, HandleError, Handled};
