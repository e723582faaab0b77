//! Given / when / then tests of a saga: events and time in, commands, deadlines and life out.

use std::fmt::{Debug, Write as _};
use std::time::Duration;

use chrono::{DateTime, Utc};
use eventcore::saga::{PendingDeadline, Saga, SagaDeadline, SagaInstances, SagaRoute};
use eventcore::{DomainEvent, NewEvent, RecordedEvent};
use serde::Serialize;

use crate::fixture::StateCheck;
use crate::round_trip::round_trip;

/// A given / when / then test of saga `S`, without a store.
///
/// `given` events (and `given_time`) build the instances; `when` (an event), `when_time_elapses`
/// or `when_time_advances_to` (deadlines falling due) is the step under test, and only its
/// effects are checked by the `then_*` methods of the returned [`SagaOutcome`]. Events go
/// through the store's encoding (encode, upcast, decode) exactly as the runner reads them; the
/// state and the commands go through their JSON encoding as the runner stores them. A failed
/// expectation panics with what was expected, what happened, and the history.
///
/// ```ignore
/// SagaFixture::<Checkout>::new()
///     .given(OrderPlaced { order_id: "o-1".into(), amount: 30 })
///     .when_time_elapses(Duration::from_secs(601))
///     .then_commands(vec![ShopCommand::Cancel { order_id: "o-1".into(), reason: "payment timed out".into() }])
///     .then_ended();
/// ```
#[must_use = "a fixture checks nothing until `when` and a `then_*` run"]
pub struct SagaFixture<S: Saga> {
    instances: SagaInstances<S>,
    now: DateTime<Utc>,
    position: u64,
    history: Vec<String>,
}

impl<S: Saga> Default for SagaFixture<S> {
    fn default() -> Self {
        Self::new()
    }
}

/// The fixture's start time: fixed, so tests are deterministic.
fn epoch() -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

impl<S: Saga> SagaFixture<S> {
    /// No instances, at a fixed time (2026-01-01T00:00:00Z).
    pub fn new() -> Self {
        Self {
            instances: SagaInstances::new(),
            now: epoch(),
            position: 0,
            history: Vec::new(),
        }
    }

    /// Handles `event` as part of the history (repeatable).
    ///
    /// # Panics
    /// If the event would not survive the store, or the saga fails on it.
    #[track_caller]
    pub fn given<E: DomainEvent>(mut self, event: E) -> Self {
        let record = self.record(&event, "given");
        self.history
            .push(format!("event {} {}", record.event_type, payload(&record)));
        self.run_event(&record, "given");
        self
    }

    /// Sets the clock to `time`; deadlines due by then fire, as part of the history.
    #[track_caller]
    pub fn given_time(mut self, time: DateTime<Utc>) -> Self {
        self.history.push(format!("time {time}"));
        self.now = time;
        self.fire_due("given_time");
        self
    }

    /// Handles `event`: the step under test.
    #[track_caller]
    #[must_use = "an outcome checks nothing until a `then_*` method runs"]
    pub fn when<E: DomainEvent>(mut self, event: E) -> SagaOutcome<S> {
        let record = self.record(&event, "when");
        let when = format!("event {} {}", record.event_type, payload(&record));
        let step = self.run_event(&record, "when");
        self.outcome(when, step)
    }

    /// Moves the clock forward by `elapsed`, firing the deadlines that fall due: the step under test.
    #[track_caller]
    #[must_use = "an outcome checks nothing until a `then_*` method runs"]
    pub fn when_time_elapses(self, elapsed: Duration) -> SagaOutcome<S> {
        let by = chrono::Duration::from_std(elapsed).unwrap_or(chrono::Duration::MAX);
        let time = self
            .now
            .checked_add_signed(by)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        self.when_time_advances_to_described(time, format!("{elapsed:?} elapse"))
    }

    /// Sets the clock to `time`, firing the deadlines that fall due: the step under test.
    #[track_caller]
    #[must_use = "an outcome checks nothing until a `then_*` method runs"]
    pub fn when_time_advances_to(self, time: DateTime<Utc>) -> SagaOutcome<S> {
        self.when_time_advances_to_described(time, format!("the time advances to {time}"))
    }

    #[track_caller]
    fn when_time_advances_to_described(mut self, time: DateTime<Utc>, when: String) -> SagaOutcome<S> {
        self.now = time;
        let step = self.fire_due("when");
        self.outcome(when, step)
    }

    /// Encodes `event` into a stored record as a store would.
    #[track_caller]
    fn record<E: DomainEvent>(&mut self, event: &E, what: &str) -> RecordedEvent {
        if let Err(e) = round_trip(event) {
            panic!(
                "{what}: `{}` would not survive the store: {e}",
                event.event_type()
            );
        }
        let aggregate = event
            .event_type()
            .split_once('.')
            .map_or("fixture", |(aggregate, _)| aggregate);
        self.position += 1;
        let encoded = NewEvent::encode(event, aggregate, "fixture")
            .unwrap_or_else(|e| panic!("{what}: `{}` does not encode: {e}", event.event_type()));
        encoded.into_recorded(&format!("{aggregate}-fixture"), self.position, self.position)
    }

    /// Runs the steps of one stored event.
    #[track_caller]
    fn run_event(&mut self, record: &RecordedEvent, what: &str) -> Step<S> {
        let mut routes: Vec<SagaRoute<S>> = Vec::new();
        if let Err(e) = S::route(record, &mut routes) {
            panic!(
                "{what}: saga `{}` cannot read `{}`: {e}",
                S::NAME,
                record.event_type
            );
        }
        let mut step = Step::default();
        if routes.is_empty() {
            step.notes.push(format!(
                "no handler of `{}` takes `{}`",
                S::NAME,
                record.event_type
            ));
        }
        for route in routes {
            let outcome = self
                .instances
                .handle(&route, self.now)
                .unwrap_or_else(|e| panic!("{what}: the saga failed on `{}`: {e}", record.event_type));
            if let Some(skipped) = outcome.skipped {
                step.notes.push(format!(
                    "`{}` with key `{}` did nothing: {skipped:?}",
                    route.event_type(),
                    route.key()
                ));
            }
            step.absorb(outcome);
        }
        self.round_trip_states(what);
        step
    }

    /// Fires every deadline due by now, earliest first (those scheduled while firing too).
    #[track_caller]
    fn fire_due(&mut self, what: &str) -> Step<S> {
        let mut step = Step::default();
        loop {
            let due = self.instances.due(self.now);
            if due.is_empty() {
                break;
            }
            for deadline in due {
                let outcome = self
                    .instances
                    .fire(&deadline.instance, &deadline.key, self.now)
                    .unwrap_or_else(|e| panic!("{what}: the deadline `{}` failed: {e}", deadline.name));
                step.fired.push(deadline);
                step.absorb(outcome);
            }
            self.round_trip_states(what);
        }
        step
    }

    /// Sends every state through JSON and back, as the runner stores it.
    #[track_caller]
    fn round_trip_states(&mut self, what: &str) {
        let ids: Vec<String> = self.instances.instances().map(|i| i.id.clone()).collect();
        for id in ids {
            let Some(instance) = self.instances.instance(&id) else {
                continue;
            };
            let json = serde_json::to_value(&instance.state)
                .unwrap_or_else(|e| panic!("{what}: the state of instance `{id}` does not serialize: {e}"));
            let back: S = serde_json::from_value(json.clone()).unwrap_or_else(|e| {
                panic!("{what}: the state of instance `{id}` does not deserialize: {e}\n  stored: {json}")
            });
            let again = serde_json::to_value(&back).unwrap_or(serde_json::Value::Null);
            if again != json {
                panic!("{what}: the state of instance `{id}` changes on a trip through JSON\n  stored:    {json}\n  read back: {again}");
            }
        }
    }

    #[track_caller]
    fn outcome(self, when: String, step: Step<S>) -> SagaOutcome<S> {
        let commands = step
            .commands
            .into_iter()
            .map(|command| {
                let json = serde_json::to_value(&command)
                    .unwrap_or_else(|e| panic!("when: a command does not serialize: {e}"));
                serde_json::from_value(json.clone()).unwrap_or_else(|e| {
                    panic!("when: a command does not survive its JSON encoding: {e}\n  stored: {json}")
                })
            })
            .collect();
        SagaOutcome {
            instance: step.instance,
            instances: self.instances,
            now: self.now,
            commands,
            scheduled: step.scheduled,
            fired: step.fired,
            notes: step.notes,
            history: self.history,
            when,
            checked: false,
        }
    }
}

/// What the step under test did.
struct Step<S: Saga> {
    instance: Option<String>,
    commands: Vec<S::Command>,
    scheduled: Vec<PendingDeadline>,
    fired: Vec<PendingDeadline>,
    notes: Vec<String>,
}

impl<S: Saga> Default for Step<S> {
    fn default() -> Self {
        Self {
            instance: None,
            commands: Vec::new(),
            scheduled: Vec::new(),
            fired: Vec::new(),
            notes: Vec::new(),
        }
    }
}

impl<S: Saga> Step<S> {
    fn absorb(&mut self, outcome: eventcore::saga::StepOutcome<S>) {
        if self.instance.is_none() {
            self.instance.clone_from(&outcome.instance);
        }
        self.commands
            .extend(outcome.commands.into_iter().map(|c| c.command));
        let cancelled: Vec<String> = outcome.cancelled.iter().map(|d| d.key.clone()).collect();
        self.scheduled.retain(|d| !cancelled.contains(&d.key));
        self.scheduled.extend(outcome.scheduled);
    }
}

/// The effects of a [`SagaFixture`]'s step under test, to check with `then_*` (chainable).
///
/// Dropping an outcome that was never checked panics, so a forgotten `then` does not pass silently.
pub struct SagaOutcome<S: Saga> {
    instance: Option<String>,
    instances: SagaInstances<S>,
    now: DateTime<Utc>,
    commands: Vec<S::Command>,
    scheduled: Vec<PendingDeadline>,
    fired: Vec<PendingDeadline>,
    notes: Vec<String>,
    history: Vec<String>,
    when: String,
    checked: bool,
}

impl<S: Saga> SagaOutcome<S> {
    /// Expects exactly these commands, in order.
    #[track_caller]
    pub fn then_commands(mut self, expected: Vec<S::Command>) -> Self
    where
        S::Command: PartialEq + Debug,
    {
        self.checked = true;
        if expected != self.commands {
            let mut diff = String::new();
            for i in 0..expected.len().max(self.commands.len()) {
                let (e, a) = (expected.get(i), self.commands.get(i));
                let marker = if e == a { ' ' } else { '!' };
                let _ = writeln!(diff, "  {marker} #{i} expected: {}", describe(e));
                let _ = writeln!(diff, "  {marker} #{i} actual:   {}", describe(a));
            }
            panic!(
                "then_commands: the step sent other commands than expected\n{diff}{}",
                self.context()
            );
        }
        self
    }

    /// Expects no command.
    #[track_caller]
    pub fn then_no_commands(self) -> Self
    where
        S::Command: PartialEq + Debug,
    {
        self.then_commands(Vec::new())
    }

    /// Expects the step to have scheduled `deadline` to fall due `after` the step's time (and
    /// not cancelled it again).
    #[track_caller]
    pub fn then_scheduled<D: SagaDeadline<S> + Serialize + Debug>(
        mut self,
        after: Duration,
        deadline: D,
    ) -> Self {
        self.checked = true;
        let name = D::DEADLINE;
        let payload = serde_json::to_value(&deadline)
            .unwrap_or_else(|e| panic!("then_scheduled: the expected deadline does not serialize: {e}"));
        let due = chrono::Duration::from_std(after)
            .ok()
            .and_then(|after| self.now.checked_add_signed(after))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let found = self
            .scheduled
            .iter()
            .any(|d| d.name == name && d.due == due && d.payload == payload);
        if !found {
            panic!(
                "then_scheduled: expected `{name}` {payload} due at {due} ({after:?} after the step)\n  scheduled:\n{}{}",
                deadlines(&self.scheduled, self.now),
                self.context()
            );
        }
        self
    }

    /// Expects the step to have scheduled no deadline (or cancelled what it scheduled).
    #[track_caller]
    pub fn then_no_scheduled(mut self) -> Self {
        self.checked = true;
        if !self.scheduled.is_empty() {
            panic!(
                "then_no_scheduled: the step scheduled\n{}{}",
                deadlines(&self.scheduled, self.now),
                self.context()
            );
        }
        self
    }

    /// Checks the state of the step's instance: `check` asserts, or returns `false` to fail.
    #[track_caller]
    pub fn then_state<R: StateCheck>(mut self, check: impl FnOnce(&S) -> R) -> Self {
        self.checked = true;
        let id = self.instance_id("then_state");
        let passed = self
            .instances
            .instance(&id)
            .is_some_and(|instance| check(&instance.state).passed());
        if !passed {
            panic!(
                "then_state: the state check failed for instance `{id}`{}",
                self.context()
            );
        }
        self
    }

    /// Expects the step's instance to be running (started, not ended).
    #[track_caller]
    pub fn then_active(mut self) -> Self {
        self.checked = true;
        let id = self.instance_id("then_active");
        if self.instances.instance(&id).is_none_or(|i| i.ended) {
            panic!("then_active: instance `{id}` has ended{}", self.context());
        }
        self
    }

    /// Expects the step's instance to have ended.
    #[track_caller]
    pub fn then_ended(mut self) -> Self {
        self.checked = true;
        let id = self.instance_id("then_ended");
        if self.instances.instance(&id).is_some_and(|i| !i.ended) {
            panic!("then_ended: instance `{id}` is still active{}", self.context());
        }
        self
    }

    /// The instance the step ran on; the only instance if the step ran on none.
    #[track_caller]
    fn instance_id(&self, check: &str) -> String {
        if let Some(id) = &self.instance {
            return id.clone();
        }
        let mut all = self.instances.instances();
        match (all.next(), all.next()) {
            (Some(only), None) => only.id.clone(),
            _ => panic!("{check}: the step ran on no saga instance{}", self.context()),
        }
    }

    fn context(&self) -> String {
        let mut text = format!("\nwhen: {}\n", self.when);
        for note in &self.notes {
            let _ = writeln!(text, "  note: {note}");
        }
        if !self.fired.is_empty() {
            let _ = write!(text, "  fired:\n{}", deadlines(&self.fired, self.now));
        }
        text.push_str("given:\n");
        if self.history.is_empty() {
            text.push_str("  (nothing)\n");
        }
        for (i, line) in self.history.iter().enumerate() {
            let _ = writeln!(text, "  #{i} {line}");
        }
        text
    }
}

impl<S: Saga> Drop for SagaOutcome<S> {
    fn drop(&mut self) {
        if !self.checked && !std::thread::panicking() {
            panic!("a saga fixture outcome was dropped without any `then_*` check");
        }
    }
}

fn describe<T: Debug>(value: Option<&T>) -> String {
    value.map_or_else(|| "(none)".to_owned(), |v| format!("{v:?}"))
}

fn payload(record: &RecordedEvent) -> String {
    String::from_utf8_lossy(&record.payload).into_owned()
}

fn deadlines(list: &[PendingDeadline], now: DateTime<Utc>) -> String {
    if list.is_empty() {
        return "    (none)\n".to_owned();
    }
    list.iter()
        .map(|d| {
            let after = (d.due - now).to_std().map_or_else(
                |_| format!("{} before", now - d.due),
                |after| format!("{after:?} after"),
            );
            format!(
                "    `{}` {} due at {} ({after} the step)\n",
                d.name, d.payload, d.due
            )
        })
        .collect()
}
