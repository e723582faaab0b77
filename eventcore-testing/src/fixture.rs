//! Given / when / then tests of an aggregate's behaviour.

use std::fmt::Debug;
use std::panic::AssertUnwindSafe;

use eventcore::{Aggregate, Handle, SnapshotPolicy};

use crate::diff::{events_diff, list, EventView};
use crate::round_trip::round_trip;

/// A given / when / then test of aggregate `A`.
///
/// `given` events are applied to a default state; `when` runs one command and returns an
/// [`Outcome`] to check with `then_*`. Every given and produced event is round-tripped through
/// the store's encoding first (encode, upcast, decode), so a test fails when an event would not
/// survive the store. A failed expectation panics with a readable diff.
///
/// ```ignore
/// AggregateFixture::<Account>::new()
///     .given(vec![AccountOpened { owner: "ada".into() }.into()])
///     .when(Deposit { amount: 100 })
///     .then_events(vec![MoneyDeposited { amount: 100, currency: "EUR".into() }.into()]);
/// ```
#[must_use = "a fixture checks nothing until `when` and a `then_*` run"]
pub struct AggregateFixture<A: Aggregate> {
    state: A,
    given: Vec<EventView>,
}

impl<A: Aggregate> Default for AggregateFixture<A> {
    fn default() -> Self {
        Self::new()
    }
}

impl<A: Aggregate> AggregateFixture<A> {
    /// A fixture starting from the aggregate's default state.
    pub fn new() -> Self {
        Self {
            state: A::default(),
            given: Vec::new(),
        }
    }

    /// Applies `events` as the aggregate's history.
    ///
    /// # Panics
    /// If an event would not survive a round trip through the store.
    #[track_caller]
    pub fn given(mut self, events: Vec<A::Event>) -> Self {
        for (i, event) in events.iter().enumerate() {
            let stored = round_trip(event)
                .unwrap_or_else(|e| panic!("given event #{i} would not survive the store: {e}"));
            self.state.apply(&stored);
            self.given.push(EventView::of(&stored));
        }
        self
    }

    /// Applies an event as an old version of the code stored it: `payload` of `event_type` at
    /// `version`, upcast as a load would (see [`upcast`](crate::upcast)). Tests schema evolution
    /// with the JSON that is really in the store, without hand-built `NewEvent`s.
    ///
    /// ```ignore
    /// AggregateFixture::<Book>::new()
    ///     .given_stored("book.lent", 1, json!({ "member": "ada" }))
    ///     .when(ReturnBook)
    ///     .then_events(vec![BookReturned { member: "ada".into() }.into()]);
    /// ```
    ///
    /// # Panics
    /// If the payload does not load (no upcaster path, or an upcaster or decoder rejects it).
    #[track_caller]
    pub fn given_stored(mut self, event_type: &str, version: u32, payload: serde_json::Value) -> Self {
        let events = crate::upcast::upcast::<A::Event>(event_type, version, payload)
            .unwrap_or_else(|e| panic!("given stored `{event_type}` v{version} does not load: {e}"));
        for event in &events {
            self.state.apply(event);
            self.given.push(EventView::of(event));
        }
        self
    }

    /// States that the aggregate has no history.
    pub fn given_nothing(self) -> Self {
        self
    }

    /// Runs `command` against the state built from the given events.
    #[track_caller]
    #[must_use = "an outcome checks nothing until a `then_*` method runs"]
    pub fn when<C>(self, command: C) -> Outcome<A>
    where
        A: Handle<C>,
    {
        let result = self.state.handle(command);
        Outcome {
            state: self.state,
            given: self.given,
            result,
            checked: false,
        }
    }
}

/// The result of a fixture's command, to check with `then_*`.
///
/// Dropping an outcome that was never checked panics, so a forgotten `then` does not pass silently.
pub struct Outcome<A: Aggregate> {
    state: A,
    given: Vec<EventView>,
    result: Result<Vec<A::Event>, A::Error>,
    checked: bool,
}

impl<A: Aggregate> Outcome<A> {
    /// Expects the command to succeed with exactly `expected` (type, version and payload, in order).
    #[track_caller]
    pub fn then_events(mut self, expected: Vec<A::Event>) -> Self {
        self.checked = true;
        let expected: Vec<EventView> = expected.iter().map(EventView::of).collect();
        let actual = self.produced("then_events");
        if let Some(diff) = events_diff(&expected, &actual) {
            panic!(
                "then_events: the command produced other events than expected\n{diff}{}",
                self.context()
            );
        }
        self
    }

    /// Expects the command to succeed without producing any event.
    #[track_caller]
    pub fn then_no_events(self) -> Self {
        self.then_events(Vec::new())
    }

    /// Expects the command to fail with `expected`.
    #[track_caller]
    pub fn then_error(self, expected: A::Error) -> Self
    where
        A::Error: PartialEq + Debug,
    {
        let description = format!("{expected:?}");
        self.then_error_matches_described(|e| *e == expected, &description)
    }

    /// Expects the command to fail with an error for which `predicate` holds.
    #[track_caller]
    pub fn then_error_matches(self, predicate: impl FnOnce(&A::Error) -> bool) -> Self
    where
        A::Error: Debug,
    {
        self.then_error_matches_described(predicate, "an error matching the predicate")
    }

    /// Checks the state after the produced events were applied: `check` asserts, or returns `false` to fail.
    ///
    /// When the aggregate takes snapshots, the state also goes through its snapshot encoding
    /// (`encode_snapshot`, then `decode_snapshot`) and `check` runs on the decoded state too, so a
    /// field the snapshot loses (such as one marked `#[serde(skip)]`) fails here, not in production.
    ///
    /// # Panics
    /// If the command failed, `check` returns `false` (or panics), the state does not survive its
    /// snapshot encoding, or `check` fails on the decoded state.
    #[track_caller]
    pub fn then_state<R: StateCheck>(mut self, mut check: impl FnMut(&A) -> R) -> Self {
        self.checked = true;
        let produced = self.produced("then_state");
        let mut state = std::mem::take(&mut self.state);
        if let Ok(events) = &self.result {
            for event in events {
                // `produced` already proved every event survives the round trip.
                if let Ok(stored) = round_trip(event) {
                    state.apply(&stored);
                }
            }
        }
        let passed = check(&state).passed();
        self.state = state;
        if !passed {
            panic!(
                "then_state: the state check failed after the events\n{}{}",
                list(&produced),
                self.context()
            );
        }
        self.check_snapshot(&mut check);
        self
    }

    /// Runs `check` on the state after a trip through its snapshot encoding, if it snapshots.
    #[track_caller]
    fn check_snapshot<R: StateCheck>(&self, check: &mut impl FnMut(&A) -> R) {
        if A::SNAPSHOT_POLICY == SnapshotPolicy::Never {
            return;
        }
        let bytes = match self.state.encode_snapshot() {
            None => return,
            Some(Ok(bytes)) => bytes,
            Some(Err(error)) => panic!(
                "then_state: the state cannot be encoded as a snapshot: {error}{}",
                self.context()
            ),
        };
        let snapshot = String::from_utf8_lossy(&bytes);
        let decoded = match A::decode_snapshot(&bytes) {
            Some(Ok(decoded)) => decoded,
            Some(Err(error)) => panic!(
                "then_state: the state's snapshot does not decode: {error}\n  snapshot: {snapshot}{}",
                self.context()
            ),
            None => panic!(
                "then_state: the aggregate encodes snapshots but `decode_snapshot` returns `None`{}",
                self.context()
            ),
        };
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| check(&decoded).passed()));
        let why = match outcome {
            Ok(true) => return,
            Ok(false) => "the check returned `false`".to_owned(),
            Err(payload) => match (payload.downcast_ref::<&str>(), payload.downcast_ref::<String>()) {
                (Some(message), _) => format!("the check panicked: {message}"),
                (None, Some(message)) => format!("the check panicked: {message}"),
                (None, None) => "the check panicked".to_owned(),
            },
        };
        panic!(
            "then_state: the state check passes, but fails on the state decoded from its snapshot, \
             so the snapshot loses something (a `#[serde(skip)]` field?)\n  {why}\n  snapshot: {snapshot}{}",
            self.context()
        );
    }

    #[track_caller]
    fn then_error_matches_described(
        mut self,
        predicate: impl FnOnce(&A::Error) -> bool,
        expected: &str,
    ) -> Self
    where
        A::Error: Debug,
    {
        self.checked = true;
        match &self.result {
            Err(error) if predicate(error) => {}
            Err(error) => panic!(
                "then_error: expected {expected}\n  actual error: {error:?} ({error}){}",
                self.context()
            ),
            Ok(events) => {
                let produced: Vec<EventView> = events.iter().map(EventView::of).collect();
                panic!(
                    "then_error: expected {expected}, but the command succeeded with\n{}{}",
                    list(&produced),
                    self.context()
                )
            }
        }
        self
    }

    /// The produced events, round-tripped; panics when the command failed or an event would be lost.
    #[track_caller]
    fn produced(&self, check: &str) -> Vec<EventView> {
        let events = match &self.result {
            Ok(events) => events,
            Err(error) => panic!(
                "{check}: the command failed with {error} ({})\n{}",
                std::any::type_name::<A::Error>(),
                self.context()
            ),
        };
        events
            .iter()
            .enumerate()
            .map(|(i, event)| match round_trip(event) {
                Ok(stored) => EventView::of(&stored),
                Err(e) => panic!("{check}: produced event #{i} would not survive the store: {e}"),
            })
            .collect()
    }

    fn context(&self) -> String {
        format!("\ngiven:\n{}", list(&self.given))
    }
}

impl<A: Aggregate> Drop for Outcome<A> {
    fn drop(&mut self) {
        if !self.checked && !std::thread::panicking() {
            panic!("a fixture outcome was dropped without any `then_*` check");
        }
    }
}

/// What a [`Outcome::then_state`] check returns: `()` (it asserts itself) or `bool`.
pub trait StateCheck {
    /// Whether the check passed.
    fn passed(self) -> bool;
}

impl StateCheck for () {
    fn passed(self) -> bool {
        true
    }
}

impl StateCheck for bool {
    fn passed(self) -> bool {
        self
    }
}
