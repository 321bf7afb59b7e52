use kruxiaflow_worker::prelude::*;

struct Holder;

impl Holder {
    #[activity]
    async fn method(&self) -> ActivityResult {
        ActivityResult::empty()
    }
}

fn main() {}
