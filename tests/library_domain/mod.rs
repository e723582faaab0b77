//! The library of `tests/cross_aggregate.rs` and README's "Rules across aggregates": members
//! who can be suspended and books that can be lent.
#![allow(dead_code)] // each test binary uses a different part

use eventcore::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(aggregate = "member")]
pub struct MemberSuspended {}

#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(aggregate = "member")]
pub struct MemberBorrowed {
    pub book: String,
}

#[derive(DomainEvent, Debug, Clone, PartialEq)]
pub enum MemberEvent {
    Suspended(MemberSuspended),
    Borrowed(MemberBorrowed),
}

#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(aggregate = "book")]
pub struct BookLent {
    pub member: String,
}

#[derive(DomainEvent, Debug, Clone, PartialEq)]
pub enum BookEvent {
    Lent(BookLent),
}

#[derive(Debug, PartialEq, thiserror::Error)]
pub enum LibraryError {
    #[error("the member is suspended")]
    Suspended,
    #[error("the book is out")]
    Out,
}

#[derive(Default)]
pub struct Member {
    pub suspended: bool,
    pub borrowed: Vec<String>,
}

pub struct Suspend;

#[aggregate(events = MemberEvent, error = LibraryError)]
impl Member {
    #[command]
    fn suspend(&self, _: Suspend) -> Result<Vec<MemberEvent>, LibraryError> {
        Ok(vec![MemberSuspended {}.into()])
    }

    #[apply]
    fn suspended(&mut self, _: &MemberSuspended) {
        self.suspended = true;
    }

    #[apply]
    fn borrowed(&mut self, event: &MemberBorrowed) {
        self.borrowed.push(event.book.clone());
    }
}

#[derive(Default)]
pub struct Book {
    pub out: bool,
}

pub struct Lend {
    pub member: String,
}

#[aggregate(events = BookEvent, error = LibraryError)]
impl Book {
    #[command]
    fn lend(&self, command: Lend) -> Result<Vec<BookEvent>, LibraryError> {
        if self.out {
            return Err(LibraryError::Out);
        }
        Ok(vec![BookLent {
            member: command.member,
        }
        .into()])
    }

    #[apply]
    fn lent(&mut self, _: &BookLent) {
        self.out = true;
    }
}
