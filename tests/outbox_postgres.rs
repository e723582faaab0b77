//! The outbox on PostgreSQL: written in the caller's transaction, published after the commit, a
//! transaction that commits late with a lower sequence number not skipped, one reader at a time.
#![cfg(feature = "postgres")]
#![allow(missing_docs)] // test types, not API

use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventcore::integration::{IntegrationMessage, MessageMeta};
use eventcore::outbox::{install_postgres, Outbox, OutboxPump, OutboxSource, PostgresOutbox};
use eventcore::prelude::*;
use eventcore::PostgresStore;
use eventcore_testing::conformance::postgres::{drop_schema, postgres_url, unique_schema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[integration(name = "shop.order_accepted", version = 1)]
pub struct OrderAccepted {
    pub order: String,
}

fn accepted(order: &str) -> OrderAccepted {
    OrderAccepted { order: order.into() }
}

async fn store(prefix: &str) -> Option<PostgresStore> {
    let url = postgres_url()?;
    Some(
        PostgresStore::builder()
            .schema(unique_schema(prefix))
            .poll_interval(Duration::from_millis(50))
            .connect(&url)
            .await
            .unwrap(),
    )
}

type Published = Arc<Mutex<Vec<String>>>;

fn recorder() -> (
    Published,
    impl Fn(Vec<IntegrationMessage>) -> std::future::Ready<Result<(), std::io::Error>> + Clone,
) {
    let published: Published = Arc::default();
    let sink = published.clone();
    let publish = move |batch: Vec<IntegrationMessage>| {
        let mut sink = sink.lock().unwrap();
        for message in batch {
            sink.push(message.decode::<OrderAccepted>().unwrap().order);
        }
        std::future::ready(Ok(()))
    };
    (published, publish)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolled_back_publishes_nothing_committed_publishes_in_order() {
    let Some(store) = store("ec_outbox_tx").await else {
        return;
    };
    let outcome = async {
        let schema = store.schema().to_owned();
        let mut client = store.pool().get().await?;
        let tx = client.transaction().await?;
        Outbox::enqueue_postgres(&tx, &schema, &accepted("o-0"), &MessageMeta::new()).await?;
        tx.rollback().await?;
        for order in ["o-1", "o-2"] {
            let tx = client.transaction().await?;
            Outbox::enqueue_postgres(&tx, &schema, &accepted(order), &MessageMeta::new()).await?;
            Outbox::enqueue_postgres(&tx, &schema, &accepted(&format!("{order}b")), &MessageMeta::new())
                .await?;
            tx.commit().await?;
        }
        let pump = OutboxPump::new(PostgresOutbox::for_store(&store)).batch_size(3);
        assert_eq!(pump.source().pending().await?, 4);
        let (published, publish) = recorder();
        assert_eq!(pump.drain(publish.clone()).await?, 4);
        assert_eq!(*published.lock().unwrap(), ["o-1", "o-1b", "o-2", "o-2b"]);
        assert_eq!(pump.drain(publish).await?, 0);
        assert_eq!(pump.source().pending().await?, 0);
        Ok::<_, Box<dyn std::error::Error>>(())
    }
    .await;
    drop_schema(&store).await;
    outcome.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lower_sequence_committed_later_is_not_skipped() {
    let Some(store) = store("ec_outbox_late").await else {
        return;
    };
    let outcome = async {
        let schema = store.schema().to_owned();
        let mut slow_client = store.pool().get().await?;
        let mut fast_client = store.pool().get().await?;
        // The slow transaction takes the lower sequence number, then waits.
        let slow = slow_client.transaction().await?;
        Outbox::enqueue_postgres(&slow, &schema, &accepted("slow"), &MessageMeta::new()).await?;
        let fast = fast_client.transaction().await?;
        Outbox::enqueue_postgres(&fast, &schema, &accepted("fast"), &MessageMeta::new()).await?;
        fast.commit().await?;

        let pump = OutboxPump::new(PostgresOutbox::for_store(&store));
        let (published, publish) = recorder();
        assert_eq!(pump.drain(publish.clone()).await?, 1);
        assert_eq!(*published.lock().unwrap(), ["fast"]);

        slow.commit().await?;
        assert_eq!(
            pump.drain(publish).await?,
            1,
            "the late commit is found, not skipped"
        );
        assert_eq!(*published.lock().unwrap(), ["fast", "slow"]);
        Ok::<_, Box<dyn std::error::Error>>(())
    }
    .await;
    drop_schema(&store).await;
    outcome.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_reader_at_a_time_and_an_own_schema() {
    let Some(store) = store("ec_outbox_lock").await else {
        return;
    };
    // A service database no store migrates: its own schema, installed by hand.
    let own = unique_schema("ec_outbox_own");
    let outcome = async {
        let mut client = store.pool().get().await?;
        install_postgres(&client, &own).await?;
        install_postgres(&client, &own).await?; // idempotent
        let tx = client.transaction().await?;
        tx.batch_execute(&format!("CREATE TABLE \"{own}\".orders (id text)"))
            .await?;
        tx.execute(&format!("INSERT INTO \"{own}\".orders VALUES ('o-1')"), &[])
            .await?;
        Outbox::enqueue_postgres(&tx, &own, &accepted("o-1"), &MessageMeta::new()).await?;
        tx.commit().await?;

        let first = OutboxPump::new(PostgresOutbox::new(store.pool().clone(), own.clone()));
        let second = OutboxPump::new(PostgresOutbox::new(store.pool().clone(), own.clone()));
        let (published, publish) = recorder();
        assert_eq!(first.source().claim(10).await?.len(), 1);
        // The first holds the schema's outbox lock: the second reads nothing.
        assert!(second.source().claim(10).await?.is_empty());
        assert_eq!(second.drain(publish.clone()).await?, 0);
        assert_eq!(first.drain(publish.clone()).await?, 1);
        assert_eq!(*published.lock().unwrap(), ["o-1"]);

        let tx = client.transaction().await?;
        Outbox::enqueue_postgres(&tx, &own, &accepted("o-2"), &MessageMeta::new()).await?;
        tx.commit().await?;
        drop(first); // its connection closes and the lock goes with it
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while published.lock().unwrap().len() < 2 && tokio::time::Instant::now() < deadline {
            second.drain(publish.clone()).await?;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(*published.lock().unwrap(), ["o-1", "o-2"]);
        Ok::<_, Box<dyn std::error::Error>>(())
    }
    .await;
    if let Ok(client) = store.pool().get().await {
        let _ = client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{own}\" CASCADE"))
            .await;
    }
    drop_schema(&store).await;
    outcome.unwrap();
}
