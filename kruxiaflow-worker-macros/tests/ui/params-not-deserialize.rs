use kruxiaflow_worker::prelude::*;

struct NotDeserialize {
    input: i64,
}

#[activity]
async fn opaque(params: NotDeserialize) -> ActivityResult {
    ActivityResult::value("input", params.input)
}

fn main() {}
