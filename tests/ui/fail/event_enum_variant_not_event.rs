use eventcore::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(DomainEvent, Serialize, Deserialize, JsonSchema)]
#[event(aggregate = "account")]
pub struct AccountOpened { pub owner: String }

#[derive(DomainEvent, Serialize, Deserialize, JsonSchema)]
#[event(aggregate = "account")]
pub struct MoneyDeposited { pub amount: i64 }

pub struct AccountClosed;

#[derive(DomainEvent)]
pub enum AccountEvent {
    Opened(AccountOpened),
    Closed(AccountClosed),
}

fn main() {}
