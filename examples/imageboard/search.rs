//! `search_indexer`: keeps an SQLite FTS5 full-text index of the post bodies, in the search
//! service's own database, and answers searches of the board.
//!
//! It is a consumer group on the Redis bus rather than a projection in the store's file: search
//! is a service of its own that reads the published log, like the other consumers, and its own
//! database can be moved or rebuilt without touching the store. Deliveries are at least once, so
//! every write is idempotent: a post is indexed by its number (delete, then insert), and deletes
//! are deletes.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use eventcore::prelude::*;
use eventcore::rusqlite::{params, Connection};

use crate::journal::Journal;
use crate::post::{PostCreated, PostDeleted};
use crate::thread::ThreadDeleted;
use crate::views::excerpt;

/// Why the index could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// SQLite failed.
    #[error("search index: {0}")]
    Sqlite(#[from] eventcore::rusqlite::Error),
    /// The blocking task did not finish.
    #[error("search index task: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// One search result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// The post's number.
    pub post_id: String,
    /// Its thread.
    pub thread_id: String,
    /// The board.
    pub board: String,
    /// The matching words in context, marked `[like this]`.
    pub snippet: String,
}

/// The full-text index: an FTS5 table of post bodies.
#[derive(Clone)]
pub struct SearchIndex {
    connection: Arc<Mutex<Connection>>,
}

impl SearchIndex {
    /// Opens (creating) the index in the SQLite file at `path`.
    pub fn open(path: &Path) -> Result<Self, SearchError> {
        let connection = Connection::open(path)?;
        connection.execute_batch(
            "CREATE VIRTUAL TABLE IF NOT EXISTS posts USING fts5(
                body, author, post_id UNINDEXED, thread_id UNINDEXED, board UNINDEXED,
                tokenize = 'porter unicode61'
            )",
        )?;
        Ok(Self {
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    /// Runs `work` on the connection, off the async threads.
    async fn with<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, eventcore::rusqlite::Error> + Send + 'static,
    ) -> Result<T, SearchError> {
        let connection = Arc::clone(&self.connection);
        let result = tokio::task::spawn_blocking(move || {
            let mut connection = connection.lock().unwrap_or_else(PoisonError::into_inner);
            work(&mut connection)
        })
        .await?;
        Ok(result?)
    }

    /// Indexes `post`, replacing an earlier copy of it.
    pub async fn index(&self, post: &PostCreated) -> Result<(), SearchError> {
        let post = post.clone();
        self.with(move |connection| {
            let tx = connection.transaction()?;
            tx.execute("DELETE FROM posts WHERE post_id = ?1", params![post.post_id])?;
            tx.execute(
                "INSERT INTO posts (body, author, post_id, thread_id, board) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![post.body, post.author, post.post_id, post.thread_id, post.board],
            )?;
            tx.commit()
        })
        .await
    }

    /// Removes post `post_id`; how many rows went.
    pub async fn remove_post(&self, post_id: &str) -> Result<usize, SearchError> {
        let post_id = post_id.to_owned();
        self.with(move |c| c.execute("DELETE FROM posts WHERE post_id = ?1", params![post_id]))
            .await
    }

    /// Removes every post of thread `thread_id`; how many went.
    pub async fn remove_thread(&self, thread_id: &str) -> Result<usize, SearchError> {
        let thread_id = thread_id.to_owned();
        self.with(move |c| c.execute("DELETE FROM posts WHERE thread_id = ?1", params![thread_id]))
            .await
    }

    /// The posts matching every word of `query`, best first. Words are quoted, so what a
    /// visitor types is never read as FTS5 query syntax.
    pub async fn search(&self, query: &str, limit: usize) -> Result<Vec<Hit>, SearchError> {
        let words: Vec<String> = query
            .split_whitespace()
            .map(|w| format!("\"{}\"", w.replace('"', "")))
            .collect();
        if words.is_empty() {
            return Ok(Vec::new());
        }
        let expression = words.join(" ");
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with(move |c| {
            let mut statement = c.prepare(
                "SELECT post_id, thread_id, board, snippet(posts, 0, '[', ']', '…', 8) \
                 FROM posts WHERE posts MATCH ?1 ORDER BY rank LIMIT ?2",
            )?;
            let hits = statement
                .query_map(params![expression, limit], |row| {
                    Ok(Hit {
                        post_id: row.get(0)?,
                        thread_id: row.get(1)?,
                        board: row.get(2)?,
                        snippet: row.get(3)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(hits)
        })
        .await
    }
}

/// The consumer that keeps the index.
#[derive(Clone)]
pub struct SearchIndexer {
    index: SearchIndex,
    journal: Journal,
}

impl SearchIndexer {
    /// An indexer writing into `index`.
    pub fn new(index: SearchIndex, journal: Journal) -> Self {
        Self { index, journal }
    }
}

#[event_handler(name = "search_indexer")]
impl SearchIndexer {
    #[on]
    async fn post_created(&self, e: &Envelope<PostCreated>) -> Result<(), SearchError> {
        let post = &e.payload;
        self.index.index(post).await?;
        self.journal.record(
            "search_indexer",
            format!("indexed No.{}: \"{}\"", post.post_id, excerpt(&post.body, 32)),
        );
        Ok(())
    }

    #[on]
    async fn post_deleted(&self, e: &PostDeleted) -> Result<(), SearchError> {
        let removed = self.index.remove_post(&e.post_id).await?;
        self.journal.record(
            "search_indexer",
            format!("removed No.{} ({removed} row)", e.post_id),
        );
        Ok(())
    }

    #[on]
    async fn thread_deleted(&self, e: &ThreadDeleted) -> Result<(), SearchError> {
        let removed = self.index.remove_thread(&e.thread_id).await?;
        self.journal.record(
            "search_indexer",
            format!("removed thread No.{} ({removed} posts)", e.thread_id),
        );
        Ok(())
    }
}
