//! The cache layer in Redis (cache-aside): pages are read from the cache, or rendered from the
//! read models and cached on a miss. The `cache_invalidator` consumer deletes the keys an event
//! makes stale; the time to live only bounds what a missed invalidation could cost.

use eventcore::projection::Projections;
use eventcore::runner::RunnerError;
use eventcore::SqliteStore;
use redis::aio::MultiplexedConnection;
use redis::AsyncCommands;

use crate::views::{render_catalog, render_index, render_thread, BoardPage, ThreadPage};

/// How long a cached page lives at most, in seconds.
pub const TTL_SECONDS: u64 = 300;

/// Why the cache could not serve a page.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// Redis failed.
    #[error("cache: {0}")]
    Redis(#[from] redis::RedisError),
    /// The read model could not be read.
    #[error("read model: {0}")]
    ReadModel(#[from] RunnerError),
}

/// Whether a page came from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// From Redis.
    Hit,
    /// Rendered from the read model, then cached.
    Miss,
}

/// A page and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The rendered page.
    pub text: String,
    /// Hit or miss.
    pub served: Served,
}

/// The pages of the board, read through Redis.
#[derive(Clone)]
pub struct Cache {
    redis: MultiplexedConnection,
    prefix: String,
    views: Projections<SqliteStore>,
}

impl Cache {
    /// A cache under keys `{prefix}:cache:*`, filled from `views`.
    pub fn new(redis: MultiplexedConnection, prefix: &str, views: Projections<SqliteStore>) -> Self {
        Self {
            redis,
            prefix: format!("{prefix}:cache"),
            views,
        }
    }

    /// The key of thread `thread_id`'s page.
    pub fn thread_key(&self, thread_id: &str) -> String {
        format!("{}:thread:{thread_id}", self.prefix)
    }

    /// The key of `board`'s index page.
    pub fn index_key(&self, board: &str) -> String {
        format!("{}:board-index:{board}", self.prefix)
    }

    /// The key of `board`'s catalog page.
    pub fn catalog_key(&self, board: &str) -> String {
        format!("{}:catalog:{board}", self.prefix)
    }

    /// Thread `thread_id`'s page.
    pub async fn thread(&self, thread_id: &str) -> Result<Page, CacheError> {
        if let Some(page) = self.cached(&self.thread_key(thread_id)).await? {
            return Ok(page);
        }
        let view = self.views.get::<ThreadPage>(thread_id).await?;
        self.fill(
            &self.thread_key(thread_id),
            render_thread(thread_id, view.as_ref()),
        )
        .await
    }

    /// `board`'s index page.
    pub async fn index(&self, board: &str) -> Result<Page, CacheError> {
        if let Some(page) = self.cached(&self.index_key(board)).await? {
            return Ok(page);
        }
        let view = self.views.get::<BoardPage>(board).await?;
        self.fill(&self.index_key(board), render_index(board, view.as_ref()))
            .await
    }

    /// `board`'s catalog page.
    pub async fn catalog(&self, board: &str) -> Result<Page, CacheError> {
        if let Some(page) = self.cached(&self.catalog_key(board)).await? {
            return Ok(page);
        }
        let view = self.views.get::<BoardPage>(board).await?;
        self.fill(&self.catalog_key(board), render_catalog(board, view.as_ref()))
            .await
    }

    /// Deletes `keys`; how many existed.
    pub async fn invalidate(&self, keys: &[String]) -> Result<usize, CacheError> {
        let mut redis = self.redis.clone();
        Ok(redis.del(keys).await?)
    }

    async fn cached(&self, key: &str) -> Result<Option<Page>, CacheError> {
        let mut redis = self.redis.clone();
        let text: Option<String> = redis.get(key).await?;
        Ok(text.map(|text| Page {
            text,
            served: Served::Hit,
        }))
    }

    async fn fill(&self, key: &str, text: String) -> Result<Page, CacheError> {
        let mut redis = self.redis.clone();
        let () = redis.set_ex(key, &text, TTL_SECONDS).await?;
        Ok(Page {
            text,
            served: Served::Miss,
        })
    }
}
