//! The loop every runner shares: take the lease, read settled batches from the checkpoint, hand
//! them to a [`BatchHandler`] that commits its effects with the checkpoint, retry with backoff,
//! report status, wait for commits when caught up, stop on request.

use std::future::Future;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::retry::RetryPolicy;
use super::status::{RunnerState, StatusBoard};
use super::store::{Lease, RunnerStore};
use crate::store::{EventFilter, LogBatch, StoreError};

/// Why a batch was not (wholly) handled.
#[derive(Debug)]
pub(crate) enum BatchError {
    /// The store failed; the batch is read again after a backoff.
    Store(StoreError),
    /// A system the runner writes to (a broker) failed; the batch is read again after a backoff.
    #[cfg_attr(not(any(feature = "redis", feature = "nats")), allow(dead_code))]
    Unavailable(Box<dyn std::error::Error + Send + Sync + 'static>),
    /// The event at `position` failed (everything before it was committed); it is retried, and
    /// the runner stops with it after the policy's attempts.
    Event {
        /// Its position.
        position: u64,
        /// Why, with its causes.
        error: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

impl From<StoreError> for BatchError {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

/// What a runner does with each batch.
pub(crate) trait BatchHandler<S: RunnerStore>: Send + 'static {
    /// Handles `batch` and commits its effects with the checkpoint `batch.next_position` (or a
    /// lower one, handling only part of the batch), under `lease`, in one transaction; returns the
    /// checkpoint it committed. On an event's failure, commits the events before it with the
    /// checkpoint at it, and reports it.
    fn handle(
        &mut self,
        store: &S,
        lease: &Lease,
        batch: &LogBatch,
    ) -> impl Future<Output = Result<u64, BatchError>> + Send;

    /// Work to do while caught up (a consumer's requested replays); runs at every wake-up.
    fn idle(&mut self, store: &S) -> impl Future<Output = Result<(), BatchError>> + Send {
        let _ = store;
        async { Ok(()) }
    }

    /// Work that needs the lease, at every wake-up while caught up (a saga's due deadlines and
    /// pending commands); its writes are fenced by `lease` like a batch's.
    fn tick(&mut self, store: &S, lease: &Lease) -> impl Future<Output = Result<(), BatchError>> + Send {
        let _ = (store, lease);
        async { Ok(()) }
    }

    /// Resolves when the runner should wake up although nothing was committed (a deadline
    /// falls due, a retry is due, a test moved the clock); never, by default.
    fn alarm(&mut self) -> impl Future<Output = ()> + Send {
        std::future::pending()
    }
}

/// How a runner reads.
#[derive(Debug, Clone)]
pub(crate) struct DriverConfig {
    /// The runner's name: its checkpoint and lease.
    pub name: String,
    /// The event types it reads.
    pub filter: EventFilter,
    /// Events per batch.
    pub batch_size: usize,
    /// Who this process is, for the lease.
    pub owner: String,
    /// How long a lease lasts without renewal.
    pub lease_ttl: Duration,
    /// Retries of a failing event.
    pub retry: RetryPolicy,
    /// The state to report while behind (catching up, or rebuilding).
    pub busy_state: RunnerState,
    /// Stop once the head (as first read) is reached, instead of following live.
    pub stop_at_head: bool,
}

/// How a driven runner ended.
#[derive(Debug)]
pub(crate) enum Ended {
    /// Cancelled (or reached the head, with `stop_at_head`), holding this lease until released.
    Stopped(Option<Lease>),
    /// Gave up on an event.
    Failed,
}

/// Runs the loop until cancelled or failed; the status board says where it is.
pub(crate) async fn drive<S: RunnerStore, H: BatchHandler<S>>(
    store: S,
    mut handler: H,
    config: DriverConfig,
    status: &StatusBoard,
    cancel: CancellationToken,
) -> Ended {
    let span = tracing::info_span!("runner", runner = %config.name);
    async move {
        let mut signal = store.commit_signal();
        let mut delays: Delays = Box::new(config.retry.backoff.delays());
        loop {
            let Some(lease) = acquire(&store, &config, status, &cancel).await else {
                status.update(|s| s.state = RunnerState::Stopped);
                return Ended::Stopped(None);
            };
            match follow(
                &store,
                &mut handler,
                &config,
                status,
                &cancel,
                &lease,
                &mut signal,
                &mut delays,
            )
            .await
            {
                Followed::Cancelled => {
                    // A runner that stopped at the head (a rebuild) keeps its state for the caller.
                    if cancel.is_cancelled() {
                        status.update(|s| s.state = RunnerState::Stopped);
                    }
                    return Ended::Stopped(Some(lease));
                }
                Followed::Failed => return Ended::Failed,
                Followed::LeaseLost => {
                    tracing::warn!("lease taken over by another owner; standing by");
                    status.update(|s| s.state = RunnerState::Standby);
                }
            }
        }
    }
    .instrument(span)
    .await
}

/// Takes the lease, waiting while another owner holds it; `None` when cancelled first.
async fn acquire<S: RunnerStore>(
    store: &S,
    config: &DriverConfig,
    status: &StatusBoard,
    cancel: &CancellationToken,
) -> Option<Lease> {
    loop {
        match store
            .acquire_lease(&config.name, &config.owner, config.lease_ttl)
            .await
        {
            Ok(Some(lease)) => return Some(lease),
            Ok(None) => status.update(|s| s.state = RunnerState::Standby),
            Err(error) => {
                tracing::warn!(%error, "cannot take the lease");
                status.update(|s| s.last_error = Some(error_chain(&error)));
            }
        }
        tokio::select! {
            () = cancel.cancelled() => return None,
            () = tokio::time::sleep(config.lease_ttl / 3) => {}
        }
    }
}

/// The waits before the next retries.
type Delays = Box<dyn Iterator<Item = Duration> + Send>;

enum Followed {
    Cancelled,
    Failed,
    LeaseLost,
}

#[allow(clippy::too_many_arguments)]
async fn follow<S: RunnerStore, H: BatchHandler<S>>(
    store: &S,
    handler: &mut H,
    config: &DriverConfig,
    status: &StatusBoard,
    cancel: &CancellationToken,
    lease: &Lease,
    signal: &mut super::store::CommitSignal,
    delays: &mut Delays,
) -> Followed {
    let mut position = match store.checkpoint(&config.name).await {
        Ok(checkpoint) => checkpoint.map_or(1, |c| c.position.max(1)),
        Err(error) => {
            tracing::warn!(%error, "cannot read the checkpoint");
            1
        }
    };
    if let Err(error) = super::clear_failure(store, &config.name).await {
        tracing::warn!(%error, "cannot clear the recorded failure");
    }
    let mut stop_head: Option<u64> = None;
    let mut attempts: (u64, u32) = (0, 0);
    let mut renewed = Instant::now();
    // The batch after the one being handled, read while it is handled (catch-up only).
    let mut prefetched: Option<LogBatch> = None;
    status.update(|s| {
        s.position = position;
        s.state = config.busy_state;
    });
    loop {
        if cancel.is_cancelled() {
            return Followed::Cancelled;
        }
        signal.commits.borrow_and_update();
        let started = Instant::now();
        let read = match prefetched.take() {
            Some(batch) => Ok(batch),
            None => {
                store
                    .read_batch(position, &config.filter, config.batch_size)
                    .await
            }
        };
        let batch = match read {
            Ok(batch) => batch,
            Err(error) => {
                tracing::warn!(%error, position, "cannot read a batch");
                status.update(|s| s.last_error = Some(error_chain(&error)));
                if pause(cancel, delays.next()).await {
                    return Followed::Cancelled;
                }
                continue;
            }
        };
        if config.stop_at_head && stop_head.is_none() {
            stop_head = Some(batch.head);
        }
        if batch.next_position > position || !batch.events.is_empty() {
            let span = tracing::debug_span!("batch", position, events = batch.events.len());
            let handling = handler.handle(store, lease, &batch).instrument(span);
            let (outcome, ahead) = if batch.caught_up() {
                (handling.await, None)
            } else {
                // Behind the head: read the next batch while this one is applied and committed.
                let ahead = store.read_batch(batch.next_position, &config.filter, config.batch_size);
                let (outcome, ahead) = tokio::join!(handling, ahead);
                (outcome, ahead.ok())
            };
            match outcome {
                Ok(committed) => {
                    if committed == batch.next_position {
                        prefetched = ahead;
                    }
                    let handled = batch
                        .events
                        .iter()
                        .filter(|e| e.global_position < committed)
                        .count();
                    metrics::counter!("eventcore_runner_events_total", "runner" => config.name.clone())
                        .increment(handled as u64);
                    let elapsed = started.elapsed().as_secs_f64();
                    position = committed;
                    attempts = (0, 0);
                    renewed = Instant::now();
                    *delays = Box::new(config.retry.backoff.delays());
                    status.update(|s| {
                        s.position = position;
                        s.head = batch.head.max(s.head);
                        s.last_error = None;
                        if handled > 0 && elapsed > 0.0 {
                            s.events_per_second = handled as f64 / elapsed;
                        }
                        s.lag_time = lag_time(&batch);
                        s.state = if batch.caught_up() {
                            live_state(config)
                        } else {
                            config.busy_state
                        };
                    });
                }
                Err(BatchError::Store(StoreError::LeaseLost { .. })) => return Followed::LeaseLost,
                Err(BatchError::Store(error)) => {
                    tracing::warn!(%error, position, "cannot commit a batch");
                    status.update(|s| s.last_error = Some(error_chain(&error)));
                    if pause(cancel, delays.next()).await {
                        return Followed::Cancelled;
                    }
                }
                Err(BatchError::Unavailable(error)) => {
                    let chain = error_chain(&*error);
                    tracing::warn!(error = %chain, position, "cannot hand a batch on");
                    status.update(|s| s.last_error = Some(chain));
                    if pause(cancel, delays.next()).await {
                        return Followed::Cancelled;
                    }
                }
                Err(BatchError::Event {
                    position: failed,
                    error,
                }) => {
                    attempts = if attempts.0 == failed {
                        (failed, attempts.1 + 1)
                    } else {
                        (failed, 1)
                    };
                    position = failed.max(position);
                    let chain = format!("at position {failed}: {}", error_chain(&*error));
                    tracing::warn!(attempt = attempts.1, error = %chain, "an event failed");
                    metrics::counter!("eventcore_runner_retries_total", "runner" => config.name.clone())
                        .increment(1);
                    let gave_up = attempts.1 >= config.retry.max_attempts.max(1);
                    if gave_up {
                        if let Err(error) = super::record_failure(store, &config.name, failed, &chain).await {
                            tracing::warn!(%error, "cannot record the failure");
                        }
                    }
                    status.update(|s| {
                        s.position = position;
                        s.last_error = Some(chain);
                        s.retries += 1;
                        if gave_up {
                            s.state = RunnerState::Failed;
                        }
                    });
                    if gave_up {
                        tracing::error!(position = failed, "giving up: the runner stops at this event");
                        if let Err(error) = store.release_lease(lease).await {
                            tracing::warn!(%error, "cannot release the lease");
                        }
                        return Followed::Failed;
                    }
                    if pause(cancel, delays.next()).await {
                        return Followed::Cancelled;
                    }
                }
            }
            if stop_head.is_some_and(|head| position > head) {
                return Followed::Cancelled;
            }
            continue;
        }
        // Nothing new: caught up (or waiting on a gap). Report, then wait for a commit.
        status.update(|s| {
            s.head = batch.head;
            s.lag_time = Duration::ZERO;
            if batch.caught_up() {
                s.state = live_state(config);
            }
        });
        if stop_head.is_some_and(|head| position > head) {
            return Followed::Cancelled;
        }
        if let Err(error) = handler.idle(store).await {
            tracing::warn!(?error, "idle work failed");
        }
        match handler.tick(store, lease).await {
            Ok(()) => {}
            Err(BatchError::Store(StoreError::LeaseLost { .. })) => return Followed::LeaseLost,
            Err(error) => {
                tracing::warn!(?error, "work while caught up failed");
                status.update(|s| {
                    s.last_error = Some(match &error {
                        BatchError::Store(error) => error_chain(error),
                        BatchError::Unavailable(error) | BatchError::Event { error, .. } => {
                            error_chain(&**error)
                        }
                    });
                });
            }
        }
        if renewed.elapsed() >= config.lease_ttl / 3 {
            match store.renew_lease(lease).await {
                Ok(()) => renewed = Instant::now(),
                Err(StoreError::LeaseLost { .. }) => return Followed::LeaseLost,
                Err(error) => tracing::warn!(%error, "cannot renew the lease"),
            }
        }
        let wait = if batch.caught_up() {
            signal.poll.min(config.lease_ttl / 3)
        } else {
            // A gap not yet settled: look again soon.
            Duration::from_millis(10)
        };
        tokio::select! {
            () = cancel.cancelled() => return Followed::Cancelled,
            _ = signal.commits.changed() => {}
            () = tokio::time::sleep(wait) => {}
            () = handler.alarm() => {}
        }
    }
}

fn live_state(config: &DriverConfig) -> RunnerState {
    if config.busy_state == RunnerState::Rebuilding {
        RunnerState::Rebuilding
    } else {
        RunnerState::Live
    }
}

/// The age of the oldest event a runner still had to handle when it read `batch`.
fn lag_time(batch: &LogBatch) -> Duration {
    if batch.caught_up() {
        return Duration::ZERO;
    }
    batch
        .events
        .last()
        .map(|e| (chrono::Utc::now() - e.occurred_at).to_std().unwrap_or_default())
        .unwrap_or_default()
}

/// Sleeps for `delay`; `true` when cancelled first.
async fn pause(cancel: &CancellationToken, delay: Option<Duration>) -> bool {
    let delay = delay.unwrap_or(Duration::from_secs(30));
    tokio::select! {
        () = cancel.cancelled() => true,
        () = tokio::time::sleep(delay) => false,
    }
}

/// An error and its causes on one line (`outer: cause: root cause`), as runners report them.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

/// Waits until `status` reports a position past `head`; an error when it failed or stopped first.
pub(crate) async fn wait_reached(
    mut status: watch::Receiver<super::status::RunnerStatus>,
    head: u64,
) -> Result<(), String> {
    loop {
        {
            let current = status.borrow_and_update();
            // A rebuild at the head has not swapped its documents in yet.
            if current.reached(head) && current.state != RunnerState::Rebuilding {
                return Ok(());
            }
            if matches!(current.state, RunnerState::Failed | RunnerState::Stopped) {
                return Err(format!(
                    "`{}` is {} at position {}{}",
                    current.name,
                    current.state,
                    current.position,
                    current
                        .last_error
                        .as_ref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                ));
            }
        }
        if status.changed().await.is_err() {
            return Err("the runner is gone".to_owned());
        }
    }
}
