//! The event bus: handlers that react to committed events, at least once, in their own time.
//!
//! `#[event_handler]` turns an `impl` block of `#[on]` async handlers into an [`EventHandler`];
//! [`EventBus::subscribe`] runs it as a consumer with retries (exponential backoff with jitter,
//! counted across crashes), [dead letters](DeadLetters) that keep the whole event and its error
//! chain, and per-stream order (an event waits behind an earlier dead letter of its stream).
//!
//! The transport is chosen when the bus is built: [`EventBus::local`] reads the store's own
//! log; `EventBus::redis` (feature `redis`, Redis Streams) and `EventBus::nats` (feature `nats`,
//! NATS JetStream) run on a broker fed by a `Relay` (the docs of `Broker` tell how partitions
//! let competing consumers share the work and keep each stream in order). Subscribing, the
//! running handle and the dead letters are the same on each.

mod consumer;
mod dead_letter;
mod event_bus;
mod handler;
#[cfg(any(feature = "redis", feature = "nats"))]
mod inbox;
#[cfg(any(feature = "redis", feature = "nats"))]
mod letters;
#[cfg(feature = "nats")]
mod nats;
#[cfg(feature = "redis")]
mod redis;
#[cfg(any(feature = "redis", feature = "nats"))]
mod relay;
#[doc(hidden)]
pub mod support;
#[cfg(any(feature = "redis", feature = "nats"))]
mod transport;

pub use crate::runner::{Backoff, RetryPolicy, Running};
pub use dead_letter::{DeadLetter, DeadLetters};
pub use event_bus::{EventBus, Subscription};
pub use handler::{EventHandler, HandleError, Handled};
#[cfg(any(feature = "redis", feature = "nats"))]
pub use letters::{RejectedMessage, Rejection};
#[cfg(feature = "nats")]
pub use nats::NatsOptions;
#[cfg(feature = "redis")]
pub use redis::{RedisOptions, Retention};
#[cfg(any(feature = "redis", feature = "nats"))]
pub use relay::Relay;
#[cfg(any(feature = "redis", feature = "nats"))]
pub use transport::{Broker, BusError, ConsumerLag};

/// A started consumer: wait for it, read its status, stop it.
pub type RunningConsumer<S> = Running<S>;
