//! The gap-free subscription of [`PostgresStore`]; the module doc of `store::postgres` explains
//! why it never skips an event.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio_postgres::{AsyncMessage, NoTls};

use super::{backend, row, schema, sql_limit, sql_position, PostgresStore};
use crate::envelope::RecordedEvent;
use crate::store::StoreError;
use crate::subscription::{EventStream, SubscribeAll, SUBSCRIPTION_PAGE};

/// Longest wait before looking again at a gap that no notification has closed (a rolled-back
/// append sends none).
const GAP_RECHECK: Duration = Duration::from_millis(50);

impl SubscribeAll for PostgresStore {
    fn subscribe_all(&self, from_position: u64) -> EventStream {
        let state = Subscription {
            commits: self.inner.commits.subscribe(),
            store: self.clone(),
            next: from_position.max(1),
            gap_horizon: None,
            buffer: VecDeque::new(),
            listener: None,
            started: false,
            done: false,
        };
        Box::pin(futures_util::stream::unfold(state, |mut state| async move {
            let item = state.next_event().await?;
            Some((item, state))
        }))
    }
}

struct Subscription {
    store: PostgresStore,
    /// Commits of this process, seen without waiting for their notification.
    commits: watch::Receiver<u64>,
    /// The next position to deliver.
    next: u64,
    /// A transaction id taken just after the snapshot that first showed a gap at `next`: the gap
    /// is settled once a snapshot's `xmin` is above it.
    gap_horizon: Option<i64>,
    buffer: VecDeque<RecordedEvent>,
    listener: Option<Listener>,
    started: bool,
    done: bool,
}

/// What one read achieved.
enum Progress {
    /// Events are buffered.
    Delivered,
    /// A new gap was seen: look again at once, since an idle database settles it immediately.
    NewGap,
    /// Nothing to deliver yet; `gap` when waiting on a gap.
    Wait { gap: bool },
}

impl Subscription {
    async fn next_event(&mut self) -> Option<Result<RecordedEvent, StoreError>> {
        loop {
            if let Some(event) = self.buffer.pop_front() {
                return Some(Ok(event));
            }
            if self.done {
                return None;
            }
            if !self.started {
                self.started = true;
                // Listen before the first read, so that no commit after it goes unnoticed.
                if let Some(config) = &self.store.inner.listen_config {
                    match Listener::start(config, &self.store.inner.channel).await {
                        Ok(listener) => self.listener = Some(listener),
                        Err(error) => {
                            self.done = true;
                            return Some(Err(error));
                        }
                    }
                }
            }
            match self.read_page().await {
                Err(error) => {
                    self.done = true;
                    return Some(Err(error));
                }
                Ok(Progress::Delivered | Progress::NewGap) => {}
                Ok(Progress::Wait { gap }) => self.wait(gap).await,
            }
        }
    }

    async fn read_page(&mut self) -> Result<Progress, StoreError> {
        let client = self.store.client().await?;
        let statement = client
            .prepare_cached(&self.store.inner.sql.subscription_page)
            .await
            .map_err(backend)?;
        let (from, limit) = (sql_position(self.next), sql_limit(SUBSCRIPTION_PAGE));
        let rows = client
            .query(&statement, &[&from, &limit])
            .await
            .map_err(backend)?;

        let mut progress = Progress::Wait { gap: false };
        for row in &rows {
            let event = match row::decode_event(row) {
                Ok(event) => event,
                // Deliver what came before the bad row first; the next read starts at it.
                Err(_) if !self.buffer.is_empty() => break,
                Err(error) => return Err(error),
            };
            if event.global_position != self.next {
                let xmin: i64 = row.try_get("snapshot_xmin").map_err(backend)?;
                match self.gap_horizon {
                    // Every writer that could own a missing position has ended: step over it.
                    Some(horizon) if xmin > horizon => {}
                    Some(_) => {
                        if self.buffer.is_empty() {
                            progress = Progress::Wait { gap: true };
                        }
                        break;
                    }
                    None => {
                        // Taken after the page's snapshot, so it is above the id of every writer
                        // that drew a missing position.
                        let horizon: i64 = client
                            .query_one("SELECT pg_current_xact_id()::text::bigint", &[])
                            .await
                            .map_err(backend)?
                            .try_get(0)
                            .map_err(backend)?;
                        self.gap_horizon = Some(horizon);
                        if self.buffer.is_empty() {
                            progress = Progress::NewGap;
                        }
                        break;
                    }
                }
            }
            self.gap_horizon = None;
            self.next = event.global_position + 1;
            self.buffer.push_back(event);
            progress = Progress::Delivered;
        }
        Ok(progress)
    }

    async fn wait(&mut self, gap: bool) {
        let poll = self.store.inner.poll_interval;
        let timeout = if gap { poll.min(GAP_RECHECK) } else { poll };
        let notified = async {
            match &self.listener {
                Some(listener) if !listener.is_closed() => listener.notify.notified().await,
                _ => std::future::pending().await,
            }
        };
        // The store outlives this subscription (it holds a clone), so `changed` cannot fail.
        let committed = self.commits.changed();
        let _ = tokio::time::timeout(
            timeout,
            futures_util::future::select(Box::pin(notified), Box::pin(committed)),
        )
        .await;
    }
}

/// A dedicated connection that `LISTEN`s on the store's channel and wakes the subscription.
struct Listener {
    notify: Arc<Notify>,
    client: tokio_postgres::Client,
    task: tokio::task::JoinHandle<()>,
}

impl Listener {
    async fn start(config: &tokio_postgres::Config, channel: &str) -> Result<Self, StoreError> {
        let (client, mut connection) = config.connect(NoTls).await.map_err(backend)?;
        let notify = Arc::new(Notify::new());
        let wake = Arc::clone(&notify);
        let task = tokio::spawn(async move {
            loop {
                match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                    Some(Ok(AsyncMessage::Notification(_))) => wake.notify_one(),
                    Some(Ok(_)) => {}
                    Some(Err(error)) => {
                        tracing::warn!(%error, "eventcore subscription lost its LISTEN connection; polling instead");
                        break;
                    }
                    None => break,
                }
            }
            wake.notify_one();
        });
        client
            .batch_execute(&format!("LISTEN {}", schema::quote_ident(channel)))
            .await
            .map_err(backend)?;
        Ok(Self { notify, client, task })
    }

    fn is_closed(&self) -> bool {
        self.client.is_closed()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}
