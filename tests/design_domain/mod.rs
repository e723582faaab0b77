//! The Events, Aggregates and Projections blocks of DESIGN.md, verbatim: the tests run against them.
#![allow(dead_code)] // each test binary uses a different part

use eventcore::prelude::*;
use eventcore::projection::Projections;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(aggregate = "account")] // event type "account.opened", version 1
pub struct AccountOpened {
    pub owner: String,
}

#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(aggregate = "account", version = 2)] // "account.money_deposited", version 2
pub struct MoneyDeposited {
    pub amount: i64,
    pub currency: String,
}

#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(name = "account.withdrawn")] // explicit name wins
pub struct MoneyWithdrawn {
    pub amount: i64,
}

#[derive(DomainEvent, Debug, Clone, PartialEq)]
pub enum AccountEvent {
    // the aggregate's closed set of events
    Opened(AccountOpened),
    Deposited(MoneyDeposited),
    Withdrawn(MoneyWithdrawn),
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Account {
    pub open: bool,
    pub balance: i64,
}

pub struct OpenAccount {
    pub owner: String,
}
pub struct Deposit {
    pub amount: i64,
}
pub struct Withdraw {
    pub amount: i64,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AccountError {
    #[error("account already open")]
    AlreadyOpen,
    #[error("insufficient funds")]
    InsufficientFunds,
}

#[aggregate(events = AccountEvent, error = AccountError)] // aggregate type "account"
impl Account {
    #[command]
    fn open(&self, cmd: OpenAccount) -> Result<Vec<AccountEvent>, AccountError> {
        if self.open {
            return Err(AccountError::AlreadyOpen);
        }
        Ok(vec![AccountOpened { owner: cmd.owner }.into()])
    }
    #[command]
    fn deposit(&self, cmd: Deposit) -> Result<Vec<AccountEvent>, AccountError> {
        Ok(vec![MoneyDeposited {
            amount: cmd.amount,
            currency: "EUR".into(),
        }
        .into()])
    }
    #[command]
    fn withdraw(&self, cmd: Withdraw) -> Result<Vec<AccountEvent>, AccountError> {
        if cmd.amount > self.balance {
            return Err(AccountError::InsufficientFunds);
        }
        Ok(vec![MoneyWithdrawn { amount: cmd.amount }.into()])
    }

    #[apply]
    fn opened(&mut self, _: &AccountOpened) {
        self.open = true;
    }
    #[apply]
    fn deposited(&mut self, e: &MoneyDeposited) {
        self.balance += e.amount;
    }
    #[apply]
    fn withdrawn(&mut self, e: &MoneyWithdrawn) {
        self.balance -= e.amount;
    }
}

/// One document per account.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountSummary {
    pub owner: String,
    pub balance: i64,
    pub movements: u32,
}

#[projection] // name "account_summary", version 1; key: the event's aggregate id
impl AccountSummary {
    #[on]
    fn opened(&mut self, e: &AccountOpened) {
        self.owner = e.owner.clone();
    }
    #[on]
    fn deposited(&mut self, e: &MoneyDeposited) {
        self.balance += e.amount;
        self.movements += 1;
    }
    #[on]
    fn withdrawn(&mut self, e: &MoneyWithdrawn) {
        self.balance -= e.amount;
        self.movements += 1;
    }
}

/// The Projections block of DESIGN.md, verbatim but for where the store comes from, and a
/// check of the rebuilt documents.
pub async fn projections_block<S: eventcore::runner::RunnerStore>(
    store: S,
) -> Result<(), Box<dyn std::error::Error>> {
    let accounts = Repository::<Account, _>::new(store.clone());
    let projections = Projections::new(store.clone()).with::<AccountSummary>();
    let running = projections.start(); // catches up from its checkpoint, then follows live
    accounts
        .execute("acc-1", OpenAccount { owner: "ada".into() })
        .await?;
    accounts.execute("acc-1", Deposit { amount: 100 }).await?;
    running.wait_caught_up(Duration::from_secs(5)).await?;
    let summary = projections
        .get::<AccountSummary>("acc-1")
        .await?
        .expect("projected");
    assert_eq!(
        (summary.owner.as_str(), summary.balance, summary.movements),
        ("ada", 100, 1)
    );
    let status = &running.status()[0]; // one entry per projection
    assert_eq!((status.name.as_str(), status.lag), ("account_summary", 0));
    running.stop().await?;
    projections.rebuild::<AccountSummary>().await?; // documents and checkpoint replaced by a replay from the start
    let rebuilt = projections
        .get::<AccountSummary>("acc-1")
        .await?
        .expect("rebuilt");
    assert_eq!(rebuilt, summary);
    Ok(())
}

// The handler of the Event bus block of DESIGN.md, verbatim.
#[derive(Clone, Default)]
pub struct Welcome {
    pub sent: Arc<Mutex<Vec<String>>>,
}

#[derive(Debug, thiserror::Error)]
#[error("mail server unavailable")]
pub struct MailDown;

#[event_handler] // consumer name "welcome"
impl Welcome {
    #[on]
    async fn opened(&self, e: &Envelope<AccountOpened>) -> Result<(), MailDown> {
        self.sent.lock().unwrap().push(e.payload.owner.clone());
        Ok(())
    }
}

/// The Event bus block of DESIGN.md, verbatim but for where the store and repository come from.
pub async fn bus_block<S: eventcore::runner::RunnerStore>(
    store: S,
) -> Result<(), Box<dyn std::error::Error>> {
    use eventcore::bus::{Backoff, EventBus};
    let accounts = Repository::<Account, _>::new(store.clone());
    let bus = EventBus::local(store.clone()); // handlers fed from the store's own log; no broker needed
    let welcome = Welcome::default();
    let consumer = bus
        .subscribe(welcome.clone())
        .max_attempts(5)
        .backoff(Backoff::exponential(
            Duration::from_millis(100),
            Duration::from_secs(30),
        ))
        .start();
    accounts
        .execute("acc-2", OpenAccount { owner: "bob".into() })
        .await?;
    consumer.wait_caught_up(Duration::from_secs(5)).await?;
    assert!(welcome.sent.lock().unwrap().contains(&"bob".to_string()));

    let dead = bus.dead_letters("welcome"); // events that failed max_attempts times, payload and error kept
    for letter in dead.list().await? {
        dead.replay(letter.id).await?; // back to the consumer, same event id
    }
    consumer.stop().await?;
    Ok(())
}
