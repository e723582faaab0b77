use eventcore::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(DomainEvent, Serialize, Deserialize, JsonSchema)]
#[event(aggregate = "member")]
pub struct MemberJoined { pub name: String }

// Copied from the book aggregate: still declares `book`.
#[derive(DomainEvent, Serialize, Deserialize, JsonSchema)]
#[event(aggregate = "book")]
pub struct BookSuspended { pub reason: String }

#[derive(DomainEvent)]
pub enum MemberEvent {
    Joined(MemberJoined),
    Suspended(BookSuspended),
}

#[derive(Default)]
pub struct Member {
    pub suspended: bool,
}

pub struct Join {
    pub name: String,
}

#[derive(Debug, thiserror::Error)]
#[error("member error")]
pub struct MemberError;

#[aggregate(events = MemberEvent, error = MemberError)]
impl Member {
    #[command]
    fn join(&self, command: Join) -> Result<Vec<MemberEvent>, MemberError> {
        Ok(vec![MemberJoined { name: command.name }.into()])
    }

    #[apply]
    fn joined(&mut self, _event: &MemberJoined) {}

    #[apply]
    fn suspended(&mut self, _event: &BookSuspended) {
        self.suspended = true;
    }
}

fn main() {}
