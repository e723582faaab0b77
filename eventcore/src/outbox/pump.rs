//! Drains an outbox into any publisher: the relay's broker, or a function in a test.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{OutboxError, OutboxSource};
use crate::integration::IntegrationMessage;
use crate::runner::Backoff;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Publishes what an outbox holds, in commit order, at least once: read a batch, hand it to the
/// publisher, delete it once the publisher returned `Ok`.
///
/// The publisher is any `Fn(Vec<IntegrationMessage>) -> impl Future<Output = Result<(), E>>`:
/// a broker transport's publish (which must return only after the broker acknowledged every
/// message), or a channel in a test. A failing publish leaves the batch in the outbox and is
/// retried with backoff; a crash after the publish and before the delete publishes the batch
/// again, with the same message ids.
///
/// ```
/// use eventcore::integration::{IntegrationMessage, MessageMeta};
/// use eventcore::outbox::{MemoryOutbox, Outbox, OutboxPump};
/// use eventcore::prelude::*;
/// use std::sync::{Arc, Mutex};
/// # use serde::{Deserialize, Serialize};
/// # use schemars::JsonSchema;
/// #[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
/// #[integration(name = "billing.invoice_paid")]
/// pub struct InvoicePaid { pub invoice: String }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = MemoryStore::new();
/// store.transaction(|tx| {
///     tx.put("invoices", "inv-1", "paid".into());
///     Outbox::enqueue_memory(tx, &InvoicePaid { invoice: "inv-1".into() }, &MessageMeta::new())
/// })?;
/// let published = Arc::new(Mutex::new(Vec::<IntegrationMessage>::new()));
/// let sink = published.clone();
/// let pump = OutboxPump::new(MemoryOutbox::new(store));
/// pump.drain(|batch: Vec<IntegrationMessage>| {
///     let sink = sink.clone();
///     async move { sink.lock().unwrap().extend(batch); Ok::<_, std::io::Error>(()) }
/// })
/// .await?;
/// assert_eq!(published.lock().unwrap()[0].name, "billing.invoice_paid");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct OutboxPump<S> {
    source: Arc<S>,
    batch_size: usize,
    poll: Duration,
    backoff: Backoff,
}

impl<S: OutboxSource> OutboxPump<S> {
    /// A pump over `source`: batches of 100, a look every 100 ms when idle, the default backoff.
    pub fn new(source: S) -> Self {
        Self {
            source: Arc::new(source),
            batch_size: 100,
            poll: Duration::from_millis(100),
            backoff: Backoff::default(),
        }
    }

    /// Sets the most messages per publish (at least 1).
    pub fn batch_size(mut self, size: usize) -> Self {
        self.batch_size = size.max(1);
        self
    }

    /// Sets how often an idle pump looks for new rows.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll = interval;
        self
    }

    /// Sets the waits between attempts after a failure.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The outbox read.
    pub fn source(&self) -> &S {
        &self.source
    }

    /// Publishes one batch: how many messages were published (0 when the outbox is empty).
    pub async fn pump_once<P, F, E>(&self, publish: &P) -> Result<usize, OutboxError>
    where
        P: Fn(Vec<IntegrationMessage>) -> F,
        F: Future<Output = Result<(), E>>,
        E: Into<BoxError>,
    {
        let batch = self.source.claim(self.batch_size).await?;
        if batch.is_empty() {
            return Ok(0);
        }
        let ids: Vec<Uuid> = batch.iter().map(|m| m.id).collect();
        publish(batch).await.map_err(|e| OutboxError::Publish(e.into()))?;
        self.source.mark_published(&ids).await?;
        tracing::debug!(messages = ids.len(), "outbox batch published");
        metrics::counter!("eventcore_outbox_published_total").increment(ids.len() as u64);
        Ok(ids.len())
    }

    /// Publishes batches until the outbox is empty (or an error): how many were published.
    pub async fn drain<P, F, E>(&self, publish: P) -> Result<usize, OutboxError>
    where
        P: Fn(Vec<IntegrationMessage>) -> F,
        F: Future<Output = Result<(), E>>,
        E: Into<BoxError>,
    {
        let mut total = 0;
        loop {
            match self.pump_once(&publish).await? {
                0 => return Ok(total),
                n => total += n,
            }
        }
    }
}

impl<S: OutboxSource> OutboxPump<S> {
    /// Runs the pump in a task until stopped: drains, waits `poll_interval` when idle, and
    /// retries failures (kept as [`RunningPump::last_error`]) with backoff.
    pub fn start<P, F, E>(self, publish: P) -> RunningPump
    where
        P: Fn(Vec<IntegrationMessage>) -> F + Send + Sync + 'static,
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        let cancel = CancellationToken::new();
        let stats = Arc::new(PumpStats::default());
        let task = tokio::spawn(run(self, publish, cancel.clone(), Arc::clone(&stats)));
        RunningPump {
            cancel: cancel.drop_guard(),
            task,
            stats,
        }
    }
}

#[derive(Debug, Default)]
struct PumpStats {
    published: AtomicU64,
    failures: AtomicU64,
    last_error: std::sync::Mutex<Option<String>>,
}

async fn run<S, P, F, E>(pump: OutboxPump<S>, publish: P, cancel: CancellationToken, stats: Arc<PumpStats>)
where
    S: OutboxSource,
    P: Fn(Vec<IntegrationMessage>) -> F + Send + Sync + 'static,
    F: Future<Output = Result<(), E>> + Send + 'static,
    E: Into<BoxError> + 'static,
{
    let mut delays = pump.backoff.delays();
    loop {
        let outcome = tokio::select! {
            () = cancel.cancelled() => return,
            outcome = pump.pump_once(&publish) => outcome,
        };
        let wait = match outcome {
            Ok(0) => pump.poll,
            Ok(n) => {
                stats.published.fetch_add(n as u64, Ordering::Relaxed);
                delays = pump.backoff.delays();
                continue;
            }
            Err(error) => {
                tracing::warn!(%error, "outbox pump failed; retrying");
                stats.failures.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("eventcore_outbox_failures_total").increment(1);
                *stats
                    .last_error
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(error.to_string());
                delays.next().unwrap_or(pump.poll)
            }
        };
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// A started [`OutboxPump`]; dropping it stops the pump.
#[derive(Debug)]
pub struct RunningPump {
    cancel: tokio_util::sync::DropGuard,
    task: JoinHandle<()>,
    stats: Arc<PumpStats>,
}

impl RunningPump {
    /// Messages published since the start.
    pub fn published(&self) -> u64 {
        self.stats.published.load(Ordering::Relaxed)
    }

    /// Failed attempts since the start.
    pub fn failures(&self) -> u64 {
        self.stats.failures.load(Ordering::Relaxed)
    }

    /// The last failure, if any.
    pub fn last_error(&self) -> Option<String> {
        self.stats
            .last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Stops the pump after its current batch (a batch cut short is published again later).
    pub async fn stop(self) -> Result<(), OutboxError> {
        let Self { cancel, task, .. } = self;
        drop(cancel);
        task.await.map_err(OutboxError::from)
    }
}
