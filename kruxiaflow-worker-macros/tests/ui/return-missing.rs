use kruxiaflow_worker::prelude::*;

#[activity]
async fn returns_nothing() {}

fn main() {}
