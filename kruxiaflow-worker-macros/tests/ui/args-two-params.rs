use kruxiaflow_worker::prelude::*;

#[activity]
async fn two(a: i64, b: i64) -> ActivityResult {
    ActivityResult::value("sum", a + b)
}

fn main() {}
