use kruxiaflow_worker::prelude::*;

// The mistake is reported once; registering the activity elsewhere is not an error too.
#[activity(name = "has space")]
async fn misnamed() -> ActivityResult {
    ActivityResult::empty()
}

fn main() {
    let mut registry = ActivityRegistry::new();
    registry.register(misnamed, "rust");
    assert_eq!(misnamed.name(), "has space");
}
