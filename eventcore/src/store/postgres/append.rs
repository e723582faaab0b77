//! Appending a batch: one statement when the stream is quiet, a locked transaction after a race.
//!
//! The append statement (`Statements::append`) takes the stream's advisory lock, reads the
//! stream's version, checks the expectation and inserts the batch. Its snapshot is taken when it
//! starts, before it waits for the lock, so a writer that queued behind another writer of the
//! same stream reads a version that is already stale: its insert then hits
//! `UNIQUE (stream_id, stream_version)` and stores nothing ([`Attempt::Raced`]). That writer
//! tries once more inside a transaction that takes the lock in a statement of its own *before*
//! the insert, so the insert's snapshot sees every version committed by earlier lock holders;
//! every writer holds the lock until it commits, so that attempt cannot race. Under contention
//! writers of one stream queue in lock order, and none starves.

use std::collections::HashSet;

use tokio_postgres::error::SqlState;
use tokio_postgres::types::{Json, ToSql};
use tokio_postgres::Row;
use uuid::Uuid;

use super::schema::Statements;
use super::{backend, PostgresStore};
use crate::envelope::{Metadata, NewEvent};
use crate::store::{AppendResult, ExpectedVersion, StoreError};

/// How many times an append is tried: the first without a transaction, the rest locked. A
/// locked attempt can only fail to be accepted if the stream moved; one that moves on between
/// attempts to a version the expectation accepts is tried again, up to this bound.
const MAX_ATTEMPTS: usize = 4;

/// What one run of the append statement found.
enum Attempt {
    /// The batch is stored.
    Stored(AppendResult),
    /// The stream was not at the expected version; nothing was written.
    NotAccepted,
    /// The statement read a version another writer had already used; nothing was written.
    Raced,
}

impl PostgresStore {
    /// [`EventStore::append`](crate::store::EventStore::append) for PostgreSQL.
    pub(super) async fn append_batch(
        &self,
        stream_id: &str,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Result<AppendResult, StoreError> {
        if events.is_empty() {
            let actual = self.current_version(stream_id).await?;
            return accept_empty(stream_id, expected, actual);
        }
        let batch = AppendBatch::new(stream_id, expected, events);
        let params = batch.params();
        let mut locked = false;
        for _ in 0..MAX_ATTEMPTS {
            let rows = {
                let client = self.client().await?;
                let sql = &self.inner.sql;
                if locked {
                    append_locked(&client, sql, batch.sql(sql), stream_id, &params).await
                } else {
                    append_unlocked(&client, batch.sql(sql), &params).await
                }
            };
            let attempt = match rows {
                Ok(rows) => stored(stream_id, events.len(), &rows)?,
                Err(error) => self.classify(error, events, true).await?,
            };
            match attempt {
                Attempt::Stored(result) => {
                    if let Some(&last) = result.positions.last() {
                        self.inner
                            .commits
                            .send_modify(|position| *position = last.max(*position));
                    }
                    return Ok(result);
                }
                Attempt::NotAccepted | Attempt::Raced => {
                    let actual = self.current_version(stream_id).await?;
                    if !expected.accepts(actual) {
                        return Err(conflict(stream_id, expected, actual));
                    }
                    locked = true;
                }
            }
        }
        let actual = self.current_version(stream_id).await?;
        Err(conflict(stream_id, expected, actual))
    }

    /// [`PostgresStore::append_in_transaction`]: locks the stream first, so the insert sees
    /// every version committed before the lock was granted.
    pub(super) async fn append_batch_in(
        &self,
        transaction: &tokio_postgres::Transaction<'_>,
        stream_id: &str,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Result<AppendResult, StoreError> {
        let sql = &self.inner.sql;
        transaction
            .execute(sql.lock_stream.as_str(), &[&stream_id])
            .await
            .map_err(backend)?;
        let version_in = |row: Row| read_version(stream_id, &row);
        if events.is_empty() {
            let row = transaction
                .query_one(sql.stream_version.as_str(), &[&stream_id])
                .await
                .map_err(backend)?;
            return accept_empty(stream_id, expected, version_in(row)?);
        }
        let batch = AppendBatch::new(stream_id, expected, events);
        let attempt = match transaction.query(batch.sql(sql), &batch.params()).await {
            Ok(rows) => stored(stream_id, events.len(), &rows)?,
            Err(error) => self.classify(error, events, false).await?,
        };
        match attempt {
            Attempt::Stored(result) => Ok(result),
            Attempt::NotAccepted => {
                let row = transaction
                    .query_one(sql.stream_version.as_str(), &[&stream_id])
                    .await
                    .map_err(backend)?;
                Err(conflict(stream_id, expected, version_in(row)?))
            }
            // Only under REPEATABLE READ or SERIALIZABLE, whose snapshot predates the lock:
            // the transaction is aborted, so the caller retries it whole.
            Attempt::Raced => Err(StoreError::backend(RacedInTransaction {
                stream_id: stream_id.to_owned(),
            })),
        }
    }

    /// The stream's committed version.
    pub(super) async fn current_version(&self, stream_id: &str) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&self.inner.sql.stream_version)
            .await
            .map_err(backend)?;
        let row = client
            .query_one(&statement, &[&stream_id])
            .await
            .map_err(backend)?;
        read_version(stream_id, &row)
    }

    /// Maps a failed append statement: a taken version is a race, a taken event id a duplicate.
    async fn classify(
        &self,
        error: tokio_postgres::Error,
        events: &[NewEvent],
        can_query: bool,
    ) -> Result<Attempt, StoreError> {
        let violated = error
            .as_db_error()
            .filter(|db| *db.code() == SqlState::UNIQUE_VIOLATION)
            .and_then(|db| db.constraint());
        match violated {
            Some("events_stream_version_key") => Ok(Attempt::Raced),
            Some("events_event_id_key") => match self.duplicate_event_id(&error, events, can_query).await {
                Some(event_id) => Err(StoreError::DuplicateEventId { event_id }),
                None => Err(backend(error)),
            },
            _ => Err(backend(error)),
        }
    }

    /// The event id of the batch that is already stored (or repeated in it), when it can be named.
    async fn duplicate_event_id(
        &self,
        error: &tokio_postgres::Error,
        events: &[NewEvent],
        can_query: bool,
    ) -> Option<Uuid> {
        // The detail reads `Key (event_id)=(<uuid>) already exists.`
        let from_detail = error
            .as_db_error()
            .and_then(|db| db.detail())
            .and_then(|detail| {
                let (_, rest) = detail.split_once("=(")?;
                rest.split_once(')').map(|(id, _)| id.to_owned())
            })
            .and_then(|id| Uuid::parse_str(&id).ok());
        if from_detail.is_some() {
            return from_detail;
        }
        let mut seen = HashSet::new();
        if let Some(repeated) = events.iter().find(|e| !seen.insert(e.event_id)) {
            return Some(repeated.event_id);
        }
        if !can_query {
            return None;
        }
        let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
        let client = self.inner.pool.get().await.ok()?;
        let row = client
            .query_opt(self.inner.sql.existing_event_id.as_str(), &[&ids])
            .await
            .ok()??;
        row.try_get(0).ok()
    }
}

/// The statement alone, in its own implicit transaction: one round trip.
async fn append_unlocked(
    client: &deadpool_postgres::Client,
    append_sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, tokio_postgres::Error> {
    let append = client.prepare_cached(append_sql).await?;
    client.query(&append, params).await
}

/// `BEGIN`, the lock, the statement and `COMMIT`, pipelined: one round trip. All four are sent
/// on the first poll, so a caller that drops the future cannot leave the pooled connection
/// inside the transaction.
async fn append_locked(
    client: &deadpool_postgres::Client,
    sql: &Statements,
    append_sql: &str,
    stream_id: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, tokio_postgres::Error> {
    let lock = client.prepare_cached(&sql.lock_stream).await?;
    let append = client.prepare_cached(append_sql).await?;
    let (begin, locked, rows, commit) = futures_util::future::join4(
        client.batch_execute("BEGIN"),
        client.execute(&lock, &[&stream_id]),
        client.query(&append, params),
        // After a failed statement this ends the transaction with a rollback, without error.
        client.batch_execute("COMMIT"),
    )
    .await;
    begin?;
    locked?;
    let rows = rows?;
    commit?;
    Ok(rows)
}

/// The rows the append statement returned: all of the batch, or none when the expectation failed.
fn stored(stream_id: &str, count: usize, rows: &[Row]) -> Result<Attempt, StoreError> {
    if rows.is_empty() {
        return Ok(Attempt::NotAccepted);
    }
    let mut written = rows
        .iter()
        .map(|row| {
            let position: i64 = row.try_get(0).map_err(backend)?;
            let version: i64 = row.try_get(1).map_err(backend)?;
            Ok((version, position))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    written.sort_unstable();
    let first = written.first().map_or(0, |(version, _)| *version);
    let consecutive = written.iter().zip(first..).all(|((version, _), v)| *version == v);
    if written.len() != count || first < 1 || !consecutive {
        return Err(StoreError::Corrupt {
            stream_id: stream_id.to_owned(),
            stream_version: first.unsigned_abs(),
            reason: format!(
                "the append returned {} rows for a batch of {count}",
                written.len()
            ),
        });
    }
    let first_version = first.unsigned_abs();
    Ok(Attempt::Stored(AppendResult {
        first_version,
        last_version: first_version + count as u64 - 1,
        positions: written.iter().map(|(_, p)| p.unsigned_abs()).collect(),
    }))
}

/// An empty batch writes nothing; it only checks the expectation.
fn accept_empty(stream_id: &str, expected: ExpectedVersion, actual: u64) -> Result<AppendResult, StoreError> {
    if !expected.accepts(actual) {
        return Err(conflict(stream_id, expected, actual));
    }
    Ok(AppendResult {
        first_version: actual + 1,
        last_version: actual,
        positions: Vec::new(),
    })
}

fn conflict(stream_id: &str, expected: ExpectedVersion, actual: u64) -> StoreError {
    StoreError::VersionConflict {
        stream_id: stream_id.to_owned(),
        expected,
        actual,
    }
}

fn read_version(stream_id: &str, row: &Row) -> Result<u64, StoreError> {
    let version: i64 = row.try_get(0).map_err(backend)?;
    u64::try_from(version).map_err(|_| StoreError::Corrupt {
        stream_id: stream_id.to_owned(),
        stream_version: 0,
        reason: format!("stream version {version} is negative"),
    })
}

/// An append inside a transaction whose snapshot predates the stream lock lost a race.
#[derive(Debug, thiserror::Error)]
#[error(
    "another writer appended to stream {stream_id:?} after this transaction's snapshot; \
     roll back and retry the transaction"
)]
struct RacedInTransaction {
    stream_id: String,
}

/// The parameters of the append statements, borrowed from the events.
struct AppendBatch<'a> {
    stream_id: &'a str,
    kind: i16,
    expected: i64,
    columns: Columns<'a>,
}

/// The events' columns: scalars for one event ([`Statements::append_one`]), arrays for more.
enum Columns<'a> {
    One {
        event: &'a NewEvent,
        version: i32,
        metadata: Json<&'a Metadata>,
        payload: &'a [u8],
    },
    Many(Box<Arrays<'a>>),
}

/// The columns of a batch as arrays.
struct Arrays<'a> {
    ids: Vec<Uuid>,
    types: Vec<&'a str>,
    versions: Vec<i32>,
    aggregate_types: Vec<&'a str>,
    aggregate_ids: Vec<&'a str>,
    occurred_at: Vec<chrono::DateTime<chrono::Utc>>,
    correlation_ids: Vec<Option<&'a str>>,
    causation_ids: Vec<Option<&'a str>>,
    metadata: Vec<Json<&'a Metadata>>,
    payloads: Vec<&'a [u8]>,
}

/// Versions past `i32::MAX` cannot be stored; they saturate (and read back as corrupt).
fn stored_event_version(event: &NewEvent) -> i32 {
    i32::try_from(event.event_version).unwrap_or(i32::MAX)
}

impl<'a> AppendBatch<'a> {
    fn new(stream_id: &'a str, expected: ExpectedVersion, events: &'a [NewEvent]) -> Self {
        // The kinds the statement's `CASE $2` knows.
        let (kind, expected) = match expected {
            ExpectedVersion::Any => (0, 0),
            ExpectedVersion::NoStream => (1, 0),
            ExpectedVersion::Exact(v) => (2, i64::try_from(v).unwrap_or(i64::MAX)),
            ExpectedVersion::StreamExists => (3, 0),
        };
        let columns = match events {
            [event] => Columns::One {
                event,
                version: stored_event_version(event),
                metadata: Json(&event.metadata),
                payload: &event.payload,
            },
            _ => Columns::Many(Box::new(Arrays {
                ids: events.iter().map(|e| e.event_id).collect(),
                types: events.iter().map(|e| e.event_type.as_str()).collect(),
                versions: events.iter().map(stored_event_version).collect(),
                aggregate_types: events.iter().map(|e| e.aggregate_type.as_str()).collect(),
                aggregate_ids: events.iter().map(|e| e.aggregate_id.as_str()).collect(),
                occurred_at: events.iter().map(|e| e.occurred_at).collect(),
                correlation_ids: events.iter().map(|e| e.correlation_id.as_deref()).collect(),
                causation_ids: events.iter().map(|e| e.causation_id.as_deref()).collect(),
                metadata: events.iter().map(|e| Json(&e.metadata)).collect(),
                payloads: events.iter().map(|e| e.payload.as_ref()).collect(),
            })),
        };
        Self {
            stream_id,
            kind,
            expected,
            columns,
        }
    }

    /// The statement these parameters are for.
    fn sql<'s>(&self, sql: &'s Statements) -> &'s str {
        match self.columns {
            Columns::One { .. } => &sql.append_one,
            Columns::Many(_) => &sql.append,
        }
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 13] {
        let head: [&(dyn ToSql + Sync); 3] = [&self.stream_id, &self.kind, &self.expected];
        let tail: [&(dyn ToSql + Sync); 10] = match &self.columns {
            Columns::One {
                event,
                version,
                metadata,
                payload,
            } => [
                &event.event_id,
                &event.event_type,
                version,
                &event.aggregate_type,
                &event.aggregate_id,
                &event.occurred_at,
                &event.correlation_id,
                &event.causation_id,
                metadata,
                payload,
            ],
            Columns::Many(a) => [
                &a.ids,
                &a.types,
                &a.versions,
                &a.aggregate_types,
                &a.aggregate_ids,
                &a.occurred_at,
                &a.correlation_ids,
                &a.causation_ids,
                &a.metadata,
                &a.payloads,
            ],
        };
        let [a, b, c] = head;
        let [d, e, f, g, h, i, j, k, l, m] = tail;
        [a, b, c, d, e, f, g, h, i, j, k, l, m]
    }
}
