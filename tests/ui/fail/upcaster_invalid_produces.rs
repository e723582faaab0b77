use eventcore::schema::{UpcastError, Upcasted};
use serde_json::Value;

#[eventcore::upcaster(event = "account.opened", from = 1, produces = ["account.opened", "account.closed@0", 3])]
fn up(_payload: Value) -> Result<Vec<Upcasted>, UpcastError> {
    Ok(vec![])
}

fn main() {}
