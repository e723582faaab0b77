//! Routing shared by the `#[projection]` and `#[event_handler]` expansions: which stored type
//! names reach a handled type (upcasting included), decoding into current envelopes, and the
//! compile-time list of handled types.

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::codec::{self, DecodedEvents, RecordDecodeError};
use crate::envelope::{Envelope, RecordedEvent};
use crate::event::SingleEvent;
use crate::schema::registered_upcasters;

/// For each stored type name an upcaster reads, every other type name its chain can produce.
///
/// Built once from the registered upcasters: a record of a renamed (older) type is handled by a
/// handler that takes one of the names it becomes.
fn upcast_targets() -> &'static HashMap<&'static str, Vec<&'static str>> {
    static TARGETS: OnceLock<HashMap<&'static str, Vec<&'static str>>> = OnceLock::new();
    TARGETS.get_or_init(|| {
        let mut edges: HashMap<&'static str, Vec<&'static str>> = HashMap::new();
        for upcaster in registered_upcasters() {
            let next = edges.entry(upcaster.event_type).or_default();
            next.extend(upcaster.produces.iter().map(|d| d.event_type));
        }
        edges
            .keys()
            .map(|&source| {
                let mut reached: Vec<&'static str> = Vec::new();
                let mut pending = vec![source];
                while let Some(name) = pending.pop() {
                    for &next in edges.get(name).into_iter().flatten() {
                        if next != source && !reached.contains(&next) {
                            reached.push(next);
                            pending.push(next);
                        }
                    }
                }
                reached.sort_unstable();
                (source, reached)
            })
            .filter(|(_, reached)| !reached.is_empty())
            .collect()
    })
}

/// Whether a record stored as `stored` reads as an event of type `target` (same name, or upcast).
pub fn routes_to(stored: &str, target: &'static str) -> bool {
    stored == target
        || upcast_targets()
            .get(stored)
            .is_some_and(|names| names.binary_search(&target).is_ok())
}

/// Whether a record stored as `stored` reaches one of the sorted `handled` names (directly, or
/// after upcasting).
pub fn handles(stored: &str, handled: &[&str]) -> bool {
    handled.binary_search(&stored).is_ok()
        || upcast_targets()
            .get(stored)
            .is_some_and(|names| names.iter().any(|name| handled.binary_search(name).is_ok()))
}

/// Every stored type name that reaches one of the sorted `handled` names: the names themselves
/// and the older names that upcast into them (the filter a runner reads with).
pub fn stored_event_types(handled: &[&'static str]) -> Vec<&'static str> {
    let mut names: Vec<&'static str> = handled.to_vec();
    names.extend(
        upcast_targets()
            .iter()
            .filter(|(_, reached)| reached.iter().any(|name| handled.binary_search(name).is_ok()))
            .map(|(&source, _)| source),
    );
    names.sort_unstable();
    names.dedup();
    names
}

/// Decodes `record` into the events of `E` it stands for, as envelopes of their current type
/// (upcasting an older version or name; a record that splits yields several).
pub fn decode_envelopes<'r, E: SingleEvent>(
    record: &'r RecordedEvent,
) -> Result<impl Iterator<Item = Envelope<E>> + Send + 'r, RecordDecodeError> {
    let events: DecodedEvents<E> = codec::decode_record_of::<E>(record)?;
    Ok(events.map(move |event| {
        let mut envelope = record.with_payload(event);
        if envelope.event_type != E::EVENT_TYPE {
            E::EVENT_TYPE.clone_into(&mut envelope.event_type);
        }
        envelope.event_version = E::EVENT_VERSION;
        envelope
    }))
}

/// `types` sorted, in constant evaluation; two equal names fail it (two handlers for one type).
#[allow(clippy::panic)] // evaluated at compile time, where a panic is the error message
pub const fn sorted_event_types<const N: usize>(mut types: [&'static str; N]) -> [&'static str; N] {
    let mut i = 1;
    while i < N {
        let mut j = i;
        while j > 0 {
            match compare(types[j - 1], types[j]) {
                std::cmp::Ordering::Greater => {
                    let swap = types[j - 1];
                    types[j - 1] = types[j];
                    types[j] = swap;
                }
                std::cmp::Ordering::Equal => panic!(
                    "two `#[on]` handlers of one projection or event handler handle the same event type \
                     (two versions of one event?): keep the handler of the current version"
                ),
                std::cmp::Ordering::Less => break,
            }
            j -= 1;
        }
        i += 1;
    }
    types
}

/// Byte-wise string order, in constant evaluation.
const fn compare(a: &str, b: &str) -> std::cmp::Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut i = 0;
    while i < a.len() && i < b.len() {
        if a[i] != b[i] {
            return if a[i] < b[i] {
                std::cmp::Ordering::Less
            } else {
                std::cmp::Ordering::Greater
            };
        }
        i += 1;
    }
    if a.len() < b.len() {
        std::cmp::Ordering::Less
    } else if a.len() > b.len() {
        std::cmp::Ordering::Greater
    } else {
        std::cmp::Ordering::Equal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_at_compile_time() {
        const SORTED: [&str; 4] = sorted_event_types(["b.x", "a.y", "a", "b"]);
        assert_eq!(SORTED, ["a", "a.y", "b", "b.x"]);
        const EMPTY: [&str; 0] = sorted_event_types([]);
        assert!(EMPTY.is_empty());
    }

    #[test]
    fn unknown_names_route_only_to_themselves() {
        assert!(routes_to("nobody.knows", "nobody.knows"));
        assert!(!routes_to("nobody.knows", "someone.else"));
        assert!(!handles("nobody.knows", &["someone.else"]));
        assert!(handles("b", &["a", "b", "c"]));
    }
}
