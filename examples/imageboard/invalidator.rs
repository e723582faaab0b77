//! `cache_invalidator`: when a post is made or deleted, or a thread deleted, deletes the cached
//! pages it makes stale (the thread, the board index, the catalog) once the read models include
//! the event, so the next read renders them afresh.

use std::time::Duration;

use eventcore::prelude::*;
use eventcore::runner::RunnerStatus;
use tokio::sync::watch;

use crate::cache::{Cache, CacheError};
use crate::journal::Journal;
use crate::post::{PostCreated, PostDeleted};
use crate::thread::ThreadDeleted;

/// How long the invalidator waits for the read models before it fails (and is retried).
const READ_MODEL_WAIT: Duration = Duration::from_secs(5);

/// Why an invalidation failed (retried with backoff, then dead-lettered).
#[derive(Debug, thiserror::Error)]
pub enum InvalidateError {
    /// The cache could not be reached.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The read models did not reach the event in time.
    #[error("read model `{0}` has not reached position {1} yet")]
    Behind(String, u64),
}

/// Deletes stale pages from the cache.
#[derive(Clone)]
pub struct CacheInvalidator {
    cache: Cache,
    /// The status of each read-model projection.
    read_models: Vec<watch::Receiver<RunnerStatus>>,
    journal: Journal,
}

impl CacheInvalidator {
    /// An invalidator of `cache`'s pages, rendered from the projections whose status
    /// `read_models` watches.
    pub fn new(cache: Cache, read_models: Vec<watch::Receiver<RunnerStatus>>, journal: Journal) -> Self {
        Self {
            cache,
            read_models,
            journal,
        }
    }

    /// Deletes the pages of `thread_id` and `board` once the read models passed `position`:
    /// deleting them earlier would let a read cache the page without the event again.
    async fn invalidate(
        &self,
        event: &str,
        position: u64,
        board: &str,
        thread_id: &str,
    ) -> Result<(), InvalidateError> {
        for status in &self.read_models {
            let mut status = status.clone();
            let name = status.borrow().name.clone();
            let waited = tokio::time::timeout(READ_MODEL_WAIT, status.wait_for(|s| s.reached(position)));
            if !matches!(waited.await, Ok(Ok(_))) {
                return Err(InvalidateError::Behind(name, position));
            }
        }
        let keys = [
            self.cache.thread_key(thread_id),
            self.cache.index_key(board),
            self.cache.catalog_key(board),
        ];
        let deleted = self.cache.invalidate(&keys).await?;
        self.journal.record(
            "cache_invalidator",
            format!("{event} in thread No.{thread_id}: deleted its page, /{board}/ index and catalog ({deleted} of 3 were cached)"),
        );
        Ok(())
    }
}

#[event_handler(name = "cache_invalidator")]
impl CacheInvalidator {
    #[on]
    async fn post_created(&self, e: &Envelope<PostCreated>) -> Result<(), InvalidateError> {
        let post = &e.payload;
        self.invalidate("post.created", e.global_position, &post.board, &post.thread_id)
            .await
    }

    #[on]
    async fn post_deleted(&self, e: &Envelope<PostDeleted>) -> Result<(), InvalidateError> {
        let post = &e.payload;
        self.invalidate("post.deleted", e.global_position, &post.board, &post.thread_id)
            .await
    }

    #[on]
    async fn thread_deleted(&self, e: &Envelope<ThreadDeleted>) -> Result<(), InvalidateError> {
        let thread = &e.payload;
        self.invalidate(
            "thread.deleted",
            e.global_position,
            &thread.board,
            &thread.thread_id,
        )
        .await
    }
}
