//! Given / then tests of a projection: events in, documents out, no store.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use eventcore::projection::Projection;
use eventcore::{DomainEvent, NewEvent, RecordedEvent};

use crate::fixture::StateCheck;
use crate::round_trip::round_trip;

/// A given / then test of projection `P`.
///
/// Each given event is encoded into a stored record as a store would (positions in order, one
/// stream per aggregate), routed with [`Projection::route`] (decoding, upcasting) and applied to
/// its document; after every event the document goes through its JSON encoding and back, as
/// the runner stores it. `then_document` checks a document by key. A failure, or an event
/// the projection cannot fold, panics with the keys and events involved.
///
/// Keys default to the aggregate id: [`given`](Self::given) uses
/// [`DEFAULT_AGGREGATE_ID`](Self::DEFAULT_AGGREGATE_ID), [`given_for`](Self::given_for) names one.
///
/// ```ignore
/// ProjectionFixture::<AccountSummary>::new()
///     .given(vec![AccountOpened { owner: "ada".into() }.into(),
///                 MoneyDeposited { amount: 100, currency: "EUR".into() }.into()])
///     .then_document("id-1", |doc| assert_eq!(doc.balance, 100));
/// ```
pub struct ProjectionFixture<P: Projection> {
    documents: BTreeMap<String, P>,
    stream_versions: HashMap<String, u64>,
    position: u64,
    given: Vec<String>,
}

/// An event for [`ProjectionFixture::given`]: any domain event, encoded as the store would.
pub struct GivenEvent {
    event_type: &'static str,
    encoded: Result<NewEvent, String>,
}

impl<E: DomainEvent> From<E> for GivenEvent {
    fn from(event: E) -> Self {
        let event_type = event.event_type();
        let encoded = round_trip(&event)
            .map_err(|e| format!("would not survive the store: {e}"))
            .and_then(|_| {
                NewEvent::encode(&event, aggregate_type(event_type), "")
                    .map_err(|e| format!("does not encode: {e}"))
            });
        Self { event_type, encoded }
    }
}

impl fmt::Debug for GivenEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GivenEvent")
            .field("event_type", &self.event_type)
            .finish_non_exhaustive()
    }
}

/// The aggregate type a store would record: the event type's part before the `.`.
fn aggregate_type(event_type: &str) -> &str {
    event_type
        .split_once('.')
        .map_or("fixture", |(aggregate, _)| aggregate)
}

impl<P: Projection> Default for ProjectionFixture<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Projection> ProjectionFixture<P> {
    /// The aggregate id of the events given with [`given`](Self::given): the default document key.
    pub const DEFAULT_AGGREGATE_ID: &'static str = "id-1";

    /// A fixture with no documents.
    #[must_use = "a projection fixture checks nothing until a `then_*` method runs"]
    pub fn new() -> Self {
        Self {
            documents: BTreeMap::new(),
            stream_versions: HashMap::new(),
            position: 0,
            given: Vec::new(),
        }
    }

    /// Folds `events`, emitted by the aggregate [`DEFAULT_AGGREGATE_ID`](Self::DEFAULT_AGGREGATE_ID).
    ///
    /// # Panics
    /// If an event would not survive the store, or the projection fails on it.
    #[must_use = "a projection fixture checks nothing until a `then_*` method runs"]
    #[track_caller]
    pub fn given(self, events: Vec<GivenEvent>) -> Self {
        self.given_for(Self::DEFAULT_AGGREGATE_ID, events)
    }

    /// Folds `events`, emitted by the aggregate `aggregate_id` (the default document key).
    ///
    /// # Panics
    /// If an event would not survive the store, or the projection fails on it.
    #[must_use = "a projection fixture checks nothing until a `then_*` method runs"]
    #[track_caller]
    pub fn given_for(mut self, aggregate_id: &str, events: Vec<GivenEvent>) -> Self {
        for event in events {
            let mut new = match event.encoded {
                Ok(new) => new,
                Err(why) => panic!(
                    "given event #{} (`{}`) {why}{}",
                    self.given.len(),
                    event.event_type,
                    self.context()
                ),
            };
            aggregate_id.clone_into(&mut new.aggregate_id);
            let stream_id = format!("{}-{aggregate_id}", new.aggregate_type);
            let version = self.stream_versions.entry(stream_id.clone()).or_default();
            *version += 1;
            let record = new.into_recorded(&stream_id, *version, self.position + 1);
            self = self.fold(record);
        }
        self
    }

    /// Folds stored records as they are: older versions, renamed types, payloads written by hand.
    ///
    /// Their positions are kept. Use it to test upcasting and what the projection skips.
    ///
    /// # Panics
    /// If the projection fails on a record.
    #[must_use = "a projection fixture checks nothing until a `then_*` method runs"]
    #[track_caller]
    pub fn given_records(mut self, records: Vec<RecordedEvent>) -> Self {
        for record in records {
            self = self.fold(record);
        }
        self
    }

    #[track_caller]
    fn fold(mut self, record: RecordedEvent) -> Self {
        let description = format!(
            "#{} `{}` v{} of `{}` at position {}",
            self.given.len(),
            record.event_type,
            record.event_version,
            record.aggregate_id,
            record.global_position
        );
        self.position = self.position.max(record.global_position);
        let mut routes = Vec::new();
        if let Err(error) = P::route(&record, &mut routes) {
            panic!("given event {description}: {error}{}", self.context());
        }
        for route in routes {
            let mut document = self.documents.remove(route.key()).unwrap_or_default();
            if let Err(error) = route.apply_to(&mut document) {
                panic!("given event {description}: {error}{}", self.context());
            }
            let document = stored(document).unwrap_or_else(|e| {
                panic!(
                    "given event {description}: document `{}` of projection `{}` does not survive \
                     its JSON encoding: {e}{}",
                    route.key(),
                    P::NAME,
                    self.context()
                )
            });
            self.documents.insert(route.key().to_owned(), document);
        }
        self.given.push(description);
        self
    }

    /// Checks the document `key`: `check` asserts, or returns `false` to fail.
    ///
    /// # Panics
    /// If there is no document `key` (listing the keys there are), or the check fails.
    #[track_caller]
    pub fn then_document<R: StateCheck>(self, key: &str, check: impl FnOnce(&P) -> R) -> Self {
        let Some(document) = self.documents.get(key) else {
            panic!(
                "then_document: projection `{}` has no document `{key}`; documents: {}{}",
                P::NAME,
                self.keys(),
                self.context()
            );
        };
        if !check(document).passed() {
            panic!(
                "then_document: the check of document `{key}` of projection `{}` failed{}",
                P::NAME,
                self.context()
            );
        }
        self
    }

    /// Expects no document `key`.
    ///
    /// # Panics
    /// If there is one.
    #[track_caller]
    pub fn then_no_document(self, key: &str) -> Self {
        if self.documents.contains_key(key) {
            panic!(
                "then_no_document: projection `{}` has a document `{key}`; documents: {}{}",
                P::NAME,
                self.keys(),
                self.context()
            );
        }
        self
    }

    /// The documents by key, for checks of several at once.
    pub fn documents(&self) -> &BTreeMap<String, P> {
        &self.documents
    }

    fn keys(&self) -> String {
        if self.documents.is_empty() {
            return "none".to_owned();
        }
        let keys: Vec<String> = self.documents.keys().map(|k| format!("`{k}`")).collect();
        keys.join(", ")
    }

    fn context(&self) -> String {
        let mut context = String::from("\ngiven:");
        if self.given.is_empty() {
            context.push_str(" nothing");
        }
        for event in &self.given {
            context.push_str("\n  ");
            context.push_str(event);
        }
        context
    }
}

/// The document as the runner reads it back: through its JSON encoding.
fn stored<P: Projection>(document: P) -> Result<P, serde_json::Error> {
    serde_json::from_slice(&serde_json::to_vec(&document)?)
}
