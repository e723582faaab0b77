//! Appending a batch: one autocommitted statement, one round trip.
//!
//! The statement calls an append function of the schema (migration 8, `Statements::append`).
//! It announces the writer (the schema's shared writer lock, see the `store::postgres` module
//! doc) and takes its stream's advisory lock in a statement of its own *before* the insert
//! statement, so the insert's snapshot (READ COMMITTED: one per statement, also inside a
//! `VOLATILE` function) sees every version committed by earlier lock holders. The insert reads
//! the stream's version, checks the expectation and that none of the batch's ids is stored, and
//! only then draws positions: a writer that loses a race or re-sends a batch draws none, so the
//! only gaps in the positions are real rollbacks (and the rare insert that loses a race on an
//! event id with a writer of another stream). Under contention writers of one stream queue in
//! lock order, and none starves.
//!
//! When the insert stores nothing, the explanation is read afterwards: a re-sent batch (every
//! id stored, in order, in this stream) returns its original result; otherwise a version
//! conflict or a duplicate id is reported; a stream that moved to an acceptable version
//! meanwhile is tried again.

use std::collections::{HashMap, HashSet};

use tokio_postgres::error::{Severity, SqlState};
use tokio_postgres::types::{Json, ToSql};
use tokio_postgres::Row;
use uuid::Uuid;

use super::error::append_error;
use super::schema::Statements;
use super::{backend, PostgresStore};
use crate::envelope::{Metadata, NewEvent};
use crate::store::{resent_batch, AppendResult, ExpectedVersion, StoreError, StreamAppend};

/// How many times an append is tried. An attempt can only store nothing if the stream is not
/// as expected or an id is taken; one whose stream moved on between attempts to a version the
/// expectation accepts is tried again, up to this bound.
const MAX_ATTEMPTS: usize = 4;

/// What one run of the append statement found.
enum Attempt {
    /// The batch is stored.
    Stored(AppendResult),
    /// A check failed (version or event id); nothing was written.
    NotAccepted,
}

/// What the store holds for a batch that was not accepted.
enum Verdict {
    /// The final answer: the original result of a re-send, or the error.
    Done(Result<AppendResult, StoreError>),
    /// The stream moved to a version the expectation accepts and no id is taken: try again.
    Retry,
}

/// Where each stored event id of a batch is: stream, version, position.
type StoredAt = HashMap<Uuid, (String, u64, u64)>;

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
        repeated_id(events)?;
        let batch = AppendBatch::new(stream_id, expected, events);
        let params = batch.params();
        for _ in 0..MAX_ATTEMPTS {
            let rows = {
                let client = self.client().await?;
                let rows = append_locked(&client, batch.sql(&self.inner.sql), &params).await;
                if rows.as_ref().is_err_and(connection_ended) {
                    // The server ends the connection after this error, maybe before the client
                    // sees it closed: keep it out of the pool, so the next call gets a live one.
                    drop(deadpool_postgres::Object::take(client));
                }
                rows
            };
            let attempt = match rows {
                Ok(rows) => stored(stream_id, events.len(), &rows)?,
                Err(error) if event_id_taken(&error) => Attempt::NotAccepted,
                Err(error) => return Err(append_error(error)),
            };
            match attempt {
                Attempt::Stored(result) => {
                    self.announce(&result);
                    return Ok(result);
                }
                Attempt::NotAccepted => {
                    let client = self.client().await?;
                    match explain(&**client, &self.inner.sql, stream_id, expected, events).await? {
                        Verdict::Done(outcome) => return outcome,
                        Verdict::Retry => {}
                    }
                }
            }
        }
        let actual = self.current_version(stream_id).await?;
        Err(conflict(stream_id, expected, actual))
    }

    /// [`EventStore::append_all`](crate::store::EventStore::append_all) for PostgreSQL: one
    /// transaction that takes the streams' locks in sorted order (so two multi-stream appends
    /// never wait on each other in a cycle), then appends each part.
    pub(super) async fn append_parts(&self, parts: &[StreamAppend]) -> Result<Vec<AppendResult>, StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(backend)?;
        let mut order: Vec<&StreamAppend> = parts.iter().collect();
        order.sort_by(|a, b| a.stream_id.cmp(&b.stream_id));
        for part in &order {
            self.lock_stream_in(&transaction, &part.stream_id).await?;
        }
        let mut results = Vec::with_capacity(parts.len());
        for part in parts {
            let result = self
                .append_batch_in(&transaction, &part.stream_id, part.expected, &part.events)
                .await?;
            results.push(result);
        }
        // Dropping the transaction on an error above rolls it back; a lost commit is ambiguous.
        transaction.commit().await.map_err(append_error)?;
        for result in &results {
            self.announce(result);
        }
        Ok(results)
    }

    /// Wakes this process's subscriptions (and the notifier) after a commit.
    fn announce(&self, result: &AppendResult) {
        if let Some(&last) = result.positions.last() {
            self.inner
                .commits
                .send_modify(|position| *position = last.max(*position));
        }
    }

    /// [`PostgresStore::append_in_transaction`]: announces the writer and locks the stream first,
    /// so the insert sees every version committed before the lock was granted (under READ
    /// COMMITTED; the append function takes the locks again, which costs nothing held).
    pub(super) async fn append_batch_in(
        &self,
        transaction: &tokio_postgres::Transaction<'_>,
        stream_id: &str,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Result<AppendResult, StoreError> {
        let sql = &self.inner.sql;
        self.lock_stream_in(transaction, stream_id).await?;
        if events.is_empty() {
            let actual = version_in(transaction, sql, stream_id).await?;
            return accept_empty(stream_id, expected, actual);
        }
        repeated_id(events)?;
        let batch = AppendBatch::new(stream_id, expected, events);
        let rows =
            transaction
                .query(batch.sql(sql), &batch.params())
                .await
                .map_err(|error| match taken_id(&error, events) {
                    Some(event_id) => StoreError::DuplicateEventId { event_id },
                    None => append_error(error),
                })?;
        match stored(stream_id, events.len(), &rows)? {
            Attempt::Stored(result) => Ok(result),
            Attempt::NotAccepted => match explain(transaction, sql, stream_id, expected, events).await? {
                Verdict::Done(outcome) => outcome,
                // Only under REPEATABLE READ or SERIALIZABLE, whose snapshot predates the lock:
                // the caller retries the transaction whole.
                Verdict::Retry => Err(StoreError::backend(RacedInTransaction {
                    stream_id: stream_id.to_owned(),
                })),
            },
        }
    }

    /// Announces a writer and takes the stream's lock inside `transaction`, until it ends.
    pub(crate) async fn lock_stream_in(
        &self,
        transaction: &tokio_postgres::Transaction<'_>,
        stream_id: &str,
    ) -> Result<(), StoreError> {
        transaction
            .execute(self.inner.sql.lock_stream.as_str(), &[&stream_id])
            .await
            .map_err(backend)?;
        Ok(())
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
}

/// The event id of the batch named by a unique violation on event ids, if it is one.
fn taken_id(error: &tokio_postgres::Error, events: &[NewEvent]) -> Option<Uuid> {
    if !event_id_taken(error) {
        return None;
    }
    // The detail reads `Key (event_id)=(<uuid>) already exists.`
    error
        .as_db_error()
        .and_then(|db| db.detail())
        .and_then(|detail| {
            let (_, rest) = detail.split_once("=(")?;
            rest.split_once(')').map(|(id, _)| id.to_owned())
        })
        .and_then(|id| Uuid::parse_str(&id).ok())
        .or_else(|| events.first().map(|e| e.event_id))
}

/// Whether the error is a violation of the unique event id (a writer of another stream stored
/// one of the ids after the insert's check).
fn event_id_taken(error: &tokio_postgres::Error) -> bool {
    error
        .as_db_error()
        .filter(|db| *db.code() == SqlState::UNIQUE_VIOLATION)
        .and_then(|db| db.constraint())
        == Some("events_event_id_key")
}

/// Whether the server sent the error as it ended the session (severity `FATAL` or `PANIC`: a
/// terminated backend, a shutdown).
fn connection_ended(error: &tokio_postgres::Error) -> bool {
    error
        .as_db_error()
        .and_then(|db| db.parsed_severity())
        .is_some_and(|severity| matches!(severity, Severity::Fatal | Severity::Panic))
}

/// Refuses a batch that repeats an event id before anything is sent.
fn repeated_id(events: &[NewEvent]) -> Result<(), StoreError> {
    let mut seen = HashSet::with_capacity(events.len());
    match events.iter().find(|e| !seen.insert(e.event_id)) {
        Some(repeated) => Err(StoreError::DuplicateEventId {
            event_id: repeated.event_id,
        }),
        None => Ok(()),
    }
}

async fn version_in<C: tokio_postgres::GenericClient>(
    client: &C,
    sql: &Statements,
    stream_id: &str,
) -> Result<u64, StoreError> {
    let row = client
        .query_one(sql.stream_version.as_str(), &[&stream_id])
        .await
        .map_err(backend)?;
    read_version(stream_id, &row)
}

/// Reads why a batch was not accepted: the stream's version and where its ids are stored.
async fn explain<C: tokio_postgres::GenericClient>(
    client: &C,
    sql: &Statements,
    stream_id: &str,
    expected: ExpectedVersion,
    events: &[NewEvent],
) -> Result<Verdict, StoreError> {
    let actual = version_in(client, sql, stream_id).await?;
    let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
    let mut stored = StoredAt::new();
    for row in client
        .query(sql.stored_at.as_str(), &[&ids])
        .await
        .map_err(backend)?
    {
        let id: Uuid = row.try_get(0).map_err(backend)?;
        let stream: String = row.try_get(1).map_err(backend)?;
        let version: i64 = row.try_get(2).map_err(backend)?;
        let position: i64 = row.try_get(3).map_err(backend)?;
        stored.insert(id, (stream, version.unsigned_abs(), position.unsigned_abs()));
    }
    Ok(judge(stream_id, expected, events, actual, &stored))
}

/// The verdict on a batch that was not accepted, as `MemoryStore` gives it: a re-send of a
/// stored batch returns its original result under any expectation; then a version conflict;
/// then a duplicate id.
fn judge(
    stream_id: &str,
    expected: ExpectedVersion,
    events: &[NewEvent],
    actual: u64,
    stored: &StoredAt,
) -> Verdict {
    let resent = || {
        resent_batch(
            stream_id,
            events.iter().map(|e| {
                stored
                    .get(&e.event_id)
                    .map(|(stream, version, position)| (stream.as_str(), *version, *position))
            }),
        )
    };
    if let Some(original) = resent() {
        return Verdict::Done(Ok(original));
    }
    if !expected.accepts(actual) {
        return Verdict::Done(Err(conflict(stream_id, expected, actual)));
    }
    match events.iter().find(|e| stored.contains_key(&e.event_id)) {
        Some(taken) => Verdict::Done(Err(StoreError::DuplicateEventId {
            event_id: taken.event_id,
        })),
        None => Verdict::Retry,
    }
}

/// The append statement, autocommitted: the lock and the insert run in one transaction that
/// commits when the statement ends, so a caller that drops the future cannot leave the pooled
/// connection inside a transaction.
async fn append_locked(
    client: &deadpool_postgres::Client,
    append_sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, tokio_postgres::Error> {
    let append = client.prepare_cached(append_sql).await?;
    client.query(&append, params).await
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
