//! Upcasters: functions that turn a stored payload of an old event version into current events.
//!
//! Every upcaster is registered through `inventory` as an [`UpcasterRegistration`] for one step
//! `(event_type, from_version)`, and works on raw JSON: it may return one event (a version bump),
//! several or none (a split, or a retired event), and the events may carry another type name (a
//! rename). A typed upcaster (an old struct and `From<Old> for New`) is the same registration with
//! [`typed_upcast`] as its function. The chain runs in [`crate::codec::decode_record`], so every
//! load path upcasts.

use serde_json::Value;

use crate::event::{EventDescriptor, SingleEvent};

/// One event produced by an upcaster: its type, version and JSON payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Upcasted {
    /// Event type name of the produced event.
    pub event_type: String,
    /// Schema version of the produced event.
    pub version: u32,
    /// JSON payload, matching that type and version.
    pub payload: Value,
}

impl Upcasted {
    /// An event of `event_type` at `version` with `payload`.
    pub fn new(event_type: impl Into<String>, version: u32, payload: Value) -> Self {
        Self {
            event_type: event_type.into(),
            version,
            payload,
        }
    }
}

impl From<(String, u32, Value)> for Upcasted {
    fn from((event_type, version, payload): (String, u32, Value)) -> Self {
        Self::new(event_type, version, payload)
    }
}

/// The function of an upcaster: the payload of the old version in, the produced events out.
pub type UpcastFn = fn(Value) -> Result<Vec<Upcasted>, UpcastError>;

/// How an upcaster was declared, for the registry and the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpcasterKind {
    /// An old struct converted with `From<Old> for New`.
    Typed,
    /// A function over the JSON payload.
    Raw,
}

/// One upcaster step, registered with `inventory` (by the macros, or by hand with `inventory::submit!`).
///
/// ```
/// use eventcore::schema::{UpcastError, Upcasted, UpcasterKind, UpcasterRegistration};
/// use eventcore::EventDescriptor;
///
/// fn add_currency(mut payload: serde_json::Value) -> Result<Vec<Upcasted>, UpcastError> {
///     let object = payload.as_object_mut().ok_or_else(|| UpcastError::new("payload is not an object"))?;
///     object.insert("currency".into(), "EUR".into());
///     Ok(vec![Upcasted::new("doc.deposited", 2, payload)])
/// }
///
/// eventcore::__private::inventory::submit! {
///     UpcasterRegistration {
///         event_type: "doc.deposited",
///         from_version: 1,
///         produces: &[EventDescriptor { event_type: "doc.deposited", version: 2 }],
///         kind: UpcasterKind::Raw,
///         name: "add_currency",
///         upcast: add_currency,
///     }
/// }
/// ```
#[derive(Debug)]
pub struct UpcasterRegistration {
    /// The event type this upcaster reads.
    pub event_type: &'static str,
    /// The version this upcaster reads.
    pub from_version: u32,
    /// Every (type, version) it may produce; producing anything else is an error. Empty: it
    /// retires the event (always produces nothing).
    pub produces: &'static [EventDescriptor],
    /// How it was declared.
    pub kind: UpcasterKind,
    /// The Rust function or conversion, for reports (`module::function`, `From<Old> for New`).
    pub name: &'static str,
    /// The function itself.
    pub upcast: UpcastFn,
}

inventory::collect!(UpcasterRegistration);

/// Every registered upcaster, in no particular order.
pub fn registered_upcasters() -> impl Iterator<Item = &'static UpcasterRegistration> {
    inventory::iter::<UpcasterRegistration>.into_iter()
}

/// An upcaster failed, or the chain of upcasters could not run.
#[derive(Debug, thiserror::Error)]
pub enum UpcastError {
    /// The payload does not have the shape the upcaster expects (its own explanation).
    #[error("{0}")]
    Invalid(String),
    /// A typed upcaster could not read the old payload or write the new one.
    #[error("payload of `{event_type}` version {version} does not match its struct: {source}")]
    Payload {
        /// The type being read or written.
        event_type: &'static str,
        /// Its version.
        version: u32,
        /// What serde reported.
        #[source]
        source: serde_json::Error,
    },
    /// An upcaster produced a (type, version) it did not declare in `produces`.
    #[error("upcaster `{upcaster}` produced `{event_type}` version {version}, which it does not declare")]
    UndeclaredOutput {
        /// The upcaster.
        upcaster: &'static str,
        /// The produced type.
        event_type: String,
        /// The produced version.
        version: u32,
    },
    /// Two or more upcasters are registered for the same step, so none is chosen.
    #[error("{count} upcasters are registered for `{event_type}` version {from_version}: {names}")]
    Ambiguous {
        /// The type.
        event_type: String,
        /// The version.
        from_version: u32,
        /// How many.
        count: usize,
        /// Their names, comma separated.
        names: String,
    },
    /// The chain did not reach current events within the step limit (a cycle of renames or versions).
    #[error("upcasting did not reach a current version within {0} steps (a cycle of upcasters?)")]
    TooManySteps(usize),
}

impl UpcastError {
    /// An upcaster's own error: the payload is not what it expects.
    pub fn new(message: impl Into<String>) -> Self {
        Self::Invalid(message.into())
    }

    /// The payload lacks a field the upcaster needs.
    pub fn missing_field(field: &str) -> Self {
        Self::Invalid(format!("missing field `{field}`"))
    }
}

/// The function of a typed upcaster: decodes `Old`, converts with `From`, encodes `New`.
///
/// What `#[event(upcast_from = Old)]` registers as the step from `Old`'s version.
pub fn typed_upcast<Old, New>(payload: Value) -> Result<Vec<Upcasted>, UpcastError>
where
    Old: SingleEvent,
    New: SingleEvent + From<Old>,
{
    let old: Old = serde_json::from_value(payload).map_err(|source| UpcastError::Payload {
        event_type: Old::EVENT_TYPE,
        version: Old::EVENT_VERSION,
        source,
    })?;
    let new = serde_json::to_value(New::from(old)).map_err(|source| UpcastError::Payload {
        event_type: New::EVENT_TYPE,
        version: New::EVENT_VERSION,
        source,
    })?;
    Ok(vec![Upcasted::new(New::EVENT_TYPE, New::EVENT_VERSION, new)])
}

/// The output of a raw upcaster that keeps the type and bumps the version: one event.
///
/// Lets an `#[upcaster]` function return just the new payload.
pub fn one_step(event_type: &str, to_version: u32, payload: Value) -> Vec<Upcasted> {
    vec![Upcasted::new(event_type, to_version, payload)]
}

/// What an `#[upcaster]` function may return inside its `Ok`: the events it produces.
///
/// A bare payload (`Value`, `Option<Value>`, `Vec<Value>`) goes to the upcaster's declared
/// target (`to` / `rename`, or the first of `produces`); [`Upcasted`] names its own type and version.
#[diagnostic::on_unimplemented(
    message = "an `#[upcaster]` function cannot return `{Self}` as its events",
    note = "return `Result<T, UpcastError>` with `T` one of `serde_json::Value`, `Upcasted`, or an `Option` or `Vec` of either"
)]
pub trait IntoUpcasted {
    /// The produced events; bare payloads become `event_type` at `version`.
    fn into_upcasted(self, event_type: &str, version: u32) -> Vec<Upcasted>;
}

impl IntoUpcasted for Value {
    fn into_upcasted(self, event_type: &str, version: u32) -> Vec<Upcasted> {
        vec![Upcasted::new(event_type, version, self)]
    }
}

impl IntoUpcasted for Option<Value> {
    fn into_upcasted(self, event_type: &str, version: u32) -> Vec<Upcasted> {
        self.into_iter()
            .map(|p| Upcasted::new(event_type, version, p))
            .collect()
    }
}

impl IntoUpcasted for Vec<Value> {
    fn into_upcasted(self, event_type: &str, version: u32) -> Vec<Upcasted> {
        self.into_iter()
            .map(|p| Upcasted::new(event_type, version, p))
            .collect()
    }
}

impl IntoUpcasted for Upcasted {
    fn into_upcasted(self, _: &str, _: u32) -> Vec<Upcasted> {
        vec![self]
    }
}

impl IntoUpcasted for Option<Upcasted> {
    fn into_upcasted(self, _: &str, _: u32) -> Vec<Upcasted> {
        self.into_iter().collect()
    }
}

impl IntoUpcasted for Vec<Upcasted> {
    fn into_upcasted(self, _: &str, _: u32) -> Vec<Upcasted> {
        self
    }
}

/// Adapts an `#[upcaster]` function's result to [`UpcastFn`]'s (used by the macro).
pub fn into_upcasted<T: IntoUpcasted, E>(
    result: Result<T, E>,
    event_type: &str,
    version: u32,
) -> Result<Vec<Upcasted>, UpcastError>
where
    UpcastError: From<E>,
{
    Ok(result?.into_upcasted(event_type, version))
}
