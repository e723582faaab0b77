//! Saga steps per second on SQLite (event in → state and command committed with the checkpoint →
//! command dispatched → its event appended), against the same aggregate commands executed
//! directly with the same idempotency keys.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use eventcore::prelude::*;
use eventcore::saga::{SagaContext, Sagas};
use eventcore::NewEvent;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

const STEPS: u64 = 1_000;

/// A request for a ticket.
#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(aggregate = "request")]
struct Requested {
    id: String,
}

/// A ticket issued.
#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(aggregate = "ticket")]
struct Issued {
    id: String,
}

/// Issue a ticket.
struct Issue {
    id: String,
}

#[derive(Debug, thiserror::Error)]
#[error("never fails")]
struct Never;

/// The aggregate the saga's commands go to.
#[derive(Debug, Default)]
struct Ticket;

#[aggregate(events = Issued, error = Never)]
impl Ticket {
    #[command]
    fn issue(&self, cmd: Issue) -> Result<Vec<Issued>, Never> {
        Ok(vec![Issued { id: cmd.id }])
    }
    #[apply]
    fn issued(&mut self, _: &Issued) {}
}

/// What the saga sends.
#[derive(Debug, Serialize, Deserialize)]
enum TicketCommand {
    Issue(String),
}

/// One instance per request: issues its ticket.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Issuing {
    requested: bool,
}

#[saga(commands = TicketCommand)]
impl Issuing {
    #[start(key = id)]
    fn requested(&mut self, e: &Requested, cx: &mut SagaContext<Self>) {
        self.requested = true;
        cx.send(TicketCommand::Issue(e.id.clone()));
    }
}

async fn requests(store: &SqliteStore) {
    for n in 0..STEPS {
        let id = format!("r-{n}");
        let event = NewEvent::encode(&Requested { id: id.clone() }, "request", &id).unwrap();
        store
            .append(&format!("request-{id}"), ExpectedVersion::NoStream, vec![event])
            .await
            .unwrap();
    }
}

/// Runs the saga over `STEPS` stored requests until every ticket is issued.
async fn through_the_saga() -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("saga.db")).await.unwrap();
    requests(&store).await;
    let tickets = Repository::<Ticket, _>::new(store.clone());
    let sagas = Sagas::new(store.clone()).with::<Issuing, _>(
        move |command: TicketCommand, context: CommandContext| {
            let tickets = tickets.clone();
            async move {
                let TicketCommand::Issue(id) = command;
                tickets
                    .execute_with(&id, Issue { id: id.clone() }, &context)
                    .await
                    .map(|_| ())
            }
        },
    );
    let started = Instant::now();
    let running = sagas.start();
    while store.head_position().await.unwrap() < 2 * STEPS {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let elapsed = started.elapsed();
    running.stop().await.unwrap();
    elapsed
}

/// Executes the same commands directly, with the same kind of idempotency keys.
async fn directly() -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("direct.db")).await.unwrap();
    requests(&store).await;
    let tickets = Repository::<Ticket, _>::new(store.clone());
    let started = Instant::now();
    for n in 0..STEPS {
        let id = format!("r-{n}");
        let context = CommandContext::new()
            .correlation_id(id.clone())
            .idempotency_key(format!("saga/issuing/{id}/1/0"));
        tickets
            .execute_with(&id, Issue { id: id.clone() }, &context)
            .await
            .unwrap();
    }
    started.elapsed()
}

fn saga_steps(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("saga_steps_sqlite");
    group.sample_size(10).throughput(Throughput::Elements(STEPS));
    group.bench_function("saga", |b| {
        b.iter_custom(|iterations| {
            (0..iterations)
                .map(|_| runtime.block_on(through_the_saga()))
                .sum()
        })
    });
    group.bench_function("direct", |b| {
        b.iter_custom(|iterations| (0..iterations).map(|_| runtime.block_on(directly())).sum())
    });
    group.finish();
}

criterion_group!(benches, saga_steps);
criterion_main!(benches);
