//! The event catalog: the registry rendered for people, as a Markdown page per aggregate (events,
//! versions, fields, upcasters), a page of the projections, event handlers and sagas, and a
//! Mermaid flow diagram: command → aggregate → event → projection / handler / saga → commands.
//!
//! ```
//! let catalog = eventcore::schema::catalog::catalog();
//! let diagram = catalog.mermaid();                  // "flowchart LR ..."
//! for page in catalog.pages() {
//!     // page.file_name: "account.md", page.markdown: "# Aggregate `account` ..."
//! #   let _ = (&page.file_name, &page.markdown);
//! }
//! # let _ = diagram;
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::registration::ConsumerKind;
use super::registration::{registered_aggregates, AggregateRegistration};
use super::registry::{registry, ConsumerEntry, EventRef, Registry, RegistryEntry};

/// What the catalog knows of an aggregate beyond its events: its commands and event set.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AggregateInfo {
    /// Aggregate type name.
    pub aggregate_type: String,
    /// Rust type path.
    pub rust_type: String,
    /// Command type names.
    pub commands: Vec<String>,
    /// The events it emits, at their current versions.
    pub events: Vec<EventRef>,
}

impl From<&AggregateRegistration> for AggregateInfo {
    fn from(r: &AggregateRegistration) -> Self {
        Self {
            aggregate_type: r.aggregate_type.to_owned(),
            rust_type: r.rust_type.to_owned(),
            commands: r.commands.iter().map(|c| (*c).to_owned()).collect(),
            events: r
                .events
                .iter()
                .map(|d| EventRef {
                    event_type: d.event_type.to_owned(),
                    version: d.version,
                })
                .collect(),
        }
    }
}

/// One Markdown page of the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogPage {
    /// File name, `<aggregate>.md` (`events.md` for events of no aggregate, `integration_events.md`
    /// for integration events).
    pub file_name: String,
    /// The page.
    pub markdown: String,
}

/// The registry and the aggregates, ready to render.
#[derive(Debug, Clone)]
pub struct Catalog {
    registry: Registry,
    aggregates: BTreeMap<String, AggregateInfo>,
    /// Domain event type → integration event name, as a relay publishes them.
    translations: Vec<(String, String)>,
    /// Saga name → the aggregates its dispatcher sends its commands to.
    dispatch: BTreeMap<String, BTreeSet<String>>,
}

/// The catalog of everything linked into this binary.
pub fn catalog() -> Catalog {
    Catalog::new(registry(), registered_aggregates().map(AggregateInfo::from))
}

const NO_AGGREGATE: &str = "events";
/// The page of the integration events (the published language), apart from every aggregate.
const INTEGRATION: &str = "integration_events";
/// The page of the projections, event handlers and sagas.
const CONSUMERS: &str = "consumers";

impl Catalog {
    /// A catalog of `registry` and `aggregates`.
    pub fn new(registry: Registry, aggregates: impl IntoIterator<Item = AggregateInfo>) -> Self {
        let aggregates = aggregates
            .into_iter()
            .map(|a| (a.aggregate_type.clone(), a))
            .collect();
        Self {
            registry,
            aggregates,
            translations: Vec::new(),
            dispatch: BTreeMap::new(),
        }
    }

    /// Adds where saga `saga`'s dispatcher sends its commands (`["payment", "shipment"]`), so
    /// the diagram closes the loop saga → command → aggregate; the routing is the user's code,
    /// which the registry does not see.
    pub fn with_dispatch<A: Into<String>>(
        mut self,
        saga: &str,
        aggregates: impl IntoIterator<Item = A>,
    ) -> Self {
        self.dispatch
            .entry(saga.to_owned())
            .or_default()
            .extend(aggregates.into_iter().map(Into::into));
        self
    }

    /// Adds a relay's translations (domain event → integration event) to the diagram and the
    /// integration events' page; they are configured at run time, so the registry alone does not
    /// know them.
    pub fn with_translations(mut self, translate: &crate::integration::Translate) -> Self {
        for (event_type, name) in translate.translations() {
            self.translations.push((event_type.to_owned(), name.to_owned()));
        }
        self.translations.sort();
        self.translations.dedup();
        self
    }

    /// Aggregate names, sorted, with the event types of each (declared `aggregate`, or in its event set).
    fn groups(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut groups: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for aggregate in self.aggregates.values() {
            let types = groups.entry(aggregate.aggregate_type.clone()).or_default();
            types.extend(aggregate.events.iter().map(|e| e.event_type.clone()));
        }
        let claimed: BTreeSet<String> = groups.values().flatten().cloned().collect();
        for entry in &self.registry.events {
            if entry.kind == super::EventKind::Integration {
                groups
                    .entry(INTEGRATION.to_owned())
                    .or_default()
                    .insert(entry.event_type.clone());
                continue;
            }
            match &entry.aggregate {
                Some(aggregate) => {
                    groups
                        .entry(aggregate.clone())
                        .or_default()
                        .insert(entry.event_type.clone());
                }
                None if !claimed.contains(&entry.event_type) => {
                    groups
                        .entry(NO_AGGREGATE.to_owned())
                        .or_default()
                        .insert(entry.event_type.clone());
                }
                None => {}
            }
        }
        groups
    }

    /// A Markdown page per aggregate, sorted by name, then `consumers.md` when there are
    /// projections, event handlers or sagas.
    pub fn pages(&self) -> Vec<CatalogPage> {
        let mut pages: Vec<CatalogPage> = self
            .groups()
            .into_iter()
            .map(|(aggregate, types)| CatalogPage {
                file_name: format!("{aggregate}.md"),
                markdown: self.page(&aggregate, &types),
            })
            .collect();
        if !self.registry.consumers.is_empty() {
            pages.push(CatalogPage {
                file_name: format!("{CONSUMERS}.md"),
                markdown: self.consumers_page(),
            });
        }
        pages
    }

    /// The page of the projections, event handlers and sagas: what each handles, how, from
    /// which aggregate, and what a saga sends.
    fn consumers_page(&self) -> String {
        let mut out = String::from("# Projections, event handlers and sagas\n");
        for consumer in &self.registry.consumers {
            blank_line(&mut out);
            let version = consumer.version.map_or_else(String::new, |v| format!(" v{v}"));
            let _ = writeln!(
                out,
                "## {} `{}`{version}\n\nRust type: `{}`.",
                kind_text(consumer.kind),
                consumer.name,
                consumer.rust_type
            );
            if let Some(commands) = &consumer.commands {
                let _ = writeln!(out, "Sends commands: `{commands}`.");
            }
            if !consumer.deadlines.is_empty() {
                let deadlines: Vec<String> = consumer.deadlines.iter().map(|d| format!("`{d}`")).collect();
                let _ = writeln!(out, "Deadlines: {}.", deadlines.join(", "));
            }
            out.push_str(
                "\n| event | version | role | key | method | emitted by |\n|---|---|---|---|---|---|\n",
            );
            for handled in &consumer.handles {
                let key = handled
                    .key
                    .as_deref()
                    .map_or_else(|| "aggregate id".to_owned(), |k| format!("`{k}`"));
                let emitted_by = if handled.emitted_by.is_empty() {
                    "nothing registered".to_owned()
                } else {
                    let by: Vec<String> = handled.emitted_by.iter().map(|a| format!("`{a}`")).collect();
                    by.join(", ")
                };
                let _ = writeln!(
                    out,
                    "| `{}` | {} | {} | {key} | `{}` | {emitted_by} |",
                    handled.event_type,
                    handled.version,
                    role_text(handled.role),
                    handled.method
                );
            }
        }
        out
    }

    /// The index page: the diagram and a link to every aggregate's page.
    pub fn index(&self) -> String {
        let mut out = String::from("# Event catalog\n\n```mermaid\n");
        out.push_str(&self.mermaid());
        out.push_str("```\n\n");
        for (aggregate, types) in self.groups() {
            let _ = writeln!(
                out,
                "- [`{aggregate}`]({aggregate}.md): {} event type(s)",
                types.len()
            );
        }
        if !self.registry.consumers.is_empty() {
            let _ = writeln!(
                out,
                "- [Projections, event handlers and sagas]({CONSUMERS}.md): {}",
                self.registry.consumers.len()
            );
        }
        out
    }

    /// Writes `README.md` (the index) and every page into `dir`; returns the files written.
    pub fn write_to(&self, dir: impl AsRef<Path>) -> std::io::Result<Vec<PathBuf>> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir)?;
        let mut written = Vec::new();
        let index = dir.join("README.md");
        std::fs::write(&index, self.index())?;
        written.push(index);
        for page in self.pages() {
            let path = dir.join(&page.file_name);
            std::fs::write(&path, page.markdown)?;
            written.push(path);
        }
        Ok(written)
    }

    /// A Mermaid flowchart: each command points at its aggregate, each aggregate at the events it
    /// emits, each event at the projections, event handlers and sagas handling it, each saga at
    /// the commands it sends.
    pub fn mermaid(&self) -> String {
        let mut out = String::from("flowchart LR\n");
        for (aggregate, types) in self.groups() {
            if aggregate == INTEGRATION || aggregate == NO_AGGREGATE {
                // No aggregate emits these: integration events stand alone as published messages.
                let prefix = if aggregate == INTEGRATION {
                    "integration "
                } else {
                    ""
                };
                for event_type in &types {
                    let id = node_id("evt", event_type);
                    let label = format!("{prefix}{event_type}{}", self.version_label(event_type));
                    let _ = writeln!(out, "    {id}[/\"{label}\"/]");
                }
                continue;
            }
            let node = node_id("agg", &aggregate);
            let _ = writeln!(out, "    {node}{{{{\"{aggregate}\"}}}}");
            if let Some(info) = self.aggregates.get(&aggregate) {
                for command in &info.commands {
                    let id = node_id("cmd", &format!("{aggregate}_{command}"));
                    let _ = writeln!(out, "    {id}([\"{command}\"]) --> {node}");
                }
            }
            for event_type in &types {
                let version = self.version_label(event_type);
                let id = node_id("evt", event_type);
                let _ = writeln!(out, "    {node} --> {id}[\"{event_type}{version}\"]");
            }
        }
        for (event_type, name) in &self.translations {
            let (from, to) = (node_id("evt", event_type), node_id("evt", name));
            let _ = writeln!(out, "    {from} -. relay .-> {to}");
        }
        for consumer in &self.registry.consumers {
            consumer_flow(&mut out, consumer);
            let (Some(commands), Some(targets)) = (&consumer.commands, self.dispatch.get(&consumer.name))
            else {
                continue;
            };
            let sent = node_id("sends", &format!("{}_{commands}", consumer.name));
            for aggregate in targets {
                let _ = writeln!(out, "    {sent} -.-> {}", node_id("agg", aggregate));
            }
        }
        out
    }

    /// ` vN` for the latest registered version of `event_type`.
    fn version_label(&self, event_type: &str) -> String {
        self.registry
            .latest_version(event_type)
            .map_or_else(String::new, |v| format!(" v{v}"))
    }

    fn page(&self, aggregate: &str, types: &BTreeSet<String>) -> String {
        let mut out = match self.aggregates.get(aggregate) {
            Some(info) => {
                let commands: Vec<String> = info.commands.iter().map(|c| format!("`{c}`")).collect();
                format!(
                    "# Aggregate `{aggregate}`\n\nRust type: `{}`.\n\nCommands: {}.\n",
                    info.rust_type,
                    if commands.is_empty() {
                        "none".to_owned()
                    } else {
                        commands.join(", ")
                    }
                )
            }
            None if aggregate == NO_AGGREGATE => "# Events of no aggregate\n".to_owned(),
            None if aggregate == INTEGRATION => {
                let mut page =
                    "# Integration events\n\nPublished to other services; never stored in a stream.\n"
                        .to_owned();
                for (event_type, name) in &self.translations {
                    let _ = writeln!(page, "\n`{name}` is published by the relay from `{event_type}`.");
                }
                page
            }
            None => format!("# Aggregate `{aggregate}`\n"),
        };
        for event_type in types {
            self.event_section(&mut out, event_type);
        }
        let upcasters: Vec<String> = self
            .registry
            .upcasters
            .iter()
            .filter(|u| {
                types.contains(&u.event_type) || u.produces.iter().any(|p| types.contains(&p.event_type))
            })
            .map(|u| {
                let produces: Vec<String> = u.produces.iter().map(ToString::to_string).collect();
                let to = if produces.is_empty() {
                    "nothing (retired)".to_owned()
                } else {
                    produces.join(", ")
                };
                format!(
                    "- `{}` v{} -> {to}: {:?} upcaster `{}`\n",
                    u.event_type, u.from_version, u.kind, u.name
                )
            })
            .collect();
        if !upcasters.is_empty() {
            blank_line(&mut out);
            out.push_str("## Upcasters\n\n");
            out.extend(upcasters);
        }
        out
    }

    fn event_section(&self, out: &mut String, event_type: &str) {
        let entries: Vec<&RegistryEntry> = self
            .registry
            .events
            .iter()
            .filter(|e| e.event_type == event_type)
            .collect();
        blank_line(out);
        let _ = writeln!(out, "## `{event_type}`\n");
        if entries.is_empty() {
            out.push_str("Not registered in this binary.\n");
            return;
        }
        let latest = entries.iter().map(|e| e.version).max().unwrap_or_default();
        for entry in entries.iter().rev() {
            let current = if entry.version == latest { " (current)" } else { "" };
            let _ = writeln!(
                out,
                "### Version {}{current}\n\nRust type: `{}`.",
                entry.version, entry.rust_type
            );
            if !entry.upcasters.is_empty() {
                let from: Vec<String> = entry
                    .upcasters
                    .iter()
                    .map(|u| format!("`{}` v{}", u.event_type, u.from_version))
                    .collect();
                let _ = writeln!(out, "Upcast from: {}.", from.join(", "));
            }
            out.push('\n');
            fields_table(out, &entry.schema);
        }
    }
}

/// A consumer's node, the edges from the events it handles, and a saga's edge to its commands.
fn consumer_flow(out: &mut String, consumer: &ConsumerEntry) {
    let kind = kind_text(consumer.kind);
    let node = node_id(kind, &consumer.name);
    let label = format!("{kind} {}", consumer.name);
    match consumer.kind {
        ConsumerKind::Projection => {
            let _ = writeln!(out, "    {node}[(\"{label}\")]");
        }
        ConsumerKind::EventHandler => {
            let _ = writeln!(out, "    {node}>\"{label}\"]");
        }
        ConsumerKind::Saga => {
            let _ = writeln!(out, "    {node}[[\"{label}\"]]");
        }
    }
    for handled in &consumer.handles {
        let event = node_id("evt", &handled.event_type);
        match consumer.kind {
            ConsumerKind::Saga => {
                let _ = writeln!(out, "    {event} -->|{}| {node}", role_text(handled.role));
            }
            ConsumerKind::Projection | ConsumerKind::EventHandler => {
                let _ = writeln!(out, "    {event} --> {node}");
            }
        }
    }
    if let Some(commands) = &consumer.commands {
        let id = node_id("sends", &format!("{}_{commands}", consumer.name));
        let _ = writeln!(out, "    {node} --> {id}([\"{commands}\"])");
    }
}

/// How a consumer kind reads in the catalog.
fn kind_text(kind: ConsumerKind) -> &'static str {
    match kind {
        ConsumerKind::Projection => "projection",
        ConsumerKind::EventHandler => "handler",
        ConsumerKind::Saga => "saga",
    }
}

/// How a handler role reads in the catalog.
fn role_text(role: super::HandlerRole) -> &'static str {
    match role {
        super::HandlerRole::On => "on",
        super::HandlerRole::Start => "start",
        super::HandlerRole::Handle => "handle",
        super::HandlerRole::End => "end",
    }
}

/// Ends `out` with exactly one empty line, before a heading.
fn blank_line(out: &mut String) {
    while !out.ends_with("\n\n") {
        out.push('\n');
    }
}

fn fields_table(out: &mut String, schema: &Value) {
    let root = resolve(schema, schema);
    let Some(properties) = root
        .get("properties")
        .and_then(Value::as_object)
        .filter(|p| !p.is_empty())
    else {
        out.push_str("No fields.\n\n");
        return;
    };
    let required: BTreeSet<&str> = root
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    out.push_str("| field | type | required | description |\n|---|---|---|---|\n");
    for (name, property) in properties {
        let description = property
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .replace('\n', " ")
            .replace('|', "\\|");
        let required = if required.contains(name.as_str()) {
            "yes"
        } else {
            "no"
        };
        let _ = writeln!(
            out,
            "| `{name}` | {} | {required} | {description} |",
            type_text(property)
        );
    }
    out.push('\n');
}

fn resolve<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
    schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix('#'))
        .and_then(|pointer| root.pointer(pointer))
        .unwrap_or(schema)
}

/// A short human description of a property's type.
fn type_text(schema: &Value) -> String {
    if let Some(target) = schema.get("$ref").and_then(Value::as_str) {
        return format!("`{}`", target.rsplit('/').next().unwrap_or(target));
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        let values: Vec<String> = values.iter().map(|v| format!("`{v}`")).collect();
        return format!("one of {}", values.join(", "));
    }
    if let Some(value) = schema.get("const") {
        return format!("`{value}`");
    }
    if let Some(branches) = schema
        .get("anyOf")
        .or_else(|| schema.get("oneOf"))
        .and_then(Value::as_array)
    {
        let texts: Vec<String> = branches.iter().map(type_text).collect();
        return texts.join(" or ");
    }
    let base = match schema.get("type") {
        Some(Value::String(t)) if t == "array" => {
            let items = schema.get("items").map_or_else(|| "any".to_owned(), type_text);
            format!("array of {items}")
        }
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" or "),
        _ => "any".to_owned(),
    };
    match schema.get("format").and_then(Value::as_str) {
        Some(format) => format!("{base} ({format})"),
        None => base,
    }
}

/// A Mermaid node id: letters, digits and underscores only.
fn node_id(prefix: &str, name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("{prefix}_{cleaned}")
}
