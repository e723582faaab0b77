use eventcore::schema::{UpcastError, Upcasted};
use serde_json::Value;

#[eventcore::upcaster(event = "account.opened", from = 1, to = 2, produces = ["account.opened@2"])]
fn up(_payload: Value) -> Result<Vec<Upcasted>, UpcastError> {
    Ok(vec![])
}

fn main() {}
