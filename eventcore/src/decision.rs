//! Decisions across aggregates: load several, decide, and append atomically, committing only if
//! none of them changed meanwhile.

use crate::aggregate::Aggregate;
use crate::envelope::{CommandContext, NewEvent};
use crate::repository::{encode_batch, Loaded, Repository, RepositoryError};
use crate::store::{AppendResult, EventStore, ExpectedVersion, StreamAppend};

/// A decision on the state of several aggregates, appended to one or more of them atomically.
///
/// [`load`](Self::load) every aggregate the rule reads, decide on their states, then
/// [`append`](Self::append) events to one or more of them and [`commit`](Self::commit). The
/// commit is one [`EventStore::append_all`]: every loaded aggregate must still be at the version
/// it was loaded at, the written ones and the only-read ones alike, or nothing is appended and
/// the commit fails with [`RepositoryError::Conflict`] (run the decision again on fresh state).
/// So a rule spanning aggregates ("a suspended member cannot borrow") holds without a saga's
/// compensation and without a window in which subscribers see what should never have happened.
///
/// Prefer one aggregate per decision, and a saga for processes that may take their time and
/// whose steps may fail independently: a decision over many aggregates conflicts with every
/// writer of any of them.
///
/// ```
/// use eventcore::prelude::*;
/// use eventcore::Decision;
/// # use serde::{Deserialize, Serialize};
/// # use schemars::JsonSchema;
/// # #[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
/// # #[event(aggregate = "member")]
/// # pub struct MemberSuspended {}
/// # #[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
/// # #[event(aggregate = "member")]
/// # pub struct MemberBorrowed { pub book: String }
/// # #[derive(DomainEvent, Debug, Clone, PartialEq)]
/// # pub enum MemberEvent { Suspended(MemberSuspended), Borrowed(MemberBorrowed) }
/// # #[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
/// # #[event(aggregate = "book")]
/// # pub struct BookLent { pub member: String }
/// # #[derive(DomainEvent, Debug, Clone, PartialEq)]
/// # pub enum BookEvent { Lent(BookLent) }
/// # #[derive(Debug, PartialEq, thiserror::Error)]
/// # pub enum LendError { #[error("the member is suspended")] Suspended, #[error("the book is out")] Out }
/// # #[derive(Default)] pub struct Member { pub suspended: bool }
/// # pub struct Suspend;
/// # #[aggregate(events = MemberEvent, error = LendError)]
/// # impl Member {
/// #     #[command] fn suspend(&self, _: Suspend) -> Result<Vec<MemberEvent>, LendError> { Ok(vec![MemberSuspended {}.into()]) }
/// #     #[apply] fn suspended(&mut self, _: &MemberSuspended) { self.suspended = true; }
/// #     #[apply] fn borrowed(&mut self, _: &MemberBorrowed) {}
/// # }
/// # #[derive(Default)] pub struct Book { pub out: bool }
/// # pub struct Lend { pub member: String }
/// # #[aggregate(events = BookEvent, error = LendError)]
/// # impl Book {
/// #     #[command] fn lend(&self, c: Lend) -> Result<Vec<BookEvent>, LendError> {
/// #         if self.out { return Err(LendError::Out) }
/// #         Ok(vec![BookLent { member: c.member }.into()])
/// #     }
/// #     #[apply] fn lent(&mut self, _: &BookLent) { self.out = true; }
/// # }
/// /// Lends a book, unless the member is suspended: both streams commit together, or neither.
/// async fn lend<S: EventStore>(store: &S, book: &str, member: &str) -> Result<(), RepositoryError<LendError>> {
///     let mut decision = Decision::new(store.clone());
///     let borrower = decision.load::<Member, _>(member).await?;
///     let copy = decision.load::<Book, _>(book).await?;
///     if borrower.state().suspended {
///         return Err(RepositoryError::Rejected(LendError::Suspended));
///     }
///     let lent = copy.state().handle(Lend { member: member.into() }).map_err(RepositoryError::Rejected)?;
///     decision.append::<Book, _>(book, &lent)?;
///     decision.append::<Member, _>(member, &[MemberBorrowed { book: book.into() }.into()])?;
///     decision.commit().await?;
///     Ok(())
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = MemoryStore::new();
/// lend(&store, "b1", "ada").await?;
/// Repository::<Member, _>::new(store.clone()).execute("ada", Suspend).await?;
/// assert_eq!(lend(&store, "b2", "ada").await.unwrap_err().rejection(), Some(&LendError::Suspended));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Decision<S> {
    store: S,
    context: CommandContext,
    /// Every stream loaded or written, with the version it must be at and the events for it.
    parts: Vec<StreamAppend>,
}

impl<S: EventStore> Decision<S> {
    /// A decision over aggregates of `store`.
    pub fn new(store: S) -> Self {
        Self {
            store,
            context: CommandContext::default(),
            parts: Vec::new(),
        }
    }

    /// Copies `context` (correlation, causation, metadata, idempotency key) onto every event.
    pub fn with_context(mut self, context: CommandContext) -> Self {
        self.context = context;
        self
    }

    /// Loads aggregate `id` of type `A`; the commit requires it still at the loaded version.
    pub async fn load<A: Aggregate, E>(&mut self, id: &str) -> Result<Loaded<A>, RepositoryError<E>> {
        let loaded = Repository::<A, S>::new(self.store.clone()).load_for(id).await?;
        let stream_id = Repository::<A, S>::stream_id(id);
        let expected = ExpectedVersion::Exact(loaded.version());
        match self.parts.iter_mut().find(|p| p.stream_id == stream_id) {
            Some(part) => part.expected = expected,
            None => self
                .parts
                .push(StreamAppend::new(stream_id, expected, Vec::new())),
        }
        Ok(loaded)
    }

    /// Stages `events` for aggregate `id` of type `A`. An aggregate this decision did not load
    /// is created: its stream must not exist yet at the commit.
    pub fn append<A: Aggregate, E>(
        &mut self,
        id: &str,
        events: &[A::Event],
    ) -> Result<(), RepositoryError<E>> {
        let stream_id = Repository::<A, S>::stream_id(id);
        let index = match self.parts.iter().position(|p| p.stream_id == stream_id) {
            Some(index) => index,
            None => {
                self.parts.push(StreamAppend::new(
                    stream_id.clone(),
                    ExpectedVersion::NoStream,
                    Vec::new(),
                ));
                self.parts.len() - 1
            }
        };
        let part = &mut self.parts[index];
        let mut context = self.context.clone();
        if let Some(key) = &self.context.idempotency_key {
            // Distinct ids for a second batch to the same stream within one decision.
            context.idempotency_key = Some(format!("{key}\0{}", part.events.len()));
        }
        let encoded: Vec<NewEvent> = encode_batch::<A>(events, &stream_id, id, &context)?;
        part.events.extend(encoded);
        Ok(())
    }

    /// Appends every staged event, all or nothing, if every loaded aggregate is still at its
    /// loaded version; the results of the streams written to, in the order first touched.
    pub async fn commit<E>(self) -> Result<Vec<AppendResult>, RepositoryError<E>> {
        let written: Vec<bool> = self.parts.iter().map(|p| !p.events.is_empty()).collect();
        if !written.contains(&true) {
            return Ok(Vec::new());
        }
        let results = self.store.append_all(self.parts).await?;
        Ok(results
            .into_iter()
            .zip(written)
            .filter_map(|(result, written)| written.then_some(result))
            .collect())
    }
}
