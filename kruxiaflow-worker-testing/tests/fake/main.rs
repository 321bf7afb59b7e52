//! The fake server's own suite, over real HTTP: each test asserts status and body.

mod common;

mod auth;
mod conformance;
mod faults;
mod files;
mod matrix;
mod process;
mod queue;
mod streaming;
mod validation;
