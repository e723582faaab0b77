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
//! [`AggregateFixture::given_stored`] and [`upcast`] read old payloads through the upcasters, as
//! a load would, to test schema evolution.
//!
//! Tests that need a server read its URL with [`service_url`]: unset, they print
//! `skipped: EVENTCORE_POSTGRES_URL is not set` and pass, unless `EVENTCORE_REQUIRE_SERVICES=1`
//! (as in CI) makes that a failure.

pub mod conformance;
mod diff;
pub mod faulty_store;
mod fixture;
mod projection_fixture;
pub mod proxy;
pub mod registry_check;
mod round_trip;
mod saga_fixture;
mod services;
mod upcast;

pub use fixture::{AggregateFixture, Outcome, StateCheck};
pub use projection_fixture::{GivenEvent, ProjectionFixture};
pub use registry_check::{assert_registry, RegistryCheck};
pub use round_trip::{round_trip, RoundTripError};
pub use saga_fixture::{SagaFixture, SagaOutcome};
pub use services::{service_url, REQUIRE_SERVICES_ENV};
pub use upcast::upcast;
