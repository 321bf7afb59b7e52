use kruxiaflow_worker::prelude::*;

#[activity(nme = "typo", output = "")]
fn many_mistakes(a: i64, b: i64) -> ActivityResult {
    ActivityResult::value("sum", a + b)
}

fn main() {}
