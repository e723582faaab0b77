//! Subscriptions to the whole store: catch up from a position, then follow new events live.
//!
//! A subscription delivers every event once, in global-position order, and never skips an
//! event that commits late with a lower position than one already delivered (the bug of
//! subscriptions that simply remember the highest position seen). How each backend ensures
//! this is documented on its implementation:
//!
//! - [`MemoryStore`](crate::MemoryStore), [`SqliteStore`](crate::SqliteStore) and other stores
//!   that commit in position order (one writer at a time) use [`ordered_subscription`]: read
//!   pages, then wait for a commit signal;
//! - `PostgresStore` (feature `postgres`) reads gap-free runs of positions and steps over a
//!   missing position only once every transaction that could still write it has ended.

use std::collections::VecDeque;
use std::pin::Pin;
use std::time::Duration;

use futures_core::Stream;
use tokio::sync::watch;

use crate::envelope::RecordedEvent;
use crate::store::{EventStore, StoreError};

/// Events read per page while catching up.
pub const SUBSCRIPTION_PAGE: usize = 512;

/// A live stream of stored events. It ends after yielding its first error (resubscribe from the
/// position after the last event received to go on).
pub type EventStream = Pin<Box<dyn Stream<Item = Result<RecordedEvent, StoreError>> + Send + 'static>>;

/// A store whose whole log can be followed live.
///
/// ```
/// use eventcore::{EventStore, ExpectedVersion, MemoryStore, NewEvent, SubscribeAll};
/// use futures_util::StreamExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = MemoryStore::new();
/// let mut events = store.subscribe_all(1);
/// let rang = NewEvent {
///     event_id: uuid::Uuid::now_v7(),
///     event_type: "bell.rang".into(),
///     event_version: 1,
///     aggregate_type: "bell".into(),
///     aggregate_id: "b-1".into(),
///     occurred_at: chrono::Utc::now(),
///     correlation_id: None,
///     causation_id: None,
///     metadata: Default::default(),
///     payload: r#"{"times":2}"#.into(),
/// };
/// store.append("bell-b-1", ExpectedVersion::NoStream, vec![rang]).await?;
/// let first = events.next().await.transpose()?.expect("the subscription is live");
/// assert_eq!((first.global_position, first.event_type.as_str()), (1, "bell.rang"));
/// # Ok(()) }
/// ```
pub trait SubscribeAll: EventStore {
    /// Every event with a global position of at least `from_position` (0 and 1 both mean the
    /// start), in position order, then every new event as it commits; it never ends by itself.
    fn subscribe_all(&self, from_position: u64) -> EventStream;
}

/// A subscription for a store whose commits become visible in global-position order, so that a
/// read never sees a position while a lower one is still to come (true of single-writer stores).
///
/// `commits` must change after every append becomes visible; the subscription marks it seen
/// before each read, so a commit between a read and the wait is never missed. With `poll`, an
/// idle subscription also reads again at that interval (for writers that cannot signal, such
/// as another process).
pub fn ordered_subscription<S: EventStore>(
    store: S,
    from_position: u64,
    commits: watch::Receiver<u64>,
    poll: Option<Duration>,
) -> EventStream {
    let state = Ordered {
        store,
        next: from_position.max(1),
        commits,
        poll,
        page: SUBSCRIPTION_PAGE,
        buffer: VecDeque::new(),
        done: false,
    };
    Box::pin(futures_util::stream::unfold(state, |mut state| async move {
        let item = state.next_event().await?;
        Some((item, state))
    }))
}

struct Ordered<S> {
    store: S,
    next: u64,
    commits: watch::Receiver<u64>,
    poll: Option<Duration>,
    /// Events per read: one at a time after a failed read, so that every event before a bad
    /// one is delivered before the error.
    page: usize,
    buffer: VecDeque<RecordedEvent>,
    done: bool,
}

impl<S: EventStore> Ordered<S> {
    async fn next_event(&mut self) -> Option<Result<RecordedEvent, StoreError>> {
        loop {
            if let Some(event) = self.buffer.pop_front() {
                return Some(Ok(event));
            }
            if self.done {
                return None;
            }
            self.commits.borrow_and_update();
            match self.store.read_all(self.next, self.page).await {
                Err(_) if self.page > 1 => self.page = 1,
                Err(error) => {
                    self.done = true;
                    return Some(Err(error));
                }
                Ok(page) => match page.last() {
                    Some(last) => {
                        self.next = last.global_position + 1;
                        self.page = SUBSCRIPTION_PAGE;
                        self.buffer.extend(page);
                    }
                    None => self.wait().await?,
                },
            }
        }
    }

    /// Waits for a commit (or the poll interval); `None` when the store is gone.
    async fn wait(&mut self) -> Option<()> {
        match self.poll {
            Some(poll) => match tokio::time::timeout(poll, self.commits.changed()).await {
                Ok(changed) => changed.ok(),
                Err(_elapsed) => Some(()),
            },
            // The store is gone when every sender is dropped: end the stream.
            None => self.commits.changed().await.ok(),
        }
    }
}
