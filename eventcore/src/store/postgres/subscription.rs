//! The gap-free subscription of [`PostgresStore`]; the module doc of `store::postgres` explains
//! why it never skips an event.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::watch;

use super::{backend, horizon, listener, row, sql_limit, sql_position, PostgresStore};
use crate::envelope::RecordedEvent;
use crate::store::StoreError;
use crate::subscription::{EventStream, SubscribeAll, SUBSCRIPTION_PAGE};

/// First wait before probing a gap again (a rolled-back append sends no notification); it
/// doubles while the gap stays open, up to the poll interval and at most [`GAP_MAX_DELAY`].
const GAP_FIRST_DELAY: Duration = Duration::from_millis(5);
/// Longest wait between two probes of an open gap.
const GAP_MAX_DELAY: Duration = Duration::from_secs(1);

impl SubscribeAll for PostgresStore {
    fn subscribe_all(&self, from_position: u64) -> EventStream {
        let state = Subscription {
            commits: self.inner.commits.subscribe(),
            store: self.clone(),
            next: from_position.max(1),
            gap: None,
            gap_delay: GAP_FIRST_DELAY,
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
    /// The last missing position of the gap at `next` being waited on; an open horizon of the
    /// store covers it.
    gap: Option<u64>,
    /// How long to wait before probing an open gap again.
    gap_delay: Duration,
    buffer: VecDeque<RecordedEvent>,
    /// The store's shared listener: moves on notifications and reconnections.
    listener: Option<watch::Receiver<u64>>,
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
                self.listener = self.store.listener().await;
            }
            if let Some(missing) = self.gap.filter(|_| self.buffer.is_empty()) {
                match self.gap_may_have_moved(missing).await {
                    Err(error) => {
                        self.done = true;
                        return Some(Err(error));
                    }
                    Ok(false) => {
                        self.wait(true).await;
                        continue;
                    }
                    Ok(true) => {}
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

    /// The cheap probe of an open gap (which of its horizon's writers still run, and the lowest
    /// position from `next`, no payloads): whether a page read may now deliver or step over it.
    async fn gap_may_have_moved(&mut self, missing: u64) -> Result<bool, StoreError> {
        let horizons = &self.store.inner.horizons;
        let moved = |lowest: Option<u64>| {
            horizons.settled_below() > missing || !horizons.covers(missing) || lowest == Some(self.next)
        };
        if moved(None) {
            return Ok(true);
        }
        let client = self.store.client().await?;
        let lowest = horizon::probe(&client, &self.store.inner.sql, horizons, self.next).await?;
        Ok(moved(lowest))
    }

    async fn read_page(&mut self) -> Result<Progress, StoreError> {
        let client = self.store.client().await?;
        let (sql, horizons) = (&self.store.inner.sql, &self.store.inner.horizons);
        let statement = client
            .prepare_cached(&sql.subscription_page)
            .await
            .map_err(backend)?;
        let (from, limit) = (sql_position(self.next), sql_limit(SUBSCRIPTION_PAGE));
        // Read before the page's snapshot: a settlement applies to later snapshots only.
        let settled = horizons.settled_below();
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
                let missing = event.global_position - 1;
                // Below `settled`, every writer that could own a missing position has ended:
                // step over it.
                if missing >= settled {
                    self.gap = Some(missing);
                    if horizons.covers(missing) {
                        if self.buffer.is_empty() {
                            progress = Progress::Wait { gap: true };
                        }
                    } else {
                        // Opened after the page's snapshot, whose highest position bounds it.
                        let head: Option<i64> = row.try_get("snapshot_head").map_err(backend)?;
                        let top = head.map_or(event.global_position, i64::unsigned_abs);
                        horizon::open(&client, sql, horizons, top.max(event.global_position)).await?;
                        if self.buffer.is_empty() {
                            progress = Progress::NewGap;
                        }
                    }
                    break;
                }
            }
            self.gap = None;
            self.gap_delay = GAP_FIRST_DELAY;
            self.next = event.global_position + 1;
            self.buffer.push_back(event);
            progress = Progress::Delivered;
        }
        Ok(progress)
    }

    async fn wait(&mut self, gap: bool) {
        let poll = self.store.inner.poll_interval;
        let timeout = if gap {
            let delay = self.gap_delay.min(poll);
            self.gap_delay = (self.gap_delay * 2).min(GAP_MAX_DELAY);
            delay
        } else {
            poll
        };
        let listener = &mut self.listener;
        let notified = async {
            match listener {
                Some(receiver) => {
                    if receiver.changed().await.is_err() {
                        // The listener is gone (the store is shutting down): poll.
                        *listener = None;
                        std::future::pending::<()>().await;
                    }
                }
                None => std::future::pending().await,
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

impl PostgresStore {
    /// The shared listener's wake count, starting the listener on first use and waiting (up to
    /// the connect timeout) for its first attempt to listen; `None` without a listen connector.
    async fn listener(&self) -> Option<watch::Receiver<u64>> {
        let connect = self.inner.listen.as_ref()?;
        let mut receiver = self
            .inner
            .listening
            .get_or_init(|| {
                listener::spawn(
                    connect.clone(),
                    self.inner.channel.clone(),
                    self.inner.listener_health.clone(),
                )
            })
            .clone();
        let first_attempt = receiver.wait_for(|count| *count > 0);
        let _ = tokio::time::timeout(self.inner.connect_timeout, first_attempt).await;
        receiver.mark_unchanged();
        Some(receiver)
    }
}
