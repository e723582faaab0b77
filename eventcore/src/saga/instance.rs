//! Saga instances in memory and the rules of a step: what the runner commits and the fixture checks.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Role, Saga, SagaContext, SagaError, SagaRoute};
use crate::envelope::CommandContext;

/// One instance of saga `S`: its state and life.
#[derive(Debug, Clone, PartialEq)]
pub struct SagaInstance<S> {
    /// The instance id: the key value of its `#[start]` event.
    pub id: String,
    /// The saga's state.
    pub state: S,
    /// Steps run so far (events and deadlines handled).
    pub version: u64,
    /// Whether it has ended.
    pub ended: bool,
    /// Its keys: the id, and values added with [`SagaContext::associate`].
    pub associations: Vec<String>,
    /// Its deadlines not yet fired nor cancelled, by due time.
    pub deadlines: Vec<PendingDeadline>,
}

/// A durable deadline: due at a time, for one instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingDeadline {
    /// Its unique key (orders deadlines by due time).
    pub key: String,
    /// The instance it fires on.
    pub instance: String,
    /// The deadline type's name.
    pub name: String,
    /// When it falls due.
    pub due: DateTime<Utc>,
    /// The deadline value.
    pub payload: serde_json::Value,
}

/// A command a step sent, with what its dispatch carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutgoingCommand<C> {
    /// Its key in the list of commands to dispatch (orders an instance's commands).
    pub key: String,
    /// The instance that sent it (the correlation id).
    pub instance: String,
    /// The instance's step that sent it.
    pub step: u64,
    /// Its index among the step's commands.
    pub index: u32,
    /// The triggering event's id, or the deadline's (the causation id).
    pub causation_id: String,
    /// The idempotency key, derived from (saga, instance, step, index).
    pub idempotency_key: String,
    /// The command.
    pub command: C,
}

impl<C> OutgoingCommand<C> {
    /// The context the command is dispatched with.
    pub fn context(&self) -> CommandContext {
        CommandContext::new()
            .correlation_id(self.instance.clone())
            .causation_id(self.causation_id.clone())
            .idempotency_key(self.idempotency_key.clone())
    }
}

/// Why an event changed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skipped {
    /// A start for a key that already has an instance.
    AlreadyStarted,
    /// An event for a key with no instance.
    NoInstance,
    /// An event for an instance that has ended.
    Ended,
}

/// What one event or deadline did.
#[derive(Debug)]
pub struct StepOutcome<S: Saga> {
    /// The instance it ran on (or was skipped for).
    pub instance: Option<String>,
    /// Why it ran nothing, if it did not.
    pub skipped: Option<Skipped>,
    /// Whether it created the instance.
    pub started: bool,
    /// Commands it sent.
    pub commands: Vec<OutgoingCommand<S::Command>>,
    /// Deadlines it scheduled.
    pub scheduled: Vec<PendingDeadline>,
    /// Deadlines it cancelled (explicitly, or by ending the instance).
    pub cancelled: Vec<PendingDeadline>,
    /// Whether it ended the instance.
    pub ended: bool,
}

impl<S: Saga> StepOutcome<S> {
    fn skipped(instance: Option<String>, why: Skipped) -> Self {
        Self {
            instance,
            skipped: Some(why),
            started: false,
            commands: Vec::new(),
            scheduled: Vec::new(),
            cancelled: Vec::new(),
            ended: false,
        }
    }
}

/// The changes of the steps run since the last [`SagaInstances::take_changes`].
#[derive(Debug)]
pub(crate) struct Changes {
    pub(crate) instances: Vec<String>,
    pub(crate) associations: Vec<(String, String)>,
    pub(crate) deadlines: Vec<(String, Option<PendingDeadline>)>,
}

/// Instances of saga `S` and their keys, in memory: runs steps by the saga's rules.
///
/// The runner loads the instances a batch touches into one, runs the batch, and commits its
/// changes; `eventcore_testing::SagaFixture` keeps everything in one.
#[derive(Debug)]
pub struct SagaInstances<S: Saga> {
    associations: HashMap<String, String>,
    instances: BTreeMap<String, SagaInstance<S>>,
    dirty: BTreeSet<String>,
    new_associations: Vec<(String, String)>,
    deadline_writes: Vec<(String, Option<PendingDeadline>)>,
}

impl<S: Saga> Default for SagaInstances<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Saga> SagaInstances<S> {
    /// No instances.
    pub fn new() -> Self {
        Self {
            associations: HashMap::new(),
            instances: BTreeMap::new(),
            dirty: BTreeSet::new(),
            new_associations: Vec::new(),
            deadline_writes: Vec::new(),
        }
    }

    /// Adds a stored instance (and its keys).
    pub(crate) fn insert_loaded(&mut self, instance: SagaInstance<S>) {
        for key in &instance.associations {
            self.associations.insert(key.clone(), instance.id.clone());
        }
        self.instances.insert(instance.id.clone(), instance);
    }

    /// Adds a stored key of an instance.
    pub(crate) fn insert_association(&mut self, value: String, instance: String) {
        self.associations.insert(value, instance);
    }

    /// The instance `id`.
    pub fn instance(&self, id: &str) -> Option<&SagaInstance<S>> {
        self.instances.get(id)
    }

    /// Takes the instance `id` out.
    pub fn remove(&mut self, id: &str) -> Option<SagaInstance<S>> {
        self.instances.remove(id)
    }

    /// The instance a key value finds.
    pub fn find(&self, key: &str) -> Option<&SagaInstance<S>> {
        self.associations.get(key).and_then(|id| self.instances.get(id))
    }

    /// Every instance, by id.
    pub fn instances(&self) -> impl Iterator<Item = &SagaInstance<S>> {
        self.instances.values()
    }

    /// The pending deadlines due at `now`, earliest first.
    pub fn due(&self, now: DateTime<Utc>) -> Vec<PendingDeadline> {
        let mut due: Vec<PendingDeadline> = self
            .instances
            .values()
            .flat_map(|i| i.deadlines.iter())
            .filter(|d| d.due <= now)
            .cloned()
            .collect();
        due.sort_by(|a, b| a.key.cmp(&b.key));
        due
    }

    /// Runs the handler of `route` on the instance its key finds (or starts).
    pub fn handle(&mut self, route: &SagaRoute<S>, now: DateTime<Utc>) -> Result<StepOutcome<S>, SagaError> {
        let key = route.key();
        let causation = route.event_id().to_string();
        match self.associations.get(key).cloned() {
            Some(id) => {
                let Some(instance) = self.instances.get(&id) else {
                    return Ok(StepOutcome::skipped(Some(id), Skipped::NoInstance));
                };
                if instance.ended {
                    return Ok(StepOutcome::skipped(Some(id), Skipped::Ended));
                }
                if route.role() == Role::Start {
                    return Ok(StepOutcome::skipped(Some(id), Skipped::AlreadyStarted));
                }
                let end = route.role() == Role::End;
                self.step(&id, now, causation, end, |state, cx| route.apply_to(state, cx))
            }
            None if route.role() == Role::Start => {
                let id = key.to_owned();
                self.instances.insert(
                    id.clone(),
                    SagaInstance {
                        id: id.clone(),
                        state: S::default(),
                        version: 0,
                        ended: false,
                        associations: vec![id.clone()],
                        deadlines: Vec::new(),
                    },
                );
                self.associations.insert(id.clone(), id.clone());
                self.new_associations.push((id.clone(), id.clone()));
                let mut outcome =
                    self.step(&id, now, causation, false, |state, cx| route.apply_to(state, cx))?;
                outcome.started = true;
                Ok(outcome)
            }
            None => Ok(StepOutcome::skipped(None, Skipped::NoInstance)),
        }
    }

    /// Fires the pending deadline `key` of instance `instance`; a deadline no longer pending
    /// (fired, cancelled) does nothing.
    pub fn fire(
        &mut self,
        instance: &str,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<StepOutcome<S>, SagaError> {
        let Some(found) = self.instances.get_mut(instance) else {
            return Ok(StepOutcome::skipped(
                Some(instance.to_owned()),
                Skipped::NoInstance,
            ));
        };
        let Some(index) = found.deadlines.iter().position(|d| d.key == key) else {
            return Ok(StepOutcome::skipped(
                Some(instance.to_owned()),
                Skipped::NoInstance,
            ));
        };
        let deadline = found.deadlines.remove(index);
        self.deadline_writes.push((deadline.key.clone(), None));
        self.dirty.insert(instance.to_owned());
        if found.ended {
            return Ok(StepOutcome::skipped(Some(instance.to_owned()), Skipped::Ended));
        }
        let causation = deadline_id(S::NAME, &deadline.key);
        let mut failure = None;
        let outcome = self.step(instance, now, causation, false, |state, cx| {
            if let Err(error) = state.on_deadline(&deadline.name, &deadline.payload, cx) {
                failure = Some(error);
            }
        })?;
        match failure {
            Some(error) => Err(error),
            None => Ok(outcome),
        }
    }

    /// Takes the changes to commit.
    pub(crate) fn take_changes(&mut self) -> Changes {
        Changes {
            instances: std::mem::take(&mut self.dirty).into_iter().collect(),
            associations: std::mem::take(&mut self.new_associations),
            deadlines: std::mem::take(&mut self.deadline_writes),
        }
    }

    fn step(
        &mut self,
        id: &str,
        now: DateTime<Utc>,
        causation_id: String,
        end: bool,
        run: impl FnOnce(&mut S, &mut SagaContext<S>),
    ) -> Result<StepOutcome<S>, SagaError> {
        let Some(instance) = self.instances.get_mut(id) else {
            return Ok(StepOutcome::skipped(Some(id.to_owned()), Skipped::NoInstance));
        };
        let mut cx = SagaContext::<S>::new(id, now);
        run(&mut instance.state, &mut cx);
        instance.version += 1;
        let step = instance.version;
        self.dirty.insert(id.to_owned());

        let mut outcome = StepOutcome::<S>::skipped(Some(id.to_owned()), Skipped::NoInstance);
        outcome.skipped = None;
        for (index, command) in cx.commands.into_iter().enumerate() {
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            outcome.commands.push(OutgoingCommand {
                key: format!("{step:012}/{index:04}/{id}"),
                instance: id.to_owned(),
                step,
                index,
                causation_id: causation_id.clone(),
                idempotency_key: format!("saga/{}/{id}/{step}/{index}", S::NAME),
                command,
            });
        }
        for name in &cx.cancelled {
            let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut instance.deadlines)
                .into_iter()
                .partition(|d| d.name == *name);
            instance.deadlines = kept;
            outcome.cancelled.extend(gone);
        }
        for (index, scheduled) in cx.scheduled.into_iter().enumerate() {
            let payload = scheduled.payload.map_err(|message| SagaError::Deadline {
                saga: S::NAME,
                deadline: scheduled.name.to_owned(),
                source: message.into(),
            })?;
            let due_ms = u64::try_from(scheduled.due.timestamp_millis()).unwrap_or(0);
            let deadline = PendingDeadline {
                key: format!("{due_ms:016}/{step:012}/{index:04}/{id}"),
                instance: id.to_owned(),
                name: scheduled.name.to_owned(),
                due: scheduled.due,
                payload,
            };
            outcome.scheduled.push(deadline);
        }
        for value in cx.associations {
            if !self.associations.contains_key(&value) {
                self.associations.insert(value.clone(), id.to_owned());
                self.new_associations.push((value.clone(), id.to_owned()));
                instance.associations.push(value);
            }
        }
        if end || cx.ended {
            instance.ended = true;
            outcome.ended = true;
            outcome.cancelled.append(&mut instance.deadlines);
        } else {
            instance.deadlines.extend(outcome.scheduled.iter().cloned());
            instance.deadlines.sort_by(|a, b| a.key.cmp(&b.key));
            for deadline in &outcome.scheduled {
                self.deadline_writes
                    .push((deadline.key.clone(), Some(deadline.clone())));
            }
        }
        for deadline in &outcome.cancelled {
            self.deadline_writes.push((deadline.key.clone(), None));
        }
        Ok(outcome)
    }
}

/// The id of a deadline, as the causation id of the commands its handler sends.
pub(crate) fn deadline_id(saga: &str, key: &str) -> String {
    uuid::Uuid::new_v5(&DEADLINE_NAMESPACE, format!("{saga}\0{key}").as_bytes()).to_string()
}

/// The UUID v5 namespace of deadline ids.
const DEADLINE_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x3b9e_71c2_5d04_4a8f_9e26_c1d7_08a4_f5b3);
