//! Projections: read models folded from the events of any aggregates.
//!
//! The default kind keeps **one document per key** (Marten's document projections): a
//! serializable struct, keyed by the event's aggregate id or by a payload field. `#[projection]`
//! on an `impl` block of `#[on]` handlers implements [`Projection`]; a runner feeds it the
//! store's log, and `eventcore_testing::ProjectionFixture` tests it without a store.

mod error;
mod inline;
#[cfg(feature = "postgres")]
mod postgres_tables;
mod routed;
mod runner;
#[cfg(feature = "sqlite")]
mod sqlite_tables;
#[doc(hidden)]
pub mod support;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod tables;

use serde::{de::DeserializeOwned, Serialize};

use crate::envelope::RecordedEvent;

/// An error of a table projection's handler.
pub type TableError = Box<dyn std::error::Error + Send + Sync + 'static>;

pub use error::{HandlerError, ProjectionError};
pub(crate) use inline::{projector, InlineAppend, InlineAppender};
pub use inline::{DocumentAccess, InlineProjector, InlineStore};
#[cfg(feature = "postgres")]
pub use postgres_tables::PostgresTableProjection;
pub use routed::Routed;
pub use runner::{Projections, RunningProjections, DEFAULT_BATCH_SIZE, DEFAULT_LEASE_TTL};
#[cfg(feature = "sqlite")]
pub use sqlite_tables::SqliteTableProjection;
pub use support::HandlerOutput;

/// A document projection: a document type folded from the events its `#[on]` handlers take.
///
/// Implement it with [`#[projection]`](macro@crate::projection):
///
/// ```
/// use eventcore::prelude::*;
/// use eventcore::projection::Projection;
/// use serde::{Deserialize, Serialize};
/// # use schemars::JsonSchema;
/// # #[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
/// # #[event(aggregate = "account")]
/// # pub struct AccountOpened { pub owner: String }
/// # #[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
/// # #[event(aggregate = "account", version = 2)]
/// # pub struct MoneyDeposited { pub amount: i64, pub currency: String }
///
/// /// One document per account.
/// #[derive(Debug, Default, Serialize, Deserialize)]
/// pub struct AccountSummary { pub owner: String, pub balance: i64 }
///
/// #[projection]                                  // name "account_summary", version 1
/// impl AccountSummary {
///     #[on] fn opened(&mut self, e: &AccountOpened) { self.owner = e.owner.clone(); }
///     #[on] fn deposited(&mut self, e: &MoneyDeposited) { self.balance += e.amount; }
/// }
///
/// assert_eq!(AccountSummary::NAME, "account_summary");
/// assert_eq!(AccountSummary::HANDLED_EVENT_TYPES, ["account.money_deposited", "account.opened"]);
/// ```
///
/// # For runners
///
/// For each stored event, [`route`](Self::route) decodes it if (and only if) a handler takes
/// its type, and pushes one [`Routed`] per event it becomes (usually one; an upcaster may split
/// or retire an event): the key of the document it updates, and the handler call to
/// [`apply_to`](Routed::apply_to) that document (`Default` when the key has none yet). Records of
/// other types return at once, undecoded; [`HANDLED_EVENT_TYPES`](Self::HANDLED_EVENT_TYPES)
/// lets a reader filter them out before even reading them.
pub trait Projection: Serialize + DeserializeOwned + Default + Send + Sync + 'static {
    /// The projection's name, `[a-z0-9_]` (default: the snake_case type name).
    const NAME: &'static str;
    /// The version of its documents' shape and logic; a new version rebuilds the documents.
    const VERSION: u32;
    /// The current names of the event types it handles, sorted, each once.
    ///
    /// Stored events of an older name that upcast into one of these are handled too (see
    /// [`handles`](Self::handles)).
    const HANDLED_EVENT_TYPES: &'static [&'static str];

    /// Decodes `record` if a handler takes it, pushing the routes of the events it becomes onto `routes`.
    ///
    /// A record of a type no handler takes is skipped without decoding. A record of a handled
    /// type that does not decode is [`ProjectionError::Decode`], naming its position.
    fn route(record: &RecordedEvent, routes: &mut Vec<Routed<Self>>) -> Result<(), ProjectionError>;

    /// Whether a record stored with type name `event_type` reaches a handler (directly, or
    /// after upcasting an older name).
    fn handles(event_type: &str) -> bool {
        support::handles(event_type, Self::HANDLED_EVENT_TYPES)
    }

    /// The key of the document `record` updates; `None` when no handler takes it.
    ///
    /// Decodes the record; runners use [`route`](Self::route) to decode once for key and handler.
    fn key(record: &RecordedEvent) -> Result<Option<String>, ProjectionError> {
        let mut routes = Vec::new();
        Self::route(record, &mut routes)?;
        Ok(routes.into_iter().next().map(|route| route.key().to_owned()))
    }

    /// Applies `record` to this document, whatever its key; a record no handler takes changes nothing.
    fn apply(&mut self, record: &RecordedEvent) -> Result<(), ProjectionError> {
        let mut routes = Vec::new();
        Self::route(record, &mut routes)?;
        routes.iter().try_for_each(|route| route.apply_to(self))
    }
}

/// Marks that projection `Self` has an `#[on]` handler for the event struct `E`.
///
/// Implemented by `#[projection]`, once per handler, so two handlers for one struct conflict.
pub trait Handles<E> {}
