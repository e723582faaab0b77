//! The bank example's event registry: complete, consistent, and matching the committed JSON.

use eventcore::schema::registry;
use eventcore::DomainEvent;
use eventcore_examples::bank::AccountEvent;

#[test]
fn the_registry_sees_every_event_of_the_example() {
    let registry = registry();
    for descriptor in AccountEvent::EVENT_TYPES {
        let entry = registry
            .get(descriptor.event_type, descriptor.version)
            .unwrap_or_else(|| panic!("{descriptor:?} is not registered"));
        assert!(
            entry.rust_type.starts_with("eventcore_examples::bank::"),
            "{}",
            entry.rust_type
        );
        assert_eq!(
            entry.schema["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
    }
    if let Err(report) = registry.validate() {
        panic!("{report}");
    }
}

#[test]
fn the_committed_registry_matches() {
    eventcore_testing::assert_registry::<AccountEvent>("schemas/registry.json");
}

#[test]
fn the_readme_and_the_committed_catalog_show_the_current_diagram() {
    let catalog = eventcore::schema::catalog::catalog();
    let diagram = format!("```mermaid\n{}```", catalog.mermaid());
    let readme = std::fs::read_to_string("README.md").unwrap();
    assert!(
        readme.contains(&diagram),
        "README.md lacks the current diagram:\n{diagram}"
    );
    let index = std::fs::read_to_string("docs/catalog/README.md").unwrap();
    assert_eq!(
        index,
        catalog.index(),
        "regenerate with `cargo run --example bank -- schema catalog`"
    );
}
