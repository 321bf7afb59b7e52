use kruxiaflow_worker::prelude::*;
use kruxiaflow_worker::Activity;

#[derive(Activity)]
struct Forgotten;

fn main() {
    let mut registry = ActivityRegistry::new();
    registry.register(Forgotten, "rust");
}
