use eventcore::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(DomainEvent, Serialize, Deserialize, JsonSchema)]
#[event(aggregate = "account")]
pub struct AccountOpened { pub owner: String }

#[derive(DomainEvent, Serialize, Deserialize, JsonSchema)]
#[event(aggregate = "account")]
pub struct MoneyDeposited { pub amount: i64 }

#[derive(DomainEvent, Serialize, Deserialize, JsonSchema)]
#[event(aggregate = "account")]
pub struct MoneyWithdrawn { pub amount: i64 }

#[derive(DomainEvent)]
pub enum AccountEvent {
    Opened(AccountOpened),
    Deposited(MoneyDeposited),
    Withdrawn(MoneyWithdrawn),
}

#[derive(Default)]
pub struct Account {
    pub balance: i64,
}

pub struct OpenAccount {
    pub owner: String,
}

pub struct Deposit {
    pub amount: i64,
}

#[derive(Debug, thiserror::Error)]
#[error("account error")]
pub struct AccountError;

#[aggregate(events = AccountEvent, error = AccountError)]
impl Account {
    #[command]
    async fn open(&self, cmd: OpenAccount) -> Result<Vec<AccountEvent>, AccountError> {
        Ok(vec![AccountOpened { owner: cmd.owner }.into()])
    }
    #[apply]
    fn opened(&mut self, _: &AccountOpened) {}
    #[apply]
    fn deposited(&mut self, e: &MoneyDeposited) {
        self.balance += e.amount;
    }
    #[apply]
    fn withdrawn(&mut self, e: &MoneyWithdrawn) {
        self.balance -= e.amount;
    }
}

// The aggregate is still an `Aggregate`: only the macro's error is reported, not also here.
fn main() {
    let accounts = Repository::<Account, MemoryStore>::new(MemoryStore::new());
    let _ = accounts.store();
}
