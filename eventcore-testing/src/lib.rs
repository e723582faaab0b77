//! Test fixtures and checks for code built on eventcore.
//!
//! [`AggregateFixture`] turns aggregate behaviour into given / when / then tests:
//!
//! ```ignore
//! AggregateFixture::<Account>::new()
//!     .given(vec![AccountOpened { owner: "ada".into() }.into()])
//!     .when(Withdraw { amount: 30 })
//!     .then_error(AccountError::InsufficientFunds);
//! ```
//!
//! [`ProjectionFixture`] does the same for projections: events in, documents out.

pub mod conformance;
mod diff;
mod fixture;
mod projection_fixture;
pub mod registry_check;
mod round_trip;

pub use fixture::{AggregateFixture, Outcome, StateCheck};
pub use projection_fixture::{GivenEvent, ProjectionFixture};
pub use registry_check::{assert_registry, RegistryCheck};
pub use round_trip::{round_trip, RoundTripError};
