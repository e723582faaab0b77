//! Mapping driver and pool errors to [`StoreError`]: retryable, ambiguous or final.

use std::error::Error;
use std::fmt;

use deadpool_postgres::PoolError;
use tokio_postgres::error::SqlState;

use crate::store::StoreError;

type BoxError = Box<dyn Error + Send + Sync + 'static>;

/// A PostgreSQL error: the server's own message when there is one (and then no
/// [`source`](Error::source)), else a short context with the driver error as its source.
#[derive(Debug)]
pub struct PostgresError {
    message: String,
    code: Option<SqlState>,
    source: Option<BoxError>,
}

impl PostgresError {
    /// The SQLSTATE code the server sent, if the server sent the error.
    pub fn code(&self) -> Option<&SqlState> {
        self.code.as_ref()
    }

    fn context(message: &str, source: Option<BoxError>) -> Self {
        Self {
            message: message.to_owned(),
            code: None,
            source,
        }
    }

    /// The server's message (`severity: message (code): detail`), or the driver error as source.
    fn from_driver(error: tokio_postgres::Error) -> Self {
        match error.as_db_error() {
            Some(db) => {
                let mut message = format!("{}: {} ({})", db.severity(), db.message(), db.code().code());
                if let Some(detail) = db.detail() {
                    message.push_str(": ");
                    message.push_str(detail);
                }
                Self {
                    message,
                    code: Some(db.code().clone()),
                    source: None,
                }
            }
            None => Self::context("PostgreSQL request failed", Some(Box::new(error))),
        }
    }
}

impl fmt::Display for PostgresError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Error for PostgresError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn Error + 'static))
    }
}

/// Where an error happened, which decides whether a lost connection leaves an unknown outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// A read, or anything that writes no events: a lost connection is only unavailability.
    Read,
    /// An append was (or may have been) sent: a lost connection leaves its outcome unknown.
    Append,
}

/// Maps an error of a read (or of anything but an append).
pub(crate) fn backend<E>(error: E) -> StoreError
where
    E: Error + Send + Sync + 'static,
{
    classify(Box::new(error), Phase::Read)
}

/// Maps an error of a statement that may have appended events.
pub(crate) fn append_error<E>(error: E) -> StoreError
where
    E: Error + Send + Sync + 'static,
{
    classify(Box::new(error), Phase::Append)
}

/// Codes after which nothing was written and the same call may succeed later.
fn transient(code: &SqlState) -> bool {
    [
        SqlState::T_R_SERIALIZATION_FAILURE,
        SqlState::T_R_DEADLOCK_DETECTED,
        SqlState::LOCK_NOT_AVAILABLE,
        SqlState::QUERY_CANCELED,
        SqlState::TOO_MANY_CONNECTIONS,
        SqlState::CANNOT_CONNECT_NOW,
    ]
    .contains(code)
}

/// Codes of a connection the server ends (shutdown, crash, connection exception).
fn connection_lost(code: &SqlState) -> bool {
    code.code().starts_with("08") || [SqlState::ADMIN_SHUTDOWN, SqlState::CRASH_SHUTDOWN].contains(code)
}

fn classify(error: BoxError, phase: Phase) -> StoreError {
    let error = match error.downcast::<PoolError>() {
        Ok(pool) => return pool_error(*pool),
        Err(other) => other,
    };
    match error.downcast::<tokio_postgres::Error>() {
        Ok(driver) => driver_error(*driver, phase),
        Err(other) => StoreError::Backend(other),
    }
}

/// A pool error happens before anything is sent. A failed connect is unwrapped, since the pool's
/// message repeats its text.
fn pool_error(error: PoolError) -> StoreError {
    match error {
        PoolError::Backend(driver) => driver_error(driver, Phase::Read),
        PoolError::Timeout(_) => StoreError::unavailable(PostgresError::context(
            "timed out waiting for a PostgreSQL connection from the pool",
            Some(Box::new(error)),
        )),
        other => StoreError::backend(PostgresError::context(
            "the PostgreSQL connection pool failed",
            Some(Box::new(other)),
        )),
    }
}

fn driver_error(error: tokio_postgres::Error, phase: Phase) -> StoreError {
    let code = error.code().cloned();
    let lost = match &code {
        Some(code) if transient(code) => return StoreError::unavailable(PostgresError::from_driver(error)),
        Some(code) => connection_lost(code),
        None => error.is_closed() || io_cause(&error),
    };
    let wrapped = PostgresError::from_driver(error);
    match (lost, phase) {
        (true, Phase::Append) => StoreError::ambiguous(wrapped),
        (true, Phase::Read) => StoreError::unavailable(wrapped),
        (false, _) => StoreError::backend(wrapped),
    }
}

/// Whether an I/O error (a broken or timed-out socket) is in the chain.
fn io_cause(error: &tokio_postgres::Error) -> bool {
    let mut cause = error.source();
    while let Some(inner) = cause {
        if inner.is::<std::io::Error>() {
            return true;
        }
        cause = inner.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreign_errors_stay_backend_errors() {
        let error = backend(std::io::Error::other("disk"));
        assert!(matches!(error, StoreError::Backend(_)));
        let timeout = backend(PoolError::Timeout(deadpool_postgres::TimeoutType::Wait));
        assert!(timeout.is_retryable() && !timeout.is_ambiguous());
        let source = std::error::Error::source(&timeout).map(ToString::to_string);
        assert_eq!(
            source.as_deref(),
            Some("timed out waiting for a PostgreSQL connection from the pool")
        );
    }
}
