//! `#[cfg]` before or after `#[activity]`, false or true: a false one removes the
//! activity, type and all; a true one leaves it as if it were not there.
use kruxiaflow_worker::prelude::*;

#[cfg(any())]
#[activity]
async fn before_false() -> ActivityResult {
    missing_function()
}

#[cfg(all())]
#[activity]
async fn before_true() -> ActivityResult {
    ActivityResult::empty()
}

#[activity]
#[cfg(any())]
async fn after_false() -> ActivityResult {
    missing_function()
}

#[activity]
#[cfg(all())]
async fn after_true() -> ActivityResult {
    ActivityResult::empty()
}

// A type of the same name as a false one is free to exist.
#[allow(non_camel_case_types, dead_code)]
struct after_false;

fn main() {
    let mut registry = ActivityRegistry::new();
    registry.register(before_true, "rust").register(after_true, "rust");
    assert_eq!(registry.len(), 2);
}
