//! What a saga handler can do: send commands, schedule and cancel deadlines, add keys, end.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{SagaCommands, SagaDeadline};

/// A deadline scheduled by a step: its type name, when it falls due, and its payload.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduledDeadline {
    /// The deadline type's name.
    pub name: &'static str,
    /// When it falls due.
    pub due: DateTime<Utc>,
    /// The deadline value as JSON (`Err` with the message when it does not serialize).
    pub payload: Result<serde_json::Value, String>,
}

/// The context of one saga step: the instance it runs for and the effects it asks for.
///
/// Everything a handler asks for commits together with the instance's new state when the step
/// commits, and only then: commands are dispatched after the commit, deadlines become durable
/// rows, associations unique keys.
#[derive(Debug)]
pub struct SagaContext<S: SagaCommands> {
    id: String,
    now: DateTime<Utc>,
    pub(crate) commands: Vec<S::Command>,
    pub(crate) scheduled: Vec<ScheduledDeadline>,
    pub(crate) cancelled: Vec<&'static str>,
    pub(crate) associations: Vec<String>,
    pub(crate) ended: bool,
}

impl<S: SagaCommands> SagaContext<S> {
    /// The context of a step of instance `id` at time `now`.
    pub fn new(id: impl Into<String>, now: DateTime<Utc>) -> Self {
        Self {
            id: id.into(),
            now,
            commands: Vec::new(),
            scheduled: Vec::new(),
            cancelled: Vec::new(),
            associations: Vec::new(),
            ended: false,
        }
    }

    /// The instance id: the value of the key its `#[start]` event carried.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The time of this step, by the runner's [`Clock`](super::Clock).
    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// Sends `command` once the step commits (at least once, with an idempotency key).
    pub fn send(&mut self, command: S::Command) {
        self.commands.push(command);
    }

    /// Schedules `deadline` to fall due `after` this step's time.
    pub fn schedule<D: SagaDeadline<S> + Serialize>(&mut self, after: Duration, deadline: D) {
        let after = chrono::Duration::from_std(after).unwrap_or(chrono::Duration::MAX);
        let due = self
            .now
            .checked_add_signed(after)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        self.schedule_at(due, deadline);
    }

    /// Schedules `deadline` to fall due at `at`.
    pub fn schedule_at<D: SagaDeadline<S> + Serialize>(&mut self, at: DateTime<Utc>, deadline: D) {
        self.scheduled.push(ScheduledDeadline {
            name: D::DEADLINE,
            due: at,
            payload: serde_json::to_value(&deadline).map_err(|e| e.to_string()),
        });
    }

    /// Cancels every pending deadline of type `D` of this instance (those scheduled earlier in
    /// this step too). Cancelling a deadline that fired or never existed does nothing.
    pub fn cancel<D: SagaDeadline<S>>(&mut self) {
        let name = D::DEADLINE;
        self.scheduled.retain(|d| d.name != name);
        if !self.cancelled.contains(&name) {
            self.cancelled.push(name);
        }
    }

    /// Adds `value` as another key of this instance: events whose key field holds it find the
    /// instance too. A value that already names another instance is left to that one.
    pub fn associate(&mut self, value: impl ToString) {
        self.associations.push(value.to_string());
    }

    /// Ends the instance after this step: its deadlines are cancelled, and later events for its
    /// keys (starts too) do nothing.
    pub fn end(&mut self) {
        self.ended = true;
    }

    /// The commands sent so far in this step.
    pub fn commands(&self) -> &[S::Command] {
        &self.commands
    }

    /// The deadlines scheduled so far in this step.
    pub fn scheduled(&self) -> &[ScheduledDeadline] {
        &self.scheduled
    }

    /// Whether the step ends the instance.
    pub fn is_ending(&self) -> bool {
        self.ended
    }
}
