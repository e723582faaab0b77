//! `Repository::execute_in_postgres`: a command inside the caller's PostgreSQL transaction.
#![cfg(feature = "postgres")]
#![allow(missing_docs)] // test types, not API

use eventcore::prelude::*;
use eventcore::PostgresStore;
use eventcore_testing::conformance::postgres::{drop_schema, postgres_url, unique_schema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(aggregate = "seat")]
pub struct Booked {
    pub by: String,
}

#[derive(DomainEvent, Debug, Clone, PartialEq)]
pub enum SeatEvent {
    Booked(Booked),
}

#[derive(Debug, Default)]
pub struct Seat {
    pub holder: Option<String>,
}

pub struct Book(pub String);

#[derive(Debug, thiserror::Error)]
#[error("the seat is taken")]
pub struct Taken;

#[aggregate(events = SeatEvent, error = Taken)]
impl Seat {
    #[command]
    fn book(&self, cmd: Book) -> Result<Vec<SeatEvent>, Taken> {
        match self.holder {
            Some(_) => Err(Taken),
            None => Ok(vec![Booked { by: cmd.0 }.into()]),
        }
    }
    #[apply]
    fn booked(&mut self, e: &Booked) {
        self.holder = Some(e.by.clone());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_run_inside_the_callers_transaction() -> Result<(), Box<dyn std::error::Error>> {
    let Some(url) = postgres_url() else {
        return Ok(());
    };
    let store = PostgresStore::builder()
        .schema(unique_schema("ec_repo_tx"))
        .connect(&url)
        .await?;
    let seats = Repository::<Seat, _>::new(store.clone());
    let context = CommandContext::default();
    let outcome = async {
        let mut client = store.pool().get().await?;
        client
            .batch_execute(&format!(
                "CREATE TABLE \"{}\".tickets (holder text)",
                store.schema()
            ))
            .await?;

        // Rolled back: neither the events nor the caller's row stay.
        let tx = client.transaction().await?;
        seats
            .execute_in_postgres(&tx, "s1", Book("ada".into()), &context)
            .await?;
        tx.rollback().await?;
        assert_eq!(store.stream_version("seat-s1").await?, 0);

        // Committed with the caller's row; a writer of the same seat waits for the lock and
        // then decides on the committed state.
        let tx = client.transaction().await?;
        let booked = seats
            .execute_in_postgres(&tx, "s1", Book("bob".into()), &context)
            .await?;
        assert_eq!(booked.version, 1);
        tx.execute(
            &format!("INSERT INTO \"{}\".tickets VALUES ('bob')", store.schema()),
            &[],
        )
        .await?;
        let rival = {
            let store = store.clone();
            tokio::spawn(async move {
                let seats = Repository::<Seat, _>::new(store.clone());
                let mut client = store.pool().get().await?;
                let tx = client.transaction().await?;
                let outcome = seats
                    .execute_in_postgres(&tx, "s1", Book("cy".into()), &CommandContext::default())
                    .await;
                tx.rollback().await?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(outcome.is_err())
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(!rival.is_finished(), "the rival must wait for the stream lock");
        tx.commit().await?;
        assert!(
            rival.await?.map_err(|e| e.to_string())?,
            "the rival must see the seat taken"
        );
        assert_eq!(seats.load("s1").await?.state().holder.as_deref(), Some("bob"));
        let tickets: i64 = client
            .query_one(
                &format!("SELECT count(*) FROM \"{}\".tickets", store.schema()),
                &[],
            )
            .await?
            .get(0);
        assert_eq!(tickets, 1);
        Ok::<_, Box<dyn std::error::Error>>(())
    }
    .await;
    drop_schema(&store).await;
    outcome
}
