//! Compile-time behaviour of the macros: what they accept (`ui/pass`) and the errors
//! they give (`ui/*.rs` beside the expected `.stderr`). Regenerate the expected output
//! with `TRYBUILD=overwrite cargo test -p kruxiaflow-worker-macros --test ui`.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/*.rs");
}
