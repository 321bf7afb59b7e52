use kruxiaflow_worker::prelude::*;

#[derive(serde::Deserialize)]
struct Params {
    n: i64,
}

// One mistake, one error: the `&mut` context is not taken for a second parameters argument.
#[activity]
async fn mutable(params: Params, ctx: &mut ActivityContext) -> ActivityResult {
    let _ = ctx;
    ActivityResult::value("n", params.n)
}

fn main() {}
