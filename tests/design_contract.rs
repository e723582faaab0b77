//! The code blocks of DESIGN.md compiled and run as a user would: the Events and Aggregates
//! blocks (verbatim in `design_domain`), then the Store and Testing blocks below.

mod design_domain;

use design_domain::*;
use eventcore::prelude::*; // DomainEvent, aggregate, Aggregate, EventStore, MemoryStore, Repository, ...

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

#[cfg(feature = "sqlite")]
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
