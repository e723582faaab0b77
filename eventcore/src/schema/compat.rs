//! Schema compatibility between versions of an event, with the modes of the Confluent Schema
//! Registry for JSON Schema.
//!
//! The core question is [`reader_accepts`]: is every payload valid under the writer's schema also
//! valid under the reader's? `BACKWARD` asks it with the new version reading the old one (code on
//! the new schema reads stored old events), `FORWARD` with the old version reading the new one
//! (consumers still on the old schema read new events), `FULL` both ways. The plain modes compare
//! a new version with the version just before it; the `_TRANSITIVE` modes with every older one.
//!
//! The rules follow from that question, as in Confluent's JSON Schema checker:
//!
//! - a property the reader adds is fine when the writer rejects unknown properties
//!   (`additionalProperties: false`, serde's `deny_unknown_fields`: its payloads never have it),
//!   and breaks when the writer allows them (its payloads may carry that name with any value);
//! - a property the reader drops is fine when the reader allows unknown properties and breaks
//!   when it rejects them;
//! - a property the reader requires and the writer does not is a break;
//! - a type, `enum`, `const`, `format` or `pattern` the reader narrows is a break; so is a tighter
//!   bound (`minimum`, `maximum`, `exclusive*`, `minLength`, `maxLength`, `minItems`, `maxItems`,
//!   `minProperties`, `maxProperties`, `multipleOf`, `uniqueItems`). Widening any of them is fine;
//! - `$ref`s are followed, `anyOf`/`oneOf` of the writer must each be accepted, and the reader's
//!   must accept the writer through one branch.
//!
//! The check is conservative: what it cannot prove compatible it reports.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A compatibility mode, per the Confluent Schema Registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Compatibility {
    /// No check: upcasters alone carry old events forward (the default).
    #[default]
    None,
    /// The new version reads the version before it.
    Backward,
    /// The new version reads every older version.
    BackwardTransitive,
    /// The version before reads the new one.
    Forward,
    /// Every older version reads the new one.
    ForwardTransitive,
    /// Backward and forward against the version before.
    Full,
    /// Backward and forward against every older version.
    FullTransitive,
}

impl Compatibility {
    /// Every mode, in the order above.
    pub const ALL: [Self; 7] = [
        Self::None,
        Self::Backward,
        Self::BackwardTransitive,
        Self::Forward,
        Self::ForwardTransitive,
        Self::Full,
        Self::FullTransitive,
    ];

    /// Whether the new version must read the old ones.
    pub fn checks_backward(self) -> bool {
        matches!(
            self,
            Self::Backward | Self::BackwardTransitive | Self::Full | Self::FullTransitive
        )
    }

    /// Whether the old versions must read the new one.
    pub fn checks_forward(self) -> bool {
        matches!(
            self,
            Self::Forward | Self::ForwardTransitive | Self::Full | Self::FullTransitive
        )
    }

    /// Whether every older version is compared, rather than only the one before.
    pub fn is_transitive(self) -> bool {
        matches!(
            self,
            Self::BackwardTransitive | Self::ForwardTransitive | Self::FullTransitive
        )
    }

    /// The Confluent name, for example `BACKWARD_TRANSITIVE`.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "NONE",
            Self::Backward => "BACKWARD",
            Self::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Self::Forward => "FORWARD",
            Self::ForwardTransitive => "FORWARD_TRANSITIVE",
            Self::Full => "FULL",
            Self::FullTransitive => "FULL_TRANSITIVE",
        }
    }
}

impl fmt::Display for Compatibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A compatibility mode name that is not one of the seven.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown compatibility mode `{0}` (expected NONE, BACKWARD, FORWARD, FULL or one of them with _TRANSITIVE)")]
pub struct UnknownCompatibility(pub String);

impl FromStr for Compatibility {
    type Err = UnknownCompatibility;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|mode| mode.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownCompatibility(s.to_owned()))
    }
}

/// The compatibility mode of a registry, with per-event-type overrides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompatConfig {
    /// The mode of every event type without an override.
    pub default: Compatibility,
    /// Modes of single event types.
    pub overrides: BTreeMap<String, Compatibility>,
}

impl CompatConfig {
    /// Every event type in `mode`.
    pub fn new(mode: Compatibility) -> Self {
        Self {
            default: mode,
            overrides: BTreeMap::new(),
        }
    }

    /// Puts `event_type` in `mode`.
    pub fn with_override(mut self, event_type: impl Into<String>, mode: Compatibility) -> Self {
        self.overrides.insert(event_type.into(), mode);
        self
    }

    /// The mode of `event_type`.
    pub fn mode_for(&self, event_type: &str) -> Compatibility {
        self.overrides.get(event_type).copied().unwrap_or(self.default)
    }
}

/// Which way a pair of versions was compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Direction {
    /// The new version reading the old one.
    Backward,
    /// The old version reading the new one.
    Forward,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Backward => "the new version cannot read payloads of the old one",
            Self::Forward => "the old version cannot read payloads of the new one",
        })
    }
}

/// The rule a schema change breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    /// The reader accepts fewer JSON types.
    TypeNarrowed,
    /// The reader lacks a property the writer has, and rejects unknown properties.
    PropertyRemovedFromClosedContentModel,
    /// The reader constrains a new property that the writer, allowing unknown properties, lets through unchecked.
    PropertyAddedToOpenContentModel,
    /// The reader requires a property the writer does not.
    RequiredPropertyAdded,
    /// The reader rejects or constrains unknown (additional) properties the writer allows.
    AdditionalPropertiesNarrowed,
    /// The reader's `enum` or `const` lacks values the writer allows.
    EnumNarrowed,
    /// A bound is tighter in the reader.
    ConstraintTightened,
    /// The reader's `pattern` or `format` differs.
    PatternOrFormatChanged,
    /// No branch of the reader's `anyOf`/`oneOf` accepts the writer.
    CombinedSchemaNarrowed,
    /// The reader is the `false` schema.
    FalseSchema,
}

/// One reason a reader schema does not accept everything a writer schema allows.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Incompatibility {
    /// Where, as a JSON pointer into the reader schema (`#/properties/amount`).
    pub path: String,
    /// The rule broken.
    pub rule: Rule,
    /// What exactly differs.
    pub detail: String,
}

impl fmt::Display for Incompatibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.detail)
    }
}

/// Whether every payload valid under `writer` is valid under `reader`: the reasons it is not.
pub fn reader_accepts(reader: &Value, writer: &Value) -> Vec<Incompatibility> {
    let mut checker = Checker {
        reader_root: reader,
        writer_root: writer,
        seen: HashSet::new(),
        found: Vec::new(),
    };
    checker.check(reader, writer, "#");
    checker.found.sort();
    checker.found.dedup();
    checker.found
}

/// The incompatibilities of `new` against `old` in `mode`, each with its direction.
pub fn compare(mode: Compatibility, old: &Value, new: &Value) -> Vec<(Direction, Incompatibility)> {
    let mut found = Vec::new();
    if mode.checks_backward() {
        found.extend(
            reader_accepts(new, old)
                .into_iter()
                .map(|i| (Direction::Backward, i)),
        );
    }
    if mode.checks_forward() {
        found.extend(
            reader_accepts(old, new)
                .into_iter()
                .map(|i| (Direction::Forward, i)),
        );
    }
    found
}

struct Checker<'a> {
    reader_root: &'a Value,
    writer_root: &'a Value,
    seen: HashSet<(String, String)>,
    found: Vec<Incompatibility>,
}

const LOWER_BOUNDS: [&str; 5] = [
    "minimum",
    "exclusiveMinimum",
    "minLength",
    "minItems",
    "minProperties",
];
const UPPER_BOUNDS: [&str; 5] = [
    "maximum",
    "exclusiveMaximum",
    "maxLength",
    "maxItems",
    "maxProperties",
];

impl<'a> Checker<'a> {
    fn report(&mut self, path: &str, rule: Rule, detail: String) {
        self.found.push(Incompatibility {
            path: path.to_owned(),
            rule,
            detail,
        });
    }

    /// Follows `$ref`s within `root` (a bounded number of hops, to stay finite).
    fn resolve<'b>(root: &'a Value, mut schema: &'b Value) -> (&'b Value, String)
    where
        'a: 'b,
    {
        let mut at = String::new();
        for _ in 0..16 {
            let Some(target) = schema.get("$ref").and_then(Value::as_str) else {
                break;
            };
            match target.strip_prefix('#').and_then(|pointer| root.pointer(pointer)) {
                Some(resolved) => {
                    at = target.to_owned();
                    schema = resolved;
                }
                None => break,
            }
        }
        (schema, at)
    }

    /// Whether a trial check finds nothing, without keeping what it finds.
    fn passes(&mut self, reader: &Value, writer: &Value, path: &str) -> bool {
        let before = self.found.len();
        let seen = self.seen.clone();
        self.check(reader, writer, path);
        let ok = self.found.len() == before;
        self.found.truncate(before);
        self.seen = seen;
        ok
    }

    fn check(&mut self, reader: &Value, writer: &Value, path: &str) {
        let (reader_value, reader_ref) = Self::resolve(self.reader_root, reader);
        let (writer_value, writer_ref) = Self::resolve(self.writer_root, writer);
        let through_ref = !(reader_ref.is_empty() && writer_ref.is_empty());
        if through_ref && !self.seen.insert((reader_ref, writer_ref)) {
            return; // this pair of definitions is already being compared (a recursive type)
        }
        let reader = match reader_value {
            Value::Bool(true) => return,
            Value::Bool(false) => {
                if writer_value != &Value::Bool(false) {
                    self.report(path, Rule::FalseSchema, "the reader accepts nothing".into());
                }
                return;
            }
            Value::Object(reader) => reader,
            _ => return,
        };
        let anything = Map::new();
        let writer = match writer_value {
            Value::Object(writer) => writer,
            Value::Bool(true) => &anything,
            _ => return,
        };
        if let Some(branches) = union(writer) {
            for (i, branch) in branches.iter().enumerate() {
                self.check(reader_value, branch, &format!("{path}/anyOf/{i}"));
            }
            return;
        }
        if let Some(parts) = reader.get("allOf").and_then(Value::as_array) {
            for (i, part) in parts.iter().enumerate() {
                self.check(part, writer_value, &format!("{path}/allOf/{i}"));
            }
        }
        if let Some(branches) = union(reader) {
            if !branches
                .iter()
                .any(|branch| self.passes(branch, writer_value, path))
            {
                self.report(
                    path,
                    Rule::CombinedSchemaNarrowed,
                    "no branch of the reader's anyOf/oneOf accepts the writer".into(),
                );
            }
        }
        self.check_types(reader, writer, path);
        self.check_values(reader, writer, path);
        self.check_bounds(reader, writer, path);
        self.check_object(reader, writer, path);
        if let Some(items) = reader.get("items") {
            let writer_items = writer.get("items").unwrap_or(&TRUE);
            self.check(items, writer_items, &format!("{path}/items"));
        }
    }

    fn check_types(&mut self, reader: &Map<String, Value>, writer: &Map<String, Value>, path: &str) {
        let Some(reader_types) = types(reader) else {
            return;
        };
        let Some(writer_types) = types(writer) else {
            let detail = format!(
                "the reader requires type {}, the writer allows any",
                list(&reader_types)
            );
            return self.report(path, Rule::TypeNarrowed, detail);
        };
        let lost: Vec<&str> = writer_types
            .iter()
            .copied()
            .filter(|t| !(reader_types.contains(t) || (*t == "integer" && reader_types.contains("number"))))
            .collect();
        if !lost.is_empty() {
            let detail = format!(
                "the writer allows type {}, the reader only {}",
                lost.join(", "),
                list(&reader_types)
            );
            self.report(path, Rule::TypeNarrowed, detail);
        }
    }

    fn check_values(&mut self, reader: &Map<String, Value>, writer: &Map<String, Value>, path: &str) {
        let allowed = |schema: &Map<String, Value>| -> Option<Vec<Value>> {
            match (schema.get("const"), schema.get("enum").and_then(Value::as_array)) {
                (Some(value), _) => Some(vec![value.clone()]),
                (None, Some(values)) => Some(values.clone()),
                (None, None) => None,
            }
        };
        if let Some(reader_values) = allowed(reader) {
            match allowed(writer) {
                None => self.report(
                    path,
                    Rule::EnumNarrowed,
                    "the reader restricts values with enum/const, the writer does not".into(),
                ),
                Some(writer_values) => {
                    let lost: Vec<String> = writer_values
                        .iter()
                        .filter(|v| !reader_values.contains(v))
                        .map(Value::to_string)
                        .collect();
                    if !lost.is_empty() {
                        let detail = format!("the reader no longer allows {}", lost.join(", "));
                        self.report(path, Rule::EnumNarrowed, detail);
                    }
                }
            }
        }
        for keyword in ["pattern", "format"] {
            if let Some(value) = reader.get(keyword) {
                let writer_value = writer.get(keyword);
                let widened = keyword == "format" && writer_value.is_some_and(|w| format_widens(value, w));
                if writer_value != Some(value) && !widened {
                    let was = writer_value.map_or_else(|| "none".to_owned(), Value::to_string);
                    let detail = format!("{keyword} is {value} in the reader, {was} in the writer");
                    self.report(path, Rule::PatternOrFormatChanged, detail);
                }
            }
        }
    }

    fn check_bounds(&mut self, reader: &Map<String, Value>, writer: &Map<String, Value>, path: &str) {
        let bounds = LOWER_BOUNDS
            .iter()
            .map(|k| (*k, true))
            .chain(UPPER_BOUNDS.iter().map(|k| (*k, false)));
        for (keyword, lower) in bounds {
            let Some(r) = reader.get(keyword).and_then(Value::as_f64) else {
                continue;
            };
            let tightened = match writer.get(keyword).and_then(Value::as_f64) {
                None => !implied_by_format(keyword, r, writer),
                Some(w) if lower => r > w,
                Some(w) => r < w,
            };
            if tightened {
                let was = writer
                    .get(keyword)
                    .map_or_else(|| "none".to_owned(), Value::to_string);
                let detail = format!("{keyword} is {r} in the reader, {was} in the writer");
                self.report(path, Rule::ConstraintTightened, detail);
            }
        }
        if let Some(r) = reader.get("multipleOf").and_then(Value::as_f64) {
            let ok = writer
                .get("multipleOf")
                .and_then(Value::as_f64)
                .is_some_and(|w| (w / r).fract() == 0.0);
            if !ok {
                self.report(
                    path,
                    Rule::ConstraintTightened,
                    format!("multipleOf {r} is new or stricter"),
                );
            }
        }
        if reader.get("uniqueItems") == Some(&Value::Bool(true))
            && writer.get("uniqueItems") != Some(&Value::Bool(true))
        {
            self.report(
                path,
                Rule::ConstraintTightened,
                "uniqueItems is new in the reader".into(),
            );
        }
    }

    fn check_object(&mut self, reader: &Map<String, Value>, writer: &Map<String, Value>, path: &str) {
        let empty = Map::new();
        let reader_props = reader
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let writer_props = writer
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let reader_extra = reader.get("additionalProperties").unwrap_or(&TRUE);
        let writer_extra = writer.get("additionalProperties").unwrap_or(&TRUE);
        for (name, writer_prop) in writer_props {
            let at = format!("{path}/properties/{name}");
            match reader_props.get(name) {
                Some(reader_prop) => self.check(reader_prop, writer_prop, &at),
                None if reader_extra == &Value::Bool(false) => self.report(
                    &at,
                    Rule::PropertyRemovedFromClosedContentModel,
                    format!("property `{name}` is gone, and the reader rejects unknown properties (`additionalProperties: false`, serde's `deny_unknown_fields`), so payloads that still have it fail"),
                ),
                None => self.check(reader_extra, writer_prop, &at),
            }
        }
        for (name, reader_prop) in reader_props {
            if writer_props.contains_key(name) || writer_extra == &Value::Bool(false) {
                continue;
            }
            let at = format!("{path}/properties/{name}");
            if writer_extra == &TRUE {
                if !self.passes(reader_prop, &TRUE, &at) {
                    self.report(
                        &at,
                        Rule::PropertyAddedToOpenContentModel,
                        format!("property `{name}` is new, and the writer allows unknown properties, so its payloads may already carry `{name}` with a value the reader rejects"),
                    );
                }
            } else {
                self.check(reader_prop, writer_extra, &at);
            }
        }
        let required = |schema: &Map<String, Value>| -> BTreeSet<String> {
            schema
                .get("required")
                .and_then(Value::as_array)
                .map(|names| {
                    names
                        .iter()
                        .filter_map(|n| n.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        let writer_required = required(writer);
        for name in required(reader).difference(&writer_required) {
            self.report(
                &format!("{path}/required"),
                Rule::RequiredPropertyAdded,
                format!("property `{name}` is required by the reader, not by the writer"),
            );
        }
        let writer_has_extra = writer_extra != &Value::Bool(false);
        if writer_has_extra && reader_extra != &TRUE && (reader.contains_key("additionalProperties")) {
            let at = format!("{path}/additionalProperties");
            if reader_extra == &Value::Bool(false) {
                self.report(
                    &at,
                    Rule::AdditionalPropertiesNarrowed,
                    "the reader rejects unknown properties (serde's `deny_unknown_fields`), which the writer allows".into(),
                );
            } else if !self.passes(reader_extra, writer_extra, &at) {
                self.report(
                    &at,
                    Rule::AdditionalPropertiesNarrowed,
                    "the reader constrains unknown properties more than the writer".into(),
                );
            }
        }
    }
}

static TRUE: Value = Value::Bool(true);

fn union(schema: &Map<String, Value>) -> Option<&Vec<Value>> {
    schema
        .get("anyOf")
        .or_else(|| schema.get("oneOf"))
        .and_then(Value::as_array)
}

fn types(schema: &Map<String, Value>) -> Option<BTreeSet<&str>> {
    match schema.get("type")? {
        Value::String(t) => Some(BTreeSet::from([t.as_str()])),
        Value::Array(ts) => Some(ts.iter().filter_map(Value::as_str).collect()),
        _ => None,
    }
}

fn list(types: &BTreeSet<&str>) -> String {
    types.iter().copied().collect::<Vec<_>>().join(", ")
}

/// The range of an integer `format` schemars writes (`int32`, `uint8`, ...).
fn integer_range(format: &Value) -> Option<(i128, i128)> {
    let format = format.as_str()?;
    let (signed, bits) = match format.strip_prefix('u') {
        Some(rest) => (false, rest.strip_prefix("int")?),
        None => (true, format.strip_prefix("int")?),
    };
    let bits: u32 = bits.parse().ok()?;
    if !(8..=64).contains(&bits) {
        return None;
    }
    Some(if signed {
        (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
    } else {
        (0, (1i128 << bits) - 1)
    })
}

/// Whether the reader's integer format holds every value of the writer's (`int64` reads `int32`).
fn format_widens(reader: &Value, writer: &Value) -> bool {
    match (integer_range(reader), integer_range(writer)) {
        (Some((r_lo, r_hi)), Some((w_lo, w_hi))) => r_lo <= w_lo && r_hi >= w_hi,
        _ => false,
    }
}

/// Whether the writer's integer format already implies the reader's bound (`minimum: 0` of `uint32`).
fn implied_by_format(keyword: &str, bound: f64, writer: &Map<String, Value>) -> bool {
    let Some((lo, hi)) = writer.get("format").and_then(integer_range) else {
        return false;
    };
    // Converting bounds of at most 64 bits to f64 is exact enough for a comparison.
    #[allow(clippy::cast_precision_loss)]
    let (lo, hi) = (lo as f64, hi as f64);
    match keyword {
        "minimum" => bound <= lo,
        "maximum" => bound >= hi,
        _ => false,
    }
}
