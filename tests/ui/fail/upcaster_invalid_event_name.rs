use eventcore::schema::UpcastError;
use serde_json::Value;

#[eventcore::upcaster(event = "Account.Opened", from = 1, rename = "account opened")]
fn up(payload: Value) -> Result<Value, UpcastError> {
    Ok(payload)
}

fn main() {}
