use kruxiaflow_worker::prelude::*;

#[activity]
fn not_async() -> ActivityResult {
    ActivityResult::empty()
}

fn main() {}
