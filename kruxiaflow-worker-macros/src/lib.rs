//! Procedural macros for `kruxiaflow-worker`: `#[activity]` and `#[derive(Activity)]`.
#![forbid(unsafe_code)]
