use eventcore::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(DomainEvent, Serialize, Deserialize, JsonSchema)]
#[event(name = "account.deposited", version = 3)]
pub struct DepositedV3 {
    pub cents: i64,
}

#[derive(DomainEvent, Serialize, Deserialize, JsonSchema)]
#[event(name = "account.deposited", version = 2, upcast_from = DepositedV3)]
pub struct Deposited {
    pub cents: i64,
}

impl From<DepositedV3> for Deposited {
    fn from(old: DepositedV3) -> Self {
        Self { cents: old.cents }
    }
}

fn main() {}
