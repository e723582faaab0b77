use eventcore::schema::UpcastError;
use serde_json::Value;

#[eventcore::upcaster(event = "account.opened", from = 1, version = 2)]
fn up(payload: Value) -> Result<Value, UpcastError> {
    Ok(payload)
}

fn main() {}
