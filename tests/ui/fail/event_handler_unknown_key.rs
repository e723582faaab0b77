use eventcore::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(DomainEvent, Serialize, Deserialize, JsonSchema)]
#[event(aggregate = "account")]
pub struct AccountOpened { pub owner: String }

#[derive(DomainEvent, Serialize, Deserialize, JsonSchema)]
#[event(aggregate = "account")]
pub struct MoneyDeposited { pub amount: i64 }

#[derive(Debug, thiserror::Error)]
#[error("mail server unavailable")]
pub struct MailDown;

#[derive(Default)]
pub struct Welcome;

#[event_handler(name = "welcome", version = 2)]
impl Welcome {
    #[on]
    async fn opened(&self, e: &AccountOpened) -> Result<(), MailDown> { let _ = e; Ok(()) }
}
fn main() {}
