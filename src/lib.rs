//! The domains of eventcore's examples, shared by `examples/` and the cross-crate tests.

pub mod bank;
