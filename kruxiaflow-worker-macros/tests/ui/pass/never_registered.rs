//! An activity that is defined but never registered gives no warning about code the
//! user never wrote.
#![deny(warnings)]

use kruxiaflow_worker::prelude::*;

#[activity]
async fn unused(params: serde_json::Value, ctx: &ActivityContext) -> ActivityResult {
    let _ = (params, ctx);
    ActivityResult::empty()
}

fn main() {}
