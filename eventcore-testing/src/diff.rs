//! Readable descriptions of events and of the differences between two event lists.

use std::fmt::Write as _;

use eventcore::DomainEvent;

use crate::round_trip::payload_json;

/// What a fixture compares of an event: type, version and payload.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EventView {
    event_type: &'static str,
    version: u32,
    payload: serde_json::Value,
}

impl EventView {
    pub(crate) fn of<E: DomainEvent>(event: &E) -> Self {
        let payload = match event.encode_payload() {
            Ok(bytes) => payload_json(&bytes),
            Err(e) => serde_json::Value::String(format!("<does not encode: {e}>")),
        };
        Self {
            event_type: event.event_type(),
            version: event.event_version(),
            payload,
        }
    }
}

impl std::fmt::Display for EventView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} v{} {}", self.event_type, self.version, self.payload)
    }
}

/// Lists `events`, one per line, numbered.
pub(crate) fn list(events: &[EventView]) -> String {
    if events.is_empty() {
        return "  (no events)\n".to_owned();
    }
    events.iter().enumerate().fold(String::new(), |mut out, (i, e)| {
        let _ = writeln!(out, "  #{i} {e}");
        out
    })
}

/// Describes where `expected` and `actual` differ, or `None` when they are equal.
pub(crate) fn events_diff(expected: &[EventView], actual: &[EventView]) -> Option<String> {
    if expected == actual {
        return None;
    }
    let mut out = String::new();
    if expected.len() != actual.len() {
        let _ = writeln!(out, "expected {} event(s), got {}", expected.len(), actual.len());
    }
    for i in 0..expected.len().max(actual.len()) {
        match (expected.get(i), actual.get(i)) {
            (Some(e), Some(a)) if e == a => {}
            (Some(e), Some(a)) => {
                let _ = writeln!(out, "  #{i} differs:\n    expected {e}\n    actual   {a}");
                if e.event_type == a.event_type && e.version == a.version {
                    for line in payload_diff(&e.payload, &a.payload) {
                        let _ = writeln!(out, "      {line}");
                    }
                }
            }
            (Some(e), None) => {
                let _ = writeln!(out, "  #{i} missing:  expected {e}");
            }
            (None, Some(a)) => {
                let _ = writeln!(out, "  #{i} unexpected: actual {a}");
            }
            (None, None) => {}
        }
    }
    let _ = write!(out, "expected:\n{}actual:\n{}", list(expected), list(actual));
    Some(out)
}

/// Field-level differences of two JSON objects (`field: expected X, actual Y`).
fn payload_diff(expected: &serde_json::Value, actual: &serde_json::Value) -> Vec<String> {
    let (Some(e), Some(a)) = (expected.as_object(), actual.as_object()) else {
        return Vec::new();
    };
    let mut keys: Vec<&String> = e.keys().chain(a.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| e.get(*k) != a.get(*k))
        .map(|k| {
            let show = |v: Option<&serde_json::Value>| v.map_or("(absent)".to_owned(), ToString::to_string);
            format!(
                "field `{k}`: expected {}, actual {}",
                show(e.get(k)),
                show(a.get(k))
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn view(t: &'static str, payload: serde_json::Value) -> EventView {
        EventView {
            event_type: t,
            version: 1,
            payload,
        }
    }

    #[test]
    fn equal_lists_have_no_diff() {
        let a = vec![view("a.x", json!({"n": 1}))];
        assert_eq!(events_diff(&a, &a.clone()), None);
    }

    #[test]
    fn diff_names_the_position_and_the_field() {
        let e = vec![view("a.x", json!({"n": 1, "s": "k"}))];
        let a = vec![view("a.x", json!({"n": 2, "s": "k"}))];
        let d = events_diff(&e, &a).expect("lists differ");
        assert!(d.contains("#0 differs"), "{d}");
        assert!(d.contains("field `n`: expected 1, actual 2"), "{d}");
        assert!(!d.contains("field `s`"), "{d}");
    }

    #[test]
    fn diff_reports_missing_and_unexpected_events() {
        let e = vec![view("a.x", json!({}))];
        let a = vec![view("a.x", json!({})), view("a.y", json!({}))];
        let d = events_diff(&e, &a).expect("lists differ");
        assert!(d.contains("expected 1 event(s), got 2"), "{d}");
        assert!(d.contains("#1 unexpected: actual a.y v1 {}"), "{d}");
        let d = events_diff(&a, &e).expect("lists differ");
        assert!(d.contains("#1 missing:  expected a.y v1 {}"), "{d}");
    }
}
