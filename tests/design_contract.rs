//! The code blocks of DESIGN.md, verbatim, compiled and run as a user would.
#![allow(missing_docs)] // test types, not API

use eventcore::prelude::*; // DomainEvent, aggregate, Aggregate, EventStore, MemoryStore, Repository, ...
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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

#[test]
fn events_are_named_and_versioned_as_designed() {
    let opened: AccountEvent = AccountOpened { owner: "ada".into() }.into();
    let deposited: AccountEvent = MoneyDeposited {
        amount: 1,
        currency: "EUR".into(),
    }
    .into();
    let withdrawn: AccountEvent = MoneyWithdrawn { amount: 1 }.into();
    assert_eq!(
        (opened.event_type(), opened.event_version()),
        ("account.opened", 1)
    );
    assert_eq!(
        (deposited.event_type(), deposited.event_version()),
        ("account.money_deposited", 2)
    );
    assert_eq!(
        (withdrawn.event_type(), withdrawn.event_version()),
        ("account.withdrawn", 1)
    );
    let plain = MoneyDeposited {
        amount: 1,
        currency: "EUR".into(),
    };
    assert_eq!(
        (plain.event_type(), plain.event_version()),
        ("account.money_deposited", 2)
    );
}

#[test]
fn the_payload_is_the_structs_json_without_type_or_version() {
    let event: AccountEvent = MoneyDeposited {
        amount: 7,
        currency: "EUR".into(),
    }
    .into();
    let payload: serde_json::Value = serde_json::from_slice(&event.encode_payload().unwrap()).unwrap();
    assert_eq!(payload, serde_json::json!({ "amount": 7, "currency": "EUR" }));
}

#[test]
fn the_aggregate_type_defaults_to_the_snake_case_type_name() {
    assert_eq!(<Account as Aggregate>::AGGREGATE_TYPE, "account");
}

async fn store_and_repository<S: EventStore>(store: S) -> Result<(), Box<dyn std::error::Error>> {
    let accounts = Repository::<Account, _>::new(store.clone());
    accounts
        .execute("acc-1", OpenAccount { owner: "ada".into() })
        .await?;
    accounts.execute("acc-1", Deposit { amount: 100 }).await?;
    let loaded = accounts.load("acc-1").await?; // state + version
    assert_eq!(loaded.state().balance, 100);
    assert_eq!(loaded.version(), 2);
    Ok(())
}

#[tokio::test]
async fn store_and_repository_on_memory() -> Result<(), Box<dyn std::error::Error>> {
    let store = MemoryStore::new();
    store_and_repository(store).await
}

#[tokio::test]
async fn store_and_repository_on_sqlite() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let store = SqliteStore::open(dir.path().join("events.db")).await?; // embedded, durable
    store_and_repository(store).await
}

#[tokio::test]
async fn repository_futures_are_send_and_errors_are_boxable(
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let accounts = Repository::<Account, _>::new(MemoryStore::new());
    let task = tokio::spawn({
        let accounts = accounts.clone();
        async move {
            accounts
                .execute("acc-2", OpenAccount { owner: "bob".into() })
                .await
        }
    });
    task.await??;
    let rejected = accounts
        .execute("acc-2", Withdraw { amount: 1 })
        .await
        .unwrap_err();
    assert_eq!(rejected.rejection(), Some(&AccountError::InsufficientFunds));
    let boxed: Box<dyn std::error::Error + Send + Sync + 'static> = Box::new(rejected);
    assert_eq!(boxed.to_string(), "command rejected: insufficient funds");
    Ok(())
}

#[test]
fn testing_block() {
    use eventcore_testing::AggregateFixture;

    AggregateFixture::<Account>::new()
        .given(vec![
            AccountOpened { owner: "ada".into() }.into(),
            MoneyDeposited {
                amount: 100,
                currency: "EUR".into(),
            }
            .into(),
        ])
        .when(Withdraw { amount: 30 })
        .then_events(vec![MoneyWithdrawn { amount: 30 }.into()]);

    AggregateFixture::<Account>::new()
        .given(vec![AccountOpened { owner: "ada".into() }.into()])
        .when(Withdraw { amount: 30 })
        .then_error(AccountError::InsufficientFunds);
}

#[test]
fn testing_block_other_expectations() {
    use eventcore_testing::AggregateFixture;

    AggregateFixture::<Account>::new()
        .given_nothing()
        .when(OpenAccount { owner: "ada".into() })
        .then_events(vec![AccountOpened { owner: "ada".into() }.into()])
        .then_state(|s| assert!(s.open));
    AggregateFixture::<Account>::new()
        .given(vec![AccountOpened { owner: "ada".into() }.into()])
        .when(OpenAccount { owner: "ada".into() })
        .then_error_matches(|e| matches!(e, AccountError::AlreadyOpen));
    AggregateFixture::<Account>::new()
        .given(vec![AccountOpened { owner: "ada".into() }.into()])
        .when(Deposit { amount: 5 })
        .then_state(|s| s.balance == 5);
}
