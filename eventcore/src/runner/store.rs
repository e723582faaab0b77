//! What a store provides to runners: commit signals, checkpoints with fenced leases, documents.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;

use crate::store::{EventStore, StoreError};

/// Wakes an idle runner when the store may hold new events.
#[derive(Debug, Clone)]
pub struct CommitSignal {
    /// Changes after every commit this process sees.
    pub commits: watch::Receiver<u64>,
    /// How often to look anyway, for commits no signal reports (other processes).
    pub poll: Duration,
}

/// Where a runner stands: the position it resumes at, and who owns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The runner's name.
    pub name: String,
    /// The next position to read: every event below it has been handled.
    pub position: u64,
    /// The runner's version when it wrote the checkpoint (a projection's `VERSION`).
    pub version: u32,
    /// The fencing token of the lease that wrote it.
    pub fence: u64,
    /// The lease's owner, if one holds it.
    pub owner: Option<String>,
    /// When the owner's lease runs out unless renewed (`None` when no one holds it), by the
    /// database's clock on PostgreSQL. A lease past this time is free to take: its owner
    /// stopped or stalled.
    pub lease_expires: Option<chrono::DateTime<chrono::Utc>>,
}

/// The right to write a runner's checkpoint, proven by its fencing token.
///
/// Taking a lease bumps the token; every checkpoint write names the token it was taken with and
/// is refused ([`StoreError::LeaseLost`]) once another owner has taken the lease since, so a
/// stalled or stopped owner can never write again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The runner's name.
    pub name: String,
    /// Who holds it.
    pub owner: String,
    /// The fencing token.
    pub fence: u64,
    /// How long the lease lasts without a renewal or a checkpoint write.
    pub ttl: Duration,
}

/// One batch's effects on a runner's documents, committed with its checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentCommit {
    /// The collection the documents belong to.
    pub collection: String,
    /// New bodies by key.
    pub upserts: Vec<(String, Bytes)>,
    /// The checkpoint's new position.
    pub position: u64,
    /// The runner's version.
    pub version: u32,
}

/// One document written (or, with no body, removed) by [`RunnerStore::commit_writes`].
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentWrite {
    /// The collection.
    pub collection: String,
    /// The document's key.
    pub key: String,
    /// The new body; `None` removes the document.
    pub body: Option<Bytes>,
}

/// A store that hosts runners: their checkpoints and leases, and document collections, written
/// in the store's own transactions so a batch's effects and its checkpoint commit together.
pub trait RunnerStore: EventStore {
    /// The signal that wakes idle runners.
    fn commit_signal(&self) -> CommitSignal;

    /// The checkpoint of runner `name`, if it has one.
    fn checkpoint(&self, name: &str) -> impl Future<Output = Result<Option<Checkpoint>, StoreError>> + Send;

    /// Takes the lease of runner `name` for `owner` if it is free, expired or already `owner`'s,
    /// with a new fencing token; `None` while another owner holds it.
    fn acquire_lease(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<Option<Lease>, StoreError>> + Send;

    /// Takes the lease of runner `name` whoever holds it (a rebuild); the holder's writes fail from now on.
    fn take_over_lease(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<Lease, StoreError>> + Send;

    /// Extends `lease`; [`StoreError::LeaseLost`] if another owner took it.
    fn renew_lease(&self, lease: &Lease) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Gives `lease` up so another owner can take it at once (a no-op if it was lost).
    fn release_lease(&self, lease: &Lease) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The bodies of the documents with these keys in `collection` (missing keys are absent).
    fn load_documents(
        &self,
        collection: &str,
        keys: Vec<String>,
    ) -> impl Future<Output = Result<HashMap<String, Bytes>, StoreError>> + Send;

    /// Writes a batch's documents and moves the checkpoint of `lease`'s runner, in one
    /// transaction; [`StoreError::LeaseLost`] (and nothing written) if the lease was taken over.
    fn commit_documents(
        &self,
        lease: &Lease,
        commit: DocumentCommit,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Writes and removes documents of any collections and moves the checkpoint of `lease`'s
    /// runner, in one transaction (a saga step: instance, associations, deadlines, outgoing
    /// commands); [`StoreError::LeaseLost`] (and nothing written) if the lease was taken over.
    fn commit_writes(
        &self,
        lease: &Lease,
        writes: Vec<DocumentWrite>,
        position: u64,
        version: u32,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Replaces collection `live` with `shadow` (which is emptied) and sets the checkpoint of
    /// `lease`'s runner, in one transaction: readers see the old documents until it commits.
    fn swap_documents(
        &self,
        lease: &Lease,
        shadow: &str,
        live: &str,
        position: u64,
        version: u32,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Every document of `collection`, in key order (for small collections: dead letters, markers).
    fn list_documents(
        &self,
        collection: &str,
    ) -> impl Future<Output = Result<Vec<(String, Bytes)>, StoreError>> + Send;

    /// Writes or (with `None`) removes one document, outside any runner's checkpoint.
    fn put_document(
        &self,
        collection: &str,
        key: &str,
        body: Option<Bytes>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Removes every document of `collection` (an abandoned rebuild's shadow).
    fn clear_documents(&self, collection: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Every checkpoint, for status and tools.
    fn checkpoints(&self) -> impl Future<Output = Result<Vec<Checkpoint>, StoreError>> + Send;
}

/// The lease `lease` no longer holds.
pub(crate) fn lease_lost(lease: &Lease) -> StoreError {
    StoreError::LeaseLost {
        name: lease.name.clone(),
    }
}
