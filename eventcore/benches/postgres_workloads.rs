//! `Repository` workloads on `PostgresStore` against `EVENTCORE_POSTGRES_URL`, each next to a
//! raw `tokio-postgres` baseline on the same server:
//!
//! - **W1**: accounts × (open + 4 deposits) through `Repository::execute`, against a raw loop of
//!   what a command minimally costs (one `SELECT` of the stream, folded, and one autocommitted
//!   `INSERT` of the new event into a table like the store's).
//! - **W2**: one 10,000-event aggregate loaded through `Repository::load`, against one `SELECT`
//!   of the stream's rows (type, version, payload), payloads decoded with `serde_json` and folded.
//!
//! Run: `EVENTCORE_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test cargo bench -p eventcore
//! --features postgres --bench postgres_workloads`. Prints the totals of alternating store / raw
//! blocks (both see the same load on the machine) first, then criterion's figures.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{SubsecRound, Utc};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use eventcore::envelope::Metadata;
use eventcore::prelude::*;
use eventcore::store::postgres::tokio_postgres::types::Json;
use eventcore::store::postgres::PostgresStore;
use eventcore::NewEvent;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::runtime::Runtime;

/// Events of the W2 aggregate.
const EVENTS: u64 = 10_000;
/// Accounts per W1 block; each takes 5 commands.
const ACCOUNTS: u64 = 40;
/// Deposits per account in W1.
const DEPOSITS: i64 = 4;
/// Alternating store / raw blocks of the printed comparison.
const ROUNDS: usize = 6;

#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(aggregate = "wallet")]
struct Credited {
    amount: i64,
    reference: String,
}

#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(aggregate = "wallet")]
struct Debited {
    amount: i64,
    reference: String,
}

#[derive(DomainEvent, Debug, Clone, PartialEq)]
enum WalletEvent {
    Credited(Credited),
    Debited(Debited),
}

#[derive(Debug, Default)]
struct Wallet {
    balance: i64,
}

#[aggregate(events = WalletEvent, error = std::convert::Infallible)]
impl Wallet {
    #[apply]
    fn credited(&mut self, e: &Credited) {
        self.balance += e.amount;
    }
    #[apply]
    fn debited(&mut self, e: &Debited) {
        self.balance -= e.amount;
    }
}

#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(aggregate = "account")]
struct Opened {
    owner: String,
}

#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(aggregate = "account")]
struct Deposited {
    amount: i64,
}

#[derive(DomainEvent, Debug, Clone, PartialEq)]
enum AccountEvent {
    Opened(Opened),
    Deposited(Deposited),
}

#[derive(Debug, Default)]
struct Account {
    open: bool,
    balance: i64,
}

struct Open(String);
struct Deposit(i64);

#[derive(Debug, thiserror::Error)]
enum AccountError {
    #[error("already open")]
    AlreadyOpen,
    #[error("not open")]
    NotOpen,
}

#[aggregate(events = AccountEvent, error = AccountError)]
impl Account {
    #[command]
    fn open(&self, cmd: Open) -> Result<Vec<AccountEvent>, AccountError> {
        if self.open {
            return Err(AccountError::AlreadyOpen);
        }
        Ok(vec![Opened { owner: cmd.0 }.into()])
    }
    #[command]
    fn deposit(&self, cmd: Deposit) -> Result<Vec<AccountEvent>, AccountError> {
        if !self.open {
            return Err(AccountError::NotOpen);
        }
        Ok(vec![Deposited { amount: cmd.0 }.into()])
    }
    #[apply]
    fn opened(&mut self, _: &Opened) {
        self.open = true;
    }
    #[apply]
    fn deposited(&mut self, e: &Deposited) {
        self.balance += e.amount;
    }
}

/// The raw baselines' statements, on a table like the store's.
struct Raw {
    store: PostgresStore,
    /// W2: the stream's rows, folded by the caller.
    select_stream: String,
    /// W1: the account stream's rows in the raw table.
    select_account: String,
    /// W1: one event into the raw table.
    insert: String,
    accounts: AtomicU64,
}

impl Raw {
    async fn new(store: &PostgresStore) -> Self {
        let schema = store.schema();
        let client = store.pool().get().await.unwrap();
        client
            .batch_execute(&format!(
                "CREATE TABLE \"{schema}\".raw_events (LIKE \"{schema}\".events INCLUDING ALL); \
                 CREATE SEQUENCE \"{schema}\".raw_position_seq"
            ))
            .await
            .unwrap();
        Self {
            store: store.clone(),
            select_stream: format!(
                "SELECT event_type, stream_version, payload FROM \"{schema}\".events \
                 WHERE stream_id = $1 ORDER BY stream_version"
            ),
            select_account: format!(
                "SELECT event_type, stream_version, payload FROM \"{schema}\".raw_events \
                 WHERE stream_id = $1 ORDER BY stream_version"
            ),
            insert: format!(
                "INSERT INTO \"{schema}\".raw_events (global_position, stream_id, stream_version, \
                 event_id, event_type, event_version, aggregate_type, aggregate_id, occurred_at, \
                 correlation_id, causation_id, metadata, payload) VALUES \
                 (nextval('\"{schema}\".raw_position_seq'), $1, $2, $3, $4, 1, 'account', $5, $6, \
                 NULL, NULL, $7, $8)"
            ),
            accounts: AtomicU64::new(0),
        }
    }

    /// W2 baseline: the balance of `stream`.
    async fn load_wallet(&self, stream: &str) -> (i64, i64) {
        let client = self.store.pool().get().await.unwrap();
        let statement = client.prepare_cached(&self.select_stream).await.unwrap();
        let rows = client.query(&statement, &[&stream]).await.unwrap();
        let (mut balance, mut version) = (0, 0);
        for row in &rows {
            let event_type: &str = row.get(0);
            let payload: &[u8] = row.get(2);
            match event_type {
                "wallet.credited" => balance += serde_json::from_slice::<Credited>(payload).unwrap().amount,
                "wallet.debited" => balance -= serde_json::from_slice::<Debited>(payload).unwrap().amount,
                other => panic!("unexpected event type {other}"),
            }
            version = row.get(1);
        }
        (balance, version)
    }

    /// W1 baseline: one command on account `id` of the raw table: read and fold the stream,
    /// decide, insert the event.
    async fn command(&self, id: &str, deposit: Option<i64>) {
        let stream = format!("account-{id}");
        let client = self.store.pool().get().await.unwrap();
        let select = client.prepare_cached(&self.select_account).await.unwrap();
        let rows = client.query(&select, &[&stream]).await.unwrap();
        let mut state = Account::default();
        let mut version = 0i64;
        for row in &rows {
            let event_type: &str = row.get(0);
            let payload: &[u8] = row.get(2);
            match event_type {
                "account.opened" => state.opened(&serde_json::from_slice(payload).unwrap()),
                "account.deposited" => state.deposited(&serde_json::from_slice(payload).unwrap()),
                other => panic!("unexpected event type {other}"),
            }
            version = row.get(1);
        }
        let (event_type, payload) = match deposit {
            None => {
                assert!(!state.open);
                let event = Opened { owner: id.to_owned() };
                ("account.opened", serde_json::to_vec(&event).unwrap())
            }
            Some(amount) => {
                assert!(state.open);
                (
                    "account.deposited",
                    serde_json::to_vec(&Deposited { amount }).unwrap(),
                )
            }
        };
        let insert = client.prepare_cached(&self.insert).await.unwrap();
        client
            .execute(
                &insert,
                &[
                    &stream,
                    &(version + 1),
                    &uuid::Uuid::now_v7(),
                    &event_type,
                    &id,
                    &Utc::now().trunc_subsecs(6),
                    &Json(Metadata::new()),
                    &payload,
                ],
            )
            .await
            .unwrap();
    }

    /// W1 baseline: `ACCOUNTS` accounts, each opened and given `DEPOSITS` deposits.
    async fn accounts(&self) {
        let first = self.accounts.fetch_add(ACCOUNTS, Ordering::Relaxed);
        for a in first..first + ACCOUNTS {
            let id = format!("raw-{a}");
            self.command(&id, None).await;
            for d in 1..=DEPOSITS {
                self.command(&id, Some(d)).await;
            }
        }
    }
}

/// W1 through the repository: `ACCOUNTS` accounts, each opened and given `DEPOSITS` deposits.
async fn repository_accounts(accounts: &Repository<Account, PostgresStore>, counter: &AtomicU64) {
    let first = counter.fetch_add(ACCOUNTS, Ordering::Relaxed);
    for a in first..first + ACCOUNTS {
        let id = format!("repo-{a}");
        accounts.execute(&id, Open(id.clone())).await.unwrap();
        for d in 1..=DEPOSITS {
            accounts.execute(&id, Deposit(d)).await.unwrap();
        }
    }
}

async fn fill_wallet(store: &PostgresStore) -> i64 {
    let stream = Repository::<Wallet, PostgresStore>::stream_id("w-1");
    let mut expected = ExpectedVersion::NoStream;
    let mut balance = 0;
    let history: Vec<NewEvent> = (0..EVENTS as i64)
        .map(|i| {
            let reference = format!("ref-{i:06}");
            let event: WalletEvent = if i % 3 == 2 {
                balance -= 1;
                Debited { amount: 1, reference }.into()
            } else {
                balance += 2;
                Credited { amount: 2, reference }.into()
            };
            NewEvent::encode(&event, "wallet", "w-1").unwrap()
        })
        .collect();
    for chunk in history.chunks(1000) {
        let done = store.append(&stream, expected, chunk.to_vec()).await.unwrap();
        expected = ExpectedVersion::Exact(done.last_version);
    }
    balance
}

fn rate(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

fn postgres_workloads(c: &mut Criterion) {
    let Ok(url) = std::env::var("EVENTCORE_POSTGRES_URL") else {
        println!("skipped: EVENTCORE_POSTGRES_URL not set");
        return;
    };
    let rt = Runtime::new().unwrap();
    let schema = format!("ec_bench_{}", &uuid::Uuid::now_v7().simple().to_string()[20..]);
    let store = rt.block_on(async {
        PostgresStore::builder()
            .schema(schema)
            .connect(&url)
            .await
            .unwrap()
    });
    let raw = rt.block_on(Raw::new(&store));
    let balance = rt.block_on(fill_wallet(&store));
    let wallets = Repository::<Wallet, _>::new(store.clone());
    let accounts = Repository::<Account, _>::new(store.clone());
    let repo_accounts = AtomicU64::new(0);
    let wallet_stream = Repository::<Wallet, PostgresStore>::stream_id("w-1");

    rt.block_on(async {
        // Warm up both paths (connections, prepared statements).
        wallets.load("w-1").await.unwrap();
        raw.load_wallet(&wallet_stream).await;
        repository_accounts(&accounts, &repo_accounts).await;
        raw.accounts().await;

        let (mut store_time, mut raw_time) = (Duration::ZERO, Duration::ZERO);
        for _ in 0..ROUNDS {
            let start = Instant::now();
            for _ in 0..5 {
                let loaded = wallets.load("w-1").await.unwrap();
                assert_eq!((loaded.state().balance, loaded.version()), (balance, EVENTS));
            }
            store_time += start.elapsed();
            let start = Instant::now();
            for _ in 0..5 {
                assert_eq!(raw.load_wallet(&wallet_stream).await, (balance, EVENTS as i64));
            }
            raw_time += start.elapsed();
        }
        let loads = (ROUNDS * 5) as u64 * EVENTS;
        let (store_rate, raw_rate) = (rate(loads, store_time), rate(loads, raw_time));
        println!(
            "W2 load 10k events: repository {store_rate:.0} events/s, raw SELECT {raw_rate:.0} \
             events/s, ratio {:.2} (target >= 0.7)",
            store_rate / raw_rate
        );

        let (mut store_time, mut raw_time) = (Duration::ZERO, Duration::ZERO);
        for _ in 0..ROUNDS {
            let start = Instant::now();
            repository_accounts(&accounts, &repo_accounts).await;
            store_time += start.elapsed();
            let start = Instant::now();
            raw.accounts().await;
            raw_time += start.elapsed();
        }
        let commands = ROUNDS as u64 * ACCOUNTS * (1 + DEPOSITS as u64);
        let (store_rate, raw_rate) = (rate(commands, store_time), rate(commands, raw_time));
        println!(
            "W1 commands: repository {store_rate:.0} commands/s, raw loop {raw_rate:.0} \
             commands/s, ratio {:.2} (target >= 0.8)",
            store_rate / raw_rate
        );
    });

    let mut group = c.benchmark_group("postgres_w2_rehydrate_10k");
    group.sample_size(20).measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(EVENTS));
    group.bench_function("repository_load", |b| {
        b.to_async(&rt).iter(|| async {
            let loaded = wallets.load("w-1").await.unwrap();
            assert_eq!(loaded.state().balance, balance);
        })
    });
    group.bench_function("raw_select_fold", |b| {
        b.to_async(&rt)
            .iter(|| async { assert_eq!(raw.load_wallet(&wallet_stream).await.0, balance) })
    });
    group.finish();

    let mut group = c.benchmark_group("postgres_w1_commands");
    group.sample_size(10).measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(ACCOUNTS * (1 + DEPOSITS as u64)));
    group.bench_function("repository_execute", |b| {
        b.to_async(&rt)
            .iter(|| repository_accounts(&accounts, &repo_accounts))
    });
    group.bench_function("raw_select_insert", |b| b.to_async(&rt).iter(|| raw.accounts()));
    group.finish();

    rt.block_on(async {
        let client = store.pool().get().await.unwrap();
        client
            .batch_execute(&format!("DROP SCHEMA \"{}\" CASCADE", store.schema()))
            .await
            .unwrap();
    });
}

criterion_group!(benches, postgres_workloads);
criterion_main!(benches);
