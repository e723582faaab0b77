//! Mistakes the registry check must never let pass (issue #13): each test failed before its fix.

use eventcore::schema::compat::Compatibility;
use eventcore::schema::{EventKind, EventRef, Registry, RegistryEntry, UpcasterEntry, UpcasterKind};
use eventcore_testing::RegistryCheck;
use serde_json::{json, Value};

fn entry(event_type: &str, version: u32, rust_type: &str, schema: Value) -> RegistryEntry {
    RegistryEntry {
        event_type: event_type.into(),
        version,
        aggregate: event_type.split('.').next().map(str::to_owned),
        rust_type: rust_type.into(),
        schema,
        upcasters: Vec::new(),
        kind: EventKind::Domain,
    }
}

/// A closed object schema with these string properties, all required.
fn closed(properties: &[&str]) -> Value {
    let props: serde_json::Map<String, Value> = properties
        .iter()
        .map(|p| ((*p).to_owned(), json!({ "type": "string" })))
        .collect();
    json!({ "type": "object", "properties": props, "required": properties, "additionalProperties": false })
}

/// An open object schema (unknown properties allowed, as serde's default) with these properties.
fn open(properties: &[&str], required: &[&str]) -> Value {
    let props: serde_json::Map<String, Value> = properties
        .iter()
        .map(|p| ((*p).to_owned(), json!({ "type": "string" })))
        .collect();
    json!({ "type": "object", "properties": props, "required": required })
}

fn step(event_type: &str, from: u32, name: &str, kind: UpcasterKind, to: (&str, u32)) -> UpcasterEntry {
    UpcasterEntry {
        event_type: event_type.into(),
        from_version: from,
        kind,
        name: name.into(),
        produces: vec![EventRef {
            event_type: to.0.into(),
            version: to.1,
        }],
    }
}

fn registry(events: Vec<RegistryEntry>, upcasters: Vec<UpcasterEntry>) -> Registry {
    let mut registry = Registry::from_registrations([], []);
    registry.events = events;
    registry.upcasters = upcasters;
    registry
}

fn checker(path: &std::path::Path, registry: Registry) -> RegistryCheck {
    RegistryCheck::new::<()>(path)
        .registry(registry)
        .update(false)
        .ci(false)
}

fn loaned(version: u32) -> RegistryEntry {
    entry(
        "book.lent",
        version,
        &format!("library::BookLentV{version}"),
        closed(&["member"]),
    )
}

fn suspended() -> RegistryEntry {
    entry(
        "member.suspended",
        1,
        "library::MemberSuspended",
        closed(&["reason"]),
    )
}

// 1. An unlinked registry.

#[test]
fn an_empty_registry_is_neither_written_nor_passed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.json");
    let text = checker(&path, registry(vec![], vec![]))
        .run()
        .unwrap_err()
        .to_string();
    assert!(text.contains("no event types are linked"), "{text}");
    assert!(!path.exists(), "an empty registry is never written");
}

#[test]
fn an_empty_registry_against_a_committed_one_fails_about_linking_and_keeps_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.json");
    let committed = registry(vec![loaned(1), suspended()], vec![]);
    checker(&path, committed.clone()).run().unwrap();
    for update in [false, true] {
        let text = checker(&path, registry(vec![], vec![]))
            .update(update)
            .run()
            .unwrap_err()
            .to_string();
        assert!(text.contains("no event types are linked"), "{text}");
        assert!(!text.contains("EVENTCORE_UPDATE_REGISTRY=1"), "{text}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), committed.to_json());
    }
}

#[test]
fn a_partial_registry_names_the_missing_types_and_linking_and_keeps_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.json");
    let committed = registry(vec![loaned(1), suspended()], vec![]);
    checker(&path, committed.clone()).run().unwrap();
    for update in [false, true] {
        let text = checker(&path, registry(vec![loaned(1)], vec![]))
            .update(update)
            .run()
            .unwrap_err()
            .to_string();
        assert!(text.contains("`member.suspended`"), "{text}");
        assert!(text.contains("assert_registry::<("), "{text}");
        assert!(!text.contains("rerun with EVENTCORE_UPDATE_REGISTRY=1"), "{text}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), committed.to_json());
    }
}

// 2. Upcasters.

#[test]
fn a_committed_upcaster_that_disappears_is_a_finding() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.json");
    let up = step(
        "book.lent",
        1,
        "library::lent_v1",
        UpcasterKind::Raw,
        ("book.lent", 2),
    );
    checker(&path, registry(vec![loaned(2)], vec![up])).run().unwrap();
    let text = checker(&path, registry(vec![loaned(2)], vec![]))
        .run()
        .unwrap_err()
        .to_string();
    assert!(text.contains("library::lent_v1"), "{text}");
    assert!(text.contains("`book.lent` v1"), "{text}");
}

#[test]
fn a_committed_upcaster_that_reads_another_event_type_is_a_finding() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.json");
    let up = |event_type| {
        step(
            event_type,
            1,
            "library::lent_v1",
            UpcasterKind::Raw,
            ("book.lent", 2),
        )
    };
    checker(&path, registry(vec![loaned(2)], vec![up("book.lent")]))
        .run()
        .unwrap();
    let text = checker(&path, registry(vec![loaned(2)], vec![up("book.lend")]))
        .run()
        .unwrap_err()
        .to_string();
    assert!(text.contains("now reads `book.lend` v1"), "{text}");
    assert!(text.contains("`book.lent` v1"), "{text}");
}

#[test]
fn a_gap_behind_a_new_upcaster_is_a_finding() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.json");
    checker(
        &path,
        registry(
            vec![loaned(1), loaned(2)],
            vec![step("book.lent", 1, "a", UpcasterKind::Typed, ("book.lent", 2))],
        ),
    )
    .run()
    .unwrap();
    // A new raw upcaster from a renamed type that produces an old version with no step onwards.
    let upcasters = vec![
        step("book.lent", 1, "a", UpcasterKind::Typed, ("book.lent", 2)),
        step(
            "book.loaned",
            1,
            "library::rename",
            UpcasterKind::Raw,
            ("book.lent", 3),
        ),
    ];
    let text = checker(&path, registry(vec![loaned(1), loaned(2)], upcasters))
        .run()
        .unwrap_err()
        .to_string();
    assert!(text.contains("`book.loaned` v1 cannot be upcast"), "{text}");
}

#[test]
fn a_version_retired_for_a_raw_upcaster_stays_in_the_registry() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.json");
    let typed = step(
        "book.lent",
        1,
        "From<BookLentV1> for BookLent",
        UpcasterKind::Typed,
        ("book.lent", 2),
    );
    checker(&path, registry(vec![loaned(1), loaned(2)], vec![typed]))
        .run()
        .unwrap();
    let raw = step(
        "book.lent",
        1,
        "library::lent_v1",
        UpcasterKind::Raw,
        ("book.lent", 2),
    );
    checker(&path, registry(vec![loaned(2)], vec![raw.clone()]))
        .run()
        .unwrap();
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(written["retired"][0]["event_type"], "book.lent", "{written:#}");
    assert_eq!(written["retired"][0]["version"], 1, "{written:#}");
    assert_eq!(
        written["retired"][0]["read_by"],
        json!(["library::lent_v1"]),
        "{written:#}"
    );
    assert_eq!(
        written["retired"][0]["schema"],
        closed(&["member"]),
        "{written:#}"
    );
    // And it stays across the next rewrite; removing its upcaster now is a finding.
    checker(&path, registry(vec![loaned(2)], vec![raw]))
        .update(true)
        .run()
        .unwrap();
    let text = checker(&path, registry(vec![loaned(2)], vec![]))
        .run()
        .unwrap_err()
        .to_string();
    assert!(text.contains("`book.lent` v1"), "{text}");
}

// 3. Breaking findings are never rewritten automatically.

#[test]
fn an_update_request_refuses_a_breaking_change_unless_it_is_accepted_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.json");
    let committed = registry(vec![loaned(1)], vec![]);
    checker(&path, committed.clone()).run().unwrap();
    let mut changed = loaned(1);
    changed.schema = closed(&["member", "due"]);
    let changed = registry(vec![changed], vec![]);
    let text = checker(&path, changed.clone())
        .update(true)
        .run()
        .unwrap_err()
        .to_string();
    assert!(text.contains("EVENTCORE_ACCEPT_BREAKING=book.lent@1"), "{text}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), committed.to_json());
    let wrong = checker(&path, changed.clone())
        .update(true)
        .accept_breaking(["book.lent@2"]);
    assert!(wrong.run().is_err());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), committed.to_json());
    checker(&path, changed.clone())
        .update(true)
        .accept_breaking(["book.lent@1"])
        .run()
        .unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), changed.to_json());
}

// 4. Compatibility modes know upcasters.

#[test]
fn a_version_reached_by_an_upcaster_is_backward_and_full_compatible() {
    let v1 = entry(
        "book.lent",
        1,
        "library::BookLentV1",
        open(&["member"], &["member"]),
    );
    let v2 = entry(
        "book.lent",
        2,
        "library::BookLent",
        open(&["member", "due"], &["member", "due"]),
    );
    let up = step(
        "book.lent",
        1,
        "From<BookLentV1> for BookLent",
        UpcasterKind::Typed,
        ("book.lent", 2),
    );
    for mode in [
        Compatibility::Backward,
        Compatibility::Full,
        Compatibility::FullTransitive,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.json");
        checker(&path, registry(vec![v1.clone()], vec![])).run().unwrap();
        let current = registry(vec![v1.clone(), v2.clone()], vec![up.clone()]);
        let outcome = checker(&path, current).compatibility(mode).run();
        assert!(outcome.is_ok(), "{mode}: {}", outcome.unwrap_err());
    }
}

#[test]
fn compatibility_findings_say_what_to_do_without_jargon() {
    // v2 adds a property that v1 payloads, which allow unknown properties, may carry as anything;
    // v3 forbids unknown properties and drops `note`.
    let v1 = entry(
        "book.lent",
        1,
        "library::BookLentV1",
        open(&["member", "note"], &["member"]),
    );
    let v2 = entry(
        "book.lent",
        2,
        "library::BookLentV2",
        open(&["member", "note", "due"], &["member"]),
    );
    let v3 = entry("book.lent", 3, "library::BookLent", closed(&["member"]));
    for (old, new) in [(v1, v2.clone()), (v2, v3)] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.json");
        checker(&path, registry(vec![old.clone()], vec![])).run().unwrap();
        let text = checker(&path, registry(vec![old, new], vec![]))
            .compatibility(Compatibility::Backward)
            .run()
            .unwrap_err()
            .to_string();
        assert!(!text.contains("content model"), "{text}");
        assert!(text.contains("unknown properties"), "{text}");
        assert!(text.contains("fix: add an upcaster from version"), "{text}");
    }
}

// 5. Naming traps.

#[test]
fn an_upcast_from_source_the_committed_registry_never_had_is_a_finding() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.json");
    let on = |version, rust_type: &str| entry("lamp.on", version, rust_type, closed(&["room"]));
    checker(&path, registry(vec![on(1, "home::LampOn")], vec![]))
        .run()
        .unwrap();
    // `LampOnV1` without `name = "lamp.on"` is the event type `lamp.on_v1`, never stored.
    let v1 = entry("lamp.on_v1", 1, "home::LampOnV1", closed(&["room"]));
    let up = step(
        "lamp.on_v1",
        1,
        "From<LampOnV1> for LampOn",
        UpcasterKind::Typed,
        ("lamp.on", 2),
    );
    let text = checker(&path, registry(vec![v1, on(2, "home::LampOn")], vec![up]))
        .run()
        .unwrap_err()
        .to_string();
    assert!(
        text.contains(
            "`From<LampOnV1> for LampOn` reads `lamp.on_v1` v1, which the committed registry never had"
        ),
        "{text}"
    );
    assert!(text.contains(r#"name = "lamp.on""#), "{text}");
}

/// The named sets must be registered: here a set whose event is not in the checked registry.
#[derive(eventcore::DomainEvent, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[event(aggregate = "member")]
struct MemberJoined {
    name: String,
}

#[test]
fn a_named_event_set_missing_from_the_registry_fails_about_linking() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.json");
    let error = RegistryCheck::new::<(MemberJoined,)>(&path)
        .registry(registry(vec![loaned(1)], vec![]))
        .ci(false)
        .update(true)
        .run()
        .unwrap_err();
    let text = error.to_string();
    assert!(text.contains("`member.joined` v1"), "{text}");
    assert!(text.contains("registry_holes::MemberJoined"), "{text}");
    assert!(text.contains("links their crates"), "{text}");
    assert!(!path.exists());
}

#[test]
fn the_linked_registry_has_the_named_sets() {
    // Without `.registry(..)`: the registrations of this binary, which include `MemberJoined`.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.json");
    RegistryCheck::new::<MemberJoined>(&path).ci(false).assert();
    assert!(std::fs::read_to_string(&path).unwrap().contains("member.joined"));
}
