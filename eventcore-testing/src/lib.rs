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

pub mod conformance;
mod diff;
mod fixture;
pub mod registry_check;
mod round_trip;

pub use fixture::{AggregateFixture, Outcome, StateCheck};
pub use registry_check::{assert_registry, RegistryCheck};
pub use round_trip::{round_trip, RoundTripError};
