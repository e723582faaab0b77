//! eventcore: derive-first event sourcing and CQRS.
//!
//! Annotate plain structs and let the macros write the boilerplate:
//!
//! - [`derive@DomainEvent`] names and versions events (`aggregate.action`), encodes their
//!   payloads as JSON and registers their JSON Schemas;
//! - [`macro@aggregate`] turns an `impl` block with `#[command]` and `#[apply]` methods into an
//!   [`Aggregate`] with one [`Handle`] per command and a `match` for applying events;
//! - [`macro@projection`] turns an `impl` block with `#[on]` handlers into a [`Projection`]: a
//!   read-model document folded from the events of any aggregates;
//! - [`macro@event_handler`] turns an `impl` block with `#[on]` async handlers into an
//!   [`EventHandler`](bus::EventHandler): a bus consumer that reacts to committed events;
//! - [`Repository`] loads aggregates from an [`EventStore`] and appends what their commands
//!   decide, with optimistic concurrency.
//!
//! Stores: [`MemoryStore`] for tests, [`SqliteStore`] as the embedded durable default (feature
//! `sqlite`, on by default), `PostgresStore` with feature `postgres`.
//!
//! ```
//! use eventcore::prelude::*;
//! use serde::{Deserialize, Serialize};
//! use schemars::JsonSchema;
//!
//! #[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
//! #[event(aggregate = "lamp")]
//! pub struct LampSwitched { pub on: bool }
//!
//! #[derive(DomainEvent, Debug, Clone, PartialEq)]
//! pub enum LampEvent { Switched(LampSwitched) }
//!
//! #[derive(Debug, Default)]
//! pub struct Lamp { pub on: bool }
//!
//! pub struct Switch { pub on: bool }
//!
//! #[derive(Debug, thiserror::Error)]
//! #[error("the lamp is already in that state")]
//! pub struct NoChange;
//!
//! #[aggregate(events = LampEvent, error = NoChange)]
//! impl Lamp {
//!     #[command]
//!     fn switch(&self, cmd: Switch) -> Result<Vec<LampEvent>, NoChange> {
//!         if cmd.on == self.on { return Err(NoChange); }
//!         Ok(vec![LampSwitched { on: cmd.on }.into()])
//!     }
//!     #[apply]
//!     fn switched(&mut self, e: &LampSwitched) { self.on = e.on; }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let lamps = Repository::<Lamp, _>::new(MemoryStore::new());
//! lamps.execute("hall", Switch { on: true }).await?;
//! assert!(lamps.execute("hall", Switch { on: true }).await.is_err());
//! assert!(lamps.load("hall").await?.state().on);
//! # Ok(()) }
//! ```

// Library paths never panic on what comes from outside: stored data, the network, callers.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod aggregate;
pub mod bus;
pub mod cloudevents;
pub mod codec;
mod decision;
pub mod envelope;
pub mod event;
pub mod integration;
pub mod outbox;
pub mod projection;
pub mod repository;
mod routing;
pub mod runner;
pub mod saga;
pub mod schema;
pub mod store;
pub mod subscription;

pub use aggregate::{Aggregate, Apply, Dispatch, Handle, SnapshotPolicy};
pub use codec::RecordDecodeError;
pub use decision::Decision;
pub use envelope::{CommandContext, Envelope, Metadata, NewEvent, RecordedEvent};
pub use event::{DecodeError, DomainEvent, EncodeError, EventDescriptor, EventOf, SingleEvent};
pub use integration::IntegrationEvent;
pub use projection::{Projection, ProjectionError};
pub use repository::{stream_id, Committed, HistoryEvent, Loaded, Repository, RepositoryError};
#[cfg(feature = "sqlite")]
pub use store::SqliteStore;
pub use store::{AppendResult, EventStore, ExpectedVersion, MemoryStore, Snapshot, StoreError};
#[cfg(feature = "postgres")]
pub use store::{PostgresStore, PostgresStoreBuilder};
pub use subscription::{EventStream, SubscribeAll};

/// The `chrono` this crate uses (event times are `chrono::DateTime<Utc>`).
pub use chrono;
/// The `rusqlite` this crate uses: table projections and unit-of-work callers name its types.
#[cfg(feature = "sqlite")]
pub use rusqlite;
/// The `schemars` this crate uses: derive `JsonSchema` with it to avoid version skew.
pub use schemars;
/// The `tokio_postgres` this crate uses: PostgreSQL table projections and unit-of-work callers
/// name its types.
#[cfg(feature = "postgres")]
pub use tokio_postgres;
/// The `uuid` this crate uses (event ids are `uuid::Uuid`).
pub use uuid;

/// Derives [`DomainEvent`](trait@DomainEvent) for an event struct or an enum of event structs.
///
/// On a struct, `#[event(...)]` takes:
///
/// - `aggregate = "account"`: the aggregate; the type name loses a leading aggregate name and
///   becomes `account.<snake_case>` (`AccountOpened` -> `account.opened`);
/// - `name = "account.withdrawn"`: the full event type name, which wins over the rule above;
/// - `version = 2`: the schema version (1 and up, default 1);
/// - `upcast_from = MoneyDepositedV1`: the previous version, kept as its own event struct;
///   stored events of it are decoded as that struct and converted with `From<MoneyDepositedV1>`
///   (which you implement). The old struct may also have another event type, for a rename.
///
/// ```
/// use eventcore::prelude::*;
/// # use serde::{Deserialize, Serialize};
/// # use schemars::JsonSchema;
/// #[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
/// #[event(name = "account.money_deposited", version = 1)]
/// pub struct MoneyDepositedV1 { pub amount: i64 }
///
/// #[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
/// #[event(aggregate = "account", version = 2, upcast_from = MoneyDepositedV1)]
/// pub struct MoneyDeposited { pub amount: i64, pub currency: String }
///
/// impl From<MoneyDepositedV1> for MoneyDeposited {
///     fn from(old: MoneyDepositedV1) -> Self { Self { amount: old.amount, currency: "EUR".into() } }
/// }
/// ```
///
/// Without `aggregate` or `name`, the type is the snake_case type name. Names are lower case
/// from `[a-z0-9_.-]`. The struct must also implement `Serialize`, `Deserialize` and
/// `JsonSchema`; it is registered in the [`schema`] registry.
///
/// On an enum, every variant wraps one event struct (`Opened(AccountOpened)`); `From` is
/// generated for each, and two variants of the same event type are an error.
pub use eventcore_derive::DomainEvent;

/// Derives [`IntegrationEvent`](trait@IntegrationEvent): a message of the published language
/// between services, named and versioned explicitly, never stored in a stream.
///
/// `#[integration(...)]` takes:
///
/// - `name = "billing.invoice_paid"` (required): the published name, lower case from
///   `[a-z0-9_.-]`; it is the contract, so it is never derived from the Rust type name;
/// - `version = 2`: the schema version (1 and up, default 1); older versions reach the current
///   one through `#[upcaster(event = "<name>", from = N)]` steps, as for domain events;
/// - `crate = "path"`: where the generated code finds `eventcore` when renamed or re-exported.
///
/// The type (a struct or an enum) must implement `Serialize`, `Deserialize` and `JsonSchema`;
/// it is registered in the [`schema`] registry as an entry of kind `integration`.
///
/// ```
/// use eventcore::integration::{IntegrationMessage, MessageMeta};
/// use eventcore::prelude::*;
/// use serde::{Deserialize, Serialize};
/// # use schemars::JsonSchema;
///
/// #[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, PartialEq)]
/// #[integration(name = "billing.invoice_paid", version = 1)]
/// pub struct InvoicePaid { pub invoice: String, pub amount: i64 }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let paid = InvoicePaid { invoice: "inv-1".into(), amount: 30 };
/// let message = IntegrationMessage::new(&paid, &MessageMeta::new().correlation_id("req-7"))?;
/// let json = message.to_cloudevent()?;                 // CloudEvents 1.0, structured JSON
/// let back = IntegrationMessage::from_cloudevent(&json)?;
/// assert_eq!(back.decode::<InvoicePaid>()?, paid);
/// # Ok(()) }
/// ```
///
/// Mistakes are compile errors at the offending token: a missing `name`, an invalid name, a
/// version that is 0 or not an integer, an unknown or repeated key, a union or generic type, and
/// a type without `Serialize`, `Deserialize` or `JsonSchema`.
pub use eventcore_derive::IntegrationEvent;

/// Implements [`Aggregate`] and [`Handle`] from an `impl` block.
///
/// `#[aggregate(events = E, error = Err)]`, with `name = "..."` to override the aggregate type
/// name (default: the snake_case type name). Inside, `#[command] fn name(&self, cmd: C) ->
/// Result<Vec<E>, Err>` handles a command and `#[apply] fn name(&mut self, event: &Ev)` applies
/// one event of the set. Every event of the set needs exactly one `#[apply]`.
///
/// Options of `#[aggregate(...)]`:
///
/// - `events = E` (required): the event enum (or a single event struct) the aggregate applies;
/// - `error = Err` (required): the error its commands return;
/// - `name = "..."`: the aggregate type name (default: the snake_case type name);
/// - `snapshot_every = N`: store a JSON snapshot of the state every `N` events (the state must
///   implement `Serialize` and `Deserialize`), with `snapshot_version = V` (default 1) to make
///   older snapshots be ignored after the state's shape changes;
/// - `crate = "path"`: where the generated code finds `eventcore` when the dependency is renamed
///   or re-exported (also accepted by `#[event(...)]`).
///
/// Mistakes are compile errors at the offending token: an event of the set without `#[apply]`
/// (at `events = ...`), an `#[apply]` for an event outside the set, two handlers for one event
/// or command, a wrong receiver (`&self` for commands, `&mut self` for `#[apply]`), a missing
/// return type on a command, a return type on an `#[apply]`, `async` or generic handlers.
pub use eventcore_derive::aggregate;

/// Registers a function over a stored payload's JSON as the upcaster of one (type, version).
///
/// For changes where the old struct is not worth keeping. `#[upcaster(event = "...", from = N)]`
/// on `fn(serde_json::Value) -> Result<T, E>`, where `UpcastError: From<E>` and `T` is:
///
/// - `serde_json::Value`: one event, of the same type at version `to` (default `from + 1`), or
///   of type `rename = "..."` (a rename);
/// - `Option<Value>` or `Vec<Value>`: zero or several such events;
/// - [`Upcasted`](schema::Upcasted) or `Vec<Upcasted>`: events naming their own type and version,
///   each of which must be declared with `produces = ["account.withdrawn@1", ...]`.
///
/// ```
/// use eventcore::schema::UpcastError;
/// use serde_json::Value;
///
/// #[eventcore::upcaster(event = "account.money_deposited", from = 1)]
/// fn add_currency(mut payload: Value) -> Result<Value, UpcastError> {
///     let fields = payload.as_object_mut().ok_or_else(|| UpcastError::new("not an object"))?;
///     fields.insert("currency".into(), "EUR".into());
///     Ok(payload)
/// }
/// ```
///
/// The chain of upcasters runs on every load; [`schema::Registry::validate`] reports gaps.
pub use eventcore_derive::upcaster;

/// Implements [`Projection`](trait@Projection) from an `impl` block of `#[on]` handlers.
///
/// The type is the document: one value per key, `Default` before its first event, stored as
/// JSON (it implements `Serialize` and `Deserialize`). Each handler folds one event struct `E`
/// of any aggregate into it:
///
/// - `#[on] fn name(&mut self, e: &E)`, or `e: &Envelope<E>` to see the envelope too (ids,
///   positions, time, correlation, metadata);
/// - the document key is the event's aggregate id, or with `#[on(key = field)]` the payload
///   field `field`, converted with `ToString`;
/// - a handler returns nothing, or `Result<(), Err>` for an error type `Err`: a failing event
///   is retried by the runner, never skipped.
///
/// Options of `#[projection(...)]`:
///
/// - `name = "..."`: the projection name, `[a-z0-9_]` (default: the snake_case type name,
///   `AccountSummary` -> `account_summary`);
/// - `version = N`: the version of the documents (1 and up, default 1); bump it when the
///   document's shape or the handlers change, so the documents are rebuilt;
/// - `crate = "path"`: where the generated code finds `eventcore` when renamed or re-exported.
///
/// ```
/// use eventcore::prelude::*;
/// use serde::{Deserialize, Serialize};
/// # use schemars::JsonSchema;
/// # #[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
/// # #[event(aggregate = "order")]
/// # pub struct OrderPlaced { pub customer: String, pub amount: i64 }
///
/// /// Spending per customer, whatever the order.
/// #[derive(Debug, Default, Serialize, Deserialize)]
/// pub struct CustomerSpending { pub orders: u32, pub total: i64, pub last_order: String }
///
/// #[projection(name = "spending", version = 2)]
/// impl CustomerSpending {
///     #[on(key = customer)]
///     fn placed(&mut self, e: &Envelope<OrderPlaced>) {
///         self.orders += 1;
///         self.total += e.payload.amount;
///         self.last_order = e.aggregate_id.clone();
///     }
/// }
/// ```
///
/// Mistakes are compile errors at the offending token: two handlers for one event, a parameter
/// that is not an event struct, a `key` field the event lacks, a wrong receiver (`&mut self`),
/// parameter or return type, `async` or generic handlers, an unknown option, and a projection
/// without any `#[on]` handler.
pub use eventcore_derive::projection;

/// Implements [`EventHandler`](bus::EventHandler) from an `impl` block of `#[on]` async handlers.
///
/// An event handler reacts to committed events after the commit, at least once, in its own
/// time: sending mail, calling other services, publishing. Each handler takes one event struct
/// `E` of any aggregate:
///
/// - `#[on] async fn name(&self, e: &E) -> Result<(), Err>`, or `e: &Envelope<E>` to see the
///   envelope too (ids, positions, time, correlation, metadata);
/// - the receiver is `&self`: handlers may run concurrently, so shared state goes behind a
///   `Mutex` or an atomic;
/// - `Err` is any `std::error::Error + Send + Sync + 'static`: a failing event is retried with
///   backoff, then dead-lettered as `HandleError::Handler` naming the method.
///
/// The generated `handle` skips a record of a type no handler takes (also reached through an
/// upcaster from an older name) without decoding it, decodes the others once (upcasting older
/// versions; a record that an upcaster splits calls the handler once per event), awaits the
/// handler, and reports a record that does not decode as `HandleError::Decode`, which is never
/// retried. Handlers run at least once per event: make them idempotent, with the envelope's
/// `event_id`.
///
/// Options of `#[event_handler(...)]`:
///
/// - `name = "..."`: the consumer name, `[a-z0-9_]`, which keys its checkpoint, its lease and
///   its dead letters (default: the snake_case type name, `Welcome` -> `welcome`);
/// - `crate = "path"`: where the generated code finds `eventcore` when renamed or re-exported.
///
/// ```
/// use eventcore::bus::{EventHandler, Handled};
/// use eventcore::NewEvent;
/// use eventcore::prelude::*;
/// use serde::{Deserialize, Serialize};
/// use std::sync::{Arc, Mutex};
/// # use schemars::JsonSchema;
/// # #[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
/// # #[event(aggregate = "account")]
/// # pub struct AccountOpened { pub owner: String }
///
/// #[derive(Clone, Default)]
/// pub struct Welcome { pub sent: Arc<Mutex<Vec<String>>> }
///
/// #[derive(Debug, thiserror::Error)]
/// #[error("mail server unavailable")]
/// pub struct MailDown;
///
/// #[event_handler] // consumer name "welcome"
/// impl Welcome {
///     #[on]
///     async fn opened(&self, e: &Envelope<AccountOpened>) -> Result<(), MailDown> {
///         self.sent.lock().map_err(|_| MailDown)?.push(e.payload.owner.clone());
///         Ok(())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// assert_eq!(Welcome::NAME, "welcome");
/// assert_eq!(Welcome::HANDLED_EVENT_TYPES, ["account.opened"]);
/// let opened = NewEvent::encode(&AccountOpened { owner: "ada".into() }, "account", "acc-1")?
///     .into_recorded("account-acc-1", 1, 0);
/// let welcome = Welcome::default();
/// assert_eq!(welcome.handle(&opened).await?, Handled::Done);
/// assert_eq!(*welcome.sent.lock().unwrap(), ["ada"]);
/// # Ok(()) }
/// ```
///
/// Mistakes are compile errors at the offending token: a handler that is not `async`, a
/// receiver other than `&self`, two handlers for one event, a parameter that is not an event
/// struct, a return type other than `Result<(), E>`, an error type that is not
/// `std::error::Error`, an unknown option, an invalid name, and an `impl` block without any
/// `#[on]` handler.
pub use eventcore_derive::event_handler;

/// Implements [`Saga`](saga::Saga) from an `impl` block of event and deadline handlers.
///
/// A saga (process manager) coordinates aggregates over time: one instance per key value, its
/// state a serde struct (`Default` at the start), its effects commands sent to other
/// aggregates and deadlines. `#[saga(commands = C)]` names the command type; handlers are
/// `fn(&mut self, e: &E, cx: &mut SagaContext<Self>)` (or `e: &Envelope<E>`), marked:
///
/// - `#[start(key = field)]`: creates the instance for the value of the payload field `field`
///   (converted with `ToString`), unless that key has one already (then nothing runs);
/// - `#[handle(key = field)]`: runs on the instance the key finds (an event for a key with no
///   instance is counted and traced, never retried);
/// - `#[end(key = field)]`: runs, then ends the instance (its deadlines are cancelled, later
///   events for its keys do nothing);
/// - `#[deadline]`: `fn(&mut self, d: &D, cx: &mut SagaContext<Self>)` runs when a deadline of
///   type `D` (a serde type) scheduled with [`SagaContext::schedule`](saga::SagaContext::schedule)
///   falls due.
///
/// Options of `#[saga(...)]`: `commands = C` (required; a serde type), `name = "..."` (default:
/// the snake_case type name), `version = N` (default 1), `crate = "path"`.
///
/// ```
/// use eventcore::prelude::*;
/// use eventcore::saga::{Saga, SagaContext};
/// use serde::{Deserialize, Serialize};
/// use std::time::Duration;
/// # use schemars::JsonSchema;
/// # #[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
/// # #[event(aggregate = "order")]
/// # pub struct OrderPlaced { pub order_id: String }
/// # #[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
/// # #[event(aggregate = "order")]
/// # pub struct OrderPaid { pub order_id: String }
///
/// #[derive(Debug, Serialize, Deserialize)]
/// pub enum Reminder { Send { order_id: String } }
///
/// #[derive(Debug, Serialize, Deserialize)]
/// pub struct Remind;
///
/// #[derive(Debug, Default, Serialize, Deserialize)]
/// pub struct PaymentReminder { pub reminded: bool }
///
/// #[saga(commands = Reminder)]
/// impl PaymentReminder {
///     #[start(key = order_id)]
///     fn placed(&mut self, _: &OrderPlaced, cx: &mut SagaContext<Self>) {
///         cx.schedule(Duration::from_secs(3600), Remind);
///     }
///     #[end(key = order_id)]
///     fn paid(&mut self, _: &OrderPaid, _: &mut SagaContext<Self>) {}
///     #[deadline]
///     fn remind(&mut self, _: &Remind, cx: &mut SagaContext<Self>) {
///         self.reminded = true;
///         let order_id = cx.id().to_owned();
///         cx.send(Reminder::Send { order_id });
///     }
/// }
///
/// assert_eq!(PaymentReminder::NAME, "payment_reminder");
/// assert_eq!(PaymentReminder::HANDLED_EVENT_TYPES, ["order.paid", "order.placed"]);
/// ```
///
/// Mistakes are compile errors at the offending token: no `#[start]` handler, a `key` field the
/// event lacks, two handlers for one event or deadline type, scheduling a deadline type with
/// no `#[deadline]` handler, sending a command of another type than `C`, a wrong receiver or
/// parameter, a return type, `async` or generic handlers, and unknown options.
pub use eventcore_derive::saga;

/// The common imports: `use eventcore::prelude::*;`.
pub mod prelude {
    #[cfg(feature = "postgres")]
    pub use crate::PostgresStore;
    #[cfg(feature = "sqlite")]
    pub use crate::SqliteStore;
    pub use crate::{
        aggregate, event_handler, projection, saga, upcaster, Aggregate, CommandContext, DomainEvent,
        Envelope, EventStore, ExpectedVersion, Handle, IntegrationEvent, MemoryStore, Projection,
        RecordedEvent, Repository, RepositoryError, StoreError, SubscribeAll,
    };
}

/// Items the macros' generated code uses. Not public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::aggregate::{
        decode_snapshot_json, encode_snapshot_json, Aggregate, Apply, Dispatch, Handle, SnapshotPolicy,
    };
    pub use crate::bus::support::{
        decode_event, handler_failed, handler_result as event_handler_result, EventHandlerError,
        HandlerResult, HandlesEvent,
    };
    pub use crate::bus::{EventHandler, HandleError, Handled};
    pub use crate::envelope::{Envelope, RecordedEvent};
    pub use crate::event::{DecodeError, DomainEvent, EncodeError, EventDescriptor, EventOf, SingleEvent};
    pub use crate::integration::{IntegrationEvent, IntegrationRegistration};
    pub use crate::projection::support::{
        decode_handled, handler_result, handles, routes_to, sorted_event_types, HandlerOutput,
    };
    pub use crate::projection::{Handles, Projection, ProjectionError, Routed};
    pub use crate::saga::support::{decode_deadline, decode_saga_event, key_of, unknown_deadline};
    pub use crate::saga::{
        HandlesSagaEvent, Role, Saga, SagaCommands, SagaContext, SagaDeadline, SagaError, SagaRoute,
    };
    pub use crate::schema::{
        into_upcasted, one_step, typed_upcast, AggregateRegistration, ConsumerKind, ConsumerRegistration,
        EventProbe, EventRegistration, HandledEvent, HandlerRole, ProbeAny, ProbeEvent, UpcastError,
        Upcasted, UpcasterKind, UpcasterRegistration,
    };

    /// Fails constant evaluation unless `Old` is an older version of `New` or another event type
    /// (asserted on `#[event(upcast_from = Old)]`).
    #[allow(clippy::panic)] // evaluated only at compile time, where a panic is the error message
    pub const fn assert_upcast_order<Old: SingleEvent, New: SingleEvent>() {
        if str_eq(Old::EVENT_TYPE, New::EVENT_TYPE) && Old::EVENT_VERSION >= New::EVENT_VERSION {
            panic!("`upcast_from` must name an older version of the event (or an event of another type, for a rename)");
        }
    }
    pub use inventory;
    pub use schemars;
    pub use serde_json;

    /// Encodes an event struct's payload.
    pub fn encode_single<E: SingleEvent>(event: &E) -> Result<Vec<u8>, EncodeError> {
        crate::event::encode_single(event)
    }

    /// Decodes an event struct's payload.
    pub fn decode_single<E: SingleEvent>(
        event_type: &str,
        version: u32,
        payload: &[u8],
    ) -> Result<E, DecodeError> {
        crate::event::decode_single(event_type, version, payload)
    }

    /// The error for an event type outside an enum's set.
    pub fn unknown_event_type(event_type: &str, known: &[EventDescriptor]) -> DecodeError {
        crate::event::unknown_event_type(event_type, known)
    }

    /// What the `error` of an aggregate must be; asserted at `error = ...` so the message names
    /// `std::error::Error` and the fix.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` is not an error type: the `error` of an aggregate implements `std::error::Error`",
        label = "not a `std::error::Error + Send + Sync + 'static`",
        note = "derive it: `#[derive(Debug, thiserror::Error)]` with an `#[error(\"...\")]` message"
    )]
    pub trait AggregateError: std::error::Error + Send + Sync + 'static {}

    impl<T: std::error::Error + Send + Sync + 'static> AggregateError for T {}

    /// Compiles only if `E` can be the error of an aggregate.
    pub const fn assert_aggregate_error<E: AggregateError>() {}

    /// Compiles only if `E` is an event of the set `Set` (asserted on each `#[apply]` parameter).
    pub const fn assert_event_of<E: EventOf<Set> + ?Sized, Set>() {}

    /// The error message when the variant at `index` of the enum `set` has the event type of an
    /// earlier variant; the derive panics with it in constant evaluation.
    pub const fn duplicate_event_type(
        set: &str,
        variants: &[&str],
        event_types: &[&str],
        index: usize,
    ) -> Option<ConstMessage> {
        let mut earlier = 0;
        while earlier < index {
            if str_eq(event_types[earlier], event_types[index]) {
                let mut message = ConstMessage::new();
                message.push("two variants of `");
                message.push(set);
                message.push("`, `");
                message.push(variants[earlier]);
                message.push("` and `");
                message.push(variants[index]);
                message.push("`, have the event type `");
                message.push(event_types[index]);
                message.push("`");
                return Some(message);
            }
            earlier += 1;
        }
        None
    }

    /// The error message when an event of the set of the aggregate `aggregate` declares another
    /// aggregate; `#[aggregate]` panics with it in constant evaluation.
    pub const fn foreign_event(
        aggregate: &str,
        event_types: &[EventDescriptor],
        aggregates: &[Option<&str>],
    ) -> Option<ConstMessage> {
        let mut i = 0;
        while i < aggregates.len() && i < event_types.len() {
            if let Some(declared) = aggregates[i] {
                if !str_eq(declared, aggregate) {
                    let mut message = ConstMessage::new();
                    message.push("the event `");
                    message.push(event_types[i].event_type);
                    message.push("` declares `aggregate = \"");
                    message.push(declared);
                    message.push("\"` but is in the event set of the aggregate `");
                    message.push(aggregate);
                    message.push("`: declare `#[event(aggregate = \"");
                    message.push(aggregate);
                    message.push("\")]` on it, or move it to the set of `");
                    message.push(declared);
                    message.push("`");
                    return Some(message);
                }
            }
            i += 1;
        }
        None
    }

    /// `a == b`, in constant evaluation.
    pub const fn str_eq(a: &str, b: &str) -> bool {
        let (a, b) = (a.as_bytes(), b.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        let mut i = 0;
        while i < a.len() {
            if a[i] != b[i] {
                return false;
            }
            i += 1;
        }
        true
    }

    /// A message built in constant evaluation, cut at 512 bytes.
    pub struct ConstMessage {
        bytes: [u8; 512],
        len: usize,
    }

    impl ConstMessage {
        const fn new() -> Self {
            ConstMessage {
                bytes: [0; 512],
                len: 0,
            }
        }

        const fn push(&mut self, text: &str) {
            let text = text.as_bytes();
            let mut i = 0;
            while i < text.len() && self.len < self.bytes.len() {
                self.bytes[self.len] = text[i];
                self.len += 1;
                i += 1;
            }
        }

        /// The message text.
        pub const fn as_str(&self) -> &str {
            match core::str::from_utf8(self.bytes.split_at(self.len).0) {
                Ok(text) => text,
                Err(_) => "an event set is invalid: check the event types and aggregates of its variants",
            }
        }
    }

    /// The JSON Schema of an event struct.
    pub fn schema_of<E: schemars::JsonSchema>() -> schemars::Schema {
        schemars::SchemaGenerator::default().into_root_schema_for::<E>()
    }
}
