//! The evolution testing kit: old payloads given as stored JSON and read through the upcasters.

use eventcore::prelude::*;
use eventcore::schema::UpcastError;
use eventcore_testing::{upcast, AggregateFixture};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Version 1 of `book.lent`, before the due date.
#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(name = "book.lent", version = 1)]
struct BookLentV1 {
    member: String,
}

#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(aggregate = "book", version = 2, upcast_from = BookLentV1)]
struct BookLent {
    member: String,
    due: Option<String>,
}

impl From<BookLentV1> for BookLent {
    fn from(old: BookLentV1) -> Self {
        Self {
            member: old.member,
            due: None,
        }
    }
}

#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(aggregate = "book")]
struct BookReturned {
    member: String,
}

/// `book.borrowed` v1 was renamed and split: a raw upcaster over its JSON.
#[upcaster(event = "book.borrowed", from = 1, rename = "book.lent", to = 2)]
fn borrowed_to_lent(payload: Value) -> Result<Value, UpcastError> {
    let member = payload
        .get("by")
        .cloned()
        .ok_or_else(|| UpcastError::missing_field("by"))?;
    Ok(json!({ "member": member, "due": null }))
}

#[derive(DomainEvent, Debug, Clone, PartialEq)]
enum BookEvent {
    Lent(BookLent),
    Returned(BookReturned),
}

#[derive(Default, Debug)]
struct Book {
    borrower: Option<String>,
}

struct ReturnBook;

#[derive(Debug, PartialEq, thiserror::Error)]
enum BookError {
    #[error("the book is not lent")]
    NotLent,
}

#[aggregate(events = BookEvent, error = BookError)]
impl Book {
    #[command]
    fn return_book(&self, _: ReturnBook) -> Result<Vec<BookEvent>, BookError> {
        let member = self.borrower.clone().ok_or(BookError::NotLent)?;
        Ok(vec![BookReturned { member }.into()])
    }

    #[apply]
    fn lent(&mut self, event: &BookLent) {
        self.borrower = Some(event.member.clone());
    }

    #[apply]
    fn returned(&mut self, _: &BookReturned) {
        self.borrower = None;
    }
}

#[test]
fn a_stored_old_version_is_given_as_json() {
    AggregateFixture::<Book>::new()
        .given_stored("book.lent", 1, json!({ "member": "ada" }))
        .when(ReturnBook)
        .then_events(vec![BookReturned { member: "ada".into() }.into()]);
}

#[test]
fn a_renamed_type_is_given_through_its_raw_upcaster() {
    AggregateFixture::<Book>::new()
        .given_stored("book.borrowed", 1, json!({ "by": "grace" }))
        .when(ReturnBook)
        .then_events(vec![BookReturned {
            member: "grace".into(),
        }
        .into()]);
}

#[test]
#[should_panic(expected = "given stored `book.borrowed` v1 does not load")]
fn a_payload_an_upcaster_rejects_fails_the_fixture() {
    let _ = AggregateFixture::<Book>::new().given_stored("book.borrowed", 1, json!({}));
}

#[test]
fn upcast_reads_an_old_payload_as_a_load_would() {
    let events: Vec<BookEvent> = upcast("book.lent", 1, json!({ "member": "ada" })).unwrap();
    assert_eq!(
        events,
        vec![BookLent {
            member: "ada".into(),
            due: None
        }
        .into()]
    );
    let current: Vec<BookLent> =
        upcast("book.lent", 2, json!({ "member": "ada", "due": "2027-01-01" })).unwrap();
    assert_eq!(current[0].due.as_deref(), Some("2027-01-01"));
    let error = upcast::<BookEvent>("book.lent", 7, json!({})).unwrap_err();
    assert!(error.to_string().contains("book.lent"), "{error}");
}

#[tokio::test]
async fn the_history_shows_the_stored_and_the_current_version() {
    let store = eventcore::MemoryStore::new();
    let old = eventcore::NewEvent::encode(&BookLentV1 { member: "ada".into() }, "book", "b1").unwrap();
    store
        .append("book-b1", eventcore::ExpectedVersion::NoStream, vec![old])
        .await
        .unwrap();
    let books = Repository::<Book, _>::new(store);
    books.execute("b1", ReturnBook).await.unwrap();
    let history = books.events("b1", 1, 10).await.unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(
        (history[0].stored_type.as_str(), history[0].stored_version),
        ("book.lent", 1)
    );
    assert_eq!(history[0].event.event_version, 2);
    assert_eq!(
        history[0].event.payload,
        BookEvent::Lent(BookLent {
            member: "ada".into(),
            due: None
        })
    );
    assert_eq!(history[1].stored_version, 1);
    assert_eq!(history[1].event.stream_version, 2);
    // If-Match on the version the caller saw.
    let stale = books.execute_expecting("b1", 1, ReturnBook).await.unwrap_err();
    assert!(stale.is_conflict(), "{stale:?}");
    assert_eq!(eventcore::stream_id::<Book>("b1"), "book-b1");
}
