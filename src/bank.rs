//! A bank account: the aggregate of DESIGN.md, used by the `bank` example and the tests.

use eventcore::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An account was opened for an owner.
#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(aggregate = "account")]
pub struct AccountOpened {
    /// The account's owner.
    pub owner: String,
}

/// Money was paid into an account.
#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(aggregate = "account", version = 2)]
pub struct MoneyDeposited {
    /// Amount in minor units.
    pub amount: i64,
    /// ISO 4217 currency code.
    pub currency: String,
}

/// Money was taken out of an account.
#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(name = "account.withdrawn")]
pub struct MoneyWithdrawn {
    /// Amount in minor units.
    pub amount: i64,
}

/// Every event of an account.
#[derive(DomainEvent, Debug, Clone, PartialEq)]
pub enum AccountEvent {
    /// See [`AccountOpened`].
    Opened(AccountOpened),
    /// See [`MoneyDeposited`].
    Deposited(MoneyDeposited),
    /// See [`MoneyWithdrawn`].
    Withdrawn(MoneyWithdrawn),
}

/// An account's state, folded from its events.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Account {
    /// Whether the account was opened.
    pub open: bool,
    /// Balance in minor units.
    pub balance: i64,
}

/// Opens an account.
pub struct OpenAccount {
    /// The owner.
    pub owner: String,
}

/// Pays money in.
pub struct Deposit {
    /// Amount in minor units.
    pub amount: i64,
}

/// Takes money out.
pub struct Withdraw {
    /// Amount in minor units.
    pub amount: i64,
}

/// Why an account refuses a command.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AccountError {
    /// The account is open already.
    #[error("account already open")]
    AlreadyOpen,
    /// The balance does not cover the withdrawal.
    #[error("insufficient funds")]
    InsufficientFunds,
}

#[aggregate(events = AccountEvent, error = AccountError)]
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
