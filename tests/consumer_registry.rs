//! Projections, event handlers and sagas in the schema registry, the registry check and the
//! event catalog: DESIGN's `AccountSummary`, `Welcome` and `Checkout`, and a saga handling an
//! event type nothing emits.

mod design_domain;
mod design_sagas;

use eventcore::prelude::*;
use eventcore::saga::SagaContext;
use eventcore::schema::check::{check, unemitted_events, Finding};
use eventcore::schema::compat::CompatConfig;
use eventcore::schema::{registry, ConsumerKind, HandlerRole, Registry};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An event no aggregate's set has and none declares: nothing ever emits it.
#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(name = "stray.arrived")]
pub struct StrayArrived {
    /// The order it would key.
    pub order_id: String,
}

/// A saga waiting for [`StrayArrived`], which never comes.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Orphan;

#[saga(commands = design_sagas::ShopCommand, version = 2)]
impl Orphan {
    #[start(key = order_id)]
    fn arrived(&mut self, _: &StrayArrived, _: &mut SagaContext<Self>) {}
}

/// A handled event as compared: type, version, role, key, method, emitted by.
type Row = (String, u32, HandlerRole, Option<String>, String, Vec<String>);

fn handled(registry: &Registry, kind: ConsumerKind, name: &str) -> Vec<Row> {
    let consumer = registry
        .consumer(kind, name)
        .unwrap_or_else(|| panic!("{name} is not in the registry"));
    consumer
        .handles
        .iter()
        .map(|h| {
            (
                h.event_type.clone(),
                h.version,
                h.role,
                h.key.clone(),
                h.method.clone(),
                h.emitted_by.clone(),
            )
        })
        .collect()
}

fn row(
    event_type: &str,
    version: u32,
    role: HandlerRole,
    key: Option<&str>,
    method: &str,
    emitted_by: &[&str],
) -> Row {
    (
        event_type.into(),
        version,
        role,
        key.map(Into::into),
        method.into(),
        emitted_by.iter().map(|s| (*s).to_owned()).collect(),
    )
}

#[test]
fn the_checkout_saga_is_registered_with_its_roles_keys_commands_and_deadlines() {
    let registry = registry();
    let checkout = registry
        .consumer(ConsumerKind::Saga, "checkout")
        .expect("checkout");
    assert_eq!(checkout.version, Some(1));
    assert_eq!(checkout.rust_type, "consumer_registry::design_sagas::Checkout");
    assert_eq!(checkout.commands.as_deref(), Some("ShopCommand"));
    assert_eq!(checkout.deadlines, vec!["PaymentTimedOut".to_owned()]);
    use HandlerRole::*;
    assert_eq!(
        handled(&registry, ConsumerKind::Saga, "checkout"),
        vec![
            row("order.placed", 1, Start, Some("order_id"), "placed", &["order"]),
            row(
                "payment.charged",
                1,
                Handle,
                Some("order_id"),
                "charged",
                &["payment"]
            ),
            row("payment.failed", 1, End, Some("order_id"), "failed", &["payment"]),
            row(
                "shipment.order_shipped",
                1,
                End,
                Some("order_id"),
                "shipped",
                &["shipment"]
            ),
        ]
    );
}

#[test]
fn the_account_summary_projection_and_the_welcome_handler_are_registered() {
    let registry = registry();
    let summary = registry
        .consumer(ConsumerKind::Projection, "account_summary")
        .expect("account_summary");
    assert_eq!((summary.version, summary.commands.as_deref()), (Some(1), None));
    use HandlerRole::On;
    assert_eq!(
        handled(&registry, ConsumerKind::Projection, "account_summary"),
        vec![
            row("account.money_deposited", 2, On, None, "deposited", &["account"]),
            row("account.opened", 1, On, None, "opened", &["account"]),
            // Declares no aggregate: emitted as a member of `AccountEvent`.
            row("account.withdrawn", 1, On, None, "withdrawn", &["account"]),
        ]
    );
    let welcome = registry
        .consumer(ConsumerKind::EventHandler, "welcome")
        .expect("welcome");
    assert_eq!((welcome.version, welcome.deadlines.len()), (None, 0));
    assert_eq!(
        handled(&registry, ConsumerKind::EventHandler, "welcome"),
        vec![row("account.opened", 1, On, None, "opened", &["account"])]
    );
}

#[test]
fn the_consumers_section_round_trips_and_old_files_without_it_still_load() {
    let registry = registry();
    let json = registry.to_json();
    assert!(json.contains("\"consumers\""), "{json}");
    assert!(json.contains("\"role\": \"start\""), "{json}");
    assert_eq!(Registry::from_json(&json).unwrap(), registry);

    let old = std::fs::read_to_string("schemas/registry.json").unwrap();
    assert!(!old.contains("\"consumers\""));
    let loaded = Registry::from_json(&old).unwrap();
    assert!(loaded.consumers.is_empty());
    // And a registry without consumers writes no section.
    let mut bare = registry.clone();
    bare.consumers.clear();
    assert!(!bare.to_json().contains("consumers"));
}

#[test]
fn the_check_reports_a_saga_handling_an_event_nothing_emits() {
    let registry = registry();
    let findings = unemitted_events(&registry);
    let stray = eventcore::schema::EventRef {
        event_type: "stray.arrived".into(),
        version: 1,
    };
    assert_eq!(
        findings,
        vec![Finding::UnemittedEvent {
            kind: ConsumerKind::Saga,
            consumer: "orphan".into(),
            method: "arrived".into(),
            event: stray.clone(),
        }]
    );
    // The full check reports it even against itself, naming the saga, the event and the fix.
    let report = check(&registry, &registry, &CompatConfig::default());
    assert_eq!(report.findings, findings);
    let text = report.to_string();
    assert!(
        text.contains("the saga `orphan` handles `stray.arrived` v1 in `arrived`"),
        "{text}"
    );
    assert!(text.contains("no registered aggregate emits it"), "{text}");
    assert_eq!(report.findings[0].events(), vec![stray]);
    assert!(!report.findings[0].removes_entries());

    // Through the CI check: a failure, and nothing written.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.json");
    std::fs::write(&path, registry.to_json()).unwrap();
    let error = eventcore_testing::RegistryCheck::new::<design_domain::AccountEvent>(&path)
        .update(true)
        .ci(true)
        .run()
        .unwrap_err()
        .to_string();
    assert!(error.contains("`orphan`"), "{error}");
    assert!(error.contains("stray.arrived@1"), "{error}");
}

#[test]
fn the_catalog_draws_events_into_consumers_and_sagas_into_commands() {
    let catalog = eventcore::schema::catalog::catalog();
    let diagram = catalog.mermaid();
    for line in [
        "    agg_order --> evt_order_placed[\"order.placed v1\"]",
        "    saga_checkout[[\"saga checkout\"]]",
        "    evt_order_placed -->|start| saga_checkout",
        "    evt_payment_charged -->|handle| saga_checkout",
        "    evt_payment_failed -->|end| saga_checkout",
        "    saga_checkout --> sends_checkout_ShopCommand([\"ShopCommand\"])",
        "    projection_account_summary[(\"projection account_summary\")]",
        "    evt_account_withdrawn --> projection_account_summary",
        "    handler_welcome>\"handler welcome\"]",
        "    evt_account_opened --> handler_welcome",
        "    evt_stray_arrived -->|start| saga_orphan",
    ] {
        assert!(
            diagram.lines().any(|l| l == line),
            "missing {line:?} in\n{diagram}"
        );
    }
    let pages = catalog.pages();
    let page = pages
        .iter()
        .find(|p| p.file_name == "consumers.md")
        .expect("consumers page");
    for text in [
        "## saga `checkout` v1",
        "Sends commands: `ShopCommand`.",
        "Deadlines: `PaymentTimedOut`.",
        "| `order.placed` | 1 | start | `order_id` | `placed` | `order` |",
        "## projection `account_summary` v1",
        "| `account.withdrawn` | 1 | on | aggregate id | `withdrawn` | `account` |",
        "## handler `welcome`\n",
        "| `stray.arrived` | 1 | start | `order_id` | `arrived` | nothing registered |",
    ] {
        assert!(
            page.markdown.contains(text),
            "missing {text:?} in\n{}",
            page.markdown
        );
    }
    assert!(catalog
        .index()
        .contains("- [Projections, event handlers and sagas](consumers.md): 4"));
}
