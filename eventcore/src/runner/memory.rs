//! [`RunnerStore`] for [`MemoryStore`]: runners and documents in the store's tables.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::store::{lease_lost, Checkpoint, CommitSignal, DocumentCommit, DocumentWrite, Lease, RunnerStore};
use crate::store::{MemoryStore, MemoryTransaction, StoreError};

/// The table of runner rows.
const RUNNERS: &str = "eventcore.runners";

/// Documents of `collection` live in their own table.
pub(crate) fn documents_table(collection: &str) -> String {
    format!("eventcore.documents.{collection}")
}

/// A runner's row, as stored in the runners table.
#[derive(Debug, Serialize, Deserialize)]
struct Row {
    position: u64,
    version: u32,
    fence: u64,
    owner: Option<String>,
    /// Milliseconds since the store's clock origin.
    lease_expires: u64,
}

/// A monotonic clock in milliseconds (the store lives in one process).
fn now_ms() -> u64 {
    static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    u64::try_from(ORIGIN.get_or_init(Instant::now).elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn expiry(ttl: Duration) -> u64 {
    now_ms().saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
}

fn row(tx: &MemoryTransaction<'_>, name: &str) -> Result<Option<Row>, StoreError> {
    tx.get(RUNNERS, name)
        .map(|body| {
            serde_json::from_slice(body).map_err(|e| StoreError::Corrupt {
                stream_id: String::new(),
                stream_version: 0,
                reason: format!("runner `{name}`: {e}"),
            })
        })
        .transpose()
}

fn put_row(tx: &mut MemoryTransaction<'_>, name: &str, row: &Row) -> Result<(), StoreError> {
    let body = serde_json::to_vec(row).map_err(StoreError::backend)?;
    tx.put(RUNNERS, name, body.into());
    Ok(())
}

fn checkpoint_of(name: &str, row: Row) -> Checkpoint {
    Checkpoint {
        name: name.to_owned(),
        position: row.position,
        version: row.version,
        fence: row.fence,
        lease_expires: row.owner.as_ref().map(|_| {
            // The row holds the store's monotonic clock: turn the time left into wall time.
            let left = i64::try_from(row.lease_expires).unwrap_or(i64::MAX)
                - i64::try_from(now_ms()).unwrap_or(i64::MAX);
            chrono::Utc::now() + chrono::TimeDelta::milliseconds(left)
        }),
        owner: row.owner,
    }
}

fn take_lease(
    store: &MemoryStore,
    name: &str,
    owner: &str,
    ttl: Duration,
    force: bool,
) -> Result<Option<Lease>, StoreError> {
    store.transaction(|tx| {
        let mut current = row(tx, name)?.unwrap_or(Row {
            position: 1,
            version: 0,
            fence: 0,
            owner: None,
            lease_expires: 0,
        });
        let free = current.owner.is_none()
            || current.owner.as_deref() == Some(owner)
            || current.lease_expires < now_ms();
        if !force && !free {
            return Ok(None);
        }
        current.fence += 1;
        current.owner = Some(owner.to_owned());
        current.lease_expires = expiry(ttl);
        put_row(tx, name, &current)?;
        Ok(Some(Lease {
            name: name.to_owned(),
            owner: owner.to_owned(),
            fence: current.fence,
            ttl,
        }))
    })
}

/// The row of `lease`'s runner if the lease still holds; `LeaseLost` otherwise.
fn held(tx: &MemoryTransaction<'_>, lease: &Lease) -> Result<Row, StoreError> {
    match row(tx, &lease.name)? {
        Some(row) if row.fence == lease.fence => Ok(row),
        _ => Err(lease_lost(lease)),
    }
}

impl RunnerStore for MemoryStore {
    fn commit_signal(&self) -> CommitSignal {
        CommitSignal {
            commits: self.commit_receiver(),
            // Every commit is signalled; the poll only guards against a missed wake-up.
            poll: Duration::from_secs(5),
        }
    }

    async fn checkpoint(&self, name: &str) -> Result<Option<Checkpoint>, StoreError> {
        self.transaction(|tx| Ok(row(tx, name)?.map(|r| checkpoint_of(name, r))))
    }

    async fn acquire_lease(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        take_lease(self, name, owner, ttl, false)
    }

    async fn take_over_lease(&self, name: &str, owner: &str, ttl: Duration) -> Result<Lease, StoreError> {
        take_lease(self, name, owner, ttl, true)?.ok_or_else(|| StoreError::LeaseLost {
            name: name.to_owned(),
        })
    }

    async fn renew_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        self.transaction(|tx| {
            let mut row = held(tx, lease)?;
            row.lease_expires = expiry(lease.ttl);
            put_row(tx, &lease.name, &row)
        })
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        self.transaction(|tx| match held(tx, lease) {
            Ok(mut row) => {
                row.owner = None;
                row.lease_expires = 0;
                put_row(tx, &lease.name, &row)
            }
            Err(_) => Ok(()),
        })
    }

    async fn load_documents(
        &self,
        collection: &str,
        keys: Vec<String>,
    ) -> Result<HashMap<String, Bytes>, StoreError> {
        let table = documents_table(collection);
        Ok(keys
            .into_iter()
            .filter_map(|key| self.get(&table, &key).map(|body| (key, body)))
            .collect())
    }

    async fn commit_documents(&self, lease: &Lease, commit: DocumentCommit) -> Result<(), StoreError> {
        let table = documents_table(&commit.collection);
        self.transaction(|tx| {
            let mut row = held(tx, lease)?;
            row.position = commit.position;
            row.version = commit.version;
            row.lease_expires = expiry(lease.ttl);
            put_row(tx, &lease.name, &row)?;
            for (key, body) in commit.upserts {
                tx.put(&table, &key, body);
            }
            Ok(())
        })
    }

    async fn commit_writes(
        &self,
        lease: &Lease,
        writes: Vec<DocumentWrite>,
        position: u64,
        version: u32,
    ) -> Result<(), StoreError> {
        self.transaction(|tx| {
            let mut row = held(tx, lease)?;
            row.position = position;
            row.version = version;
            row.lease_expires = expiry(lease.ttl);
            put_row(tx, &lease.name, &row)?;
            for write in writes {
                let table = documents_table(&write.collection);
                match write.body {
                    Some(body) => tx.put(&table, &write.key, body),
                    None => tx.delete(&table, &write.key),
                }
            }
            Ok(())
        })
    }

    async fn swap_documents(
        &self,
        lease: &Lease,
        shadow: &str,
        live: &str,
        position: u64,
        version: u32,
    ) -> Result<(), StoreError> {
        let (shadow, live) = (documents_table(shadow), documents_table(live));
        self.transaction(|tx| {
            let mut row = held(tx, lease)?;
            row.position = position;
            row.version = version;
            row.lease_expires = expiry(lease.ttl);
            put_row(tx, &lease.name, &row)?;
            let rebuilt: Vec<(String, Bytes)> = tx
                .entries(&shadow)
                .map(|(k, v)| (k.to_owned(), v.clone()))
                .collect();
            tx.clear(&live);
            tx.clear(&shadow);
            for (key, body) in rebuilt {
                tx.put(&live, &key, body);
            }
            Ok(())
        })
    }

    async fn list_documents(&self, collection: &str) -> Result<Vec<(String, Bytes)>, StoreError> {
        let table = documents_table(collection);
        self.transaction(|tx| {
            Ok(tx
                .entries(&table)
                .map(|(k, v)| (k.to_owned(), v.clone()))
                .collect())
        })
    }

    async fn put_document(&self, collection: &str, key: &str, body: Option<Bytes>) -> Result<(), StoreError> {
        let table = documents_table(collection);
        self.transaction(|tx| {
            match body {
                Some(body) => tx.put(&table, key, body),
                None => tx.delete(&table, key),
            }
            Ok(())
        })
    }

    async fn clear_documents(&self, collection: &str) -> Result<(), StoreError> {
        let table = documents_table(collection);
        self.transaction(|tx| {
            tx.clear(&table);
            Ok(())
        })
    }

    async fn checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
        self.transaction(|tx| {
            let names: Vec<String> = tx.entries(RUNNERS).map(|(k, _)| k.to_owned()).collect();
            names
                .iter()
                .filter_map(|name| {
                    row(tx, name)
                        .transpose()
                        .map(|r| r.map(|r| checkpoint_of(name, r)))
                })
                .collect()
        })
    }
}
