#[eventcore::upcaster(event = "account.opened", from = 1)]
struct NotAFunction;

fn main() {}
