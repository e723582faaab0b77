//! The store conformance suite on `MemoryStore`.

eventcore_testing::store_conformance_tests!(eventcore_testing::conformance::MemoryHarness);
