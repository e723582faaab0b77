//! A small pool of read connections, so reads run beside the writer instead of behind it.

use std::path::PathBuf;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::Semaphore;

use crate::store::StoreError;

/// Read connections to one database file, opened on demand and kept for reuse.
pub(super) struct Readers {
    path: PathBuf,
    busy_timeout: Duration,
    max_readers: usize,
    idle: std::sync::Mutex<Vec<Connection>>,
    permits: Semaphore,
}

impl Readers {
    pub(super) fn new(path: PathBuf, busy_timeout: Duration, max_readers: usize) -> Self {
        Self {
            path,
            busy_timeout,
            max_readers,
            idle: std::sync::Mutex::new(Vec::with_capacity(max_readers)),
            permits: Semaphore::new(max_readers),
        }
    }

    /// Runs `work` on a read connection, on a blocking thread, at most `max_readers` at once.
    pub(super) async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let _permit = self.permits.acquire().await.map_err(StoreError::backend)?;
        let readers = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let conn = readers.checkout()?;
            let result = work(&conn);
            readers.checkin(conn);
            result
        })
        .await
        .map_err(StoreError::backend)?
    }

    fn checkout(&self) -> Result<Connection, StoreError> {
        // The pool is a plain list: a panic while holding the lock cannot leave it inconsistent.
        let idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
        match idle {
            Some(conn) => Ok(conn),
            None => self.connect().map_err(StoreError::backend),
        }
    }

    fn checkin(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        // A cancelled read may have let one more connection open than permitted: close extras.
        if idle.len() < self.max_readers {
            idle.push(conn);
        }
    }

    fn connect(&self) -> rusqlite::Result<Connection> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&self.path, flags)?;
        conn.busy_timeout(self.busy_timeout)?;
        conn.pragma_update(None, "query_only", true)?;
        // Plans that do not depend on bound values: otherwise (with STAT4, as rusqlite bundles
        // SQLite) a cached read is re-prepared whenever a position it compares changes, which
        // was about every other batch of a catch-up.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
        Ok(conn)
    }
}
