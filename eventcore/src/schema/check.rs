//! The registry check: the registry this code builds against the one committed in the repository.
//!
//! [`check`] returns a structured [`CheckReport`]; `eventcore_testing::assert_registry` turns it
//! into a test, and a command line can print it. It finds:
//!
//! - a committed (type, version) whose schema changed: stored events of it may no longer decode
//!   (fix: restore it, give the change a new version and an upcaster). Annotations (`title`,
//!   `description`, `examples`, `$comment`, `deprecated`: doc comments, in schemars) and the Rust
//!   type name are not part of the contract: changing them is no finding ([`strip_annotations`]);
//! - a committed type of which no version is registered (its crate may not be linked);
//! - a committed (type, version) that is gone, neither registered nor read by an upcaster;
//! - a committed upcaster step that is gone, or now reads another type or version;
//! - an upcaster that renames a type the committed registry never had (an `upcast_from` struct
//!   without `name = "..."` is its own type, `LampOnV1` is `lamp.on_v1`);
//! - a committed version with no upcaster path to the current version of its type;
//! - problems of the current registry itself ([`Registry::validate`]: gaps behind any upcaster,
//!   ambiguous steps, duplicates, cycles);
//! - a projection, event handler or saga handling an event type that no registered aggregate
//!   emits and no integration event declares: it would wait for events that never come (a typo
//!   in the event, or the emitting crate is not linked);
//! - a new version that breaks the type's [`Compatibility`] mode against older versions. An older
//!   version that upcasters carry to the new one is read through them, so the backward half of
//!   the mode (the new version reading old payloads) holds for it; the forward half (code on the
//!   old version reading new payloads) is still checked.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::Value;

use super::compat::{compare, CompatConfig, Compatibility, Direction, Incompatibility};
use super::registry::{EventRef, Registry};
use super::validate::RegistryIssue;

/// Something the registry check found.
#[derive(Debug, Clone, PartialEq)]
pub enum Finding {
    /// The schema of a committed type and version changed.
    SchemaChanged {
        /// The type and version.
        event: EventRef,
        /// Where the schemas differ (at most a few), each a JSON pointer and the change, like
        /// `/properties/owner/type: "string" -> "integer"`.
        differences: Vec<String>,
    },
    /// No version of a committed event type is registered or upcast here: its crate may not be
    /// linked into this binary, or the type was deleted.
    TypeMissing {
        /// The type.
        event_type: String,
        /// Its committed versions.
        versions: Vec<u32>,
    },
    /// A committed type and version is neither registered nor upcast any more.
    Removed {
        /// The type and version.
        event: EventRef,
    },
    /// A committed upcaster step is no longer registered: stored events of its source cannot load.
    UpcasterRemoved {
        /// The type and version it read.
        step: EventRef,
        /// Its name in the committed registry.
        name: String,
    },
    /// A committed upcaster now reads another type or version (a typo in `#[upcaster(event = ...)]`?).
    UpcasterRetargeted {
        /// Its name.
        name: String,
        /// The type and version it read in the committed registry.
        was: EventRef,
        /// What it reads now.
        now: EventRef,
    },
    /// An upcaster renames a type the committed registry never had, so it reads no stored event:
    /// typically an `upcast_from` struct without `name = "..."`, whose type name comes from the
    /// struct name (`LampOnV1` is `lamp.on_v1`).
    UpcastSourceUnknown {
        /// The upcaster.
        name: String,
        /// The type and version it reads.
        source: EventRef,
        /// The Rust type registering that source, if one does.
        rust_type: Option<String>,
        /// What it produces, and so the stored type it was probably meant to read.
        target: EventRef,
    },
    /// A committed version cannot reach the current version of its type, or the current registry
    /// has an ambiguity or duplicate.
    Registry(RegistryIssue),
    /// A new version breaks the compatibility mode against an older version.
    Incompatible {
        /// The new type and version.
        event: EventRef,
        /// The older version compared with.
        against: u32,
        /// The mode checked.
        mode: Compatibility,
        /// Which way the comparison failed.
        direction: Direction,
        /// Why.
        reasons: Vec<Incompatibility>,
    },
    /// A projection, event handler or saga handles an event type that no registered aggregate
    /// emits and no integration event declares.
    UnemittedEvent {
        /// What handles it.
        kind: super::ConsumerKind,
        /// Its name.
        consumer: String,
        /// The handling method.
        method: String,
        /// The type and version it handles.
        event: EventRef,
    },
}

impl Finding {
    /// The stored types and versions the finding concerns, which name it when it is accepted.
    pub fn events(&self) -> Vec<EventRef> {
        match self {
            Self::TypeMissing { event_type, versions } => versions
                .iter()
                .map(|&version| EventRef {
                    event_type: event_type.clone(),
                    version,
                })
                .collect(),
            Self::SchemaChanged { event, .. }
            | Self::Removed { event }
            | Self::Incompatible { event, .. } => {
                vec![event.clone()]
            }
            Self::UpcasterRemoved { step, .. } => vec![step.clone()],
            Self::UpcasterRetargeted { was, .. } => vec![was.clone()],
            Self::UpcastSourceUnknown { source, .. } => vec![source.clone()],
            Self::UnemittedEvent { event, .. } => vec![event.clone()],
            Self::Registry(issue) => vec![match issue {
                RegistryIssue::Gap { from, .. } | RegistryIssue::Cycle { from, .. } => from.clone(),
                RegistryIssue::AmbiguousUpcaster { step, .. } => step.clone(),
                RegistryIssue::DuplicateEvent { event, .. } => event.clone(),
            }],
        }
    }

    /// Whether accepting it would take entries out of the committed registry, so that stored
    /// events of them could no longer be loaded.
    pub fn removes_entries(&self) -> bool {
        matches!(
            self,
            Self::TypeMissing { .. }
                | Self::Removed { .. }
                | Self::UpcasterRemoved { .. }
                | Self::UpcasterRetargeted { .. }
        )
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SchemaChanged { event, differences } => {
                write!(f, "the schema of {event} changed; stored events of it may no longer decode:")?;
                for difference in differences {
                    write!(f, "\n      {event}: schema changed at {difference}")?;
                }
                write!(
                    f,
                    "\n    fix: restore that schema, give the change a new version and add an upcaster to it"
                )
            }
            Self::TypeMissing { event_type, versions } => {
                let versions: Vec<String> = versions.iter().map(|v| format!("v{v}")).collect();
                write!(
                    f,
                    "`{event_type}` ({}) is in the committed registry, but no version of it is registered here.\n    \
                     fix: if it is defined in a crate this binary does not link, name its event set in the check, \
                     as in `assert_registry::<(BookEvent, MemberEvent)>(path)`; if the type was deleted, restore it: \
                     stored events of it must stay readable (keep its struct, or an upcaster from each version)",
                    versions.join(", ")
                )
            }
            Self::Removed { event } => write!(
                f,
                "{event} is in the committed registry but no longer registered, and no upcaster reads it.\n    \
                 fix: keep the old struct, or add an upcaster from version {} of `{}`",
                event.version, event.event_type
            ),
            Self::UpcasterRemoved { step, name } => write!(
                f,
                "the upcaster `{name}` from {step} is in the committed registry but no longer registered: \
                 stored events of {step} can no longer be loaded.\n    \
                 fix: restore it (or another upcaster from {step})"
            ),
            Self::UpcasterRetargeted { name, was, now } => write!(
                f,
                "the upcaster `{name}` read {was} in the committed registry and now reads {now}: \
                 stored events of {was} can no longer be loaded.\n    \
                 fix: an upcaster reads what was stored, so its source stays {was}; check its `event` and \
                 `from` (or the name and version of its `upcast_from` struct)"
            ),
            Self::UpcastSourceUnknown {
                name,
                source,
                rust_type,
                target,
            } => {
                write!(
                    f,
                    "the upcaster `{name}` reads {source}, which the committed registry never had: no stored \
                     event has that type, so it carries nothing to {target}.\n    fix: "
                )?;
                let old = rust_type.as_deref().map_or_else(
                    || "the struct it reads".to_owned(),
                    |t| format!("`{}`", t.rsplit("::").next().unwrap_or(t)),
                );
                write!(
                    f,
                    "if {old} is an older version of `{}`, name it so: `#[event(name = \"{}\", version = {})]` \
                     (without `name`, the type name comes from the struct name)",
                    target.event_type,
                    target.event_type,
                    target.version.saturating_sub(1).max(1)
                )
            }
            Self::Registry(issue) => write!(f, "{issue}.\n    fix: add the missing upcaster or remove the duplicate"),
            Self::UnemittedEvent {
                kind,
                consumer,
                method,
                event,
            } => {
                let kind = match kind {
                    super::ConsumerKind::Projection => "projection",
                    super::ConsumerKind::EventHandler => "event handler",
                    super::ConsumerKind::Saga => "saga",
                };
                write!(
                    f,
                    "the {kind} `{consumer}` handles {event} in `{method}`, but no registered aggregate emits it \
                     and no integration event declares it, so it would never run.\n    fix: handle an event of \
                     an aggregate's event set (check the type's name and version), or link the crate of the \
                     aggregate emitting it into this binary (name its event set in the check)"
                )
            }
            Self::Incompatible {
                event,
                against,
                mode,
                direction,
                reasons,
            } => {
                write!(f, "{event} breaks {mode} compatibility with version {against}: {direction}")?;
                for reason in reasons {
                    write!(f, "\n      {reason}")?;
                }
                match direction {
                    Direction::Backward => write!(
                        f,
                        "\n    fix: add an upcaster from version {against} to version {} (stored events are then \
                         read through it, which satisfies {mode}), or make version {} read the old payloads as \
                         they are (a new field optional with `#[serde(default)]`, no field narrowed)",
                        event.version, event.version
                    ),
                    Direction::Forward => write!(
                        f,
                        "\n    fix: code still on version {against} must read the new payloads (keep the fields \
                         it requires, and unknown properties allowed where it reads them), or check `{}` in a \
                         mode without FORWARD (BACKWARD, or NONE)",
                        event.event_type
                    ),
                }
            }
        }
    }
}

/// Everything the registry check found; empty when the registries agree.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CheckReport {
    /// The findings, grouped by kind in the order above.
    pub findings: Vec<Finding>,
}

impl CheckReport {
    /// Whether nothing was found.
    pub fn is_ok(&self) -> bool {
        self.findings.is_empty()
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_ok() {
            return f.write_str("the event registry matches the committed one");
        }
        writeln!(
            f,
            "the event registry differs from the committed one ({} problem(s)):",
            self.findings.len()
        )?;
        for (i, finding) in self.findings.iter().enumerate() {
            writeln!(f, "  {}. {finding}", i + 1)?;
        }
        Ok(())
    }
}

/// Compares the `current` registry with the `committed` one under `config`.
pub fn check(committed: &Registry, current: &Registry, config: &CompatConfig) -> CheckReport {
    let mut findings = Vec::new();
    let mut path_issues = BTreeSet::new();
    let missing = missing_types(committed, current);
    for (event_type, versions) in &missing {
        findings.push(Finding::TypeMissing {
            event_type: (*event_type).to_owned(),
            versions: versions.clone(),
        });
    }
    let stored = committed
        .events
        .iter()
        .map(|e| (&e.event_type, e.version, Some(&e.schema)))
        .chain(committed.retired.iter().map(|r| (&r.event_type, r.version, None)));
    for (event_type, version, schema) in stored {
        if missing.contains_key(event_type.as_str()) {
            continue;
        }
        let event = EventRef {
            event_type: event_type.clone(),
            version,
        };
        match (current.get(event_type, version), schema) {
            (Some(new), Some(old)) => {
                let (old, new) = (strip_annotations(old), strip_annotations(&new.schema));
                if new != old {
                    findings.push(Finding::SchemaChanged {
                        differences: differences(&old, &new),
                        event: event.clone(),
                    });
                }
            }
            (None, _) if current.steps_from(event_type, version).is_empty() => {
                // A committed step from it that is gone is reported as such, below.
                if committed.steps_from(event_type, version).is_empty() {
                    findings.push(Finding::Removed { event });
                }
                continue;
            }
            _ => {}
        }
        path_issues.extend(current.path_issues(&event));
    }
    findings.extend(upcaster_findings(committed, current));
    if !committed.events.is_empty() {
        findings.extend(unknown_sources(committed, current));
    }
    if let Err(report) = current.validate() {
        path_issues.extend(report.issues);
    }
    findings.extend(path_issues.into_iter().map(Finding::Registry));
    findings.extend(compatibility(committed, current, config));
    findings.extend(unemitted_events(current));
    CheckReport { findings }
}

/// The events consumers of `current` handle that nothing in it emits.
pub fn unemitted_events(current: &Registry) -> Vec<Finding> {
    current
        .consumers
        .iter()
        .flat_map(|c| {
            c.handles
                .iter()
                .filter(|h| h.emitted_by.is_empty())
                .map(|h| Finding::UnemittedEvent {
                    kind: c.kind,
                    consumer: c.name.clone(),
                    method: h.method.clone(),
                    event: h.event(),
                })
        })
        .collect()
}

/// The committed upcaster steps that `current` no longer has: gone, or reading something else.
fn upcaster_findings(committed: &Registry, current: &Registry) -> Vec<Finding> {
    let mut findings = Vec::new();
    for old in &committed.upcasters {
        if !current.steps_from(&old.event_type, old.from_version).is_empty() {
            continue;
        }
        let was = EventRef {
            event_type: old.event_type.clone(),
            version: old.from_version,
        };
        match current.upcasters.iter().find(|u| u.name == old.name) {
            Some(now) => findings.push(Finding::UpcasterRetargeted {
                name: old.name.clone(),
                was,
                now: EventRef {
                    event_type: now.event_type.clone(),
                    version: now.from_version,
                },
            }),
            None => findings.push(Finding::UpcasterRemoved {
                step: was,
                name: old.name.clone(),
            }),
        }
    }
    findings
}

/// The renames in `current` from a (type, version) the committed registry never had.
fn unknown_sources(committed: &Registry, current: &Registry) -> Vec<Finding> {
    let stored = |event_type: &str, version: u32| {
        committed.get(event_type, version).is_some()
            || committed
                .retired
                .iter()
                .any(|r| r.event_type == event_type && r.version == version)
            || !committed.steps_from(event_type, version).is_empty()
    };
    current
        .upcasters
        .iter()
        .filter(|u| !stored(&u.event_type, u.from_version))
        .filter_map(|u| {
            // A step within one type (a new type's v1 -> v2) is no rename.
            let target = u.produces.iter().find(|p| p.event_type != u.event_type)?;
            if u.produces.iter().any(|p| p.event_type == u.event_type) {
                return None;
            }
            Some(Finding::UpcastSourceUnknown {
                name: u.name.clone(),
                source: EventRef {
                    event_type: u.event_type.clone(),
                    version: u.from_version,
                },
                rust_type: current
                    .get(&u.event_type, u.from_version)
                    .map(|e| e.rust_type.clone()),
                target: target.clone(),
            })
        })
        .collect()
}

/// The committed event types of which `current` has no version and no upcaster, with their versions.
fn missing_types<'a>(committed: &'a Registry, current: &Registry) -> BTreeMap<&'a str, Vec<u32>> {
    let mut missing: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for old in &committed.events {
        let event_type = old.event_type.as_str();
        let known = current.events.iter().any(|e| e.event_type == event_type)
            || current.upcasters.iter().any(|u| u.event_type == event_type);
        if !known {
            missing.entry(event_type).or_default().push(old.version);
        }
    }
    missing
}

/// The compatibility findings of every version in `current` that `committed` does not have.
fn compatibility(committed: &Registry, current: &Registry, config: &CompatConfig) -> Vec<Finding> {
    let mut findings = Vec::new();
    for new in &current.events {
        let mode = config.mode_for(&new.event_type);
        if mode == Compatibility::None || committed.get(&new.event_type, new.version).is_some() {
            continue;
        }
        let mut older: Vec<(u32, &Value)> = committed
            .events
            .iter()
            .chain(&current.events)
            .filter(|e| e.event_type == new.event_type && e.version < new.version)
            .map(|e| (e.version, &e.schema))
            .collect();
        older.sort_by_key(|(version, _)| std::cmp::Reverse(*version));
        older.dedup_by_key(|(version, _)| *version);
        if !mode.is_transitive() {
            older.truncate(1);
        }
        for (version, schema) in older {
            // Stored events of an older version that upcasters carry to the new one are read
            // through them: the new version need not read their payloads itself.
            let upcast = reaches(
                current,
                &EventRef {
                    event_type: new.event_type.clone(),
                    version,
                },
                &new.event_type,
                new.version,
            );
            let mut by_direction: Vec<(Direction, Vec<Incompatibility>)> = Vec::new();
            for (direction, reason) in compare(mode, schema, &new.schema) {
                if upcast && direction == Direction::Backward {
                    continue;
                }
                match by_direction.iter_mut().find(|(d, _)| *d == direction) {
                    Some((_, reasons)) => reasons.push(reason),
                    None => by_direction.push((direction, vec![reason])),
                }
            }
            findings.extend(
                by_direction
                    .into_iter()
                    .map(|(direction, reasons)| Finding::Incompatible {
                        event: EventRef {
                            event_type: new.event_type.clone(),
                            version: new.version,
                        },
                        against: version,
                        mode,
                        direction,
                        reasons,
                    }),
            );
        }
    }
    findings
}

/// Whether following the upcaster steps of `registry` from `from` produces `event_type` at `version`.
fn reaches(registry: &Registry, from: &EventRef, event_type: &str, version: u32) -> bool {
    let mut seen = BTreeSet::new();
    let mut todo = vec![from.clone()];
    while let Some(at) = todo.pop() {
        if !seen.insert(at.clone()) {
            continue;
        }
        for step in registry.steps_from(&at.event_type, at.version) {
            for next in &step.produces {
                if next.event_type == event_type && next.version == version {
                    return true;
                }
                todo.push(next.clone());
            }
        }
    }
    false
}

/// Whether two registries agree on everything but annotations and Rust type names: what
/// differs is documentation, never the stored format.
pub fn same_contract(a: &Registry, b: &Registry) -> bool {
    let contract = |registry: &Registry| {
        let mut registry = registry.clone();
        for entry in &mut registry.events {
            entry.rust_type.clear();
            entry.schema = strip_annotations(&entry.schema);
        }
        for entry in &mut registry.retired {
            entry.schema = strip_annotations(&entry.schema);
        }
        for consumer in &mut registry.consumers {
            consumer.rust_type.clear();
        }
        registry
    };
    contract(a) == contract(b)
}

/// Annotation keywords: they document a schema and never change which payloads it accepts.
const ANNOTATIONS: [&str; 5] = ["title", "description", "examples", "$comment", "deprecated"];
/// Keywords whose value maps names (not keywords) to subschemas.
const SCHEMA_MAPS: [&str; 6] = [
    "properties",
    "patternProperties",
    "$defs",
    "definitions",
    "dependentSchemas",
    "dependencies",
];
/// Keywords whose value is a subschema or an array of subschemas.
const SUBSCHEMAS: [&str; 16] = [
    "items",
    "prefixItems",
    "additionalItems",
    "unevaluatedItems",
    "contains",
    "additionalProperties",
    "unevaluatedProperties",
    "propertyNames",
    "allOf",
    "anyOf",
    "oneOf",
    "not",
    "if",
    "then",
    "else",
    "contentSchema",
];

/// `schema` without annotation keywords (`title`, `description`, `examples`, `$comment`,
/// `deprecated`), at every level of subschemas. Only keywords go: a property named `title`
/// stays, and so do values inside `enum`, `const` or `default`.
pub fn strip_annotations(schema: &Value) -> Value {
    let Value::Object(map) = schema else {
        return schema.clone();
    };
    let stripped = map
        .iter()
        .filter(|(key, _)| !ANNOTATIONS.contains(&key.as_str()))
        .map(|(key, value)| {
            let value = match value {
                Value::Object(named) if SCHEMA_MAPS.contains(&key.as_str()) => Value::Object(
                    named
                        .iter()
                        // `dependencies` may also map a name to an array of names: left as is.
                        .map(|(name, sub)| (name.clone(), strip_annotations(sub)))
                        .collect(),
                ),
                Value::Array(items) if SUBSCHEMAS.contains(&key.as_str()) => {
                    Value::Array(items.iter().map(strip_annotations).collect())
                }
                _ if SUBSCHEMAS.contains(&key.as_str()) => strip_annotations(value),
                _ => value.clone(),
            };
            (key.clone(), value)
        })
        .collect();
    Value::Object(stripped)
}

/// Where `old` and `new` differ, at most eight: a JSON pointer and the change.
fn differences(old: &Value, new: &Value) -> Vec<String> {
    let mut found = Vec::new();
    diff(old, new, String::new(), &mut found);
    found.truncate(8);
    found
}

fn diff(old: &Value, new: &Value, at: String, found: &mut Vec<String>) {
    let at_or_root = |at: &str| {
        if at.is_empty() {
            "/".to_owned()
        } else {
            at.to_owned()
        }
    };
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for key in keys {
                let child = format!("{at}/{}", key.replace('~', "~0").replace('/', "~1"));
                match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) => diff(x, y, child, found),
                    (Some(x), None) => found.push(format!("{child}: {} removed", shown(x))),
                    (None, Some(y)) => found.push(format!("{child}: {} added", shown(y))),
                    (None, None) => {}
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                diff(x, y, format!("{at}/{i}"), found);
            }
        }
        (a, b) if a != b => found.push(format!("{}: {} -> {}", at_or_root(&at), shown(a), shown(b))),
        _ => {}
    }
}

/// `value` as compact JSON, shortened past 80 characters.
fn shown(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(80) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn annotations_go_only_where_they_are_keywords() {
        let schema = json!({
            "title": "AccountOpened",
            "description": "An account was opened.",
            "type": "object",
            "properties": {
                "title": { "type": "string", "description": "the owner's title", "examples": ["Dr"] },
                "description": { "type": "string" },
            },
            "$defs": { "Money": { "type": "integer", "$comment": "cents", "deprecated": true } },
            "anyOf": [{ "title": "a" }, true],
            "items": { "title": "x", "type": "string" },
            "enum": [{ "title": "kept: a value, not a schema" }],
            "default": { "description": "kept too" },
        });
        assert_eq!(
            strip_annotations(&schema),
            json!({
                "type": "object",
                "properties": { "title": { "type": "string" }, "description": { "type": "string" } },
                "$defs": { "Money": { "type": "integer" } },
                "anyOf": [{}, true],
                "items": { "type": "string" },
                "enum": [{ "title": "kept: a value, not a schema" }],
                "default": { "description": "kept too" },
            })
        );
    }

    #[test]
    fn differences_name_the_pointer_and_both_values() {
        let old = json!({ "properties": { "owner": { "type": "string" }, "a/b": { "type": "string" } } });
        let new = json!({ "properties": { "owner": { "type": "integer" } }, "required": ["owner"] });
        assert_eq!(
            differences(&old, &new),
            vec![
                r#"/properties/a~1b: {"type":"string"} removed"#.to_owned(),
                r#"/properties/owner/type: "string" -> "integer""#.to_owned(),
                r#"/required: ["owner"] added"#.to_owned(),
            ]
        );
    }
}
