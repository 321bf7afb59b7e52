use kruxiaflow_worker::prelude::*;

#[activity(name = my_name)]
async fn unquoted() -> ActivityResult {
    ActivityResult::empty()
}

fn main() {}
