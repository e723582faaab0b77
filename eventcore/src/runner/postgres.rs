//! [`RunnerStore`] for [`PostgresStore`]: the `runners` and `documents` tables of the store's
//! schema. Leases expire by the database's clock, so processes on several machines agree.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;

use super::store::{lease_lost, Checkpoint, CommitSignal, DocumentCommit, DocumentWrite, Lease, RunnerStore};
use crate::store::postgres::{backend, quote_ident};
use crate::store::{PostgresStore, StoreError};

/// SQL of the runner tables of one schema, built once per store.
#[derive(Debug)]
pub(crate) struct Sql {
    checkpoint: String,
    checkpoints: String,
    take_lease: String,
    renew: String,
    release: String,
    write_checkpoint: String,
    load_documents: String,
    upsert_documents: String,
    upsert_fenced_documents: String,
    move_documents: String,
    clear_documents: String,
    list_documents: String,
    delete_document: String,
}

impl Sql {
    /// The statements of `schema`.
    pub(crate) fn new(schema: &str) -> Self {
        let s = quote_ident(schema);
        Self {
            checkpoint: format!("SELECT {CHECKPOINT_COLUMNS} FROM {s}.runners WHERE name = $1"),
            checkpoints: format!("SELECT {CHECKPOINT_COLUMNS} FROM {s}.runners ORDER BY name"),
            take_lease: format!(
                "INSERT INTO {s}.runners AS r (name, position, version, fence, owner, lease_expires) \
                 VALUES ($1, 1, 0, 1, $2, clock_timestamp() + $3 * interval '1 millisecond') \
                 ON CONFLICT (name) DO UPDATE SET fence = r.fence + 1, owner = $2, \
                 lease_expires = clock_timestamp() + $3 * interval '1 millisecond' \
                 WHERE $4 OR r.owner IS NULL OR r.owner = $2 OR r.lease_expires < clock_timestamp() \
                 RETURNING fence"
            ),
            renew: format!(
                "UPDATE {s}.runners SET lease_expires = clock_timestamp() + $3 * interval '1 millisecond' \
                 WHERE name = $1 AND fence = $2"
            ),
            release: format!(
                "UPDATE {s}.runners SET owner = NULL, lease_expires = '-infinity' WHERE name = $1 AND fence = $2"
            ),
            write_checkpoint: format!(
                "UPDATE {s}.runners SET position = $3, version = $4, \
                 lease_expires = clock_timestamp() + $5 * interval '1 millisecond' \
                 WHERE name = $1 AND fence = $2"
            ),
            load_documents: format!(
                // A join on the keys: the prepared (generic) plan of `key = ANY($2)` is slower.
                "SELECT d.key, d.body::text FROM unnest($2::text[]) AS u(k) \
                 JOIN {s}.documents d ON d.collection = $1 AND d.key = u.k"
            ),
            upsert_documents: format!(
                "INSERT INTO {s}.documents (collection, key, body) \
                 SELECT $1, k, b::jsonb FROM unnest($2::text[], $3::text[]) AS u(k, b) \
                 ON CONFLICT (collection, key) DO UPDATE SET body = excluded.body"
            ),
            // Writes only while runner `$4` carries fence `$5`: the guard that lets the batch's
            // commit be pipelined (see `commit_documents`).
            upsert_fenced_documents: format!(
                "INSERT INTO {s}.documents (collection, key, body) \
                 SELECT $1, k, b::jsonb FROM unnest($2::text[], $3::text[]) AS u(k, b) \
                 WHERE EXISTS (SELECT 1 FROM {s}.runners WHERE name = $4 AND fence = $5) \
                 ON CONFLICT (collection, key) DO UPDATE SET body = excluded.body"
            ),
            move_documents: format!("UPDATE {s}.documents SET collection = $1 WHERE collection = $2"),
            clear_documents: format!("DELETE FROM {s}.documents WHERE collection = $1"),
            list_documents: format!("SELECT key, body::text FROM {s}.documents WHERE collection = $1 ORDER BY key"),
            delete_document: format!("DELETE FROM {s}.documents WHERE collection = $1 AND key = $2"),
        }
    }
}

/// A checkpoint's columns; a released lease's `-infinity` reads as NULL.
const CHECKPOINT_COLUMNS: &str = "name, position, version, fence, owner, \
     CASE WHEN owner IS NOT NULL AND isfinite(lease_expires) THEN lease_expires END";

/// The migration that creates the runner tables (`{schema}` is the quoted schema name).
pub(crate) const MIGRATION_RUNNERS: &str = "
CREATE TABLE {schema}.runners (
    name          text        PRIMARY KEY,
    position      bigint      NOT NULL,
    version       integer     NOT NULL,
    fence         bigint      NOT NULL,
    owner         text,
    lease_expires timestamptz NOT NULL
);
CREATE TABLE {schema}.documents (
    collection text  NOT NULL,
    key        text  NOT NULL,
    body       jsonb NOT NULL,
    PRIMARY KEY (collection, key)
);
";

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn sql_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn checkpoint_of(row: &tokio_postgres::Row) -> Result<Checkpoint, StoreError> {
    let name: String = row.try_get(0).map_err(backend)?;
    let corrupt = |what: &str| StoreError::Corrupt {
        stream_id: String::new(),
        stream_version: 0,
        reason: format!("runner `{name}` has a negative {what}"),
    };
    let position: i64 = row.try_get(1).map_err(backend)?;
    let version: i32 = row.try_get(2).map_err(backend)?;
    let fence: i64 = row.try_get(3).map_err(backend)?;
    Ok(Checkpoint {
        position: u64::try_from(position).map_err(|_| corrupt("position"))?,
        version: u32::try_from(version).map_err(|_| corrupt("version"))?,
        fence: u64::try_from(fence).map_err(|_| corrupt("fence"))?,
        owner: row.try_get(4).map_err(backend)?,
        lease_expires: row.try_get(5).map_err(backend)?,
        name,
    })
}

/// Moves `lease`'s checkpoint to `position` inside `tx`; fails with [`StoreError::LeaseLost`]
/// when another owner took the lease over, so a fenced-out runner's effects roll back.
pub(crate) async fn write_checkpoint(
    store: &PostgresStore,
    tx: &tokio_postgres::Transaction<'_>,
    lease: &Lease,
    position: u64,
    version: u32,
) -> Result<(), StoreError> {
    write_checkpoint_with(store.runner_sql(), tx, lease, position, version).await
}

async fn write_checkpoint_with(
    sql: &Sql,
    tx: &tokio_postgres::Transaction<'_>,
    lease: &Lease,
    position: u64,
    version: u32,
) -> Result<(), StoreError> {
    let updated = tx
        .execute(
            &sql.write_checkpoint,
            &[
                &lease.name,
                &sql_i64(lease.fence),
                &sql_i64(position),
                &i32::try_from(version).unwrap_or(i32::MAX),
                &millis(lease.ttl),
            ],
        )
        .await
        .map_err(backend)?;
    if updated == 0 {
        return Err(lease_lost(lease));
    }
    Ok(())
}

impl PostgresStore {
    async fn take_lease(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        force: bool,
    ) -> Result<Option<Lease>, StoreError> {
        let client = self.pool().get().await.map_err(backend)?;
        let statement = client
            .prepare_cached(&self.runner_sql().take_lease)
            .await
            .map_err(backend)?;
        let row = client
            .query_opt(&statement, &[&name, &owner, &millis(ttl), &force])
            .await
            .map_err(backend)?;
        row.map(|row| {
            let fence: i64 = row.try_get(0).map_err(backend)?;
            Ok(Lease {
                name: name.to_owned(),
                owner: owner.to_owned(),
                fence: fence.unsigned_abs(),
                ttl,
            })
        })
        .transpose()
    }
}

impl RunnerStore for PostgresStore {
    fn commit_signal(&self) -> CommitSignal {
        CommitSignal {
            commits: self.commit_receiver(),
            poll: self.poll_interval(),
        }
    }

    async fn checkpoint(&self, name: &str) -> Result<Option<Checkpoint>, StoreError> {
        let client = self.pool().get().await.map_err(backend)?;
        let statement = client
            .prepare_cached(&self.runner_sql().checkpoint)
            .await
            .map_err(backend)?;
        let row = client.query_opt(&statement, &[&name]).await.map_err(backend)?;
        row.as_ref().map(checkpoint_of).transpose()
    }

    async fn acquire_lease(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        self.take_lease(name, owner, ttl, false).await
    }

    async fn take_over_lease(&self, name: &str, owner: &str, ttl: Duration) -> Result<Lease, StoreError> {
        self.take_lease(name, owner, ttl, true)
            .await?
            .ok_or_else(|| StoreError::LeaseLost {
                name: name.to_owned(),
            })
    }

    async fn renew_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        let client = self.pool().get().await.map_err(backend)?;
        let statement = client
            .prepare_cached(&self.runner_sql().renew)
            .await
            .map_err(backend)?;
        let updated = client
            .execute(
                &statement,
                &[&lease.name, &sql_i64(lease.fence), &millis(lease.ttl)],
            )
            .await
            .map_err(backend)?;
        if updated == 0 {
            return Err(lease_lost(lease));
        }
        Ok(())
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        let client = self.pool().get().await.map_err(backend)?;
        client
            .execute(&self.runner_sql().release, &[&lease.name, &sql_i64(lease.fence)])
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn load_documents(
        &self,
        collection: &str,
        keys: Vec<String>,
    ) -> Result<HashMap<String, Bytes>, StoreError> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let client = self.pool().get().await.map_err(backend)?;
        let statement = client
            .prepare_cached(&self.runner_sql().load_documents)
            .await
            .map_err(backend)?;
        let rows = client
            .query(&statement, &[&collection, &keys])
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|row| {
                let key: String = row.try_get(0).map_err(backend)?;
                let body: String = row.try_get(1).map_err(backend)?;
                Ok((key, Bytes::from(body)))
            })
            .collect()
    }

    /// `BEGIN`, the fenced checkpoint update, the upsert and `COMMIT` are pipelined: one round
    /// trip, all sent on the first poll (a dropped future cannot leave the pooled connection inside
    /// the transaction). `COMMIT` is sent before the checkpoint's row count is known, so the upsert
    /// guards itself: it writes only while the runner row carries the lease's fence, which the
    /// update before it has locked when it matched. A fenced-out runner's commit writes nothing.
    async fn commit_documents(&self, lease: &Lease, commit: DocumentCommit) -> Result<(), StoreError> {
        let sql = self.runner_sql();
        let client = self.pool().get().await.map_err(backend)?;
        let checkpoint = client
            .prepare_cached(&sql.write_checkpoint)
            .await
            .map_err(backend)?;
        let upsert = client
            .prepare_cached(&sql.upsert_fenced_documents)
            .await
            .map_err(backend)?;
        let mut keys = Vec::with_capacity(commit.upserts.len());
        let mut bodies = Vec::with_capacity(commit.upserts.len());
        for (key, body) in commit.upserts {
            keys.push(key);
            bodies.push(String::from_utf8(body.to_vec()).map_err(StoreError::backend)?);
        }
        let (fence, position, version, ttl) = (
            sql_i64(lease.fence),
            sql_i64(commit.position),
            i32::try_from(commit.version).unwrap_or(i32::MAX),
            millis(lease.ttl),
        );
        let write_documents = async {
            if keys.is_empty() {
                return Ok(0);
            }
            client
                .execute(
                    &upsert,
                    &[&commit.collection, &keys, &bodies, &lease.name, &fence],
                )
                .await
        };
        let (begin, updated, written, end) = futures_util::future::join4(
            client.batch_execute("BEGIN"),
            client.execute(&checkpoint, &[&lease.name, &fence, &position, &version, &ttl]),
            write_documents,
            // After a failed statement this ends the transaction with a rollback, without error.
            client.batch_execute("COMMIT"),
        )
        .await;
        begin.map_err(backend)?;
        let updated = updated.map_err(backend)?;
        written.map_err(backend)?;
        end.map_err(backend)?;
        if updated == 0 {
            return Err(lease_lost(lease));
        }
        Ok(())
    }

    async fn commit_writes(
        &self,
        lease: &Lease,
        writes: Vec<DocumentWrite>,
        position: u64,
        version: u32,
    ) -> Result<(), StoreError> {
        let sql = self.runner_sql();
        let mut client = self.pool().get().await.map_err(backend)?;
        let tx = client.transaction().await.map_err(backend)?;
        write_checkpoint_with(sql, &tx, lease, position, version).await?;
        for write in writes {
            match write.body {
                Some(body) => {
                    let body = String::from_utf8(body.to_vec()).map_err(StoreError::backend)?;
                    tx.execute(
                        &sql.upsert_documents,
                        &[&write.collection, &vec![write.key], &vec![body]],
                    )
                    .await
                }
                None => {
                    tx.execute(&sql.delete_document, &[&write.collection, &write.key])
                        .await
                }
            }
            .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)
    }

    async fn swap_documents(
        &self,
        lease: &Lease,
        shadow: &str,
        live: &str,
        position: u64,
        version: u32,
    ) -> Result<(), StoreError> {
        let sql = self.runner_sql();
        let mut client = self.pool().get().await.map_err(backend)?;
        let tx = client.transaction().await.map_err(backend)?;
        write_checkpoint_with(sql, &tx, lease, position, version).await?;
        tx.execute(&sql.clear_documents, &[&live])
            .await
            .map_err(backend)?;
        tx.execute(&sql.move_documents, &[&live, &shadow])
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)
    }

    async fn list_documents(&self, collection: &str) -> Result<Vec<(String, Bytes)>, StoreError> {
        let client = self.pool().get().await.map_err(backend)?;
        let rows = client
            .query(&self.runner_sql().list_documents, &[&collection])
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|row| {
                let key: String = row.try_get(0).map_err(backend)?;
                let body: String = row.try_get(1).map_err(backend)?;
                Ok((key, Bytes::from(body)))
            })
            .collect()
    }

    async fn put_document(&self, collection: &str, key: &str, body: Option<Bytes>) -> Result<(), StoreError> {
        let sql = self.runner_sql();
        let client = self.pool().get().await.map_err(backend)?;
        match body {
            Some(body) => {
                let body = String::from_utf8(body.to_vec()).map_err(StoreError::backend)?;
                client
                    .execute(
                        &sql.upsert_documents,
                        &[&collection, &vec![key.to_owned()], &vec![body]],
                    )
                    .await
            }
            None => client.execute(&sql.delete_document, &[&collection, &key]).await,
        }
        .map_err(backend)?;
        Ok(())
    }

    async fn clear_documents(&self, collection: &str) -> Result<(), StoreError> {
        let client = self.pool().get().await.map_err(backend)?;
        client
            .execute(&self.runner_sql().clear_documents, &[&collection])
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
        let client = self.pool().get().await.map_err(backend)?;
        let rows = client
            .query(&self.runner_sql().checkpoints, &[])
            .await
            .map_err(backend)?;
        rows.iter().map(checkpoint_of).collect()
    }
}
