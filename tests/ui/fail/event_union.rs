use eventcore::DomainEvent;

#[derive(DomainEvent)]
pub union Amount {
    cents: u64,
    whole: f64,
}

fn main() {}
