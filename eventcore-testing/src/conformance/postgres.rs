//! The harness of `PostgresStore`: a fresh schema per test, dropped afterwards.

use std::time::Duration;

use eventcore::store::postgres::PostgresStore;
use eventcore::{AppendResult, ExpectedVersion, NewEvent, StoreError};

use super::{StoreHarness, HARNESS_PAYLOAD_LIMIT};

/// Environment variable holding the URL of the test database.
pub const POSTGRES_URL_VAR: &str = "EVENTCORE_POSTGRES_URL";

/// The URL of the test database, or `None` after printing the skip line (see [`crate::service_url`]:
/// with `EVENTCORE_REQUIRE_SERVICES=1`, an unset URL panics instead).
#[track_caller]
pub fn postgres_url() -> Option<String> {
    crate::service_url(POSTGRES_URL_VAR)
}

/// A schema name unique to one test run.
pub fn unique_schema(prefix: &str) -> String {
    format!("{prefix}_{}", &uuid::Uuid::now_v7().simple().to_string()[20..])
}

/// Makes each test's store in its own schema of `EVENTCORE_POSTGRES_URL` (skips when unset,
/// fails when set but unreachable) and drops the schema afterwards.
#[derive(Debug, Clone, Copy, Default)]
pub struct PostgresHarness;

impl StoreHarness for PostgresHarness {
    type Store = PostgresStore;

    async fn create(&self) -> Option<PostgresStore> {
        let url = postgres_url()?;
        let store = PostgresStore::builder()
            .schema(unique_schema("ec_conformance"))
            .max_payload_bytes(HARNESS_PAYLOAD_LIMIT)
            .poll_interval(Duration::from_millis(200))
            .connect(&url)
            .await
            .unwrap_or_else(|e| panic!("{POSTGRES_URL_VAR} is set but the store cannot start: {e}"));
        Some(store)
    }

    async fn destroy(&self, store: PostgresStore) {
        drop_schema(&store).await;
    }

    fn max_payload_bytes(&self) -> usize {
        HARNESS_PAYLOAD_LIMIT
    }

    async fn corrupt_event(&self, store: &PostgresStore, stream_id: &str, stream_version: u64) -> bool {
        let client = store.pool().get().await.unwrap();
        let sql = format!(
            "UPDATE \"{}\".events SET metadata = '[\"not\", \"a\", \"map\"]'::jsonb \
             WHERE stream_id = $1 AND stream_version = $2",
            store.schema()
        );
        let version = i64::try_from(stream_version).unwrap();
        client.execute(&sql, &[&stream_id, &version]).await.unwrap() == 1
    }

    async fn append_held_open(
        &self,
        store: &PostgresStore,
        stream_id: &str,
        events: Vec<NewEvent>,
        hold: Duration,
        commit: bool,
    ) -> Result<Option<AppendResult>, StoreError> {
        let mut client = store.pool().get().await.map_err(StoreError::backend)?;
        let transaction = client.transaction().await.map_err(StoreError::backend)?;
        let result = store
            .append_in_transaction(&transaction, stream_id, ExpectedVersion::Any, events)
            .await?;
        tokio::time::sleep(hold).await;
        if commit {
            transaction.commit().await.map_err(StoreError::backend)?;
            store.notify_subscribers().await?;
            Ok(Some(result))
        } else {
            transaction.rollback().await.map_err(StoreError::backend)?;
            Ok(None)
        }
    }
}

/// Drops the store's schema and everything in it.
pub async fn drop_schema(store: &PostgresStore) {
    let client = store.pool().get().await.unwrap();
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", store.schema()))
        .await
        .unwrap();
}
