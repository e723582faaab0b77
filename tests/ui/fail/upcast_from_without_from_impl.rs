use eventcore::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(DomainEvent, Serialize, Deserialize, JsonSchema)]
#[event(name = "account.deposited", version = 1)]
pub struct DepositedV1 {
    pub amount: i64,
}

#[derive(DomainEvent, Serialize, Deserialize, JsonSchema)]
#[event(name = "account.deposited", version = 2, upcast_from = DepositedV1)]
pub struct Deposited {
    pub cents: i64,
}

fn main() {}
