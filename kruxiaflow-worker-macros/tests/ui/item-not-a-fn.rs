use kruxiaflow_worker::prelude::*;

#[activity]
struct NotAFunction;

fn main() {}
