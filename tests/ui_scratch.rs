#[test]
fn scratch() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/aggregate_missing_apply.rs");
}
