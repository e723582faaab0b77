//! The store conformance suite on `SqliteStore` (a file in a temporary directory).
#![cfg(feature = "sqlite")]

eventcore_testing::store_conformance_tests!(eventcore_testing::conformance::SqliteHarness);
