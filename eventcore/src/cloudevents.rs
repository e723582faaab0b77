//! Lossless conversion between [`RecordedEvent`] and CloudEvents 1.0 JSON (structured mode).
//!
//! | envelope field    | CloudEvents attribute                                             |
//! |-------------------|-------------------------------------------------------------------|
//! | `event_id`        | `id`                                                              |
//! | (configurable)    | `source`: `eventcore://<aggregate_type>` or a fixed URI reference |
//! | -                 | `specversion`: `"1.0"`                                            |
//! | `event_type`      | `type`                                                            |
//! | `occurred_at`     | `time`: RFC 3339 in UTC with every fractional digit kept          |
//! | `stream_id`       | `subject`                                                         |
//! | -                 | `datacontenttype`: `application/json`                             |
//! | type + version    | `dataschema`: `eventcore:schema/<event_type>/v<version>`, the key of the registry entry |
//! | `payload`         | `data`: the payload JSON, byte for byte                           |
//! | `event_version`   | extension `eventversion`                                          |
//! | `stream_version`  | extension `streamversion`                                         |
//! | `global_position` | extension `globalposition`                                        |
//! | `aggregate_type`  | extension `aggregatetype`                                         |
//! | `aggregate_id`    | extension `aggregateid`                                           |
//! | `correlation_id`  | extension `correlationid` (absent when `None`)                    |
//! | `causation_id`    | extension `causationid` (absent when `None`)                      |
//! | `metadata`        | extension `metadata`: the map as a JSON object in a string (absent when empty) |
//!
//! Every extension is a JSON string: CloudEvents integers are 32-bit, positions are not. Reading
//! back, an unknown extension with a string value joins `metadata` under its own name; anything
//! else invalid (a missing or malformed attribute, `specversion` other than `1.0`, an attribute
//! name outside lower-case `a-z0-9`) is a [`CloudEventError`] naming the attribute.
//!
//! ```
//! use eventcore::cloudevents::{from_json, to_json, Source};
//! # use eventcore::RecordedEvent;
//! # fn demo(record: &RecordedEvent) -> Result<(), eventcore::cloudevents::CloudEventError> {
//! let json = to_json(record, &Source::AggregateType)?;
//! assert_eq!(&from_json(&json)?, record);
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::value::RawValue;

use crate::envelope::{Envelope, Metadata, RecordedEvent};
use crate::event::DomainEvent;

/// The only CloudEvents version produced and accepted.
pub const SPEC_VERSION: &str = "1.0";

/// The content type of `data`.
pub const CONTENT_TYPE: &str = "application/json";

/// What to put in the `source` attribute.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Source {
    /// `eventcore://<aggregate_type>`.
    #[default]
    AggregateType,
    /// A fixed URI reference, for example `https://bank.example/accounts`.
    Fixed(String),
}

/// A CloudEvent could not be produced or read; names the attribute at fault.
#[derive(Debug, thiserror::Error)]
pub enum CloudEventError {
    /// The input is not a JSON object.
    #[error("not a CloudEvents JSON object: {0}")]
    NotAnObject(#[source] serde_json::Error),
    /// A required attribute is absent.
    #[error("missing required attribute `{0}`")]
    Missing(&'static str),
    /// An attribute has a value this conversion cannot accept.
    #[error("attribute `{attribute}` is invalid: {reason}")]
    Invalid {
        /// The attribute's name.
        attribute: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl CloudEventError {
    fn invalid(attribute: &str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            attribute: attribute.to_owned(),
            reason: reason.into(),
        }
    }

    /// The attribute at fault, if the error is about one.
    pub fn attribute(&self) -> Option<&str> {
        match self {
            Self::NotAnObject(_) => None,
            Self::Missing(attribute) => Some(attribute),
            Self::Invalid { attribute, .. } => Some(attribute),
        }
    }
}

/// The `dataschema` URI of an event type at a version: `eventcore:schema/<event_type>/v<version>`.
pub fn dataschema(event_type: &str, version: u32) -> String {
    format!("eventcore:schema/{event_type}/v{version}")
}

const ENVELOPE_EXTENSIONS: [&str; 8] = [
    "eventversion",
    "streamversion",
    "globalposition",
    "aggregatetype",
    "aggregateid",
    "correlationid",
    "causationid",
    "metadata",
];
const CONTEXT_ATTRIBUTES: [&str; 9] = [
    "id",
    "source",
    "specversion",
    "type",
    "time",
    "subject",
    "datacontenttype",
    "dataschema",
    "data",
];

/// The CloudEvent of `record` as JSON (attributes in sorted order, `data` verbatim).
pub fn to_json(record: &RecordedEvent, source: &Source) -> Result<String, CloudEventError> {
    let mut out = String::with_capacity(512 + record.payload.len());
    write_json(record, source, &mut out)?;
    Ok(out)
}

/// Appends the CloudEvent of `record` to `out`, as [`to_json`] writes it; on an error nothing is
/// appended. For publishers that reuse one buffer for many events.
pub(crate) fn write_json(
    record: &RecordedEvent,
    source: &Source,
    out: &mut String,
) -> Result<(), CloudEventError> {
    let data: &RawValue = serde_json::from_slice(&record.payload)
        .map_err(|e| CloudEventError::invalid("data", format!("the payload is not JSON: {e}")))?;
    let metadata = if record.metadata.is_empty() {
        None
    } else {
        Some(
            serde_json::to_string(&record.metadata)
                .map_err(|e| CloudEventError::invalid("metadata", e.to_string()))?,
        )
    };
    // Written straight into the buffer, attributes in sorted (byte) order: the same bytes as a
    // sorted map of the attributes serialized compactly, without a value allocated per attribute.
    let mut out = Json(out);
    out.0.reserve(400 + data.get().len());
    out.0.push('{');
    out.string_attribute("aggregateid", &record.aggregate_id, true);
    out.string_attribute("aggregatetype", &record.aggregate_type, false);
    if let Some(causation) = &record.causation_id {
        out.string_attribute("causationid", causation, false);
    }
    if let Some(correlation) = &record.correlation_id {
        out.string_attribute("correlationid", correlation, false);
    }
    out.0.push_str(",\"data\":");
    out.0.push_str(data.get());
    out.plain_attribute("datacontenttype", CONTENT_TYPE);
    out.key("dataschema", false);
    out.0.push_str("\"eventcore:schema/");
    escape_into(out.0, &record.event_type);
    out.0.push_str("/v");
    out.digits(u64::from(record.event_version));
    out.0.push('"');
    out.number_attribute("eventversion", u64::from(record.event_version));
    out.number_attribute("globalposition", record.global_position);
    let mut id = uuid::Uuid::encode_buffer();
    out.plain_attribute("id", record.event_id.hyphenated().encode_lower(&mut id));
    if let Some(metadata) = &metadata {
        out.string_attribute("metadata", metadata, false);
    }
    match source {
        Source::AggregateType => {
            out.key("source", false);
            out.0.push_str("\"eventcore://");
            escape_into(out.0, &record.aggregate_type);
            out.0.push('"');
        }
        Source::Fixed(source) => out.string_attribute("source", source, false),
    }
    out.plain_attribute("specversion", SPEC_VERSION);
    out.number_attribute("streamversion", record.stream_version);
    out.string_attribute("subject", &record.stream_id, false);
    out.key("time", false);
    out.0.push('"');
    write_time(out.0, &record.occurred_at);
    out.0.push('"');
    out.string_attribute("type", &record.event_type, false);
    out.0.push('}');
    Ok(())
}

/// Appends `time` as `to_rfc3339_opts(SecondsFormat::AutoSi, true)` writes it, without allocating
/// for the common case (years 0 to 9999, no leap second).
fn write_time(out: &mut String, time: &DateTime<Utc>) {
    use chrono::{Datelike, Timelike};
    // UTC: the naive time is the one written (no offset applied per field).
    let time = time.naive_utc();
    let (year, nanos) = (time.year(), time.nanosecond());
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        out.push_str(&time.and_utc().to_rfc3339_opts(SecondsFormat::AutoSi, true));
        return;
    }
    /// Appends `value` as `width` decimal digits, zero-padded.
    fn digits(out: &mut String, value: u32, width: usize) {
        let mut buffer = [b'0'; 9];
        let mut rest = value;
        for slot in buffer[..width].iter_mut().rev() {
            *slot = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        // ASCII digits only.
        out.extend(buffer[..width].iter().map(|&b| char::from(b)));
    }
    digits(out, year as u32, 4);
    out.push('-');
    digits(out, time.month(), 2);
    out.push('-');
    digits(out, time.day(), 2);
    out.push('T');
    digits(out, time.hour(), 2);
    out.push(':');
    digits(out, time.minute(), 2);
    out.push(':');
    digits(out, time.second(), 2);
    if nanos != 0 {
        out.push('.');
        if nanos % 1_000_000 == 0 {
            digits(out, nanos / 1_000_000, 3);
        } else if nanos % 1_000 == 0 {
            digits(out, nanos / 1_000, 6);
        } else {
            digits(out, nanos, 9);
        }
    }
    out.push('Z');
}

/// A JSON object being written.
struct Json<'a>(&'a mut String);

impl Json<'_> {
    /// Writes `"name":` (after a comma unless `first`).
    fn key(&mut self, name: &str, first: bool) {
        if !first {
            self.0.push(',');
        }
        self.0.push('"');
        self.0.push_str(name);
        self.0.push_str("\":");
    }

    /// Writes attribute `name` with `value` as a JSON string.
    fn string_attribute(&mut self, name: &str, value: &str, first: bool) {
        self.key(name, first);
        self.0.push('"');
        escape_into(self.0, value);
        self.0.push('"');
    }

    /// Writes attribute `name` with `value`, which needs no escaping, as a JSON string.
    fn plain_attribute(&mut self, name: &str, value: &str) {
        self.key(name, false);
        self.0.push('"');
        self.0.push_str(value);
        self.0.push('"');
    }

    /// Writes attribute `name` with the decimal digits of `value` as a JSON string.
    fn number_attribute(&mut self, name: &str, value: u64) {
        self.key(name, false);
        self.0.push('"');
        self.digits(value);
        self.0.push('"');
    }

    /// Writes the decimal digits of `value`.
    fn digits(&mut self, mut value: u64) {
        let mut digits = [0u8; 20];
        let mut start = digits.len();
        loop {
            start -= 1;
            digits[start] = b'0' + (value % 10) as u8;
            value /= 10;
            if value == 0 {
                break;
            }
        }
        // ASCII digits only.
        self.0.extend(digits[start..].iter().map(|&b| char::from(b)));
    }
}

/// Whether `value` needs no JSON escaping.
fn plain(value: &str) -> bool {
    // Without an early exit, so that it vectorizes (the values are short).
    !value.bytes().fold(false, |escape, b| {
        escape | (b < 0x20) | (b == b'"') | (b == b'\\')
    })
}

/// Appends `value` JSON-escaped (without the quotes) exactly as serde_json escapes it.
fn escape_into(out: &mut String, value: &str) {
    if plain(value) {
        out.push_str(value);
        return;
    }
    // Serializing a `&str` cannot fail; serde_json quotes it, the quotes are left out.
    if let Ok(quoted) = serde_json::to_string(value) {
        out.push_str(&quoted[1..quoted.len() - 1]);
    }
}

/// The CloudEvent of a typed event, as [`to_json`]: `data` is the event as the code holds it
/// (after upcasting, so `type`, `dataschema` and `eventversion` name the current version), for
/// publishing what a reader decoded rather than what was stored.
///
/// ```
/// use eventcore::cloudevents::{envelope_to_json, from_json, Source};
/// use eventcore::NewEvent;
/// # use eventcore::prelude::*;
/// # use serde::{Deserialize, Serialize};
/// # #[derive(DomainEvent, Serialize, Deserialize, schemars::JsonSchema, Debug, Clone, PartialEq)]
/// # #[event(aggregate = "book", version = 2)]
/// # struct BookLent { member: String }
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let record = NewEvent::encode(&BookLent { member: "ada".into() }, "book", "b1")?
///     .into_recorded("book-b1", 1, 7);
/// let typed: Envelope<BookLent> = record.decode()?;
/// let json = envelope_to_json(&typed, &Source::AggregateType)?;
/// let back = from_json(&json)?;
/// assert_eq!((back.event_type.as_str(), back.event_version), ("book.lent", 2));
/// assert_eq!(back.decode::<BookLent>()?.payload, typed.payload);
/// # Ok(()) }
/// ```
pub fn envelope_to_json<E: DomainEvent>(
    envelope: &Envelope<E>,
    source: &Source,
) -> Result<String, CloudEventError> {
    let payload = envelope
        .payload
        .encode_payload()
        .map_err(|e| CloudEventError::invalid("data", format!("the event does not encode: {e}")))?;
    let mut record = envelope.with_payload(Bytes::from(payload));
    envelope.payload.event_type().clone_into(&mut record.event_type);
    record.event_version = envelope.payload.event_version();
    to_json(&record, source)
}

/// The recorded event a CloudEvent written by [`to_json`] stands for.
pub fn from_json(json: &str) -> Result<RecordedEvent, CloudEventError> {
    record(&parse(json)?)
}

/// The recorded event a CloudEvent stands for, unless its `eventkind` extension is `kind`
/// (`None`: read it another way); parsed once either way.
#[cfg_attr(not(any(feature = "redis", feature = "nats")), allow(dead_code))]
pub(crate) fn from_json_unless_kind(
    json: &str,
    kind: &str,
) -> Option<Result<RecordedEvent, CloudEventError>> {
    let attributes = match parse(json) {
        Ok(attributes) => attributes,
        Err(error) => return Some(Err(error)),
    };
    let has_kind = attributes
        .get("eventkind")
        .and_then(|raw| serde_json::from_str::<std::borrow::Cow<'_, str>>(raw.get()).ok())
        .is_some_and(|found| found == kind);
    (!has_kind).then(|| record(&attributes))
}

/// The attributes of a CloudEvent, borrowed from its JSON.
type AttributeMap<'a> = BTreeMap<Name<'a>, &'a RawValue>;

/// Reads the attributes of a CloudEvent.
fn parse(json: &str) -> Result<AttributeMap<'_>, CloudEventError> {
    serde_json::from_str(json).map_err(CloudEventError::NotAnObject)
}

/// The recorded event the attributes of a CloudEvent stand for.
fn record(attributes: &AttributeMap<'_>) -> Result<RecordedEvent, CloudEventError> {
    let event = Attributes(attributes);
    for name in attributes.keys() {
        let name = name.0.as_ref();
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) {
            if name != "data_base64" {
                return Err(CloudEventError::invalid(
                    name,
                    "attribute names are lower-case letters and digits only",
                ));
            }
            return Err(CloudEventError::invalid(name, "only JSON `data` is supported"));
        }
    }
    let specversion = event.string("specversion")?;
    if specversion != SPEC_VERSION {
        return Err(CloudEventError::invalid(
            "specversion",
            format!("`{specversion}` is not `{SPEC_VERSION}`"),
        ));
    }
    event.string("source")?;
    if let Some(content_type) = event.optional_string("datacontenttype")? {
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        if !essence.eq_ignore_ascii_case(CONTENT_TYPE) {
            return Err(CloudEventError::invalid(
                "datacontenttype",
                format!("`{content_type}` is not `{CONTENT_TYPE}`"),
            ));
        }
    }
    event.optional_string("dataschema")?;
    let time = event.string("time")?;
    let occurred_at = DateTime::parse_from_rfc3339(&time)
        .map_err(|e| CloudEventError::invalid("time", format!("`{time}` is not an RFC 3339 timestamp: {e}")))?
        .with_timezone(&Utc);
    let event_id = event.string("id")?;
    let event_id = uuid::Uuid::parse_str(&event_id)
        .map_err(|e| CloudEventError::invalid("id", format!("`{event_id}` is not a UUID: {e}")))?;
    let mut metadata = match event.optional_string("metadata")? {
        Some(json) => serde_json::from_str::<Metadata>(&json).map_err(|e| {
            CloudEventError::invalid("metadata", format!("not a JSON object of strings: {e}"))
        })?,
        None => Metadata::new(),
    };
    for name in attributes.keys() {
        let name = name.0.as_ref();
        let known = CONTEXT_ATTRIBUTES.contains(&name) || ENVELOPE_EXTENSIONS.contains(&name);
        if !known {
            if let Some(value) = event.optional_string(name)? {
                metadata.entry(name.to_owned()).or_insert(value);
            }
        }
    }
    let data = attributes.get("data").ok_or(CloudEventError::Missing("data"))?;
    Ok(RecordedEvent {
        event_id,
        event_type: event.string("type")?,
        event_version: event.number("eventversion")?,
        stream_id: event.string("subject")?,
        aggregate_type: event.string("aggregatetype")?,
        aggregate_id: event.string("aggregateid")?,
        stream_version: event.number("streamversion")?,
        global_position: event.number("globalposition")?,
        occurred_at,
        correlation_id: event.optional_string("correlationid")?,
        causation_id: event.optional_string("causationid")?,
        metadata,
        payload: Bytes::copy_from_slice(data.get().as_bytes()),
    })
}

/// An attribute name as read: borrowed from the JSON unless it was written with escapes.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Name<'a>(std::borrow::Cow<'a, str>);

impl std::borrow::Borrow<str> for Name<'_> {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl<'de> serde::Deserialize<'de> for Name<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an attribute name")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, name: &'de str) -> Result<Name<'de>, E> {
                Ok(Name(std::borrow::Cow::Borrowed(name)))
            }
            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<Name<'de>, E> {
                Ok(Name(std::borrow::Cow::Owned(name.to_owned())))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

/// Typed access to the attributes of one CloudEvent.
struct Attributes<'m, 'a>(&'m AttributeMap<'a>);

impl Attributes<'_, '_> {
    fn optional_string(&self, name: &str) -> Result<Option<String>, CloudEventError> {
        self.0
            .get(name)
            .map(|raw| {
                serde_json::from_str::<String>(raw.get())
                    .map_err(|_| CloudEventError::invalid(name, format!("`{}` is not a string", raw.get())))
            })
            .transpose()
    }

    fn string(&self, name: &'static str) -> Result<String, CloudEventError> {
        self.optional_string(name)?.ok_or(CloudEventError::Missing(name))
    }

    fn number<N: std::str::FromStr>(&self, name: &'static str) -> Result<N, CloudEventError> {
        let text = self.string(name)?;
        text.parse()
            .map_err(|_| CloudEventError::invalid(name, format!("`{text}` is not a non-negative integer")))
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, SecondsFormat, TimeZone, Utc};

    #[test]
    fn time_is_written_as_chrono_writes_it() {
        let mut times: Vec<DateTime<Utc>> = vec![Utc::now()];
        for (seconds, nanos) in [
            (0_i64, 0_u32),
            (1_700_000_000, 0),
            (1_700_000_000, 120_000_000),
            (1_700_000_000, 123_456_000),
            (1_700_000_000, 123_456_789),
            (1_700_000_000, 1),
            (-62_167_219_200, 5_000),       // year 0
            (-62_167_219_201, 0),           // year -1
            (253_402_300_799, 999_999_999), // 9999-12-31T23:59:59
            (253_402_300_800, 0),           // year 10000
            (1_483_228_799, 1_500_000_000), // a leap second
        ] {
            times.extend(Utc.timestamp_opt(seconds, nanos).single());
        }
        for time in times {
            let mut written = String::new();
            super::write_time(&mut written, &time);
            assert_eq!(written, time.to_rfc3339_opts(SecondsFormat::AutoSi, true));
        }
    }
}
