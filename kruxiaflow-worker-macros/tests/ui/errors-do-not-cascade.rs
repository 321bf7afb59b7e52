use kruxiaflow_worker::prelude::*;

// The mistake is reported once; registering and using the activity are not errors too.
#[activity(name = "has space")]
async fn misnamed() -> ActivityResult {
    ActivityResult::empty()
}

fn main() {
    let mut registry = ActivityRegistry::new();
    registry.register(misnamed, "rust");
    let _name: &str = misnamed.name();
}
