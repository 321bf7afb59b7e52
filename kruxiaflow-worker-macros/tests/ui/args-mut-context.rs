use kruxiaflow_worker::prelude::*;

#[activity]
async fn mutable(ctx: &mut ActivityContext) -> ActivityResult {
    let _ = ctx;
    ActivityResult::empty()
}

fn main() {}
