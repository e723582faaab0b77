//! Integration messages on the wire: CloudEvents 1.0, structured JSON mode.
//!
//! | message field    | CloudEvents attribute                                        |
//! |------------------|--------------------------------------------------------------|
//! | `id`             | `id`                                                         |
//! | `source`         | `source`                                                     |
//! | -                | `specversion`: `"1.0"`                                       |
//! | `name`           | `type`                                                       |
//! | `time`           | `time`: RFC 3339 in UTC                                      |
//! | `subject`        | `subject` (absent when `None`)                               |
//! | -                | `datacontenttype`: `application/json`                        |
//! | name + version   | `dataschema`: `eventcore:schema/<name>/v<version>`           |
//! | `data`           | `data`: the payload JSON, byte for byte                      |
//! | `version`        | extension `eventversion`                                     |
//! | -                | extension `eventkind`: `integration`                         |
//! | `correlation_id` | extension `correlationid` (absent when `None`)               |
//! | `causation_id`   | extension `causationid` (absent when `None`)                 |
//! | `metadata`       | extension `metadata`: the map as a JSON object in a string (absent when empty) |
//!
//! The same attribute names as domain events ([`crate::cloudevents`]), so one consumer reads
//! both; `eventkind` tells them apart. Reading back, an unknown extension with a string value
//! joins `metadata`; anything else malformed is a [`CloudEventError`] naming the attribute.

use std::collections::BTreeMap;

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::value::{to_raw_value, RawValue};

use super::event::IntegrationEvent;
use super::message::{IntegrationDecodeError, IntegrationMessage};
use crate::cloudevents::{dataschema, CloudEventError, CONTENT_TYPE, SPEC_VERSION};
use crate::envelope::Metadata;

/// The value of the `eventkind` extension on integration messages.
pub const EVENT_KIND: &str = "integration";

const KNOWN: [&str; 14] = [
    "id",
    "source",
    "specversion",
    "type",
    "time",
    "subject",
    "datacontenttype",
    "dataschema",
    "data",
    "eventversion",
    "eventkind",
    "correlationid",
    "causationid",
    "metadata",
];

fn invalid(attribute: &str, reason: impl Into<String>) -> CloudEventError {
    CloudEventError::Invalid {
        attribute: attribute.to_owned(),
        reason: reason.into(),
    }
}

impl IntegrationMessage {
    /// The message as a CloudEvents 1.0 structured JSON document (attributes sorted, `data` verbatim).
    pub fn to_cloudevent(&self) -> Result<String, CloudEventError> {
        let data: &RawValue = serde_json::from_slice(&self.data)
            .map_err(|e| invalid("data", format!("the payload is not JSON: {e}")))?;
        let mut strings: Vec<(&str, String)> = vec![
            ("id", self.id.to_string()),
            ("source", self.source.clone()),
            ("specversion", SPEC_VERSION.to_owned()),
            ("type", self.name.clone()),
            ("time", self.time.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
            ("datacontenttype", CONTENT_TYPE.to_owned()),
            ("dataschema", dataschema(&self.name, self.version)),
            ("eventversion", self.version.to_string()),
            ("eventkind", EVENT_KIND.to_owned()),
        ];
        strings.extend(self.subject.clone().map(|s| ("subject", s)));
        strings.extend(self.correlation_id.clone().map(|c| ("correlationid", c)));
        strings.extend(self.causation_id.clone().map(|c| ("causationid", c)));
        if !self.metadata.is_empty() {
            let metadata =
                serde_json::to_string(&self.metadata).map_err(|e| invalid("metadata", e.to_string()))?;
            strings.push(("metadata", metadata));
        }
        let mut attributes: BTreeMap<&str, Box<RawValue>> = BTreeMap::new();
        for (name, value) in strings {
            let raw = to_raw_value(&value).map_err(|e| invalid(name, e.to_string()))?;
            attributes.insert(name, raw);
        }
        attributes.insert("data", data.to_owned());
        serde_json::to_string(&attributes).map_err(|e| invalid("data", e.to_string()))
    }

    /// Reads a CloudEvent written by [`to_cloudevent`](Self::to_cloudevent) (or by another
    /// publisher of the same attributes). Checks the structure only: check the name and version
    /// with [`check_registered`](Self::check_registered) or [`decode`](Self::decode).
    pub fn from_cloudevent(json: &str) -> Result<Self, CloudEventError> {
        let attributes: BTreeMap<String, Box<RawValue>> =
            serde_json::from_str(json).map_err(CloudEventError::NotAnObject)?;
        let event = Attributes(&attributes);
        for name in attributes.keys() {
            if name == "data_base64" {
                return Err(invalid(name, "only JSON `data` is supported"));
            }
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) {
                return Err(invalid(
                    name,
                    "attribute names are lower-case letters and digits only",
                ));
            }
        }
        let specversion = event.string("specversion")?;
        if specversion != SPEC_VERSION {
            return Err(invalid(
                "specversion",
                format!("`{specversion}` is not `{SPEC_VERSION}`"),
            ));
        }
        if let Some(kind) = event.optional_string("eventkind")? {
            if kind != EVENT_KIND {
                return Err(invalid("eventkind", format!("`{kind}` is not `{EVENT_KIND}`")));
            }
        }
        if let Some(content_type) = event.optional_string("datacontenttype")? {
            let essence = content_type.split(';').next().unwrap_or_default().trim();
            if !essence.eq_ignore_ascii_case(CONTENT_TYPE) {
                return Err(invalid(
                    "datacontenttype",
                    format!("`{content_type}` is not `{CONTENT_TYPE}`"),
                ));
            }
        }
        let id = event.string("id")?;
        let id =
            uuid::Uuid::parse_str(&id).map_err(|e| invalid("id", format!("`{id}` is not a UUID: {e}")))?;
        let time = event.string("time")?;
        let time = DateTime::parse_from_rfc3339(&time)
            .map_err(|e| invalid("time", format!("`{time}` is not an RFC 3339 timestamp: {e}")))?
            .with_timezone(&Utc);
        let version = event.string("eventversion")?;
        let version = version
            .parse::<u32>()
            .ok()
            .filter(|v| *v > 0)
            .ok_or_else(|| invalid("eventversion", format!("`{version}` is not a version (1 and up)")))?;
        let mut metadata = match event.optional_string("metadata")? {
            Some(json) => serde_json::from_str::<Metadata>(&json)
                .map_err(|e| invalid("metadata", format!("not a JSON object of strings: {e}")))?,
            None => Metadata::new(),
        };
        for name in attributes.keys().filter(|name| !KNOWN.contains(&name.as_str())) {
            if let Some(value) = event.optional_string(name)? {
                metadata.entry(name.clone()).or_insert(value);
            }
        }
        let data = attributes.get("data").ok_or(CloudEventError::Missing("data"))?;
        Ok(Self {
            id,
            name: event.string("type")?,
            version,
            source: event.string("source")?,
            subject: event.optional_string("subject")?,
            time,
            correlation_id: event.optional_string("correlationid")?,
            causation_id: event.optional_string("causationid")?,
            metadata,
            data: Bytes::copy_from_slice(data.get().as_bytes()),
        })
    }
}

/// Reads a CloudEvent and decodes it into `I`: structure, name, version (upcasting older ones)
/// and payload, each failure a distinct [`IntegrationDecodeError`].
pub fn decode_cloudevent<I: IntegrationEvent>(
    json: &str,
) -> Result<(IntegrationMessage, I), IntegrationDecodeError> {
    let message = IntegrationMessage::from_cloudevent(json)?;
    let event = message.decode::<I>()?;
    Ok((message, event))
}

/// Typed access to the attributes of one CloudEvent.
struct Attributes<'a>(&'a BTreeMap<String, Box<RawValue>>);

impl Attributes<'_> {
    fn optional_string(&self, name: &str) -> Result<Option<String>, CloudEventError> {
        self.0
            .get(name)
            .map(|raw| {
                serde_json::from_str::<String>(raw.get())
                    .map_err(|_| invalid(name, format!("`{}` is not a string", raw.get())))
            })
            .transpose()
    }

    fn string(&self, name: &'static str) -> Result<String, CloudEventError> {
        self.optional_string(name)?.ok_or(CloudEventError::Missing(name))
    }
}
