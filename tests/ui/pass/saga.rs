use eventcore::prelude::*;
use eventcore::saga::{Saga, SagaContext};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(DomainEvent, Serialize, Deserialize, JsonSchema)]
#[event(aggregate = "order")]
pub struct OrderPlaced { pub order_id: String, pub customer: u64 }

#[derive(DomainEvent, Serialize, Deserialize, JsonSchema)]
#[event(aggregate = "customer")]
pub struct CustomerBlocked { pub customer: u64 }

#[derive(Serialize, Deserialize)]
pub enum Command { Cancel { order_id: String } }

#[derive(Serialize, Deserialize)]
pub struct Reminder { pub attempt: u32 }

#[derive(Default, Serialize, Deserialize)]
pub struct Watch { pub reminders: u32 }

#[saga(commands = Command, name = "order_watch", version = 3)]
impl Watch {
    #[start(key = order_id)]
    fn placed(&mut self, e: &Envelope<OrderPlaced>, cx: &mut SagaContext<Self>) {
        cx.associate(e.payload.customer);
        cx.schedule_at(e.occurred_at + eventcore::chrono::Duration::hours(1), Reminder { attempt: 1 });
    }
    #[end(key = customer)]
    fn blocked(&mut self, _: &CustomerBlocked, cx: &mut SagaContext<Self>) {
        let order_id = cx.id().to_owned();
        cx.send(Command::Cancel { order_id });
    }
    #[deadline]
    fn remind(&mut self, r: &Reminder, cx: &mut SagaContext<Self>) {
        self.reminders = r.attempt;
        if r.attempt < 3 {
            cx.schedule(std::time::Duration::from_secs(3600), Reminder { attempt: r.attempt + 1 });
        }
        let _ = cx.now();
    }

    fn helper(&self) -> u32 { self.reminders }
}

fn main() {
    assert_eq!(Watch::NAME, "order_watch");
    assert_eq!(Watch::VERSION, 3);
    assert_eq!(Watch::DEADLINES, ["Reminder"]);
    assert_eq!(Watch::default().helper(), 0);
}
