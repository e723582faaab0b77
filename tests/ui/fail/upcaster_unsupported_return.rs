use eventcore::schema::UpcastError;

// A local `Value` keeps rustc from shortening `serde_json::Value` in the message, whatever
// other crates (features) are linked.
#[allow(dead_code)]
struct Value;

#[eventcore::upcaster(event = "account.opened", from = 1)]
fn up(payload: serde_json::Value) -> Result<String, UpcastError> {
    Ok(payload.to_string())
}

fn main() {}
