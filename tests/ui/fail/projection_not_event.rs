use eventcore::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(DomainEvent, Serialize, Deserialize, JsonSchema)]
#[event(aggregate = "account")]
pub struct AccountOpened { pub owner: String }

#[derive(DomainEvent, Serialize, Deserialize, JsonSchema)]
#[event(aggregate = "account")]
pub struct MoneyDeposited { pub amount: i64 }

#[derive(Default, Serialize, Deserialize)]
pub struct Summary { pub owner: String, pub balance: i64 }

pub struct NotAnEvent { pub amount: i64 }

#[projection]
impl Summary {
    #[on]
    fn deposited(&mut self, e: &NotAnEvent) { self.balance += e.amount; }
}
fn main() {}
