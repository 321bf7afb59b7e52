//! Does `#[activity]` cost anything at run time? The same activity, written with the
//! macro and by hand against the traits, is run through `Activity::run` (JSON decode,
//! body, result conversion) the same number of times.
//!
//! ```text
//! cargo run --release -p kruxiaflow-worker-examples --bin macro_cost -- [both|macro|hand] [ITERATIONS]
//! valgrind --tool=callgrind target/release/macro_cost macro 100000   # instruction counts
//! ```
#![forbid(unsafe_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use kruxiaflow_worker::context::{ActivityInfo, BoxFuture, ContextBackend, HeartbeatError};
use kruxiaflow_worker::decode_params;
use kruxiaflow_worker::files::FileReference;
use kruxiaflow_worker::prelude::*;
use serde_json::{Value, json};

#[derive(serde::Deserialize)]
struct Params {
    a: i64,
    b: i64,
}

#[activity]
async fn add(params: Params) -> Result<ActivityResult, ActivityError> {
    Ok(ActivityResult::value("sum", params.a + params.b))
}

struct AddByHand;

impl Activity for AddByHand {
    fn name(&self) -> &str {
        "add_by_hand"
    }

    async fn run(&self, params: Value, ctx: ActivityContext) -> Result<ActivityResult, ActivityError> {
        let params: Params = decode_params(params, &ctx)?;
        Ok(ActivityResult::value("sum", params.a + params.b))
    }
}

/// A context backend that does nothing: only the activity's own work is measured.
struct Nothing;

impl ContextBackend for Nothing {
    fn heartbeat(&self) -> BoxFuture<'_, Result<(), HeartbeatError>> {
        Box::pin(async { Ok(()) })
    }

    fn download<'a>(&'a self, _: &'a FileReference, _: &'a Path) -> BoxFuture<'a, Result<(), ActivityError>> {
        Box::pin(async { Ok(()) })
    }

    fn upload<'a>(&'a self, _: &'a FileReference, _: &'a Path, _: &'a str) -> BoxFuture<'a, Result<(), ActivityError>> {
        Box::pin(async { Ok(()) })
    }
}

async fn time(activity: &impl Activity, iterations: u32) -> f64 {
    let ctx = ActivityContext::new(ActivityInfo::new("rust", activity.name()), Arc::new(Nothing));
    let params = json!({"a": 40, "b": 2});
    let started = Instant::now();
    for _ in 0..iterations {
        let result = activity.run(params.clone(), ctx.clone()).await.expect("the activity succeeds");
        std::hint::black_box(result);
    }
    started.elapsed().as_nanos() as f64 / f64::from(iterations)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| "both".to_owned());
    let iterations: u32 = args.next().and_then(|n| n.parse().ok()).unwrap_or(1_000_000);
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("a runtime");
    runtime.block_on(async {
        if which != "hand" {
            println!("#[activity]  {:.1} ns per run ({iterations} runs)", time(&add, iterations).await);
        }
        if which != "macro" {
            println!("by hand      {:.1} ns per run ({iterations} runs)", time(&AddByHand, iterations).await);
        }
    });
}
