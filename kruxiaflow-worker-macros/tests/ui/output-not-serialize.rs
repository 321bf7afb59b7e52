use kruxiaflow_worker::prelude::*;

struct Opaque;

#[activity(output = "value")]
async fn opaque_output() -> Opaque {
    Opaque
}

fn main() {}
