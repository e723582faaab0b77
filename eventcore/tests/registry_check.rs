//! The registry check: each kind of drift between the committed and the current registry is
//! found and explained.

use eventcore::schema::check::{check, Finding};
use eventcore::schema::compat::{CompatConfig, Compatibility, Direction};
use eventcore::schema::{
    EventRef, Registry, RegistryEntry, RegistryIssue, UpcasterEntry, UpcasterKind, REGISTRY_FORMAT_VERSION,
};
use serde_json::{json, Value};

fn schema(required: &[&str]) -> Value {
    let properties: serde_json::Map<String, Value> = ["amount", "currency", "note"]
        .iter()
        .map(|p| ((*p).to_owned(), json!({ "type": "string" })))
        .collect();
    json!({ "type": "object", "properties": properties, "required": required, "additionalProperties": false })
}

fn entry(event_type: &str, version: u32, schema: Value) -> RegistryEntry {
    RegistryEntry {
        event_type: event_type.into(),
        version,
        aggregate: Some("account".into()),
        rust_type: format!("bank::V{version}"),
        schema,
        upcasters: Vec::new(),
        kind: eventcore::schema::EventKind::Domain,
    }
}

fn step(event_type: &str, from: u32, to: (&str, u32)) -> UpcasterEntry {
    UpcasterEntry {
        event_type: event_type.into(),
        from_version: from,
        kind: UpcasterKind::Raw,
        name: format!("up_{from}"),
        produces: vec![EventRef {
            event_type: to.0.into(),
            version: to.1,
        }],
    }
}

fn registry(events: Vec<RegistryEntry>, upcasters: Vec<UpcasterEntry>) -> Registry {
    Registry {
        format_version: REGISTRY_FORMAT_VERSION,
        events,
        upcasters,
        retired: Vec::new(),
        consumers: Vec::new(),
    }
}

fn deposited(version: u32, required: &[&str]) -> RegistryEntry {
    entry("account.deposited", version, schema(required))
}

#[test]
fn identical_registries_pass() {
    let committed = registry(vec![deposited(1, &["amount"])], vec![]);
    let report = check(
        &committed,
        &committed.clone(),
        &CompatConfig::new(Compatibility::FullTransitive),
    );
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.to_string(), "the event registry matches the committed one");
}

#[test]
fn a_changed_schema_of_a_committed_version_is_caught_with_the_fix() {
    let committed = registry(vec![deposited(1, &["amount"])], vec![]);
    let current = registry(vec![deposited(1, &["amount", "currency"])], vec![]);
    let report = check(&committed, &current, &CompatConfig::default());
    assert_eq!(report.findings.len(), 1, "{report}");
    assert!(
        matches!(&report.findings[0], Finding::SchemaChanged { differences, .. }
            if differences == &[r#"/required: ["amount"] -> ["amount","currency"]"#.to_owned()]),
        "{report}"
    );
    let text = report.to_string();
    assert!(
        text.contains("the schema of `account.deposited` v1 changed"),
        "{text}"
    );
    assert!(
        text.contains("give the change a new version and add an upcaster"),
        "{text}"
    );
}

/// An entry whose schema is what schemars writes for a struct with doc comments.
fn documented(rust_type: &str, doc: &str, owner_type: &str) -> RegistryEntry {
    RegistryEntry {
        rust_type: rust_type.into(),
        ..entry(
            "account.opened",
            1,
            json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "title": rust_type.rsplit("::").next(),
                "description": doc,
                "type": "object",
                "properties": {
                    "owner": { "type": owner_type, "description": format!("{doc} (owner)") },
                    "title": { "type": "string" },
                },
                "$defs": { "Note": { "type": "string", "description": doc, "examples": ["x"] } },
                "required": ["owner"],
            }),
        )
    }
}

#[test]
fn doc_comment_and_rust_type_renames_are_not_breaking() {
    let committed = registry(
        vec![documented("bank::AccountOpened", "Opened.", "string")],
        vec![],
    );
    let current = registry(
        vec![documented(
            "bank::events::Opened",
            "An account was opened.",
            "string",
        )],
        vec![],
    );
    let report = check(
        &committed,
        &current,
        &CompatConfig::new(Compatibility::FullTransitive),
    );
    assert!(report.is_ok(), "{report}");
    assert!(eventcore::schema::check::same_contract(&committed, &current));
}

#[test]
fn a_changed_field_type_names_the_event_and_the_path() {
    let committed = registry(
        vec![documented("bank::AccountOpened", "Opened.", "string")],
        vec![],
    );
    let current = registry(
        vec![documented("bank::AccountOpened", "Opened.", "integer")],
        vec![],
    );
    let report = check(&committed, &current, &CompatConfig::default());
    assert_eq!(report.findings.len(), 1, "{report}");
    let text = report.to_string();
    assert!(
        text.contains(
            r#"`account.opened` v1: schema changed at /properties/owner/type: "string" -> "integer""#
        ),
        "{text}"
    );
    assert!(!eventcore::schema::check::same_contract(&committed, &current));
}

#[test]
fn a_property_named_like_an_annotation_is_still_compared() {
    let mut changed = documented("bank::AccountOpened", "Opened.", "string");
    changed.schema["properties"]["title"] = json!({ "type": "integer" });
    let committed = registry(
        vec![documented("bank::AccountOpened", "Opened.", "string")],
        vec![],
    );
    let report = check(
        &committed,
        &registry(vec![changed], vec![]),
        &CompatConfig::default(),
    );
    assert!(
        report
            .to_string()
            .contains(r#"schema changed at /properties/title/type: "string" -> "integer""#),
        "{report}"
    );
}

#[test]
fn a_committed_version_that_is_gone_is_caught() {
    let committed = registry(
        vec![
            deposited(1, &["amount"]),
            entry("account.closed", 1, schema(&[])),
            entry("account.closed", 2, schema(&[])),
        ],
        vec![],
    );
    let current = registry(
        vec![deposited(1, &["amount"]), entry("account.closed", 2, schema(&[]))],
        vec![],
    );
    let report = check(&committed, &current, &CompatConfig::default());
    assert_eq!(
        report.findings[0],
        Finding::Removed {
            event: EventRef {
                event_type: "account.closed".into(),
                version: 1
            }
        },
        "{report}"
    );
    assert!(report
        .to_string()
        .contains("no longer registered, and no upcaster reads it"));
}

#[test]
fn a_committed_type_with_no_version_left_may_be_unlinked() {
    let committed = registry(
        vec![deposited(1, &["amount"]), entry("account.closed", 1, schema(&[]))],
        vec![],
    );
    let current = registry(vec![deposited(1, &["amount"])], vec![]);
    let report = check(&committed, &current, &CompatConfig::default());
    assert_eq!(
        report.findings,
        vec![Finding::TypeMissing {
            event_type: "account.closed".into(),
            versions: vec![1],
        }]
    );
    let text = report.to_string();
    assert!(text.contains("a crate this binary does not link"), "{text}");
    assert!(
        text.contains("assert_registry::<(BookEvent, MemberEvent)>"),
        "{text}"
    );
}

#[test]
fn a_version_retired_behind_an_upcaster_is_not_gone() {
    let committed = registry(vec![deposited(1, &["amount"])], vec![]);
    let current = registry(
        vec![deposited(2, &["amount", "currency"])],
        vec![step("account.deposited", 1, ("account.deposited", 2))],
    );
    let report = check(&committed, &current, &CompatConfig::default());
    assert!(report.is_ok(), "{report}");
}

#[test]
fn a_new_version_without_an_upcaster_path_is_caught() {
    let committed = registry(
        vec![deposited(1, &["amount"]), deposited(2, &["amount", "currency"])],
        vec![step("account.deposited", 1, ("account.deposited", 2))],
    );
    let current = registry(
        vec![
            deposited(1, &["amount"]),
            deposited(2, &["amount", "currency"]),
            deposited(3, &["amount", "currency", "note"]),
        ],
        vec![step("account.deposited", 1, ("account.deposited", 2))],
    );
    let report = check(&committed, &current, &CompatConfig::default());
    let gaps: Vec<(u32, u32)> = report
        .findings
        .iter()
        .filter_map(|f| match f {
            Finding::Registry(RegistryIssue::Gap {
                from,
                stuck,
                latest: Some(3),
            }) => Some((from.version, stuck.version)),
            _ => None,
        })
        .collect();
    assert_eq!(gaps, vec![(1, 2), (2, 2)], "{report}");
    assert!(
        report
            .to_string()
            .contains("no upcaster from `account.deposited` v2"),
        "{report}"
    );
}

#[test]
fn an_ambiguous_step_in_the_current_registry_is_caught() {
    let committed = registry(vec![deposited(1, &["amount"])], vec![]);
    let mut second = step("account.deposited", 1, ("account.deposited", 2));
    second.name = "other".into();
    let current = registry(
        vec![deposited(1, &["amount"]), deposited(2, &["amount"])],
        vec![step("account.deposited", 1, ("account.deposited", 2)), second],
    );
    let report = check(&committed, &current, &CompatConfig::default());
    assert!(
        report
            .findings
            .iter()
            .any(|f| matches!(f, Finding::Registry(RegistryIssue::AmbiguousUpcaster { .. }))),
        "{report}"
    );
}

fn three_versions(v3_required: &[&str]) -> (Registry, Registry) {
    // v2 added `currency` to `required` (committed under NONE); v3 is new.
    let up = vec![
        step("account.deposited", 1, ("account.deposited", 2)),
        step("account.deposited", 2, ("account.deposited", 3)),
    ];
    let committed = registry(
        vec![deposited(1, &["amount"]), deposited(2, &["amount", "currency"])],
        up[..1].to_vec(),
    );
    let current = registry(
        vec![
            deposited(1, &["amount"]),
            deposited(2, &["amount", "currency"]),
            deposited(3, v3_required),
        ],
        up,
    );
    (committed, current)
}

#[test]
fn a_new_version_breaking_the_mode_is_caught_and_the_mode_can_be_overridden_per_event() {
    // v3 no longer requires `currency`, which code on v2 requires: old readers break.
    let (committed, current) = three_versions(&["amount"]);
    let report = check(&committed, &current, &CompatConfig::new(Compatibility::Forward));
    assert!(
        matches!(&report.findings[..], [Finding::Incompatible { against: 2, mode: Compatibility::Forward, direction: Direction::Forward, reasons, .. }] if reasons.len() == 1),
        "{report}"
    );
    let text = report.to_string();
    assert!(
        text.contains("`account.deposited` v3 breaks FORWARD compatibility with version 2"),
        "{text}"
    );
    assert!(
        text.contains("property `currency` is required by the reader"),
        "{text}"
    );
    assert!(
        text.contains("fix: code still on version 2 must read the new payloads"),
        "{text}"
    );

    let relaxed =
        CompatConfig::new(Compatibility::Forward).with_override("account.deposited", Compatibility::None);
    assert!(check(&committed, &current, &relaxed).is_ok());
    let other_type =
        CompatConfig::new(Compatibility::None).with_override("account.deposited", Compatibility::Full);
    assert!(!check(&committed, &current, &other_type).is_ok());
}

#[test]
fn a_version_reached_by_upcasters_reads_old_payloads_through_them() {
    // v3 requires `note`, which no v2 payload has: fine, since v2 is upcast to v3.
    let (committed, current) = three_versions(&["amount", "currency", "note"]);
    for mode in [
        Compatibility::Backward,
        Compatibility::BackwardTransitive,
        Compatibility::Full,
        Compatibility::FullTransitive,
    ] {
        let report = check(&committed, &current, &CompatConfig::new(mode));
        assert!(report.is_ok(), "{mode}: {report}");
    }
}

#[test]
fn transitive_modes_compare_with_every_older_version() {
    // `note` is a string in v1, a string or an integer in v2, an integer in v3: code on v2 reads
    // v3 payloads, code on v1 does not.
    let with_note = |version, note: Value| {
        let mut e = deposited(version, &["amount"]);
        e.schema["properties"]["note"] = json!({ "type": note });
        e
    };
    let v1 = with_note(1, json!("string"));
    let v2 = with_note(2, json!(["string", "integer"]));
    let v3 = with_note(3, json!("integer"));
    let up = vec![
        step("account.deposited", 1, ("account.deposited", 2)),
        step("account.deposited", 2, ("account.deposited", 3)),
    ];
    let committed = registry(vec![v1.clone(), v2.clone()], up[..1].to_vec());
    let current = registry(vec![v1, v2, v3], up);
    assert!(check(&committed, &current, &CompatConfig::new(Compatibility::Forward)).is_ok());
    let report = check(
        &committed,
        &current,
        &CompatConfig::new(Compatibility::ForwardTransitive),
    );
    assert!(
        matches!(
            &report.findings[..],
            [Finding::Incompatible {
                against: 1,
                direction: Direction::Forward,
                ..
            }]
        ),
        "{report}"
    );
}

#[test]
fn the_report_lists_every_finding_at_once() {
    let committed = registry(
        vec![deposited(1, &["amount"]), entry("account.closed", 1, schema(&[]))],
        vec![],
    );
    let current = registry(
        vec![deposited(1, &["amount", "note"]), deposited(2, &["amount"])],
        vec![],
    );
    let report = check(&committed, &current, &CompatConfig::default());
    assert_eq!(report.findings.len(), 3, "{report}");
    let text = report.to_string();
    assert!(
        text.starts_with("the event registry differs from the committed one (3 problem(s)):"),
        "{text}"
    );
    for needle in ["1. ", "2. ", "3. "] {
        assert!(text.contains(needle), "{text}");
    }
}
