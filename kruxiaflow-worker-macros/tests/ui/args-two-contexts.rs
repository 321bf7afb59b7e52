use kruxiaflow_worker::prelude::*;

#[activity]
async fn twice(ctx: ActivityContext, again: &ActivityContext) -> ActivityResult {
    let _ = (ctx, again);
    ActivityResult::empty()
}

fn main() {}
