//! `name`, `output` and `crate`, including the runtime reached through a re-export.
mod facade {
    pub use ::kruxiaflow_worker as worker;
}

use facade::worker::{ActivityContext, ActivityResult};

#[facade::worker::activity(name = "custom-name_2", crate = "crate::facade::worker")]
async fn renamed(ctx: &ActivityContext) -> ActivityResult {
    let _ = ctx;
    ActivityResult::empty()
}

#[facade::worker::activity(output = "total", crate = "crate::facade::worker")]
async fn totals(params: Vec<i64>) -> i64 {
    params.iter().sum()
}

fn main() {
    use facade::worker::Activity as _;
    assert_eq!(renamed.name(), "custom-name_2");
    assert_eq!(totals.name(), "totals");
}
