//! The registry check for a project's CI: the event registry the code builds against the JSON
//! committed in the repository.
//!
//! ```ignore
//! #[test]
//! fn event_schemas_are_compatible() {
//!     // Every event set of the application: naming them links their crates into this test.
//!     eventcore_testing::assert_registry::<(BookEvent, MemberEvent)>("schemas/registry.json");
//! }
//! ```
//!
//! - The registry must not be empty, and every event type of the named sets must be in it;
//!   otherwise the check fails with a message about linking and writes nothing. A committed
//!   type of which no version is registered any more is a finding (its crate may not be linked).
//! - `EVENTCORE_UPDATE_REGISTRY=1`: the file is rewritten, and the test passes, unless the check
//!   finds a breaking change (below). Breaking findings are never written automatically: an update
//!   writes them only when `EVENTCORE_ACCEPT_BREAKING` names every one (`book.lent@1,member.joined`),
//!   and the advice never offers to accept one that would take an entry out of the file.
//! - The file is missing: it is written and the test passes, except in CI (`CI` set to anything
//!   but empty, `false` or `0`), where a missing file fails: create it by running the tests
//!   locally (or with `EVENTCORE_UPDATE_REGISTRY=1`) and commit it.
//! - Otherwise the registries are compared ([`eventcore::schema::check::check`]) and the test
//!   fails with a report naming every problem and its fix: a committed schema that changed (with
//!   the event, version and JSON pointer), a committed type or version that is gone, an old
//!   version with no upcaster path to the new one, an ambiguous upcaster, a new version that
//!   breaks the compatibility mode. Doc comments (schema annotations) and Rust type names are not
//!   compared.
//! - A version whose struct is gone but whose stored events an upcaster reads stays in the file
//!   as retired (with its schema and the upcasters reading it); a committed upcaster that
//!   disappears or reads another type or version is a finding.
//! - When nothing is wrong but the code has new types or versions, the file is rewritten so the
//!   change shows in `git diff`; in CI it fails instead, asking for the update. When only doc
//!   comments or Rust type names changed, the file is rewritten locally; in CI the test passes
//!   and prints a note that the file is out of date.
//!
//! Paths are relative to the working directory, which `cargo test` sets to the package root.
//! The test binary must link every crate that defines events (see [`eventcore::schema`]): name
//! every event set in the type parameter ([`EventSets`]).

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use eventcore::schema::check::Finding;
use eventcore::schema::check::{check, same_contract, CheckReport};
use eventcore::schema::compat::{CompatConfig, Compatibility};
use eventcore::schema::{registry, EventSets, Registry, RegistryFormatError};
use eventcore::EventDescriptor;

/// The environment variable that makes the check rewrite the committed registry.
pub const UPDATE_ENV: &str = "EVENTCORE_UPDATE_REGISTRY";

/// The environment variable naming the breaking findings an update may write:
/// `type@version` (or `type`, for all its versions), comma separated.
pub const ACCEPT_ENV: &str = "EVENTCORE_ACCEPT_BREAKING";

/// The environment variable CI services set.
pub const CI_ENV: &str = "CI";

/// Whether a value of `CI` means "running in CI": set, and not empty, `false` or `0`.
pub fn is_ci(value: Option<&str>) -> bool {
    value.is_some_and(|v| {
        let v = v.trim();
        !(v.is_empty() || v == "0" || v.eq_ignore_ascii_case("false"))
    })
}

/// Whether a value of `EVENTCORE_UPDATE_REGISTRY` asks for a rewrite: `1` or `true`.
pub fn update_requested(value: Option<&str>) -> bool {
    value.is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// Whether a missing registry file is written (`true`) or a failure (`false`).
fn create_missing(ci: bool, update: bool) -> bool {
    update || !ci
}

/// Checks the event registry against the JSON at `path`, in compatibility mode `NONE`; panics
/// with a readable report. `E` names every event set of the application (`BookEvent`, or a tuple
/// `(BookEvent, MemberEvent)`), which links their crates and makes a missing one a failure. See
/// [`RegistryCheck`] for modes and other options.
#[track_caller]
pub fn assert_registry<E: EventSets>(path: impl AsRef<Path>) {
    RegistryCheck::new::<E>(path).assert();
}

/// A configurable registry check: compatibility mode, per-event overrides, the registry to check.
#[derive(Debug, Clone)]
pub struct RegistryCheck {
    path: PathBuf,
    linked: Vec<EventDescriptor>,
    sets: Vec<&'static str>,
    config: CompatConfig,
    registry: Option<Registry>,
    update: Option<bool>,
    accepted: Option<Vec<String>>,
    ci: Option<bool>,
}

/// What a passing check did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryOutcome {
    /// The committed registry matches.
    Matched,
    /// There was no committed registry; it was written.
    Created,
    /// The committed registry was rewritten: on request, or to record new types and versions.
    Updated,
    /// In CI: the committed registry differs only in doc comments or Rust type names, and was
    /// left as is.
    OutOfDate,
}

/// Why a registry check failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryCheckError {
    /// The registry lacks event types it must have: their crates are not linked into this binary.
    #[error("{}", unlinked_message(path, missing, sets))]
    Unlinked {
        /// The committed file.
        path: DisplayPath,
        /// The event types of the named sets that are not registered; empty when nothing is.
        missing: Vec<String>,
        /// The event sets the check names.
        sets: Vec<&'static str>,
    },
    /// The registries disagree: breaking changes, never written without being accepted by name.
    #[error("{report}\nThe committed registry is {path}. {}", drift_advice(report, *update))]
    Drift {
        /// The committed file.
        path: DisplayPath,
        /// Everything found.
        report: CheckReport,
        /// Whether a rewrite was requested (and refused).
        update: bool,
    },
    /// Nothing is wrong, but the code has types, versions or consumers the committed registry
    /// lacks or lists otherwise (in CI).
    #[error("the code registers event types, versions or consumers (projections, handlers, sagas) that {path} does not list as they are; run the tests locally (or with {UPDATE_ENV}=1) and commit the file")]
    Stale {
        /// The committed file.
        path: DisplayPath,
    },
    /// There is no committed registry (in CI, where it is not written).
    #[error(
        "{path} does not exist; run the tests locally (or with {UPDATE_ENV}=1) to create it, and commit it"
    )]
    Missing {
        /// The file.
        path: DisplayPath,
    },
    /// The committed file is not a registry.
    #[error("{path} is not a readable event registry: {source}\nRerun with {UPDATE_ENV}=1 to rewrite it.")]
    Format {
        /// The committed file.
        path: DisplayPath,
        /// Why.
        #[source]
        source: RegistryFormatError,
    },
    /// The file could not be read or written.
    #[error("cannot access {path}: {source}")]
    Io {
        /// The file.
        path: DisplayPath,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

fn unlinked_message(path: &DisplayPath, missing: &[String], sets: &[&str]) -> String {
    let fix = "Name every event set of the application in the check, as in \
               `assert_registry::<(BookEvent, MemberEvent)>(path)` (or `RegistryCheck::new::<(BookEvent, MemberEvent)>`): \
               that links their crates into the test binary. Nothing was written to";
    if missing.is_empty() {
        let named = if sets.is_empty() {
            "the check names no event set".to_owned()
        } else {
            format!("the check names {}", sets.join(", "))
        };
        format!("no event types are linked into this binary ({named}), so there is nothing to check. {fix} {path}.")
    } else {
        format!(
            "the event sets named in the check ({}) have event types that are not registered: {}; their \
             registrations were not linked into this binary. {fix} {path}.",
            sets.join(", "),
            missing.join(", ")
        )
    }
}

/// What a drift report advises: fixing each finding; accepting by name only what loses no entry.
fn drift_advice(report: &CheckReport, update: bool) -> String {
    let mut advice = format!(
        "These are breaking changes: they are never written automatically{}. Fix each as it says.",
        if update {
            format!(", and {UPDATE_ENV}=1 alone does not rewrite them")
        } else {
            String::new()
        }
    );
    let acceptable: BTreeSet<String> = report
        .findings
        .iter()
        .filter(|f| !f.removes_entries())
        .flat_map(Finding::events)
        .map(|e| format!("{}@{}", e.event_type, e.version))
        .collect();
    if !acceptable.is_empty() {
        let names: Vec<String> = acceptable.into_iter().collect();
        advice.push_str(&format!(
            " Only if no stored event depends on it (nothing of it was ever written outside tests), accept a \
             change by naming it: {UPDATE_ENV}=1 {ACCEPT_ENV}={}.",
            names.join(",")
        ));
    }
    advice
}

/// The accepted findings named in `EVENTCORE_ACCEPT_BREAKING`: `type@version` or `type`, comma
/// or space separated.
pub fn accepted_from(value: Option<&str>) -> Vec<String> {
    value
        .unwrap_or_default()
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Whether every event `finding` concerns is named in `accepted` (as `type@version` or `type`).
fn accepts(accepted: &[String], finding: &Finding) -> bool {
    finding.events().iter().all(|e| {
        accepted
            .iter()
            .any(|a| *a == e.event_type || *a == format!("{}@{}", e.event_type, e.version))
    })
}

/// A path, shown as is in messages.
#[derive(Debug, Clone)]
pub struct DisplayPath(pub PathBuf);

impl fmt::Display for DisplayPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`", self.0.display())
    }
}

impl RegistryCheck {
    /// A check of the registry against the JSON at `path`, in mode `NONE`. `E` names every event
    /// set of the application ([`EventSets`]: a set, a tuple of sets, or `()` for none).
    pub fn new<E: EventSets>(path: impl AsRef<Path>) -> Self {
        Self {
            path: path.as_ref().to_owned(),
            linked: E::descriptors(),
            sets: E::names(),
            config: CompatConfig::default(),
            registry: None,
            update: None,
            accepted: None,
            ci: None,
        }
    }

    /// The compatibility mode of every event type.
    pub fn compatibility(mut self, mode: Compatibility) -> Self {
        self.config.default = mode;
        self
    }

    /// The compatibility mode of one event type, overriding the registry's.
    pub fn compatibility_for(mut self, event_type: impl Into<String>, mode: Compatibility) -> Self {
        self.config.overrides.insert(event_type.into(), mode);
        self
    }

    /// Checks `registry` instead of the linked one.
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Rewrites the file (`true`) or never does on a failure (`false`), whatever the environment says.
    pub fn update(mut self, update: bool) -> Self {
        self.update = Some(update);
        self
    }

    /// The breaking findings an update may write, whatever `EVENTCORE_ACCEPT_BREAKING` says:
    /// each `type@version`, or `type` for all its versions.
    pub fn accept_breaking<S: Into<String>>(mut self, accepted: impl IntoIterator<Item = S>) -> Self {
        self.accepted = Some(accepted.into_iter().map(Into::into).collect());
        self
    }

    /// Behaves as in CI (`true`: a missing file and new entries fail instead of being written)
    /// whatever `CI` says.
    pub fn ci(mut self, ci: bool) -> Self {
        self.ci = Some(ci);
        self
    }

    /// Runs the check.
    pub fn run(&self) -> Result<RegistryOutcome, RegistryCheckError> {
        let current = self.registry.clone().unwrap_or_else(registry);
        let env = |name| std::env::var(name).ok();
        let update = self
            .update
            .unwrap_or_else(|| update_requested(env(UPDATE_ENV).as_deref()));
        let ci = self.ci.unwrap_or_else(|| is_ci(env(CI_ENV).as_deref()));
        self.check_linked(&current)?;
        let committed = match std::fs::read_to_string(&self.path) {
            Ok(json) => json,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                if !create_missing(ci, update) {
                    return Err(RegistryCheckError::Missing {
                        path: DisplayPath(self.path.clone()),
                    });
                }
                self.write(&current)?;
                return Ok(RegistryOutcome::Created);
            }
            Err(source) => return Err(self.io(source)),
        };
        let committed = match Registry::from_json(&committed) {
            Ok(committed) => committed,
            // An unreadable file has nothing to keep: an update request replaces it.
            Err(_) if update => {
                self.write(&current)?;
                return Ok(RegistryOutcome::Updated);
            }
            Err(source) => {
                return Err(RegistryCheckError::Format {
                    path: DisplayPath(self.path.clone()),
                    source,
                })
            }
        };
        // Versions still read by upcasters stay in the file.
        let current = current.keeping_retired(&committed);
        let report = check(&committed, &current, &self.config);
        if !report.is_ok() {
            let accepted = self
                .accepted
                .clone()
                .unwrap_or_else(|| accepted_from(env(ACCEPT_ENV).as_deref()));
            let all_accepted = report.findings.iter().all(|f| accepts(&accepted, f));
            if update && all_accepted {
                self.write(&current)?;
                return Ok(RegistryOutcome::Updated);
            }
            return Err(RegistryCheckError::Drift {
                path: DisplayPath(self.path.clone()),
                report,
                update,
            });
        }
        if update {
            self.write(&current)?;
            return Ok(RegistryOutcome::Updated);
        }
        if committed == current {
            return Ok(RegistryOutcome::Matched);
        }
        if ci && same_contract(&committed, &current) {
            println!(
                "note: {} is out of date in doc comments or Rust type names only (not a breaking change); \
                 run the tests locally (or with {UPDATE_ENV}=1) to refresh it",
                DisplayPath(self.path.clone())
            );
            return Ok(RegistryOutcome::OutOfDate);
        }
        if ci {
            return Err(RegistryCheckError::Stale {
                path: DisplayPath(self.path.clone()),
            });
        }
        self.write(&current)?;
        Ok(RegistryOutcome::Updated)
    }

    /// Runs the check and panics with its report on failure.
    #[track_caller]
    pub fn assert(&self) {
        if let Err(error) = self.run() {
            panic!("event registry check failed: {error}");
        }
    }

    /// Fails unless the registry has events, among them every type of the named sets.
    fn check_linked(&self, current: &Registry) -> Result<(), RegistryCheckError> {
        let missing: Vec<String> = self
            .linked
            .iter()
            .filter(|d| current.get(d.event_type, d.version).is_none())
            .map(|d| format!("`{}` v{}", d.event_type, d.version))
            .collect();
        if current.events.is_empty() || !missing.is_empty() {
            return Err(RegistryCheckError::Unlinked {
                path: DisplayPath(self.path.clone()),
                missing,
                sets: self.sets.clone(),
            });
        }
        Ok(())
    }

    fn write(&self, registry: &Registry) -> Result<(), RegistryCheckError> {
        if let Some(parent) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| self.io(source))?;
        }
        std::fs::write(&self.path, registry.to_json()).map_err(|source| self.io(source))
    }

    fn io(&self, source: std::io::Error) -> RegistryCheckError {
        RegistryCheckError::Io {
            path: DisplayPath(self.path.clone()),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ci_is_any_value_but_empty_false_or_0() {
        for value in ["true", "1", "yes", "github"] {
            assert!(is_ci(Some(value)), "{value}");
        }
        for value in [None, Some(""), Some("false"), Some("FALSE"), Some("0")] {
            assert!(!is_ci(value), "{value:?}");
        }
    }

    #[test]
    fn a_missing_file_is_created_except_in_ci_without_an_update_request() {
        let decide =
            |ci: Option<&str>, update: Option<&str>| create_missing(is_ci(ci), update_requested(update));
        assert!(decide(None, None));
        assert!(decide(Some("false"), None));
        assert!(!decide(Some("true"), None));
        assert!(!decide(Some("1"), Some("0")));
        assert!(decide(Some("true"), Some("1")));
        assert!(decide(Some("true"), Some("true")));
    }
}
