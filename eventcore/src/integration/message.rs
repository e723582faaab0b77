//! An integration event ready for the wire: its name, version, ids and JSON payload.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::event::IntegrationEvent;
use crate::envelope::Metadata;
use crate::schema::{EventKind, Registry, UpcastError, MAX_UPCAST_STEPS};

/// The CloudEvents `source` of a message whose [`MessageMeta`] names none.
pub const DEFAULT_SOURCE: &str = "eventcore://integration";

/// What travels with an integration event besides its payload: where it comes from and what
/// caused it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageMeta {
    /// The CloudEvents `source` (a URI reference naming the publishing service); [`DEFAULT_SOURCE`] when `None`.
    pub source: Option<String>,
    /// The CloudEvents `subject`: what the message is about (an order id, say).
    pub subject: Option<String>,
    /// Id shared by every message caused, directly or not, by one original request.
    pub correlation_id: Option<String>,
    /// Id of the message (command or event) that directly caused this one.
    pub causation_id: Option<String>,
    /// Free-form string metadata.
    pub metadata: Metadata,
}

impl MessageMeta {
    /// No source, subject, ids or metadata.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the CloudEvents `source`.
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Sets the CloudEvents `subject`.
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// Sets the correlation id.
    pub fn correlation_id(mut self, id: impl Into<String>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }

    /// Sets the causation id.
    pub fn causation_id(mut self, id: impl Into<String>) -> Self {
        self.causation_id = Some(id.into());
        self
    }

    /// Adds one metadata entry.
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }
}

/// An integration event with its identity and context, payload still encoded: what the outbox
/// stores, the relay publishes and a consumer receives.
#[derive(Debug, Clone, PartialEq)]
pub struct IntegrationMessage {
    /// The message id: brokers deduplicate on it, so a republished message keeps it.
    pub id: Uuid,
    /// The integration event's published name.
    pub name: String,
    /// The payload's schema version.
    pub version: u32,
    /// The CloudEvents `source`.
    pub source: String,
    /// The CloudEvents `subject`, if any.
    pub subject: Option<String>,
    /// When the message was created.
    pub time: DateTime<Utc>,
    /// Correlation id.
    pub correlation_id: Option<String>,
    /// Causation id.
    pub causation_id: Option<String>,
    /// Free-form metadata.
    pub metadata: Metadata,
    /// The JSON payload.
    pub data: Bytes,
}

/// An integration event could not be turned into JSON.
#[derive(Debug, thiserror::Error)]
#[error("cannot encode integration event `{name}`: {source}")]
pub struct IntegrationEncodeError {
    /// The integration event's name.
    pub name: &'static str,
    /// What serde reported.
    #[source]
    pub source: serde_json::Error,
}

/// A received message could not become the integration event asked for.
#[derive(Debug, thiserror::Error)]
pub enum IntegrationDecodeError {
    /// The message is not a CloudEvent this library reads.
    #[error("not a valid integration CloudEvent: {0}")]
    NotCloudEvent(#[from] crate::cloudevents::CloudEventError),
    /// The name is not one this code knows.
    #[error("unknown integration event `{name}` (known: {known})")]
    UnknownType {
        /// The received name.
        name: String,
        /// The names this code decodes, comma separated.
        known: String,
    },
    /// The version is newer than any this code knows: the publisher runs newer code.
    #[error("integration event `{name}` version {version} is newer than this code's version {current}")]
    VersionTooNew {
        /// The received name.
        name: String,
        /// The received version.
        version: u32,
        /// The newest version this code knows.
        current: u32,
    },
    /// The version is older than the current one and no upcaster leads from it.
    #[error("no upcaster for integration event `{name}` from version {from} (current version is {current})")]
    MissingUpcaster {
        /// The name at the missing step.
        name: String,
        /// The version no upcaster starts from.
        from: u32,
        /// The current version.
        current: u32,
    },
    /// An upcaster failed, or turned the message into other than exactly one event.
    #[error("upcasting integration event `{name}` from version {version} failed: {source}")]
    Upcast {
        /// The name the failing step reads.
        name: String,
        /// The version the failing step reads.
        version: u32,
        /// What went wrong.
        #[source]
        source: Box<UpcastError>,
    },
    /// The payload is not valid JSON for the type.
    #[error("payload of integration event `{name}` version {version} does not decode: {source}")]
    Payload {
        /// The received name.
        name: String,
        /// The received version.
        version: u32,
        /// What serde reported.
        #[source]
        source: serde_json::Error,
    },
}

impl IntegrationMessage {
    /// A new message of `event` with a fresh (v7) id and the current time.
    pub fn new<I: IntegrationEvent>(event: &I, meta: &MessageMeta) -> Result<Self, IntegrationEncodeError> {
        Self::with_id(Uuid::now_v7(), event, meta)
    }

    /// A message of `event` with the given id (deterministic ids make republishing idempotent).
    pub fn with_id<I: IntegrationEvent>(
        id: Uuid,
        event: &I,
        meta: &MessageMeta,
    ) -> Result<Self, IntegrationEncodeError> {
        let data = serde_json::to_vec(event).map_err(|source| IntegrationEncodeError {
            name: I::NAME,
            source,
        })?;
        Ok(Self {
            id,
            name: I::NAME.to_owned(),
            version: I::VERSION,
            source: meta.source.clone().unwrap_or_else(|| DEFAULT_SOURCE.to_owned()),
            subject: meta.subject.clone(),
            // Microseconds: what PostgreSQL keeps, so a message reads back from any outbox equal.
            time: chrono::SubsecRound::trunc_subsecs(Utc::now(), 6),
            correlation_id: meta.correlation_id.clone(),
            causation_id: meta.causation_id.clone(),
            metadata: meta.metadata.clone(),
            data: Bytes::from(data),
        })
    }

    /// Whether this message holds integration event `I` (at any version).
    pub fn is<I: IntegrationEvent>(&self) -> bool {
        self.name == I::NAME
    }

    /// Decodes the payload into `I`, upcasting an older version (or an older name) through the
    /// registered upcasters first.
    pub fn decode<I: IntegrationEvent>(&self) -> Result<I, IntegrationDecodeError> {
        if self.name == I::NAME {
            if self.version == I::VERSION {
                return serde_json::from_slice(&self.data).map_err(|source| {
                    IntegrationDecodeError::Payload {
                        name: self.name.clone(),
                        version: self.version,
                        source,
                    }
                });
            }
            if self.version > I::VERSION {
                return Err(IntegrationDecodeError::VersionTooNew {
                    name: self.name.clone(),
                    version: self.version,
                    current: I::VERSION,
                });
            }
        }
        let payload: Value =
            serde_json::from_slice(&self.data).map_err(|source| IntegrationDecodeError::Payload {
                name: self.name.clone(),
                version: self.version,
                source,
            })?;
        self.upcast::<I>(payload)
    }

    /// Runs upcaster steps from this message's (name, version) until it is `I` at its version.
    fn upcast<I: IntegrationEvent>(&self, mut payload: Value) -> Result<I, IntegrationDecodeError> {
        let (mut name, mut version) = (self.name.clone(), self.version);
        for _ in 0..MAX_UPCAST_STEPS {
            let upcast_error =
                |source: UpcastError, name: &str, version: u32| IntegrationDecodeError::Upcast {
                    name: name.to_owned(),
                    version,
                    source: Box::new(source),
                };
            let step = crate::schema::chain::find_step(&name, version)
                .map_err(|e| upcast_error(e, &name, version))?;
            let Some(step) = step else {
                return Err(if name == I::NAME {
                    IntegrationDecodeError::MissingUpcaster {
                        name,
                        from: version,
                        current: I::VERSION,
                    }
                } else {
                    IntegrationDecodeError::UnknownType {
                        name,
                        known: I::NAME.to_owned(),
                    }
                });
            };
            let mut produced =
                crate::schema::chain::run_step(step, payload).map_err(|e| upcast_error(e, &name, version))?;
            if produced.len() != 1 {
                let reason = format!(
                    "it produced {} events where an integration message must stay exactly one",
                    produced.len()
                );
                return Err(upcast_error(UpcastError::Invalid(reason), &name, version));
            }
            let next = produced.remove(0);
            (name, version, payload) = (next.event_type, next.version, next.payload);
            if name == I::NAME && version >= I::VERSION {
                if version > I::VERSION {
                    return Err(IntegrationDecodeError::VersionTooNew {
                        name,
                        version,
                        current: I::VERSION,
                    });
                }
                return serde_json::from_value(payload).map_err(|source| IntegrationDecodeError::Payload {
                    name,
                    version,
                    source,
                });
            }
        }
        Err(IntegrationDecodeError::Upcast {
            name: self.name.clone(),
            version: self.version,
            source: Box::new(UpcastError::TooManySteps(MAX_UPCAST_STEPS)),
        })
    }

    /// Checks the name and version against `registry` (a consumer's view of the published
    /// language): an unknown name, a version newer than the newest registered, or an older
    /// version with no upcaster step leading on is an error; so is a payload that is not JSON.
    pub fn check_registered(&self, registry: &Registry) -> Result<(), IntegrationDecodeError> {
        let entries = || {
            registry
                .events
                .iter()
                .filter(|e| e.kind == EventKind::Integration)
        };
        let Some(latest) = entries()
            .filter(|e| e.event_type == self.name)
            .map(|e| e.version)
            .max()
        else {
            // A renamed event: an upcaster step from it is enough.
            if !registry.steps_from(&self.name, self.version).is_empty() {
                return self.check_json();
            }
            let mut known: Vec<&str> = entries().map(|e| e.event_type.as_str()).collect();
            known.dedup();
            return Err(IntegrationDecodeError::UnknownType {
                name: self.name.clone(),
                known: known.join(", "),
            });
        };
        if self.version > latest {
            return Err(IntegrationDecodeError::VersionTooNew {
                name: self.name.clone(),
                version: self.version,
                current: latest,
            });
        }
        if self.version < latest && registry.steps_from(&self.name, self.version).is_empty() {
            return Err(IntegrationDecodeError::MissingUpcaster {
                name: self.name.clone(),
                from: self.version,
                current: latest,
            });
        }
        self.check_json()
    }

    /// [`check_registered`](Self::check_registered) against the registry of everything linked
    /// into this binary (built once, on first use).
    pub fn check_linked(&self) -> Result<(), IntegrationDecodeError> {
        static LINKED: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();
        self.check_registered(LINKED.get_or_init(crate::schema::registry))
    }

    fn check_json(&self) -> Result<(), IntegrationDecodeError> {
        serde_json::from_slice::<serde::de::IgnoredAny>(&self.data)
            .map(|_| ())
            .map_err(|source| IntegrationDecodeError::Payload {
                name: self.name.clone(),
                version: self.version,
                source,
            })
    }
}
