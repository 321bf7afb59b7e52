//! The worker against the fake server, over real HTTP on 127.0.0.1: one test per
//! behaviour, each named for it.

mod common;

mod auth;
mod concurrency;
mod execution;
mod files;
mod hostile;
mod limits;
mod logs;
mod mock_parity;
mod production;
mod reports;
mod scripted;
mod shutdown;
mod startup;
mod steps;
mod streaming;
mod tls;
mod wire;
