//! The saga runner: [`Sagas`], fed from the store's log, committing each batch of steps with
//! the checkpoint, firing due deadlines and dispatching the commands sent.

use std::collections::{BTreeMap, HashMap};
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::dispatch::{CommandDispatcher, DeadDeadline, Outbox, SagaDeadLetter};
use super::instance::Skipped;
use super::storage::{self, collection, StoredCommand};
use super::{Clock, OutgoingCommand, PendingDeadline, Saga, SagaError, SagaInstance, SagaRoute, SystemClock};
use crate::envelope::RecordedEvent;
use crate::runner::{
    drive, new_owner, BatchError, BatchHandler, DocumentWrite, DriverConfig, Ended, Lease, RetryPolicy,
    Runner, RunnerError, RunnerState, RunnerStore, Running, StatusBoard,
};
use crate::store::{EventFilter, LogBatch, StoreError};

/// Default events per batch.
const DEFAULT_BATCH_SIZE: usize = 500;
/// Default lease duration of a saga's owner.
const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(30);
/// The least wait before firing again after a deadline failed.
const FAILED_DEADLINE_PAUSE: Duration = Duration::from_millis(100);
/// Deadlines fired per transaction.
const DEADLINES_PER_COMMIT: usize = 200;
/// How often the owner looks for dead letters an operator asked to replay.
const REPLAY_SCAN_INTERVAL: Duration = Duration::from_millis(500);

/// Sagas over a store: register them with [`with`](Self::with) and their dispatcher, run them
/// with [`start`](Self::start), inspect instances, deadlines and dead letters.
///
/// Each saga is one runner (checkpoint, fenced lease, status) reading the store's log: with
/// several processes, one owns a saga at a time, and every write of a stale owner is refused.
pub struct Sagas<St> {
    store: St,
    entries: Vec<Arc<dyn Entry<St>>>,
    options: Options,
}

impl<St: std::fmt::Debug> std::fmt::Debug for Sagas<St> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sagas")
            .field("store", &self.store)
            .field(
                "sagas",
                &self.entries.iter().map(|e| e.name()).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
struct Options {
    batch_size: usize,
    retry: RetryPolicy,
    dispatch_retry: RetryPolicy,
    lease_ttl: Duration,
    clock: Arc<dyn Clock>,
}

/// Counts of one saga's instances, deadlines and commands, as stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SagaStats {
    /// Instances not ended.
    pub active: u64,
    /// Instances ended.
    pub ended: u64,
    /// Deadlines not yet fired nor cancelled.
    pub deadlines_pending: u64,
    /// Pending deadlines already due by the runner's clock.
    pub deadlines_overdue: u64,
    /// Commands committed and not yet dispatched.
    pub commands_pending: u64,
    /// Commands dead-lettered.
    pub dead_letters: u64,
}

impl<St: RunnerStore> Sagas<St> {
    /// No sagas yet, over `store`, on the system clock.
    pub fn new(store: St) -> Self {
        Self {
            store,
            entries: Vec::new(),
            options: Options {
                batch_size: DEFAULT_BATCH_SIZE,
                retry: RetryPolicy::default(),
                dispatch_retry: RetryPolicy::default(),
                lease_ttl: DEFAULT_LEASE_TTL,
                clock: Arc::new(SystemClock),
            },
        }
    }

    /// Adds saga `S`, whose commands go to `dispatcher`.
    pub fn with<S: Saga, D: CommandDispatcher<S::Command>>(mut self, dispatcher: D) -> Self {
        self.entries.push(Arc::new(Typed::<S, D> {
            dispatcher: Arc::new(dispatcher),
            saga: PhantomData,
        }));
        self
    }

    /// The clock deadlines fall due by (default [`SystemClock`]); tests pass a
    /// [`ManualClock`](super::ManualClock) and move it.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.options.clock = Arc::new(clock);
        self
    }

    /// Events per batch (and per transaction).
    pub fn batch_size(mut self, events: usize) -> Self {
        self.options.batch_size = events.max(1);
        self
    }

    /// How a failing step (an event that does not decode, state that does not serialize) is
    /// retried before the saga stops at it.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.options.retry = policy;
        self
    }

    /// How a failing dispatch is retried before its command is dead-lettered.
    pub fn dispatch_retry(mut self, policy: RetryPolicy) -> Self {
        self.options.dispatch_retry = policy;
        self
    }

    /// How long an owner's lease lasts without renewal.
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.options.lease_ttl = ttl.max(Duration::from_millis(30));
        self
    }

    /// Starts every saga: each catches up from its checkpoint, then follows live, firing due
    /// deadlines and dispatching commands.
    pub fn start(&self) -> Running<St> {
        let cancel = CancellationToken::new();
        let runners = self
            .entries
            .iter()
            .map(|entry| {
                let board = Arc::new(StatusBoard::new(entry.name(), entry.version()));
                let task = entry.spawn(
                    self.store.clone(),
                    self.options.clone(),
                    Arc::clone(&board),
                    cancel.clone(),
                );
                Runner::new(board, task)
            })
            .collect();
        Running::new(self.store.clone(), runners, cancel)
    }

    /// The instance `id` of saga `S`, as last committed.
    pub async fn instance<S: Saga>(&self, id: &str) -> Result<Option<SagaInstance<S>>, RunnerError> {
        let mut loaded = storage::load_instances::<S, St>(&self.store, vec![id.to_owned()]).await?;
        Ok(loaded.remove(id))
    }

    /// Every instance of saga `S`, by id.
    pub async fn instances<S: Saga>(&self) -> Result<Vec<SagaInstance<S>>, RunnerError> {
        let mut instances = Vec::new();
        for (id, body) in self
            .store
            .list_documents(&collection(S::NAME, "instances"))
            .await?
        {
            instances.push(storage::decode_instance::<S>(&id, &body)?);
        }
        Ok(instances)
    }

    /// The pending deadlines of saga `S`, earliest first.
    pub async fn deadlines<S: Saga>(&self) -> Result<Vec<PendingDeadline>, RunnerError> {
        storage::list(&self.store, S::NAME, "deadlines").await
    }

    /// The commands of saga `S` committed and not yet dispatched.
    pub async fn pending_commands<S: Saga>(&self) -> Result<Vec<StoredCommand>, RunnerError> {
        storage::list(&self.store, S::NAME, "outbox").await
    }

    /// The dead-lettered commands of saga `S`.
    pub async fn dead_letters<S: Saga>(&self) -> Result<Vec<SagaDeadLetter>, RunnerError> {
        storage::list(&self.store, S::NAME, "dead").await
    }

    /// Asks saga `S`'s owner to dispatch the dead-lettered command `key` again (with its
    /// original idempotency key); `false` when there is no such letter. The owner picks the
    /// request up within a second or so, in whichever process runs the saga.
    pub async fn replay_dead_letter<S: Saga>(&self, key: &str) -> Result<bool, RunnerError> {
        super::inspect::request_replay(&self.store, S::NAME, key).await
    }

    /// Asks saga `S`'s owner to dispatch every dead-lettered command again; returns how many.
    pub async fn replay_dead_letters<S: Saga>(&self) -> Result<usize, RunnerError> {
        super::inspect::request_replay_all(&self.store, S::NAME).await
    }

    /// The deadlines of saga `S` whose handler kept failing, set aside.
    pub async fn dead_deadlines<S: Saga>(&self) -> Result<Vec<DeadDeadline>, RunnerError> {
        storage::list(&self.store, S::NAME, "dead_deadlines").await
    }

    /// Counts of saga `S`'s instances, deadlines and commands.
    pub async fn stats<S: Saga>(&self) -> Result<SagaStats, RunnerError> {
        let mut stats = SagaStats::default();
        for instance in self.instances::<S>().await? {
            if instance.ended {
                stats.ended += 1;
            } else {
                stats.active += 1;
            }
        }
        let now = self.options.clock.now();
        for deadline in self.deadlines::<S>().await? {
            stats.deadlines_pending += 1;
            if deadline.due <= now {
                stats.deadlines_overdue += 1;
            }
        }
        stats.commands_pending = self.pending_commands::<S>().await?.len() as u64;
        stats.dead_letters = self.dead_letters::<S>().await?.len() as u64;
        Ok(stats)
    }
}

/// One registered saga, with its types erased.
trait Entry<St>: Send + Sync {
    fn name(&self) -> &str;
    fn version(&self) -> u32;
    fn spawn(
        &self,
        store: St,
        options: Options,
        board: Arc<StatusBoard>,
        cancel: CancellationToken,
    ) -> JoinHandle<Option<Lease>>;
}

struct Typed<S, D> {
    dispatcher: Arc<D>,
    saga: PhantomData<fn() -> S>,
}

impl<St: RunnerStore, S: Saga, D: CommandDispatcher<S::Command>> Entry<St> for Typed<S, D> {
    fn name(&self) -> &str {
        S::NAME
    }

    fn version(&self) -> u32 {
        S::VERSION
    }

    fn spawn(
        &self,
        store: St,
        options: Options,
        board: Arc<StatusBoard>,
        cancel: CancellationToken,
    ) -> JoinHandle<Option<Lease>> {
        let config = DriverConfig {
            name: super::inspect::runner_name(S::NAME),
            filter: EventFilter::event_types(crate::routing::stored_event_types(S::HANDLED_EVENT_TYPES)),
            batch_size: options.batch_size,
            owner: new_owner(),
            lease_ttl: options.lease_ttl,
            retry: options.retry,
            busy_state: RunnerState::CatchingUp,
            stop_at_head: false,
        };
        let handler = SagaHandler::<S, D> {
            dispatcher: Arc::clone(&self.dispatcher),
            moved: options.clock.moved(),
            clock: options.clock,
            dispatch_retry: options.dispatch_retry,
            deadline_attempts: options.retry.max_attempts.max(1),
            failing_deadlines: HashMap::new(),
            fence: None,
            position: 1,
            outbox: Outbox::default(),
            deadlines: BTreeMap::new(),
            replays_checked: None,
            saga: PhantomData,
        };
        tokio::spawn(async move {
            match drive(store, handler, config, &board, cancel).await {
                Ended::Stopped(lease) => lease,
                Ended::Failed => None,
            }
        })
    }
}

/// Runs one saga's steps for the driver.
struct SagaHandler<S, D> {
    dispatcher: Arc<D>,
    clock: Arc<dyn Clock>,
    moved: Option<watch::Receiver<DateTime<Utc>>>,
    dispatch_retry: RetryPolicy,
    /// Attempts at a failing deadline before it is set aside.
    deadline_attempts: u32,
    /// Failed attempts of deadlines, by key.
    failing_deadlines: HashMap<String, u32>,
    /// The fence of the lease the in-memory lists were loaded under.
    fence: Option<u64>,
    /// The checkpoint last committed under that lease.
    position: u64,
    outbox: Outbox,
    /// Pending deadlines by key (due order).
    deadlines: BTreeMap<String, PendingDeadline>,
    /// When the dead letters were last looked at for replay requests.
    replays_checked: Option<Instant>,
    saga: PhantomData<fn() -> S>,
}

/// A step of the batch failed: the event at this index.
struct StepFailed {
    index: usize,
    position: u64,
    error: SagaError,
}

/// What a batch's steps commit.
struct Steps<C> {
    writes: Vec<DocumentWrite>,
    commands: Vec<OutgoingCommand<C>>,
    deadlines: Vec<(String, Option<PendingDeadline>)>,
}

impl<S: Saga, D: CommandDispatcher<S::Command>> SagaHandler<S, D> {
    /// Reloads the durable lists when the lease changed (a restart, or a take-over).
    async fn sync<St: RunnerStore>(&mut self, store: &St, lease: &Lease) -> Result<(), StoreError> {
        if self.fence == Some(lease.fence) {
            return Ok(());
        }
        self.outbox.reload(store, S::NAME).await?;
        self.deadlines.clear();
        for (key, body) in store.list_documents(&collection(S::NAME, "deadlines")).await? {
            match serde_json::from_slice::<PendingDeadline>(&body) {
                Ok(deadline) => {
                    self.deadlines.insert(key, deadline);
                }
                Err(error) => {
                    tracing::error!(saga = S::NAME, key, %error, "a stored deadline does not decode")
                }
            }
        }
        self.position = store
            .checkpoint(&lease.name)
            .await?
            .map_or(1, |c| c.position.max(1));
        self.fence = Some(lease.fence);
        Ok(())
    }

    /// Runs the steps of `records` on the instances they touch.
    async fn run_events<St: RunnerStore>(
        &self,
        store: &St,
        records: &[RecordedEvent],
    ) -> Result<Result<Steps<S::Command>, StepFailed>, StoreError> {
        let mut routes: Vec<(usize, SagaRoute<S>)> = Vec::new();
        let mut scratch = Vec::new();
        for (index, record) in records.iter().enumerate() {
            if let Err(error) = S::route(record, &mut scratch) {
                return Ok(Err(StepFailed {
                    index,
                    position: record.global_position,
                    error,
                }));
            }
            routes.extend(scratch.drain(..).map(|route| (index, route)));
        }
        let mut keys: Vec<String> = routes.iter().map(|(_, r)| r.key().to_owned()).collect();
        keys.sort_unstable();
        keys.dedup();
        let mut instances = storage::load_by_keys::<S, St>(store, keys).await?;
        let now = self.clock.now();
        let mut commands = Vec::new();
        for (index, route) in &routes {
            let outcome = match instances.handle(route, now) {
                Ok(outcome) => outcome,
                Err(error) => {
                    return Ok(Err(StepFailed {
                        index: *index,
                        position: route.global_position(),
                        error,
                    }))
                }
            };
            trace_outcome::<S>(route, outcome.skipped, outcome.started, outcome.ended);
            commands.extend(outcome.commands);
        }
        let changes = instances.take_changes();
        let deadlines = changes.deadlines.clone();
        match storage::writes(&instances, changes, &commands, now) {
            Ok(writes) => Ok(Ok(Steps {
                writes,
                commands,
                deadlines,
            })),
            Err(error) => Ok(Err(StepFailed {
                index: 0,
                position: records.first().map_or(1, |r| r.global_position),
                error,
            })),
        }
    }

    /// Takes committed steps into the in-memory lists, then dispatches what is due.
    async fn committed<St: RunnerStore>(
        &mut self,
        store: &St,
        lease: &Lease,
        steps: Steps<S::Command>,
    ) -> Result<(), StoreError> {
        for (key, deadline) in steps.deadlines {
            match deadline {
                Some(deadline) => self.deadlines.insert(key, deadline),
                None => self.deadlines.remove(&key),
            };
        }
        let stored: Result<Vec<StoredCommand>, _> = steps
            .commands
            .into_iter()
            .map(|c| {
                serde_json::to_value(&c.command).map(|command| StoredCommand {
                    key: c.key,
                    instance: c.instance,
                    step: c.step,
                    index: c.index,
                    causation_id: c.causation_id,
                    idempotency_key: c.idempotency_key,
                    command,
                })
            })
            .collect();
        match stored {
            Ok(stored) => self.outbox.extend(stored),
            // Encoded once already for the commit: reload the stored list instead.
            Err(_) => self.outbox.reload(store, S::NAME).await?,
        }
        self.dispatch(store, lease).await
    }

    async fn dispatch<St: RunnerStore>(&mut self, store: &St, lease: &Lease) -> Result<(), StoreError> {
        self.outbox
            .dispatch_due::<S::Command, D, St>(
                store,
                S::NAME,
                &*self.dispatcher,
                &self.dispatch_retry,
                (lease, self.position, S::VERSION),
            )
            .await
    }

    /// Fires the deadlines due by the clock, committing their steps under `lease`.
    async fn fire_due<St: RunnerStore>(&mut self, store: &St, lease: &Lease) -> Result<(), BatchError> {
        let now = self.clock.now();
        let due: Vec<PendingDeadline> = self
            .deadlines
            .values()
            .filter(|d| d.due <= now)
            .take(DEADLINES_PER_COMMIT)
            .cloned()
            .collect();
        if due.is_empty() {
            return Ok(());
        }
        let mut ids: Vec<String> = due.iter().map(|d| d.instance.clone()).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut instances = storage::load_instances::<S, St>(store, ids).await?;
        let mut commands = Vec::new();
        for deadline in &due {
            match instances.fire(&deadline.instance, &deadline.key, now) {
                Ok(outcome) => {
                    tracing::debug!(
                        saga = S::NAME,
                        instance = deadline.instance,
                        deadline = deadline.name,
                        "deadline fired"
                    );
                    metrics::counter!("eventcore_saga_deadlines_fired_total", "saga" => S::NAME).increment(1);
                    commands.extend(outcome.commands);
                }
                Err(error) => return self.deadline_failed(store, lease, deadline, error).await,
            }
        }
        let changes = instances.take_changes();
        let mut deadlines = changes.deadlines.clone();
        let mut writes =
            storage::writes(&instances, changes, &commands, now).map_err(|error| BatchError::Event {
                position: self.position,
                error: Box::new(error),
            })?;
        // A due row whose instance no longer lists it (cancelled, ended) goes too.
        let deadlines_collection = collection(S::NAME, "deadlines");
        for deadline in &due {
            writes.push(DocumentWrite {
                collection: deadlines_collection.clone(),
                key: deadline.key.clone(),
                body: None,
            });
            deadlines.push((deadline.key.clone(), None));
        }
        store
            .commit_writes(lease, writes, self.position, S::VERSION)
            .await?;
        self.committed(
            store,
            lease,
            Steps {
                writes: Vec::new(),
                commands,
                deadlines,
            },
        )
        .await?;
        Ok(())
    }
}

impl<S: Saga, D: CommandDispatcher<S::Command>> SagaHandler<S, D> {
    /// Counts a failure of `deadline` (nothing of its batch was committed); after the retry
    /// policy's attempts, sets it aside so it cannot hold back the deadlines due after it.
    async fn deadline_failed<St: RunnerStore>(
        &mut self,
        store: &St,
        lease: &Lease,
        deadline: &PendingDeadline,
        error: SagaError,
    ) -> Result<(), BatchError> {
        let attempts = self.failing_deadlines.entry(deadline.key.clone()).or_insert(0);
        *attempts += 1;
        let attempts = *attempts;
        if attempts < self.deadline_attempts {
            return Err(BatchError::Event {
                position: self.position,
                error: Box::new(error),
            });
        }
        let error = crate::runner::error_chain(&error);
        tracing::error!(
            saga = S::NAME,
            instance = deadline.instance,
            deadline = deadline.name,
            attempts,
            error,
            "a deadline is set aside"
        );
        metrics::counter!("eventcore_saga_dead_deadlines_total", "saga" => S::NAME).increment(1);
        let letter = DeadDeadline {
            deadline: deadline.clone(),
            attempts,
            error,
            failed_at: Utc::now(),
        };
        let body = serde_json::to_vec(&letter).map_err(StoreError::backend)?;
        let writes = vec![
            DocumentWrite {
                collection: collection(S::NAME, "dead_deadlines"),
                key: deadline.key.clone(),
                body: Some(body.into()),
            },
            DocumentWrite {
                collection: collection(S::NAME, "deadlines"),
                key: deadline.key.clone(),
                body: None,
            },
        ];
        store
            .commit_writes(lease, writes, self.position, S::VERSION)
            .await?;
        self.deadlines.remove(&deadline.key);
        self.failing_deadlines.remove(&deadline.key);
        Ok(())
    }
}

/// Counts and traces what an event did.
fn trace_outcome<S: Saga>(route: &SagaRoute<S>, skipped: Option<Skipped>, started: bool, ended: bool) {
    let (saga, key, event_type) = (S::NAME, route.key(), route.event_type());
    match skipped {
        None => {
            if started {
                metrics::counter!("eventcore_saga_started_total", "saga" => saga).increment(1);
            }
            if ended {
                metrics::counter!("eventcore_saga_ended_total", "saga" => saga).increment(1);
            }
            tracing::debug!(saga, key, event_type, started, ended, "saga step");
        }
        Some(Skipped::NoInstance) => {
            metrics::counter!("eventcore_saga_unmatched_total", "saga" => saga).increment(1);
            tracing::info!(
                saga,
                key,
                event_type,
                "no saga instance for this key; event ignored"
            );
        }
        Some(Skipped::AlreadyStarted) => {
            metrics::counter!("eventcore_saga_duplicate_starts_total", "saga" => saga).increment(1);
            tracing::info!(
                saga,
                key,
                event_type,
                "the key already has an instance; nothing started"
            );
        }
        Some(Skipped::Ended) => {
            metrics::counter!("eventcore_saga_after_end_total", "saga" => saga).increment(1);
            tracing::debug!(saga, key, event_type, "the instance has ended; event ignored");
        }
    }
}

impl<St: RunnerStore, S: Saga, D: CommandDispatcher<S::Command>> BatchHandler<St> for SagaHandler<S, D> {
    async fn handle(&mut self, store: &St, lease: &Lease, batch: &LogBatch) -> Result<u64, BatchError> {
        self.sync(store, lease).await?;
        let mut records = &batch.events[..];
        let mut position = batch.next_position;
        let mut failure = None;
        // On a failure, commit the steps before it with the checkpoint at it, then report it.
        let steps = loop {
            match self.run_events(store, records).await? {
                Ok(steps) => break steps,
                Err(failed) => {
                    records = &records[..failed.index];
                    position = failed.position;
                    failure = Some((failed.position, failed.error));
                }
            }
        };
        let writes = steps.writes.clone();
        store.commit_writes(lease, writes, position, S::VERSION).await?;
        self.position = position;
        if let Err(error) = self.committed(store, lease, steps).await {
            tracing::warn!(saga = S::NAME, %error, "cannot dispatch saga commands; retrying later");
        }
        match failure {
            None => Ok(position),
            Some((position, error)) => Err(BatchError::Event {
                position,
                error: Box::new(error),
            }),
        }
    }

    async fn tick(&mut self, store: &St, lease: &Lease) -> Result<(), BatchError> {
        self.sync(store, lease).await?;
        if self
            .replays_checked
            .is_none_or(|at| at.elapsed() >= REPLAY_SCAN_INTERVAL)
        {
            self.replays_checked = Some(Instant::now());
            self.outbox
                .take_replays(store, S::NAME, (lease, self.position, S::VERSION))
                .await?;
        }
        self.fire_due(store, lease).await?;
        self.dispatch(store, lease).await?;
        Ok(())
    }

    async fn alarm(&mut self) {
        let mut wait: Option<Duration> = self
            .outbox
            .next_retry()
            .map(|at| at.saturating_duration_since(Instant::now()));
        if self.moved.is_none() {
            if let Some(due) = self.deadlines.values().map(|d| d.due).min() {
                let mut until = (due - self.clock.now()).to_std().unwrap_or_default();
                if !self.failing_deadlines.is_empty() {
                    // A failing deadline is retried after a pause, not in a tight loop.
                    until = until.max(FAILED_DEADLINE_PAUSE);
                }
                wait = Some(wait.map_or(until, |w| w.min(until)));
            }
        }
        let sleep = async {
            match wait {
                Some(wait) => tokio::time::sleep(wait.min(Duration::from_secs(60))).await,
                None => std::future::pending().await,
            }
        };
        let moved = async {
            match self.moved.as_mut() {
                Some(moved) => {
                    if moved.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = sleep => {}
            () = moved => {}
        }
    }
}
