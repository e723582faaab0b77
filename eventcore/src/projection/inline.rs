//! Inline projections: documents updated in the append's own transaction, so a failing handler
//! rolls the append back (DDD's "domain events handled in the same transaction").

use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;

use super::{Projection, Routed};
use crate::envelope::{NewEvent, RecordedEvent};
use crate::store::{AppendResult, EventStore, ExpectedVersion, StoreError, UnitOfWork};

/// Documents as a store transaction sees them.
pub trait DocumentAccess {
    /// The body of document `key` of `collection`, if any.
    fn get_document(&mut self, collection: &str, key: &str) -> Result<Option<Bytes>, StoreError>;
    /// Writes document `key` of `collection`.
    fn put_document(&mut self, collection: &str, key: &str, body: Bytes) -> Result<(), StoreError>;
    /// The highest position committed or written in this transaction so far.
    fn head(&mut self) -> Result<u64, StoreError>;
}

/// One projection run inline, its type erased (see [`InlineStore`]).
#[doc(hidden)]
pub trait InlineProjector: Send + Sync {
    /// Folds `records` into the documents they touch.
    fn project(
        &self,
        records: &[RecordedEvent],
        documents: &mut dyn DocumentAccess,
    ) -> Result<(), StoreError>;
}

struct Typed<P>(PhantomData<fn() -> P>);

fn failed<P: Projection>(source: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::ProjectionFailed {
        projection: P::NAME.to_owned(),
        source: Box::new(source),
    }
}

impl<P: Projection> InlineProjector for Typed<P> {
    fn project(
        &self,
        records: &[RecordedEvent],
        documents: &mut dyn DocumentAccess,
    ) -> Result<(), StoreError> {
        let mut routes: Vec<Routed<P>> = Vec::new();
        for record in records {
            P::route(record, &mut routes).map_err(failed::<P>)?;
        }
        let mut folded: Vec<(String, P)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for route in &routes {
            let slot = match index.get(route.key()) {
                Some(&slot) => slot,
                None => {
                    let document = match documents.get_document(P::NAME, route.key())? {
                        Some(body) => serde_json::from_slice(&body).map_err(failed::<P>)?,
                        None => P::default(),
                    };
                    folded.push((route.key().to_owned(), document));
                    index.insert(route.key().to_owned(), folded.len() - 1);
                    folded.len() - 1
                }
            };
            route.apply_to(&mut folded[slot].1).map_err(failed::<P>)?;
        }
        for (key, document) in folded {
            let body = serde_json::to_vec(&document).map_err(failed::<P>)?;
            documents.put_document(P::NAME, &key, body.into())?;
        }
        Ok(())
    }
}

/// A projection `P`, to run inline.
pub(crate) fn projector<P: Projection>() -> Arc<dyn InlineProjector> {
    Arc::new(Typed::<P>(PhantomData))
}

/// A store that can run projections inside an append's transaction.
pub trait InlineStore: EventStore {
    /// Appends `events` and, in the same transaction, folds them into the documents of
    /// `projectors`; all or nothing. A re-sent batch (see [`EventStore::append`]) is not
    /// projected again.
    #[doc(hidden)]
    fn append_projected(
        &self,
        stream_id: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        projectors: Arc<[Arc<dyn InlineProjector>]>,
    ) -> impl Future<Output = Result<AppendResult, StoreError>> + Send;
}

/// Appends and projects in one unit of work: the shared body of the stores' `append_projected`.
pub(crate) fn append_and_project<T: UnitOfWork + DocumentAccess>(
    tx: &mut T,
    stream_id: &str,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
    projectors: &[Arc<dyn InlineProjector>],
) -> Result<AppendResult, StoreError> {
    let head = tx.head()?;
    let written = tx.append(stream_id, expected, events)?;
    // A re-sent batch was projected when it was first stored.
    if written.positions.first().is_none_or(|&first| first <= head) {
        return Ok(written);
    }
    let count = written.positions.len();
    let records = tx.read_stream(stream_id, written.first_version, count)?;
    for projector in projectors {
        projector.project(&records, tx)?;
    }
    Ok(written)
}

/// How the repository appends when inline projections are registered.
pub(crate) trait InlineAppend: Send + Sync {
    fn append<'a>(
        &'a self,
        stream_id: &'a str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> BoxFuture<'a, Result<AppendResult, StoreError>>;
}

/// A store with the projections to run inline.
pub(crate) struct InlineAppender<S> {
    pub(crate) store: S,
    pub(crate) projectors: Arc<[Arc<dyn InlineProjector>]>,
}

impl<S: InlineStore> InlineAppend for InlineAppender<S> {
    fn append<'a>(
        &'a self,
        stream_id: &'a str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> BoxFuture<'a, Result<AppendResult, StoreError>> {
        Box::pin(
            self.store
                .append_projected(stream_id, expected, events, Arc::clone(&self.projectors)),
        )
    }
}

impl DocumentAccess for crate::store::MemoryTransaction<'_> {
    fn get_document(&mut self, collection: &str, key: &str) -> Result<Option<Bytes>, StoreError> {
        Ok(self
            .get(&crate::runner::documents_table(collection), key)
            .cloned())
    }

    fn put_document(&mut self, collection: &str, key: &str, body: Bytes) -> Result<(), StoreError> {
        self.put(&crate::runner::documents_table(collection), key, body);
        Ok(())
    }

    fn head(&mut self) -> Result<u64, StoreError> {
        Ok(crate::store::MemoryTransaction::head(self))
    }
}

impl InlineStore for crate::store::MemoryStore {
    async fn append_projected(
        &self,
        stream_id: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        projectors: Arc<[Arc<dyn InlineProjector>]>,
    ) -> Result<AppendResult, StoreError> {
        self.transaction(|tx| append_and_project(tx, stream_id, expected, events, &projectors))
    }
}

#[cfg(feature = "sqlite")]
impl DocumentAccess for crate::store::SqliteTransaction<'_> {
    fn get_document(&mut self, collection: &str, key: &str) -> Result<Option<Bytes>, StoreError> {
        use rusqlite::OptionalExtension;
        let body: Option<Vec<u8>> = self
            .prepare_cached("SELECT body FROM documents WHERE collection = ?1 AND key = ?2")
            .and_then(|mut s| s.query_row([collection, key], |r| r.get(0)).optional())
            .map_err(crate::store::sqlite::sqlite_error)?;
        Ok(body.map(Bytes::from))
    }

    fn put_document(&mut self, collection: &str, key: &str, body: Bytes) -> Result<(), StoreError> {
        self.prepare_cached(
            "INSERT INTO documents (collection, key, body) VALUES (?1, ?2, ?3) \
             ON CONFLICT (collection, key) DO UPDATE SET body = excluded.body",
        )
        .and_then(|mut s| s.execute(rusqlite::params![collection, key, &body[..]]))
        .map_err(crate::store::sqlite::sqlite_error)?;
        Ok(())
    }

    fn head(&mut self) -> Result<u64, StoreError> {
        self.prepare_cached("SELECT COALESCE(MAX(global_position), 0) FROM events")
            .and_then(|mut s| s.query_row([], |r| r.get::<_, i64>(0)))
            .map(i64::unsigned_abs)
            .map_err(crate::store::sqlite::sqlite_error)
    }
}

#[cfg(feature = "sqlite")]
impl InlineStore for crate::store::SqliteStore {
    async fn append_projected(
        &self,
        stream_id: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        projectors: Arc<[Arc<dyn InlineProjector>]>,
    ) -> Result<AppendResult, StoreError> {
        let stream_id = stream_id.to_owned();
        self.transaction(move |tx| append_and_project(tx, &stream_id, expected, events, &projectors))
            .await
    }
}
