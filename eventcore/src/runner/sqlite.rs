//! [`RunnerStore`] for [`SqliteStore`]: the `runners` and `documents` tables of the store's file.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension};

use super::store::{lease_lost, Checkpoint, CommitSignal, DocumentCommit, DocumentWrite, Lease, RunnerStore};
use crate::store::sqlite::sqlite_error;
use crate::store::{SqliteStore, StoreError};

/// How often an idle runner looks for commits of other processes sharing the file.
const OTHER_PROCESS_POLL: Duration = Duration::from_secs(1);

/// Milliseconds since the Unix epoch, the lease clock (one machine shares the file).
fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn expiry(ttl: Duration) -> i64 {
    now_ms().saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX))
}

fn to_u64(value: i64, what: &str, name: &str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt {
        stream_id: String::new(),
        stream_version: 0,
        reason: format!("runner `{name}` has a negative {what}: {value}"),
    })
}

fn read_checkpoint(conn: &Connection, name: &str) -> Result<Option<Checkpoint>, StoreError> {
    let row: Option<(i64, i64, i64, Option<String>, i64)> = conn
        .prepare_cached("SELECT position, version, fence, owner, lease_expires FROM runners WHERE name = ?1")
        .and_then(|mut s| {
            s.query_row([name], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .optional()
        })
        .map_err(sqlite_error)?;
    row.map(|(position, version, fence, owner, lease_expires)| {
        Ok(Checkpoint {
            name: name.to_owned(),
            position: to_u64(position, "position", name)?,
            version: u32::try_from(version).map_err(|_| StoreError::Corrupt {
                stream_id: String::new(),
                stream_version: 0,
                reason: format!("runner `{name}` has version {version}"),
            })?,
            fence: to_u64(fence, "fence", name)?,
            lease_expires: owner
                .as_ref()
                .and_then(|_| chrono::DateTime::from_timestamp_millis(lease_expires)),
            owner,
        })
    })
    .transpose()
}

/// Takes the lease if `force`, or if it is free, expired or `owner`'s; the new lease.
fn take_lease(
    conn: &mut Connection,
    name: &str,
    owner: &str,
    ttl: Duration,
    force: bool,
) -> Result<Option<Lease>, StoreError> {
    let tx = conn.transaction().map_err(sqlite_error)?;
    let fence: Option<i64> = tx
        .prepare_cached(
            "INSERT INTO runners (name, position, version, fence, owner, lease_expires) \
             VALUES (?1, 1, 0, 1, ?2, ?3) \
             ON CONFLICT (name) DO UPDATE SET fence = fence + 1, owner = ?2, lease_expires = ?3 \
             WHERE ?4 OR owner IS NULL OR owner = ?2 OR lease_expires < ?5 \
             RETURNING fence",
        )
        .and_then(|mut s| {
            s.query_row(
                rusqlite::params![name, owner, expiry(ttl), force, now_ms()],
                |r| r.get(0),
            )
            .optional()
        })
        .map_err(sqlite_error)?;
    tx.commit().map_err(sqlite_error)?;
    fence
        .map(|fence| {
            Ok(Lease {
                name: name.to_owned(),
                owner: owner.to_owned(),
                fence: to_u64(fence, "fence", name)?,
                ttl,
            })
        })
        .transpose()
}

/// Moves the checkpoint of `lease`'s runner, renewing the lease; `LeaseLost` if it was taken.
pub(crate) fn write_checkpoint(
    conn: &Connection,
    lease: &Lease,
    position: u64,
    version: u32,
) -> Result<(), StoreError> {
    let updated = conn
        .prepare_cached(
            "UPDATE runners SET position = ?1, version = ?2, lease_expires = ?3 WHERE name = ?4 AND fence = ?5",
        )
        .and_then(|mut s| {
            s.execute(rusqlite::params![
                i64::try_from(position).unwrap_or(i64::MAX),
                version,
                expiry(lease.ttl),
                lease.name,
                i64::try_from(lease.fence).unwrap_or(i64::MAX),
            ])
        })
        .map_err(sqlite_error)?;
    if updated == 0 {
        return Err(lease_lost(lease));
    }
    Ok(())
}

impl RunnerStore for SqliteStore {
    fn commit_signal(&self) -> CommitSignal {
        CommitSignal {
            commits: self.commit_receiver(),
            poll: OTHER_PROCESS_POLL,
        }
    }

    async fn checkpoint(&self, name: &str) -> Result<Option<Checkpoint>, StoreError> {
        let name = name.to_owned();
        self.read_with(move |conn| read_checkpoint(conn, &name)).await
    }

    async fn acquire_lease(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        let (name, owner) = (name.to_owned(), owner.to_owned());
        self.write_with(move |conn| take_lease(conn, &name, &owner, ttl, false))
            .await
    }

    async fn take_over_lease(&self, name: &str, owner: &str, ttl: Duration) -> Result<Lease, StoreError> {
        let (name, owner) = (name.to_owned(), owner.to_owned());
        let lease = self
            .write_with(move |conn| take_lease(conn, &name, &owner, ttl, true))
            .await?;
        lease.ok_or_else(|| StoreError::backend(NoLease))
    }

    async fn renew_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        let lease = lease.clone();
        self.write_with(move |conn| {
            let updated = conn
                .prepare_cached("UPDATE runners SET lease_expires = ?1 WHERE name = ?2 AND fence = ?3")
                .and_then(|mut s| {
                    s.execute(rusqlite::params![
                        expiry(lease.ttl),
                        lease.name,
                        i64::try_from(lease.fence).unwrap_or(i64::MAX)
                    ])
                })
                .map_err(sqlite_error)?;
            if updated == 0 {
                return Err(lease_lost(&lease));
            }
            Ok(())
        })
        .await
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        let lease = lease.clone();
        self.write_with(move |conn| {
            conn.prepare_cached(
                "UPDATE runners SET owner = NULL, lease_expires = 0 WHERE name = ?1 AND fence = ?2",
            )
            .and_then(|mut s| {
                s.execute(rusqlite::params![
                    lease.name,
                    i64::try_from(lease.fence).unwrap_or(i64::MAX)
                ])
            })
            .map_err(sqlite_error)?;
            Ok(())
        })
        .await
    }

    async fn load_documents(
        &self,
        collection: &str,
        keys: Vec<String>,
    ) -> Result<HashMap<String, Bytes>, StoreError> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let collection = collection.to_owned();
        self.read_with(move |conn| {
            let mut statement = conn
                .prepare_cached("SELECT body FROM documents WHERE collection = ?1 AND key = ?2")
                .map_err(sqlite_error)?;
            let mut found = HashMap::with_capacity(keys.len());
            for key in keys {
                let body: Option<Vec<u8>> = statement
                    .query_row([&collection, &key], |r| r.get(0))
                    .optional()
                    .map_err(sqlite_error)?;
                if let Some(body) = body {
                    found.insert(key, Bytes::from(body));
                }
            }
            Ok(found)
        })
        .await
    }

    async fn commit_documents(&self, lease: &Lease, commit: DocumentCommit) -> Result<(), StoreError> {
        let lease = lease.clone();
        self.write_with(move |conn| {
            let tx = conn.transaction().map_err(sqlite_error)?;
            write_checkpoint(&tx, &lease, commit.position, commit.version)?;
            {
                let mut upsert = tx
                    .prepare_cached(
                        "INSERT INTO documents (collection, key, body) VALUES (?1, ?2, ?3) \
                             ON CONFLICT (collection, key) DO UPDATE SET body = excluded.body",
                    )
                    .map_err(sqlite_error)?;
                for (key, body) in &commit.upserts {
                    upsert
                        .execute(rusqlite::params![commit.collection, key, &body[..]])
                        .map_err(sqlite_error)?;
                }
            }
            tx.commit().map_err(sqlite_error)
        })
        .await
    }

    async fn commit_writes(
        &self,
        lease: &Lease,
        writes: Vec<DocumentWrite>,
        position: u64,
        version: u32,
    ) -> Result<(), StoreError> {
        let lease = lease.clone();
        self.write_with(move |conn| {
            let tx = conn.transaction().map_err(sqlite_error)?;
            write_checkpoint(&tx, &lease, position, version)?;
            {
                let mut upsert = tx
                    .prepare_cached(
                        "INSERT INTO documents (collection, key, body) VALUES (?1, ?2, ?3) \
                             ON CONFLICT (collection, key) DO UPDATE SET body = excluded.body",
                    )
                    .map_err(sqlite_error)?;
                let mut delete = tx
                    .prepare_cached("DELETE FROM documents WHERE collection = ?1 AND key = ?2")
                    .map_err(sqlite_error)?;
                for write in &writes {
                    match &write.body {
                        Some(body) => {
                            upsert.execute(rusqlite::params![write.collection, write.key, &body[..]])
                        }
                        None => delete.execute([&write.collection, &write.key]),
                    }
                    .map_err(sqlite_error)?;
                }
            }
            tx.commit().map_err(sqlite_error)
        })
        .await
    }

    async fn swap_documents(
        &self,
        lease: &Lease,
        shadow: &str,
        live: &str,
        position: u64,
        version: u32,
    ) -> Result<(), StoreError> {
        let (lease, shadow, live) = (lease.clone(), shadow.to_owned(), live.to_owned());
        self.write_with(move |conn| {
            let tx = conn.transaction().map_err(sqlite_error)?;
            write_checkpoint(&tx, &lease, position, version)?;
            tx.execute("DELETE FROM documents WHERE collection = ?1", [&live])
                .and_then(|_| {
                    tx.execute(
                        "UPDATE documents SET collection = ?1 WHERE collection = ?2",
                        [&live, &shadow],
                    )
                })
                .map_err(sqlite_error)?;
            tx.commit().map_err(sqlite_error)
        })
        .await
    }

    async fn list_documents(&self, collection: &str) -> Result<Vec<(String, Bytes)>, StoreError> {
        let collection = collection.to_owned();
        self.read_with(move |conn| {
            conn.prepare_cached("SELECT key, body FROM documents WHERE collection = ?1 ORDER BY key")
                .and_then(|mut s| {
                    s.query_map([&collection], |r| {
                        Ok((r.get::<_, String>(0)?, Bytes::from(r.get::<_, Vec<u8>>(1)?)))
                    })?
                    .collect()
                })
                .map_err(sqlite_error)
        })
        .await
    }

    async fn put_document(&self, collection: &str, key: &str, body: Option<Bytes>) -> Result<(), StoreError> {
        let (collection, key) = (collection.to_owned(), key.to_owned());
        self.write_with(move |conn| {
            match body {
                Some(body) => conn.execute(
                    "INSERT INTO documents (collection, key, body) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (collection, key) DO UPDATE SET body = excluded.body",
                    rusqlite::params![collection, key, &body[..]],
                ),
                None => conn.execute(
                    "DELETE FROM documents WHERE collection = ?1 AND key = ?2",
                    [&collection, &key],
                ),
            }
            .map_err(sqlite_error)?;
            Ok(())
        })
        .await
    }

    async fn clear_documents(&self, collection: &str) -> Result<(), StoreError> {
        let collection = collection.to_owned();
        self.write_with(move |conn| {
            conn.execute("DELETE FROM documents WHERE collection = ?1", [&collection])
                .map_err(sqlite_error)?;
            Ok(())
        })
        .await
    }

    async fn checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
        self.read_with(|conn| {
            let names: Vec<String> = conn
                .prepare_cached("SELECT name FROM runners ORDER BY name")
                .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
                .map_err(sqlite_error)?;
            names
                .iter()
                .filter_map(|name| read_checkpoint(conn, name).transpose())
                .collect()
        })
        .await
    }
}

/// A forced lease update returned no row (it always inserts or updates one).
#[derive(Debug, thiserror::Error)]
#[error("taking over a runner lease wrote no row")]
struct NoLease;
