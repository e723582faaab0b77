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

pub struct Plain { pub owner: String }

impl Default for Plain { fn default() -> Self { Plain { owner: String::new() } } }

#[projection]
impl Plain {
    #[on]
    fn opened(&mut self, e: &AccountOpened) { self.owner = e.owner.clone(); }
}
fn main() {}
