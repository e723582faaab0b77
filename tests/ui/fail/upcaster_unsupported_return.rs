use eventcore::schema::UpcastError;
use serde_json::Value;

#[eventcore::upcaster(event = "account.opened", from = 1)]
fn up(payload: Value) -> Result<String, UpcastError> {
    Ok(payload.to_string())
}

fn main() {}
