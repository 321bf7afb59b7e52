use kruxiaflow_worker::prelude::*;
use kruxiaflow_worker::Activity;

#[derive(Activity)]
#[activity(name = "process.text")]
struct Processor;

impl Execute for Processor {
    type Params = ();
    async fn execute(&self, _: (), _: &ActivityContext) -> Result<ActivityResult, ActivityError> {
        Ok(ActivityResult::empty())
    }
}

fn main() {}
