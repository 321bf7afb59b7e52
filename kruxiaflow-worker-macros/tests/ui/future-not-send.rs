use kruxiaflow_worker::prelude::*;
use std::rc::Rc;

#[activity]
async fn holds_rc(ctx: &ActivityContext) -> ActivityResult {
    let shared = Rc::new(1);
    ctx.heartbeat().await.ok();
    ActivityResult::value("n", *shared)
}

fn main() {}
