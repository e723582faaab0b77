//! `assert_registry` / `RegistryCheck`: writes a missing registry, passes on a match, records new
//! versions, and fails with a readable report on drift.

use eventcore::schema::compat::Compatibility;
use eventcore::schema::{
    EventRef, Registry, RegistryEntry, UpcasterEntry, UpcasterKind, REGISTRY_FORMAT_VERSION,
};
use eventcore_testing::registry_check::{RegistryCheckError, RegistryOutcome};
use eventcore_testing::RegistryCheck;
use serde_json::json;

fn entry(version: u32, required: &[&str]) -> RegistryEntry {
    RegistryEntry {
        event_type: "account.deposited".into(),
        version,
        aggregate: Some("account".into()),
        rust_type: format!("bank::DepositedV{version}"),
        schema: json!({
            "type": "object",
            "properties": { "amount": { "type": "integer" }, "currency": { "type": "string" } },
            "required": required,
            "additionalProperties": false,
        }),
        upcasters: Vec::new(),
        kind: eventcore::schema::EventKind::Domain,
    }
}

fn registry(events: Vec<RegistryEntry>, with_upcaster: bool) -> Registry {
    let upcasters = if with_upcaster {
        vec![UpcasterEntry {
            event_type: "account.deposited".into(),
            from_version: 1,
            kind: UpcasterKind::Typed,
            name: "From<DepositedV1> for DepositedV2".into(),
            produces: vec![EventRef {
                event_type: "account.deposited".into(),
                version: 2,
            }],
        }]
    } else {
        Vec::new()
    };
    Registry {
        format_version: REGISTRY_FORMAT_VERSION,
        events,
        upcasters,
        retired: Vec::new(),
        consumers: Vec::new(),
    }
}

fn checker(path: &std::path::Path, registry: Registry) -> RegistryCheck {
    RegistryCheck::new::<()>(path)
        .registry(registry)
        .update(false)
        .ci(false)
}

#[test]
fn a_missing_file_is_written_then_matched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("schemas/registry.json");
    let v1 = registry(vec![entry(1, &["amount"])], false);
    assert_eq!(
        checker(&path, v1.clone()).run().unwrap(),
        RegistryOutcome::Created
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), v1.to_json());
    assert_eq!(checker(&path, v1).run().unwrap(), RegistryOutcome::Matched);
}

#[test]
fn a_new_version_with_an_upcaster_is_recorded_locally_and_stale_in_ci() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.json");
    checker(&path, registry(vec![entry(1, &["amount"])], false))
        .run()
        .unwrap();
    let v2 = registry(
        vec![entry(1, &["amount"]), entry(2, &["amount", "currency"])],
        true,
    );
    let in_ci = checker(&path, v2.clone()).ci(true).run().unwrap_err();
    assert!(matches!(in_ci, RegistryCheckError::Stale { .. }), "{in_ci}");
    assert_eq!(
        checker(&path, v2.clone()).run().unwrap(),
        RegistryOutcome::Updated
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), v2.to_json());
}

#[test]
fn drift_fails_with_a_report_and_the_file_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.json");
    let v1 = registry(vec![entry(1, &["amount"])], false);
    checker(&path, v1.clone()).run().unwrap();
    let changed = registry(vec![entry(1, &["amount", "currency"])], false);
    let error = checker(&path, changed.clone()).run().unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("the schema of `account.deposited` v1 changed"),
        "{text}"
    );
    assert!(
        text.contains("EVENTCORE_UPDATE_REGISTRY=1 EVENTCORE_ACCEPT_BREAKING=account.deposited@1"),
        "{text}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), v1.to_json());
    assert!(checker(&path, changed.clone()).update(true).run().is_err());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), v1.to_json());
    assert_eq!(
        checker(&path, changed.clone())
            .update(true)
            .accept_breaking(["account.deposited"])
            .run()
            .unwrap(),
        RegistryOutcome::Updated
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), changed.to_json());
}

#[test]
fn a_version_bump_without_an_upcaster_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.json");
    checker(&path, registry(vec![entry(1, &["amount"])], false))
        .run()
        .unwrap();
    let v2 = registry(
        vec![entry(1, &["amount"]), entry(2, &["amount", "currency"])],
        false,
    );
    let text = checker(&path, v2).run().unwrap_err().to_string();
    assert!(
        text.contains("`account.deposited` v1 cannot be upcast to a current version"),
        "{text}"
    );
}

#[test]
fn the_compatibility_mode_applies_with_per_event_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.json");
    checker(&path, registry(vec![entry(1, &["amount"])], false))
        .run()
        .unwrap();
    // v2 no longer requires `amount`, which code on v1 requires.
    let v2 = registry(vec![entry(1, &["amount"]), entry(2, &[])], true);
    let strict = checker(&path, v2.clone()).compatibility(Compatibility::Forward);
    let text = strict.run().unwrap_err().to_string();
    assert!(
        text.contains("breaks FORWARD compatibility with version 1"),
        "{text}"
    );
    let relaxed = strict.compatibility_for("account.deposited", Compatibility::Backward);
    assert!(relaxed.run().is_ok());
}

#[test]
fn an_unreadable_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.json");
    std::fs::write(&path, "not json").unwrap();
    let text = checker(&path, registry(vec![entry(1, &["amount"])], false))
        .run()
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("registry.json` is not a readable event registry"),
        "{text}"
    );
}

#[test]
#[should_panic(expected = "event registry check failed")]
fn assert_panics_on_drift() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.json");
    checker(&path, registry(vec![entry(1, &["amount"])], false))
        .run()
        .unwrap();
    checker(&path, registry(vec![], false)).assert();
}

#[test]
fn a_missing_file_fails_in_ci_saying_how_to_create_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.json");
    let v1 = registry(vec![entry(1, &["amount"])], false);
    let error = checker(&path, v1.clone()).ci(true).run().unwrap_err();
    assert!(matches!(error, RegistryCheckError::Missing { .. }), "{error}");
    let text = error.to_string();
    assert!(text.contains("registry.json` does not exist"), "{text}");
    assert!(
        text.contains("run the tests locally (or with EVENTCORE_UPDATE_REGISTRY=1)"),
        "{text}"
    );
    assert!(!path.exists(), "nothing is written in CI");
    assert_eq!(
        checker(&path, v1).ci(true).update(true).run().unwrap(),
        RegistryOutcome::Created
    );
}

fn documented(doc: &str, rust_type: &str, amount_type: &str) -> Registry {
    let mut e = entry(1, &["amount"]);
    e.rust_type = rust_type.into();
    e.schema["description"] = json!(doc);
    e.schema["properties"]["amount"] = json!({ "type": amount_type, "description": doc });
    registry(vec![e], false)
}

#[test]
fn a_doc_comment_or_rust_type_change_is_not_breaking() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.json");
    checker(&path, documented("Money in.", "bank::Deposited", "integer"))
        .run()
        .unwrap();
    let renamed = documented("Money paid in.", "bank::events::MoneyIn", "integer");
    assert_eq!(
        checker(&path, renamed.clone()).ci(true).run().unwrap(),
        RegistryOutcome::OutOfDate
    );
    assert_eq!(
        checker(&path, renamed.clone()).run().unwrap(),
        RegistryOutcome::Updated
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), renamed.to_json());
}

#[test]
fn a_type_change_fails_naming_the_event_and_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.json");
    checker(&path, documented("Money in.", "bank::Deposited", "integer"))
        .run()
        .unwrap();
    let text = checker(&path, documented("Money in.", "bank::Deposited", "string"))
        .run()
        .unwrap_err()
        .to_string();
    assert!(
        text.contains(
            r#"`account.deposited` v1: schema changed at /properties/amount/type: "integer" -> "string""#
        ),
        "{text}"
    );
}
