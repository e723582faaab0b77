//! The store conformance suite on `PostgresStore` (needs `EVENTCORE_POSTGRES_URL`).
#![cfg(feature = "postgres")]

eventcore_testing::store_conformance_tests!(eventcore_testing::conformance::postgres::PostgresHarness);
