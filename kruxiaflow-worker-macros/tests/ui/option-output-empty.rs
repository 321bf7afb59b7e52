use kruxiaflow_worker::prelude::*;

#[activity(output = " ")]
async fn blank_output() -> i64 {
    1
}

fn main() {}
