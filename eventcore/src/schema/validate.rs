//! Consistency of a registry: every old version reaches a current one, and no step is ambiguous.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::registry::{EventRef, Registry};

/// A problem [`Registry::validate`] found.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum RegistryIssue {
    /// Stored events of `from` cannot be loaded: the upcaster chain stops at `stuck`, which has
    /// no upcaster and is not the newest registered version of its type.
    Gap {
        /// Where the chain starts.
        from: EventRef,
        /// Where it stops.
        stuck: EventRef,
        /// The newest registered version of `stuck`'s type, if the type is registered at all.
        latest: Option<u32>,
    },
    /// Several upcasters start at the same (type, version).
    AmbiguousUpcaster {
        /// The step.
        step: EventRef,
        /// The upcasters' names.
        names: Vec<String>,
    },
    /// One (type, version) is registered by several Rust types.
    DuplicateEvent {
        /// The type and version.
        event: EventRef,
        /// The Rust types registering it.
        rust_types: Vec<String>,
    },
    /// Following upcasters from `from` comes back to a step already taken.
    Cycle {
        /// Where the chain starts.
        from: EventRef,
        /// The step reached twice.
        step: EventRef,
    },
}

impl fmt::Display for RegistryIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Gap { from, stuck, latest } => {
                write!(
                    f,
                    "{from} cannot be upcast to a current version: no upcaster from {stuck}"
                )?;
                match latest {
                    Some(latest) => write!(f, " (newest registered version is {latest})"),
                    None => write!(f, " (type `{}` is not registered)", stuck.event_type),
                }
            }
            Self::AmbiguousUpcaster { step, names } => {
                write!(
                    f,
                    "{} upcasters start at {step}: {}",
                    names.len(),
                    names.join(", ")
                )
            }
            Self::DuplicateEvent { event, rust_types } => {
                write!(f, "{event} is registered by {}", rust_types.join(" and "))
            }
            Self::Cycle { from, step } => write!(f, "upcasting {from} loops back to {step}"),
        }
    }
}

/// Every issue [`Registry::validate`] found, at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationReport {
    /// The issues, sorted.
    pub issues: Vec<RegistryIssue>,
}

impl fmt::Display for ValidationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "the event registry has {} problem(s):", self.issues.len())?;
        for issue in &self.issues {
            writeln!(f, "  - {issue}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationReport {}

impl Registry {
    /// Checks that every registered version, and every version an upcaster reads, has an upcaster
    /// path to the newest version of a type, and that no step or (type, version) is claimed twice.
    ///
    /// Reports every problem at once.
    pub fn validate(&self) -> Result<(), ValidationReport> {
        let mut issues = BTreeSet::new();
        let mut registered: BTreeMap<EventRef, Vec<String>> = BTreeMap::new();
        for entry in &self.events {
            registered
                .entry(EventRef {
                    event_type: entry.event_type.clone(),
                    version: entry.version,
                })
                .or_default()
                .push(entry.rust_type.clone());
        }
        let mut starts: BTreeSet<EventRef> = registered.keys().cloned().collect();
        for upcaster in &self.upcasters {
            starts.insert(EventRef {
                event_type: upcaster.event_type.clone(),
                version: upcaster.from_version,
            });
        }
        for (event, rust_types) in registered {
            if rust_types.len() > 1 {
                issues.insert(RegistryIssue::DuplicateEvent { event, rust_types });
            }
        }
        for start in &starts {
            let steps = self.steps_from(&start.event_type, start.version);
            if steps.len() > 1 {
                issues.insert(RegistryIssue::AmbiguousUpcaster {
                    step: start.clone(),
                    names: steps.iter().map(|u| u.name.clone()).collect(),
                });
            }
            issues.extend(self.path_issues(start));
        }
        if issues.is_empty() {
            Ok(())
        } else {
            Err(ValidationReport {
                issues: issues.into_iter().collect(),
            })
        }
    }

    /// The gaps and cycles on the way from `from` to current versions (empty when it gets there).
    pub fn path_issues(&self, from: &EventRef) -> Vec<RegistryIssue> {
        let mut issues = Vec::new();
        let mut on_path = Vec::new();
        self.walk(from, from, &mut on_path, &mut issues);
        issues
    }

    fn walk(
        &self,
        from: &EventRef,
        at: &EventRef,
        on_path: &mut Vec<EventRef>,
        issues: &mut Vec<RegistryIssue>,
    ) {
        if on_path.contains(at) {
            issues.push(RegistryIssue::Cycle {
                from: from.clone(),
                step: at.clone(),
            });
            return;
        }
        let steps = self.steps_from(&at.event_type, at.version);
        if steps.is_empty() {
            let latest = self.latest_version(&at.event_type);
            if latest != Some(at.version) {
                issues.push(RegistryIssue::Gap {
                    from: from.clone(),
                    stuck: at.clone(),
                    latest,
                });
            }
            return;
        }
        on_path.push(at.clone());
        for step in steps {
            for next in &step.produces {
                self.walk(from, next, on_path, issues);
            }
        }
        on_path.pop();
    }
}
