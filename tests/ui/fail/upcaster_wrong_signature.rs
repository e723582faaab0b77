use eventcore::schema::UpcastError;
use serde_json::Value;

#[eventcore::upcaster(event = "account.opened", from = 1)]
async fn up<T>(payload: Value, extra: T) -> Result<Value, UpcastError> {
    let _ = extra;
    Ok(payload)
}

#[eventcore::upcaster(event = "account.closed", from = 1)]
fn no_return(payload: Value) {
    let _ = payload;
}

fn main() {}
