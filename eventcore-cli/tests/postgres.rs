//! The `eventcore` binary against a PostgreSQL store in its own schema (skipped when
//! `EVENTCORE_POSTGRES_URL` is unset; fails when set but unreachable).
#![cfg(feature = "postgres")]

mod common;

use std::panic::AssertUnwindSafe;

use common::triage::saga_scenario;
use common::{eventcore, scenario};
use eventcore::PostgresStore;
use futures_util::FutureExt;

fn unique_schema(prefix: &str) -> String {
    format!("{prefix}_{}", &uuid::Uuid::now_v7().simple().to_string()[20..])
}

async fn drop_schema(store: &PostgresStore) {
    let client = store.pool().get().await.unwrap();
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", store.schema()))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operates_a_postgres_store() {
    let Some(url) = eventcore_testing::service_url("EVENTCORE_POSTGRES_URL") else {
        return;
    };
    let schema = unique_schema("ec_cli");
    let store = PostgresStore::builder()
        .schema(&schema)
        .connect(&url)
        .await
        .unwrap();
    let args = vec!["--store".into(), url.clone(), "--schema".into(), schema.clone()];
    let outcome = AssertUnwindSafe(scenario(store.clone(), args))
        .catch_unwind()
        .await;
    drop_schema(&store).await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shows_the_saga_instances_and_deadlines_of_a_postgres_store() {
    let Some(url) = eventcore_testing::service_url("EVENTCORE_POSTGRES_URL") else {
        return;
    };
    let schema = unique_schema("ec_cli_sagas");
    let store = PostgresStore::builder()
        .schema(&schema)
        .connect(&url)
        .await
        .unwrap();
    let args = vec!["--store".into(), url.clone(), "--schema".into(), schema.clone()];
    let outcome = AssertUnwindSafe(saga_scenario(store.clone(), args))
        .catch_unwind()
        .await;
    drop_schema(&store).await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

#[tokio::test]
async fn a_missing_schema_is_an_error_and_is_not_created() {
    let Some(url) = eventcore_testing::service_url("EVENTCORE_POSTGRES_URL") else {
        return;
    };
    let schema = unique_schema("ec_cli_missing");
    let run = eventcore(&["--store", &url, "--schema", &schema, "head"]).expect(4);
    assert!(run.stderr.contains("cannot open the store"), "{}", run.stderr);
    assert!(run.stderr.contains("holds no eventcore store"), "{}", run.stderr);
    eventcore(&["--store", &url, "--schema", "Bad-Name", "head"]).expect(4);
    // Nothing was created: ask the server through a store of another schema.
    let probe = PostgresStore::builder()
        .schema(unique_schema("ec_cli_probe"))
        .connect(&url)
        .await
        .unwrap();
    let client = probe.pool().get().await.unwrap();
    let found: i64 = client
        .query_one(
            "SELECT count(*) FROM information_schema.schemata WHERE schema_name = $1",
            &[&schema],
        )
        .await
        .unwrap()
        .get(0);
    drop(client);
    drop_schema(&probe).await;
    assert_eq!(found, 0, "the tool created schema {schema}");
}
