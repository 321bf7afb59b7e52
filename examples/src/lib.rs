//! Runnable examples of the Kruxia Flow Rust worker SDK. Run the demo with
//! `cargo run -p kruxiaflow-worker-examples --bin demo`.
#![forbid(unsafe_code)]
