//! The registry: every event type, version and upcaster linked into the binary, as plain data
//! that serializes to deterministic JSON and reads back for comparison.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::registration::{
    registered_aggregates, registered_consumers, registered_events, AggregateRegistration, ConsumerKind,
    ConsumerRegistration, EventRegistration, HandlerRole,
};
use super::upcast::{registered_upcasters, UpcasterKind, UpcasterRegistration};
use crate::integration::{registered_integration_events, IntegrationRegistration};

/// Version of the registry's JSON format; [`Registry::from_json`] rejects newer ones.
pub const REGISTRY_FORMAT_VERSION: u32 = 1;

/// Every event type and version linked into the binary, with schemas and upcasters.
///
/// Integration events (`#[derive(IntegrationEvent)]`) are entries too, with `"kind": "integration"`
/// (domain entries carry no `kind`), so the check and the compatibility rules cover them alike.
///
/// JSON format (`format_version` 1), sorted and without addresses or timestamps so the same code
/// always exports the same bytes:
///
/// ```json
/// {
///   "format_version": 1,
///   "events": [
///     { "event_type": "account.money_deposited", "version": 2, "aggregate": "account",
///       "rust_type": "bank::MoneyDeposited", "schema": { "$schema": "https://json-schema.org/draft/2020-12/schema", "...": "..." },
///       "upcasters": [ { "event_type": "account.money_deposited", "from_version": 1, "kind": "typed", "name": "..." } ] }
///   ],
///   "upcasters": [
///     { "event_type": "account.money_deposited", "from_version": 1, "kind": "typed", "name": "...",
///       "produces": [ { "event_type": "account.money_deposited", "version": 2 } ] }
///   ]
/// }
/// ```
///
/// `events` is sorted by type then version; each entry's `upcasters` are the steps producing it
/// directly. The top-level `upcasters` lists every step, including those from versions whose
/// struct is gone, sorted by type, version and name. Object keys inside schemas are sorted.
///
/// `retired` (left out when empty) keeps the versions whose struct is gone but whose stored
/// events an upcaster still reads, with their last schema and the upcasters reading them: the
/// registry check keeps them from the committed file ([`Registry::keeping_retired`]), so a
/// rewrite never erases what stored events depend on.
///
/// `consumers` (left out when empty, so files from before it read the same) lists every
/// projection, event handler and saga with the events it handles and how, the aggregates (or
/// `"integration"`) emitting each, and a saga's commands and deadlines:
///
/// ```json
/// "consumers": [
///   { "name": "checkout", "version": 1, "kind": "saga", "rust_type": "shop::Checkout",
///     "handles": [ { "event_type": "order.placed", "version": 1, "role": "start", "key": "order_id",
///                    "method": "placed", "emitted_by": ["order"] } ],
///     "commands": "ShopCommand", "deadlines": ["PaymentTimedOut"] }
/// ]
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Registry {
    /// The format version, [`REGISTRY_FORMAT_VERSION`] when exported.
    pub format_version: u32,
    /// Every registered event type and version.
    pub events: Vec<RegistryEntry>,
    /// Every registered upcaster step.
    #[serde(default)]
    pub upcasters: Vec<UpcasterEntry>,
    /// Versions no longer registered whose stored events upcasters read, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired: Vec<RetiredEntry>,
    /// Every registered projection, event handler and saga, sorted by kind and name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consumers: Vec<ConsumerEntry>,
}

/// A projection, event handler or saga: the events it handles and the commands it sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerEntry {
    /// Its name.
    pub name: String,
    /// Its version (none for event handlers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// What it is.
    pub kind: ConsumerKind,
    /// The Rust type's path.
    pub rust_type: String,
    /// The events it handles, sorted by type, version and method.
    pub handles: Vec<HandledEntry>,
    /// A saga's command type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commands: Option<String>,
    /// A saga's deadline types, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deadlines: Vec<String>,
}

/// One event a consumer handles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandledEntry {
    /// Event type name.
    pub event_type: String,
    /// The version the handler takes.
    pub version: u32,
    /// How it handles it.
    pub role: HandlerRole,
    /// The payload field keying the document or instance (absent: the aggregate id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The handling method.
    pub method: String,
    /// The aggregates emitting the type, and `"integration"` for an integration event, sorted;
    /// empty when nothing registered emits it, which the registry check reports.
    #[serde(default)]
    pub emitted_by: Vec<String>,
}

/// What [`HandledEntry::emitted_by`] says of an integration event.
pub const INTEGRATION_SOURCE: &str = "integration";

impl HandledEntry {
    /// Its type and version.
    pub fn event(&self) -> EventRef {
        EventRef {
            event_type: self.event_type.clone(),
            version: self.version,
        }
    }
}

/// A version retired in favour of an upcaster: its struct is gone, its stored events are upcast.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetiredEntry {
    /// Event type name.
    pub event_type: String,
    /// Schema version.
    pub version: u32,
    /// The declared aggregate, if any.
    pub aggregate: Option<String>,
    /// The JSON Schema its stored payloads were written with.
    pub schema: Value,
    /// The upcasters that read it.
    pub read_by: Vec<String>,
}

impl RetiredEntry {
    /// Its type and version.
    pub fn event(&self) -> EventRef {
        EventRef {
            event_type: self.event_type.clone(),
            version: self.version,
        }
    }
}

/// One event type at one version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegistryEntry {
    /// Event type name.
    pub event_type: String,
    /// Schema version.
    pub version: u32,
    /// The declared aggregate, if any.
    pub aggregate: Option<String>,
    /// The Rust type's path.
    pub rust_type: String,
    /// JSON Schema (draft 2020-12) of the payload.
    pub schema: Value,
    /// The upcaster steps that produce this type and version directly.
    #[serde(default)]
    pub upcasters: Vec<UpcasterRef>,
    /// A domain event (stored in streams) or an integration event (published between services);
    /// absent from the JSON for domain events, so exports from before integration events read the same.
    #[serde(default, skip_serializing_if = "EventKind::is_domain")]
    pub kind: EventKind,
}

/// What a registry entry declares.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A domain event, `#[derive(DomainEvent)]`: stored in streams.
    #[default]
    Domain,
    /// An integration event, `#[derive(IntegrationEvent)]`: published between services, never stored in a stream.
    Integration,
}

impl EventKind {
    /// Whether this is [`EventKind::Domain`].
    pub fn is_domain(&self) -> bool {
        *self == EventKind::Domain
    }
}

/// A reference to an upcaster step, as listed on the entry it produces.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct UpcasterRef {
    /// The type the step reads.
    pub event_type: String,
    /// The version the step reads.
    pub from_version: u32,
    /// How it was declared.
    pub kind: UpcasterKind,
    /// Its Rust name.
    pub name: String,
}

/// One upcaster step.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct UpcasterEntry {
    /// The type the step reads.
    pub event_type: String,
    /// The version the step reads.
    pub from_version: u32,
    /// How it was declared.
    pub kind: UpcasterKind,
    /// Its Rust name.
    pub name: String,
    /// Every (type, version) it may produce; empty when it retires the event.
    pub produces: Vec<EventRef>,
}

/// A (type, version) pair.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EventRef {
    /// Event type name.
    pub event_type: String,
    /// Version.
    pub version: u32,
}

impl std::fmt::Display for EventRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}` v{}", self.event_type, self.version)
    }
}

/// A registry JSON document could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RegistryFormatError {
    /// Not valid registry JSON.
    #[error("not a valid eventcore registry: {0}")]
    Json(#[from] serde_json::Error),
    /// Written by a newer eventcore.
    #[error("registry format version {found} is newer than this eventcore's version {supported}")]
    UnsupportedVersion {
        /// The document's format version.
        found: u32,
        /// The newest this code reads.
        supported: u32,
    },
}

/// The registry of everything linked into this binary.
///
/// Registrations are collected by `inventory` at link time: a crate's events are only present
/// when the crate is linked into the binary. A crate that defines events but is never referenced
/// from the binary (for example a `schema` crate only listed in `Cargo.toml`) is dropped by the
/// linker; refer to any item of it (`use my_events as _;` is not enough, a used item is) so its
/// events appear.
pub fn registry() -> Registry {
    Registry::from_all_registrations(
        registered_events(),
        registered_integration_events(),
        registered_upcasters(),
    )
    .with_consumers(registered_consumers(), registered_aggregates())
}

impl Registry {
    /// A registry of the given registrations (what [`registry`] does with the linked ones).
    pub fn from_registrations<'a>(
        events: impl IntoIterator<Item = &'a EventRegistration>,
        upcasters: impl IntoIterator<Item = &'a UpcasterRegistration>,
    ) -> Self {
        Self::from_all_registrations(events, [], upcasters)
    }

    /// A registry of the given domain and integration event registrations and upcasters.
    pub fn from_all_registrations<'a>(
        events: impl IntoIterator<Item = &'a EventRegistration>,
        integration_events: impl IntoIterator<Item = &'a IntegrationRegistration>,
        upcasters: impl IntoIterator<Item = &'a UpcasterRegistration>,
    ) -> Self {
        let mut upcasters: Vec<UpcasterEntry> = upcasters.into_iter().map(UpcasterEntry::from).collect();
        upcasters.sort();
        let mut events: Vec<RegistryEntry> = events
            .into_iter()
            .map(|e| RegistryEntry {
                event_type: e.event_type.to_owned(),
                version: e.version,
                aggregate: e.aggregate.map(str::to_owned),
                rust_type: e.rust_type.to_owned(),
                schema: canonical(serde_json::Value::from((e.schema)())),
                upcasters: Vec::new(),
                kind: EventKind::Domain,
            })
            .chain(integration_events.into_iter().map(|e| RegistryEntry {
                event_type: e.name.to_owned(),
                version: e.version,
                aggregate: None,
                rust_type: e.rust_type.to_owned(),
                schema: canonical(serde_json::Value::from((e.schema)())),
                upcasters: Vec::new(),
                kind: EventKind::Integration,
            }))
            .collect();
        for entry in &mut events {
            entry.upcasters = upcasters
                .iter()
                .filter(|u| {
                    u.produces
                        .iter()
                        .any(|p| p.event_type == entry.event_type && p.version == entry.version)
                })
                .map(|u| UpcasterRef {
                    event_type: u.event_type.clone(),
                    from_version: u.from_version,
                    kind: u.kind,
                    name: u.name.clone(),
                })
                .collect();
        }
        events.sort_by(|a, b| {
            (&a.event_type, a.version, &a.rust_type).cmp(&(&b.event_type, b.version, &b.rust_type))
        });
        Self {
            format_version: REGISTRY_FORMAT_VERSION,
            events,
            upcasters,
            retired: Vec::new(),
            consumers: Vec::new(),
        }
    }

    /// This registry with `consumers` listed, each handled event with what emits it: the
    /// `aggregates` whose event set has the type, the aggregate its entry declares, or
    /// [`INTEGRATION_SOURCE`] for an integration event.
    pub fn with_consumers<'a>(
        mut self,
        consumers: impl IntoIterator<Item = &'a ConsumerRegistration>,
        aggregates: impl IntoIterator<Item = &'a AggregateRegistration>,
    ) -> Self {
        let mut emitters: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        for aggregate in aggregates {
            for event in aggregate.events {
                emitters
                    .entry(event.event_type)
                    .or_default()
                    .insert(aggregate.aggregate_type.to_owned());
            }
        }
        for entry in &self.events {
            let source = match (entry.kind, &entry.aggregate) {
                (EventKind::Integration, _) => INTEGRATION_SOURCE.to_owned(),
                (EventKind::Domain, Some(aggregate)) => aggregate.clone(),
                (EventKind::Domain, None) => continue,
            };
            emitters.entry(&entry.event_type).or_default().insert(source);
        }
        let mut entries: Vec<ConsumerEntry> = consumers
            .into_iter()
            .map(|c| {
                let mut handles: Vec<HandledEntry> = (c.handles)()
                    .into_iter()
                    .map(|h| HandledEntry {
                        event_type: h.event.event_type.to_owned(),
                        version: h.event.version,
                        role: h.role,
                        key: h.key.map(str::to_owned),
                        method: h.method.to_owned(),
                        emitted_by: emitters
                            .get(h.event.event_type)
                            .map(|s| s.iter().cloned().collect())
                            .unwrap_or_default(),
                    })
                    .collect();
                handles.sort_by(|a, b| {
                    (&a.event_type, a.version, &a.method).cmp(&(&b.event_type, b.version, &b.method))
                });
                let mut deadlines: Vec<String> = c.deadlines.iter().map(|d| (*d).to_owned()).collect();
                deadlines.sort();
                ConsumerEntry {
                    name: c.name.to_owned(),
                    version: c.version,
                    kind: c.kind,
                    rust_type: c.rust_type.to_owned(),
                    handles,
                    commands: c.commands.map(str::to_owned),
                    deadlines,
                }
            })
            .collect();
        entries.sort_by(|a, b| (a.kind, &a.name, &a.rust_type).cmp(&(b.kind, &b.name, &b.rust_type)));
        self.consumers = entries;
        self
    }

    /// The consumer of `kind` named `name`.
    pub fn consumer(&self, kind: ConsumerKind, name: &str) -> Option<&ConsumerEntry> {
        self.consumers.iter().find(|c| c.kind == kind && c.name == name)
    }

    /// This registry with the versions of `committed` that are no longer registered but still
    /// read by an upcaster here kept as [`retired`](Self::retired), with the names of those upcasters.
    pub fn keeping_retired(mut self, committed: &Registry) -> Self {
        let history = committed
            .events
            .iter()
            .map(|e| (&e.event_type, e.version, &e.aggregate, &e.schema))
            .chain(
                committed
                    .retired
                    .iter()
                    .map(|r| (&r.event_type, r.version, &r.aggregate, &r.schema)),
            );
        let mut retired: Vec<RetiredEntry> = Vec::new();
        for (event_type, version, aggregate, schema) in history {
            let known = self.get(event_type, version).is_some()
                || retired
                    .iter()
                    .any(|r| &r.event_type == event_type && r.version == version);
            let read_by: Vec<String> = self
                .steps_from(event_type, version)
                .iter()
                .map(|u| u.name.clone())
                .collect();
            if known || read_by.is_empty() {
                continue;
            }
            retired.push(RetiredEntry {
                event_type: event_type.clone(),
                version,
                aggregate: aggregate.clone(),
                schema: schema.clone(),
                read_by,
            });
        }
        retired.sort_by(|a, b| (&a.event_type, a.version).cmp(&(&b.event_type, b.version)));
        self.retired = retired;
        self
    }

    /// The pretty-printed JSON export, ending with a newline.
    pub fn to_json(&self) -> String {
        // Serializing plain strings, numbers and `Value`s cannot fail.
        let mut json = serde_json::to_string_pretty(self).unwrap_or_default();
        json.push('\n');
        json
    }

    /// Reads a registry exported by [`to_json`](Self::to_json) (or by hand), checking its format version.
    pub fn from_json(json: &str) -> Result<Self, RegistryFormatError> {
        let mut registry: Self = serde_json::from_str(json)?;
        if registry.format_version > REGISTRY_FORMAT_VERSION {
            return Err(RegistryFormatError::UnsupportedVersion {
                found: registry.format_version,
                supported: REGISTRY_FORMAT_VERSION,
            });
        }
        for entry in &mut registry.events {
            entry.schema = canonical(std::mem::take(&mut entry.schema));
        }
        for entry in &mut registry.retired {
            entry.schema = canonical(std::mem::take(&mut entry.schema));
        }
        Ok(registry)
    }

    /// The entry of `event_type` at `version` (the first, if it is registered twice).
    pub fn get(&self, event_type: &str, version: u32) -> Option<&RegistryEntry> {
        self.events
            .iter()
            .find(|e| e.event_type == event_type && e.version == version)
    }

    /// The registered versions of `event_type`, ascending.
    pub fn versions(&self, event_type: &str) -> Vec<u32> {
        let versions: BTreeSet<u32> = self
            .events
            .iter()
            .filter(|e| e.event_type == event_type)
            .map(|e| e.version)
            .collect();
        versions.into_iter().collect()
    }

    /// The newest registered version of `event_type`.
    pub fn latest_version(&self, event_type: &str) -> Option<u32> {
        self.events
            .iter()
            .filter(|e| e.event_type == event_type)
            .map(|e| e.version)
            .max()
    }

    /// Every registered event type name, sorted.
    pub fn event_types(&self) -> Vec<&str> {
        let types: BTreeSet<&str> = self.events.iter().map(|e| e.event_type.as_str()).collect();
        types.into_iter().collect()
    }

    /// The upcaster steps starting at `(event_type, version)` (more than one is an ambiguity).
    pub fn steps_from(&self, event_type: &str, version: u32) -> Vec<&UpcasterEntry> {
        self.upcasters
            .iter()
            .filter(|u| u.event_type == event_type && u.from_version == version)
            .collect()
    }

    /// The entries grouped by aggregate (`None` for events without one), each sorted.
    pub fn by_aggregate(&self) -> BTreeMap<Option<&str>, Vec<&RegistryEntry>> {
        let mut groups: BTreeMap<Option<&str>, Vec<&RegistryEntry>> = BTreeMap::new();
        for entry in &self.events {
            groups.entry(entry.aggregate.as_deref()).or_default().push(entry);
        }
        groups
    }
}

impl From<&UpcasterRegistration> for UpcasterEntry {
    fn from(u: &UpcasterRegistration) -> Self {
        let mut produces: Vec<EventRef> = u
            .produces
            .iter()
            .map(|d| EventRef {
                event_type: d.event_type.to_owned(),
                version: d.version,
            })
            .collect();
        produces.sort();
        produces.dedup();
        Self {
            event_type: u.event_type.to_owned(),
            from_version: u.from_version,
            kind: u.kind,
            name: u.name.to_owned(),
            produces,
        }
    }
}

/// `value` with every object's keys in sorted order, whatever map serde_json was built with.
pub(crate) fn canonical(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let sorted: BTreeMap<String, Value> = map.into_iter().map(|(k, v)| (k, canonical(v))).collect();
            Value::Object(sorted.into_iter().collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(canonical).collect()),
        other => other,
    }
}
