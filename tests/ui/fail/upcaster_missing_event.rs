use eventcore::schema::UpcastError;
use serde_json::Value;

#[eventcore::upcaster(from = 1)]
fn up(payload: Value) -> Result<Value, UpcastError> {
    Ok(payload)
}

fn main() {}
