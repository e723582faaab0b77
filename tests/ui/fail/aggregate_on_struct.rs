use eventcore::prelude::*;

#[aggregate(events = AccountEvent, error = AccountError)]
pub struct Account {
    pub balance: i64,
}

fn main() {}
