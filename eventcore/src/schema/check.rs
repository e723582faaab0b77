//! The registry check: the registry this code builds against the one committed in the repository.
//!
//! [`check`] returns a structured [`CheckReport`]; `eventcore_testing::assert_registry` turns it
//! into a test, and a command line can print it. It finds:
//!
//! - a committed (type, version) whose schema changed: stored events of it may no longer decode
//!   (fix: restore it, give the change a new version and an upcaster);
//! - a committed (type, version) that is gone, neither registered nor read by an upcaster;
//! - a committed version with no upcaster path to the current version of its type;
//! - problems of the current registry itself ([`Registry::validate`]: ambiguous steps, duplicates);
//! - a new version that breaks the type's [`Compatibility`] mode against older versions.

use std::collections::BTreeSet;
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
        /// JSON pointers where the schemas differ (at most a few).
        differences: Vec<String>,
    },
    /// A committed type and version is neither registered nor upcast any more.
    Removed {
        /// The type and version.
        event: EventRef,
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
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SchemaChanged { event, differences } => write!(
                f,
                "the schema of {event} changed (at {}); stored events of it may no longer decode.\n    \
                 fix: restore that schema, give the change a new version and add an upcaster to it",
                differences.join(", ")
            ),
            Self::Removed { event } => write!(
                f,
                "{event} is in the committed registry but no longer registered, and no upcaster reads it.\n    \
                 fix: keep the old struct, or add an upcaster from version {} of `{}`",
                event.version, event.event_type
            ),
            Self::Registry(issue) => write!(f, "{issue}.\n    fix: add the missing upcaster or remove the duplicate"),
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
                write!(f, "\n    fix: change the schema, or choose another compatibility mode for `{}`", event.event_type)
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
    for old in &committed.events {
        let event = EventRef {
            event_type: old.event_type.clone(),
            version: old.version,
        };
        match current.get(&old.event_type, old.version) {
            Some(new) if new.schema != old.schema => findings.push(Finding::SchemaChanged {
                differences: differences(&old.schema, &new.schema),
                event: event.clone(),
            }),
            None if current.steps_from(&old.event_type, old.version).is_empty() => {
                findings.push(Finding::Removed { event });
                continue;
            }
            _ => {}
        }
        path_issues.extend(current.path_issues(&event));
    }
    if let Err(report) = current.validate() {
        path_issues.extend(
            report
                .issues
                .into_iter()
                .filter(|issue| !matches!(issue, RegistryIssue::Gap { .. })),
        );
    }
    findings.extend(path_issues.into_iter().map(Finding::Registry));
    findings.extend(compatibility(committed, current, config));
    CheckReport { findings }
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
            let mut by_direction: Vec<(Direction, Vec<Incompatibility>)> = Vec::new();
            for (direction, reason) in compare(mode, schema, &new.schema) {
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

/// JSON pointers where `old` and `new` differ, at most eight.
fn differences(old: &Value, new: &Value) -> Vec<String> {
    let mut found = Vec::new();
    diff(old, new, String::from("#"), &mut found);
    found.truncate(8);
    found
}

fn diff(old: &Value, new: &Value, at: String, found: &mut Vec<String>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for key in keys {
                let child = format!("{at}/{key}");
                match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) => diff(x, y, child, found),
                    (Some(_), None) => found.push(format!("{child} (removed)")),
                    (None, _) => found.push(format!("{child} (added)")),
                }
            }
        }
        (a, b) if a != b => found.push(at),
        _ => {}
    }
}
