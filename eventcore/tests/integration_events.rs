//! `#[derive(IntegrationEvent)]`: the registry entry, CloudEvents on the wire, decoding errors,
//! upcasting and the translation of domain events.

use eventcore::integration::{
    decode_cloudevent, IntegrationDecodeError, IntegrationMessage, MessageMeta, Translate,
};
use eventcore::prelude::*;
use eventcore::schema::{registry, EventKind, UpcastError};
use eventcore::NewEvent;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// An invoice was paid (published to other services).
#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[integration(name = "billing.invoice_paid", version = 2)]
pub struct InvoicePaid {
    /// The invoice.
    pub invoice: String,
    /// Amount in cents.
    pub amount: i64,
    /// ISO currency.
    pub currency: String,
}

/// Version 1 of `billing.invoice_paid` had no currency.
#[eventcore::upcaster(event = "billing.invoice_paid", from = 1)]
fn add_currency(mut payload: Value) -> Result<Value, UpcastError> {
    let fields = payload
        .as_object_mut()
        .ok_or_else(|| UpcastError::new("not an object"))?;
    fields.insert("currency".into(), "EUR".into());
    Ok(payload)
}

/// An enum is an integration event too, as long as serde encodes it.
#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[integration(name = "shipping.parcel_status")]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ParcelStatus {
    /// Left the warehouse.
    Sent {
        /// Tracking code.
        tracking: String,
    },
    /// Arrived.
    Delivered,
}

/// A domain event that stays inside the service.
#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(aggregate = "invoice")]
pub struct InvoiceSettled {
    /// Amount in cents.
    pub amount: i64,
    /// Internal note, never published.
    pub note: String,
}

/// Another domain event, not translated.
#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(aggregate = "invoice")]
pub struct InvoiceDrafted {
    /// Amount in cents.
    pub amount: i64,
}

impl From<&Envelope<InvoiceSettled>> for InvoicePaid {
    fn from(e: &Envelope<InvoiceSettled>) -> Self {
        Self {
            invoice: e.aggregate_id.clone(),
            amount: e.payload.amount,
            currency: "EUR".into(),
        }
    }
}

fn paid() -> InvoicePaid {
    InvoicePaid {
        invoice: "inv-1".into(),
        amount: 1250,
        currency: "USD".into(),
    }
}

fn attributes(json: &str) -> serde_json::Map<String, Value> {
    match serde_json::from_str(json) {
        Ok(Value::Object(map)) => map,
        other => panic!("not an object: {other:?}"),
    }
}

#[test]
fn constants_come_from_the_attribute() {
    assert_eq!(InvoicePaid::NAME, "billing.invoice_paid");
    assert_eq!(InvoicePaid::VERSION, 2);
    assert_eq!(ParcelStatus::NAME, "shipping.parcel_status");
    assert_eq!(ParcelStatus::VERSION, 1);
}

#[test]
fn a_message_round_trips_through_a_cloudevent() {
    let meta = MessageMeta::new()
        .source("https://billing.example/invoices")
        .subject("inv-1")
        .correlation_id("req-7")
        .causation_id("cmd-3")
        .metadata("tenant", "acme");
    let message = IntegrationMessage::new(&paid(), &meta).unwrap();
    let json = message.to_cloudevent().unwrap();
    let attrs = attributes(&json);
    assert_eq!(attrs["specversion"], "1.0");
    assert_eq!(attrs["type"], "billing.invoice_paid");
    assert_eq!(attrs["eventversion"], "2");
    assert_eq!(attrs["eventkind"], "integration");
    assert_eq!(attrs["dataschema"], "eventcore:schema/billing.invoice_paid/v2");
    assert_eq!(attrs["source"], "https://billing.example/invoices");
    assert_eq!(attrs["subject"], "inv-1");
    assert_eq!(attrs["correlationid"], "req-7");
    assert_eq!(attrs["causationid"], "cmd-3");
    assert_eq!(attrs["id"], message.id.to_string());
    assert_eq!(
        attrs["data"],
        json!({ "invoice": "inv-1", "amount": 1250, "currency": "USD" })
    );

    let back = IntegrationMessage::from_cloudevent(&json).unwrap();
    assert_eq!(back, message);
    assert_eq!(back.decode::<InvoicePaid>().unwrap(), paid());

    let parcel = ParcelStatus::Sent {
        tracking: "t-1".into(),
    };
    let (_, decoded) = decode_cloudevent::<ParcelStatus>(
        &IntegrationMessage::new(&parcel, &MessageMeta::new())
            .unwrap()
            .to_cloudevent()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(decoded, parcel);
}

#[test]
fn the_registry_lists_integration_events_as_their_own_kind() {
    let registry = registry();
    let entry = registry.get("billing.invoice_paid", 2).expect("registered");
    assert_eq!(entry.kind, EventKind::Integration);
    assert_eq!(entry.aggregate, None);
    assert!(entry.rust_type.ends_with("::InvoicePaid"), "{}", entry.rust_type);
    assert_eq!(entry.schema["required"], json!(["invoice", "amount", "currency"]));
    assert_eq!(entry.upcasters.len(), 1, "the v1 step produces it");
    let parcel = registry.get("shipping.parcel_status", 1).expect("registered");
    assert_eq!(parcel.kind, EventKind::Integration);
    let domain = registry.get("invoice.settled", 1).expect("registered");
    assert_eq!(domain.kind, EventKind::Domain);

    // The export marks integration entries and leaves domain entries as they always were.
    let exported: Value = serde_json::from_str(&registry.to_json()).unwrap();
    let events = exported["events"].as_array().unwrap();
    let kind_of = |name: &str| {
        events
            .iter()
            .find(|e| e["event_type"] == name)
            .map(|e| e.get("kind").cloned())
    };
    assert_eq!(kind_of("billing.invoice_paid"), Some(Some(json!("integration"))));
    assert_eq!(kind_of("invoice.settled"), Some(None));
    // And reads back with the kinds.
    let read = eventcore::schema::Registry::from_json(&registry.to_json()).unwrap();
    assert_eq!(read, registry);
}

#[test]
fn an_older_version_is_upcast_on_decode() {
    let v1 = json!({
        "id": "0190a7d2-5c1e-7000-8000-000000000001", "source": "https://billing.example",
        "specversion": "1.0", "type": "billing.invoice_paid", "time": "2026-01-02T03:04:05Z",
        "eventversion": "1", "data": { "invoice": "inv-9", "amount": 5 }
    })
    .to_string();
    let (message, event) = decode_cloudevent::<InvoicePaid>(&v1).unwrap();
    assert_eq!(message.version, 1);
    assert_eq!(
        event,
        InvoicePaid {
            invoice: "inv-9".into(),
            amount: 5,
            currency: "EUR".into()
        }
    );
    assert!(message.check_registered(&registry()).is_ok());
    assert!(message.check_linked().is_ok());
}

fn cloudevent(name: &str, version: &str, data: Value) -> String {
    json!({
        "id": "0190a7d2-5c1e-7000-8000-000000000002", "source": "https://billing.example",
        "specversion": "1.0", "type": name, "time": "2026-01-02T03:04:05Z",
        "eventversion": version, "data": data
    })
    .to_string()
}

#[test]
fn what_does_not_decode_says_why() {
    let registry = registry();
    let good = json!({ "invoice": "i", "amount": 1, "currency": "EUR" });

    // Not a CloudEvent at all.
    let err = decode_cloudevent::<InvoicePaid>("[1, 2]").unwrap_err();
    assert!(matches!(err, IntegrationDecodeError::NotCloudEvent(_)), "{err}");
    let mut missing = attributes(&cloudevent("billing.invoice_paid", "2", good.clone()));
    missing.remove("eventversion");
    let err = decode_cloudevent::<InvoicePaid>(&Value::Object(missing).to_string()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "not a valid integration CloudEvent: missing required attribute `eventversion`"
    );
    let err = decode_cloudevent::<InvoicePaid>(&cloudevent("billing.invoice_paid", "two", good.clone()))
        .unwrap_err();
    assert!(
        err.to_string().contains("attribute `eventversion` is invalid"),
        "{err}"
    );

    // Unknown type.
    let unknown = cloudevent("billing.refund_issued", "1", good.clone());
    let err = decode_cloudevent::<InvoicePaid>(&unknown).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown integration event `billing.refund_issued` (known: billing.invoice_paid)"
    );
    let message = IntegrationMessage::from_cloudevent(&unknown).unwrap();
    let err = message.check_registered(&registry).unwrap_err();
    assert!(
        matches!(&err, IntegrationDecodeError::UnknownType { known, .. } if known.contains("shipping.parcel_status")),
        "{err}"
    );

    // A newer version than this code knows.
    let newer = cloudevent("billing.invoice_paid", "3", good.clone());
    let err = decode_cloudevent::<InvoicePaid>(&newer).unwrap_err();
    assert_eq!(
        err.to_string(),
        "integration event `billing.invoice_paid` version 3 is newer than this code's version 2"
    );
    let err = IntegrationMessage::from_cloudevent(&newer)
        .unwrap()
        .check_registered(&registry)
        .unwrap_err();
    assert!(
        matches!(err, IntegrationDecodeError::VersionTooNew { current: 2, .. }),
        "{err}"
    );
    let err = IntegrationMessage::from_cloudevent(&newer)
        .unwrap()
        .check_linked()
        .unwrap_err();
    assert!(
        matches!(err, IntegrationDecodeError::VersionTooNew { .. }),
        "{err}"
    );

    // A payload that does not fit the schema.
    let bad = cloudevent("billing.invoice_paid", "2", json!({ "invoice": 7 }));
    let err = decode_cloudevent::<InvoicePaid>(&bad).unwrap_err();
    assert!(
        matches!(err, IntegrationDecodeError::Payload { version: 2, .. }),
        "{err}"
    );

    // An old version with no upcaster.
    let old = cloudevent("shipping.parcel_status", "0", json!({ "status": "delivered" }));
    assert!(decode_cloudevent::<ParcelStatus>(&old)
        .unwrap_err()
        .to_string()
        .contains("eventversion"));

    // A domain event's CloudEvent is not an integration message.
    let domain = eventcore::cloudevents::to_json(
        &NewEvent::encode(&InvoiceDrafted { amount: 1 }, "invoice", "inv-1")
            .unwrap()
            .into_recorded("invoice-inv-1", 1, 1),
        &eventcore::cloudevents::Source::AggregateType,
    )
    .unwrap();
    let err = IntegrationMessage::from_cloudevent(&domain)
        .unwrap()
        .check_registered(&registry)
        .unwrap_err();
    assert!(matches!(err, IntegrationDecodeError::UnknownType { .. }), "{err}");
}

#[test]
fn domain_events_are_translated_with_their_ids() {
    let translate = Translate::new().event::<InvoiceSettled, InvoicePaid>();
    assert_eq!(translate.event_types(), ["invoice.settled"]);
    let mut settled = NewEvent::encode(
        &InvoiceSettled {
            amount: 40,
            note: "internal".into(),
        },
        "invoice",
        "inv-4",
    )
    .unwrap();
    settled.correlation_id = Some("req-1".into());
    let settled = settled.into_recorded("invoice-inv-4", 2, 9);

    let message = translate.translate(&settled).unwrap().expect("translated");
    assert_eq!(message.name, "billing.invoice_paid");
    assert_eq!(message.correlation_id.as_deref(), Some("req-1"));
    assert_eq!(message.causation_id, Some(settled.event_id.to_string()));
    assert_eq!(message.subject.as_deref(), Some("inv-4"));
    assert_eq!(message.time, settled.occurred_at);
    assert!(!String::from_utf8_lossy(&message.data).contains("internal"));
    assert_eq!(
        message.decode::<InvoicePaid>().unwrap(),
        InvoicePaid {
            invoice: "inv-4".into(),
            amount: 40,
            currency: "EUR".into()
        }
    );
    // The same domain event always gives the same message id, distinct from the event's own.
    let again = translate.translate(&settled).unwrap().expect("translated");
    assert_eq!(again.id, message.id);
    assert_ne!(message.id, settled.event_id);

    // Without a correlation id, the chain starts at the domain event.
    let uncorrelated = NewEvent::encode(
        &InvoiceSettled {
            amount: 1,
            note: String::new(),
        },
        "invoice",
        "inv-5",
    )
    .unwrap()
    .into_recorded("invoice-inv-5", 1, 10);
    let message = translate.translate(&uncorrelated).unwrap().expect("translated");
    assert_eq!(message.correlation_id, Some(uncorrelated.event_id.to_string()));

    // Untranslated types and filtered events stay inside.
    let drafted = NewEvent::encode(&InvoiceDrafted { amount: 1 }, "invoice", "inv-6")
        .unwrap()
        .into_recorded("invoice-inv-6", 1, 11);
    assert!(translate.translate(&drafted).unwrap().is_none());
    let filtered = Translate::new()
        .filter_map::<InvoiceSettled, InvoicePaid>(|e| (e.payload.amount > 10).then(|| InvoicePaid::from(e)));
    assert!(filtered.translate(&uncorrelated).unwrap().is_none());
    assert!(filtered.translate(&settled).unwrap().is_some());

    // A stored payload that does not decode is an error, not a skip.
    let mut broken = settled.clone();
    broken.payload = bytes::Bytes::from_static(b"{\"amount\":\"x\"}");
    assert!(translate.translate(&broken).is_err());
}

#[test]
fn the_catalog_gives_integration_events_their_own_page() {
    let catalog = eventcore::schema::catalog::catalog();
    let page = catalog
        .pages()
        .into_iter()
        .find(|p| p.file_name == "integration_events.md")
        .expect("an integration page");
    assert!(
        page.markdown.starts_with("# Integration events"),
        "{}",
        page.markdown
    );
    assert!(page.markdown.contains("billing.invoice_paid"));
    assert!(!page.markdown.contains("invoice.settled"));
}
