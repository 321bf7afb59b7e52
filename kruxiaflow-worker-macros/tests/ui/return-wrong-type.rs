use kruxiaflow_worker::prelude::*;

#[activity]
async fn returns_text() -> String {
    "done".to_owned()
}

fn main() {}
