//! README.md's Rust blocks, compiled and run. Every paragraph of every `rust` block of the README
//! appears in this file or in the domain modules it includes (comments, whitespace and trailing
//! commas aside): `every_rust_block_of_the_readme_is_compiled` fails when they drift apart.
#![allow(missing_docs)] // test types, not API

mod design_sagas;
mod library_domain;

/// The 30-second example, verbatim: run as a test, and its fixture block after it.
#[rustfmt::skip]
mod quickstart {
use eventcore::prelude::*;
use eventcore::projection::Projections;
use serde::{Deserialize, Serialize};
use schemars::JsonSchema;
use std::time::Duration;

#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(aggregate = "account")]                 // event type "account.opened", version 1
pub struct AccountOpened { pub owner: String }

#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(aggregate = "account", version = 2)]    // "account.money_deposited", version 2
pub struct MoneyDeposited { pub amount: i64, pub currency: String }

#[derive(DomainEvent, Debug, Clone, PartialEq)]
pub enum AccountEvent { Opened(AccountOpened), Deposited(MoneyDeposited) }

#[derive(Debug, Default)]
pub struct Account { pub open: bool, pub balance: i64 }

pub struct OpenAccount { pub owner: String }
pub struct Deposit { pub amount: i64 }

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AccountError { #[error("account already open")] AlreadyOpen }

#[aggregate(events = AccountEvent, error = AccountError)]   // aggregate type "account"
impl Account {
    #[command]
    fn open(&self, cmd: OpenAccount) -> Result<Vec<AccountEvent>, AccountError> {
        if self.open { return Err(AccountError::AlreadyOpen); }
        Ok(vec![AccountOpened { owner: cmd.owner }.into()])
    }
    #[command]
    fn deposit(&self, cmd: Deposit) -> Result<Vec<AccountEvent>, AccountError> {
        Ok(vec![MoneyDeposited { amount: cmd.amount, currency: "EUR".into() }.into()])
    }
    #[apply] fn opened(&mut self, _: &AccountOpened) { self.open = true; }
    #[apply] fn deposited(&mut self, e: &MoneyDeposited) { self.balance += e.amount; }
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Statement { pub owner: String, pub deposits: u32 }

#[projection]                                   // a read model: one document per account
impl Statement {
    #[on] fn opened(&mut self, e: &AccountOpened) { self.owner = e.owner.clone(); }
    #[on] fn deposited(&mut self, _: &MoneyDeposited) { self.deposits += 1; }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = MemoryStore::new();                 // or SqliteStore::open("bank.db").await? (durable)
    let accounts = Repository::<Account, _>::new(store.clone());
    accounts.execute("acc-1", OpenAccount { owner: "ada".into() }).await?;
    accounts.execute("acc-1", Deposit { amount: 100 }).await?;
    let loaded = accounts.load("acc-1").await?;
    assert_eq!((loaded.state().balance, loaded.version()), (100, 2));

    let projections = Projections::new(store).with::<Statement>();
    let running = projections.start();              // catches up from its checkpoint, then live
    running.wait_caught_up(Duration::from_secs(5)).await?;
    let statement = projections.get::<Statement>("acc-1").await?;
    assert_eq!(statement, Some(Statement { owner: "ada".into(), deposits: 1 }));
    Ok(())
}

#[test]
fn the_thirty_second_example_runs() {
    main().expect("the README's first example runs");
}

#[test]
fn the_fixture_block_passes() {
    use eventcore_testing::AggregateFixture;
AggregateFixture::<Account>::new()
    .given(vec![AccountOpened { owner: "ada".into() }.into()])
    .when(OpenAccount { owner: "ada".into() })
    .then_error(AccountError::AlreadyOpen);
}
}

/// "Rules across aggregates": the decision block on the library of `tests/cross_aggregate.rs`.
#[rustfmt::skip]
mod rules_across_aggregates {
use eventcore::prelude::*;
use eventcore::Decision;
use super::library_domain::*;

async fn lend(store: MemoryStore) -> Result<(), RepositoryError<LibraryError>> {
let mut decision = Decision::new(store.clone());
let member = decision.load::<Member, _>("ada").await?;
let book = decision.load::<Book, _>("b1").await?;
if member.state().suspended {
    return Err(RepositoryError::Rejected(LibraryError::Suspended));
}
let lent = book.state().handle(Lend { member: "ada".into() }).map_err(RepositoryError::Rejected)?;
decision.append::<Book, _>("b1", &lent)?;
decision.append::<Member, _>("ada", &[MemberBorrowed { book: "b1".into() }.into()])?;
decision.commit().await?;     // both streams, or neither; a concurrent suspension is a conflict
    Ok(())
}

#[tokio::test]
async fn the_decision_block_lends_to_a_member_in_good_standing_only() {
    let store = MemoryStore::new();
    lend(store.clone()).await.expect("ada may borrow");
    let members = Repository::<Member, _>::new(store.clone());
    assert_eq!(members.load("ada").await.unwrap().state().borrowed, vec!["b1".to_string()]);

    let suspended = MemoryStore::new();
    Repository::<Member, _>::new(suspended.clone()).execute("ada", Suspend).await.unwrap();
    assert!(matches!(
        lend(suspended).await,
        Err(RepositoryError::Rejected(LibraryError::Suspended))
    ));
}
}

/// "Projections": a document projection caught up, read, and rebuilt.
#[rustfmt::skip]
mod projections {
use eventcore::prelude::*;
use eventcore::projection::Projections;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use super::quickstart::*;

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountSummary { pub owner: String, pub balance: i64, pub movements: u32 }

#[projection]                                      // name "account_summary", version 1
impl AccountSummary {
    #[on] fn opened(&mut self, e: &AccountOpened) { self.owner = e.owner.clone(); }
    #[on] fn deposited(&mut self, e: &MoneyDeposited) { self.balance += e.amount; self.movements += 1; }
}

async fn block(store: SqliteStore) -> Result<Option<AccountSummary>, Box<dyn std::error::Error>> {
let projections = Projections::new(store.clone()).with::<AccountSummary>();
let running = projections.start();                 // catches up from its checkpoint, then follows live
running.wait_caught_up(Duration::from_secs(5)).await?;
let summary = projections.get::<AccountSummary>("acc-1").await?;
projections.rebuild::<AccountSummary>().await?;    // replays into a shadow copy, then swaps it in
    assert_eq!(projections.get::<AccountSummary>("acc-1").await?, summary);
    running.stop().await?;
    Ok(summary)
}

#[tokio::test]
async fn the_projections_block_folds_and_rebuilds() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("bank.db")).await.unwrap();
    let accounts = Repository::<Account, _>::new(store.clone());
    accounts.execute("acc-1", OpenAccount { owner: "ada".into() }).await.unwrap();
    accounts.execute("acc-1", Deposit { amount: 40 }).await.unwrap();
    let summary = block(store).await.unwrap();
    assert_eq!(summary, Some(AccountSummary { owner: "ada".into(), balance: 40, movements: 1 }));
}
}

/// "Event bus": the `Welcome` handler on the local bus, and (compiled) on a broker.
#[rustfmt::skip]
mod event_bus {
use eventcore::bus::EventBus;
use eventcore::prelude::*;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use super::quickstart::*;

#[derive(Clone, Default)]
pub struct Welcome { pub sent: Arc<Mutex<Vec<String>>> }

#[derive(Debug, thiserror::Error)]
#[error("mail server unavailable")]
pub struct MailDown;

#[event_handler]                                   // consumer name "welcome"
impl Welcome {
    #[on]
    async fn opened(&self, e: &Envelope<AccountOpened>) -> Result<(), MailDown> {
        self.sent.lock().unwrap().push(e.payload.owner.clone());
        Ok(())
    }
}

#[tokio::test]
async fn the_local_bus_block_welcomes_new_owners() {
    let store = MemoryStore::new();
    let welcome = Welcome::default();
let bus = EventBus::local(store.clone());          // fed from the store's own log; no broker
let consumer = bus.subscribe(welcome.clone()).max_attempts(5).start();
let dead = bus.dead_letters("welcome");            // list, get, replay, replay_all, discard, count
    Repository::<Account, _>::new(store.clone())
        .execute("acc-1", OpenAccount { owner: "ada".into() })
        .await
        .unwrap();
    consumer.wait_caught_up(Duration::from_secs(5)).await.unwrap();
    assert_eq!(*welcome.sent.lock().unwrap(), vec!["ada".to_string()]);
    assert_eq!(dead.count().await.unwrap(), 0);
    consumer.stop().await.unwrap();
}

/// The broker block compiles; `tests/bus_redis.rs` runs the same handler over a relay.
#[cfg(feature = "redis")]
#[allow(dead_code)]
async fn broker_block(store: SqliteStore, welcome: Welcome) -> Result<(), Box<dyn std::error::Error>> {
    use eventcore::bus::Relay;
let bus = EventBus::redis("redis://127.0.0.1:6379").await?;   // feature `redis`; or EventBus::nats(url) (feature `nats`)
let relay = Relay::new(store.clone(), bus.clone()).start();   // .translate(..) maps events on the way out
let consumer = bus.subscribe(welcome.clone()).max_attempts(5).start();
    consumer.stop().await?;
    relay.stop().await?;
    Ok(())
}
}

/// "Integration events and the outbox", run against Redis.
#[cfg(feature = "redis")]
#[rustfmt::skip]
mod integration_events {
use eventcore::bus::{Broker, EventBus, HandleError, Relay};
use eventcore::integration::{Integrated, IntegrationHandler, IntegrationMessage, MessageMeta, Translate};
use eventcore::outbox::{install_sqlite, Outbox, OutboxPump, SqliteOutbox};
use eventcore::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use super::quickstart::*;

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[integration(name = "crm.customer_joined", version = 1)]   // registered, never stored in a stream
pub struct CustomerJoined { pub customer: String }

impl From<&Envelope<AccountOpened>> for CustomerJoined {
    fn from(e: &Envelope<AccountOpened>) -> Self { Self { customer: e.payload.owner.clone() } }
}

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[integration(name = "billing.invoice_paid", version = 1)]
pub struct InvoicePaid { pub invoice: String }

/// Another service: records the integration events it receives.
#[derive(Clone, Default)]
struct Crm { seen: Arc<Mutex<Vec<String>>> }

impl IntegrationHandler for Crm {
    const NAME: &'static str = "crm";
    const HANDLED_NAMES: &'static [&'static str] = &[CustomerJoined::NAME, InvoicePaid::NAME];

    async fn handle(&self, message: &IntegrationMessage) -> Result<(), HandleError> {
        let seen = if message.is::<CustomerJoined>() {
            format!("joined {}", message.decode::<CustomerJoined>()?.customer)
        } else {
            format!("paid {}", message.decode::<InvoicePaid>()?.invoice)
        };
        self.seen.lock().unwrap().push(seen);
        Ok(())
    }
}

async fn block(store: MemoryStore, bus: EventBus<Broker>, dir: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let crm = Crm::default();
    let consumer = bus.subscribe(Integrated(crm.clone())).start();
let relay = Relay::new(store.clone(), bus.clone())
    .integration(Translate::new().event::<AccountOpened, CustomerJoined>())
    .start();
    Repository::<Account, _>::new(store.clone()).execute("acc-1", OpenAccount { owner: "ada".into() }).await?;

    let path = dir.join("billing.db");
    let mut conn = rusqlite::Connection::open(&path)?;
    install_sqlite(&conn)?;
    conn.execute("CREATE TABLE invoices (id TEXT, paid INTEGER)", [])?;
let tx = conn.transaction()?;                      // the service's own rusqlite transaction
tx.execute("INSERT INTO invoices VALUES ('inv-1', 1)", [])?;
Outbox::enqueue(&tx, &InvoicePaid { invoice: "inv-1".into() }, &MessageMeta::new())?;
tx.commit()?;                                      // the row and the message, or neither
let pump = bus.publish_outbox(OutboxPump::new(SqliteOutbox::open(&path).await?));

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while crm.seen.lock().unwrap().len() < 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut seen = crm.seen.lock().unwrap().clone();
    seen.sort();
    assert_eq!(seen, vec!["joined ada".to_string(), "paid inv-1".to_string()]);
    pump.stop().await?;
    relay.stop().await?;
    consumer.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_integration_block_publishes_translated_and_outbox_events() {
    let Some(url) = eventcore_testing::service_url("EVENTCORE_REDIS_URL") else {
        return;
    };
    let prefix = format!("readme-{}", eventcore::uuid::Uuid::now_v7().simple());
    let options = eventcore::bus::RedisOptions::default().prefix(&prefix).partitions(2).block(Duration::from_millis(50));
    let bus = EventBus::redis_with(&url, options).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let outcome = block(MemoryStore::new(), bus, dir.path()).await;
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::AsyncCommands::keys(&mut connection, format!("{prefix}:*")).await.unwrap();
    if !keys.is_empty() {
        let _: () = redis::AsyncCommands::del(&mut connection, keys).await.unwrap();
    }
    outcome.unwrap();
}
}

/// "Sagas": DESIGN's checkout saga (`design_sagas`) with the README's dispatcher, on SQLite.
#[rustfmt::skip]
mod sagas {
use eventcore::prelude::*;
use eventcore::saga::{CommandDispatcher, Sagas};
use super::design_sagas::*;

/// Routes the saga's commands to the aggregates, with the context the saga gives each one.
pub struct Shop {
    orders: Repository<Order, SqliteStore>,
    payments: Repository<Payment, SqliteStore>,
    shipments: Repository<Shipment, SqliteStore>,
}

impl CommandDispatcher<ShopCommand> for Shop {
    type Error = RepositoryError<ShopError>;
    async fn dispatch(&self, command: ShopCommand, cx: CommandContext) -> Result<(), Self::Error> {
        match command {
            ShopCommand::Charge { order_id, amount } => {
                self.payments.execute_with(&order_id.clone(), ChargePayment { order_id, amount }, &cx).await?;
            }
            ShopCommand::Ship { order_id } => {
                self.shipments.execute_with(&order_id.clone(), ShipOrder { order_id }, &cx).await?;
            }
            ShopCommand::Cancel { order_id, reason } => {
                self.orders.execute_with(&order_id.clone(), CancelOrder { order_id, reason }, &cx).await?;
            }
        }
        Ok(())
    }
}

#[tokio::test]
async fn the_saga_block_charges_and_ships_an_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("shop.db")).await.unwrap();
    let shop = Shop {
        orders: Repository::new(store.clone()),
        payments: Repository::new(store.clone()),
        shipments: Repository::new(store.clone()),
    };
let sagas = Sagas::new(store.clone()).with::<Checkout, _>(shop);
let running = sagas.start();                       // fed from the store's log, like projections
    Repository::<Order, _>::new(store.clone())
        .execute("o-1", PlaceOrder { order_id: "o-1".into(), amount: 30 })
        .await
        .unwrap();
    let shipments = Repository::<Shipment, _>::new(store.clone());
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !shipments.load("o-1").await.unwrap().state().shipped {
        assert!(tokio::time::Instant::now() < deadline, "the order was never shipped");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    running.stop().await.unwrap();
}
}

/// A Rust block's text without comments and whitespace, and without trailing commas (which
/// rustfmt adds where the README writes a literal on one line).
fn normalised(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let code = match line.find("//") {
            Some(at) if at == 0 || line[..at].ends_with(char::is_whitespace) => &line[..at],
            _ => line,
        };
        out.extend(code.chars().filter(|c| !c.is_whitespace()));
    }
    out.replace(",}", "}").replace(",)", ")").replace(",]", "]")
}

#[test]
fn every_rust_block_of_the_readme_is_compiled() {
    let readme = std::fs::read_to_string("README.md").expect("README.md");
    let compiled: String = [
        include_str!("readme.rs"),
        include_str!("design_sagas/mod.rs"),
        include_str!("library_domain/mod.rs"),
    ]
    .iter()
    .map(|source| normalised(source))
    .collect();
    let mut blocks = 0;
    let mut rest = readme.as_str();
    while let Some(start) = rest.find("```rust\n") {
        let body = &rest[start + "```rust\n".len()..];
        let end = body.find("```").expect("an unclosed code block in README.md");
        blocks += 1;
        for paragraph in body[..end].split("\n\n").filter(|p| !p.trim().is_empty()) {
            assert!(
                compiled.contains(&normalised(paragraph)),
                "README.md has a Rust paragraph that tests/readme.rs does not compile:\n{paragraph}"
            );
        }
        rest = &body[end..];
    }
    assert!(blocks >= 8, "found only {blocks} Rust blocks in README.md");
}
