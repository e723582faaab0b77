//! Diagnostics of `#[upcaster]` and `#[event(upcast_from = ...)]`, one trybuild case each.
//!
//! The `.stderr` files are produced with `TRYBUILD=overwrite` and reviewed.

#[test]
fn upcaster_diagnostics() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/fail/upcast*.rs");
}
