//! `#[derive(Activity)]` on named, tuple and unit structs, enums and generic types.
use kruxiaflow_worker::prelude::*;
use kruxiaflow_worker::Activity;

macro_rules! execute_nothing {
    ($($ty:ty),*) => {$(
        impl Execute for $ty {
            type Params = serde_json::Value;
            async fn execute(&self, _: serde_json::Value, _: &ActivityContext) -> Result<ActivityResult, ActivityError> {
                Ok(ActivityResult::empty())
            }
        }
    )*};
}

#[derive(Activity)]
#[activity(name = "process_text")]
struct TextProcessor {
    max_length: usize,
    language: String,
}

#[derive(Activity)]
struct Tuple(u32);

#[derive(Activity)]
struct Unit;

#[derive(Activity)]
enum Mode {
    Fast,
    Slow { factor: u8 },
}

#[derive(Activity)]
#[activity(crate = "::kruxiaflow_worker")]
struct Generic<T>
where
    T: Clone + Send + Sync + 'static,
{
    value: T,
}

execute_nothing!(TextProcessor, Tuple, Unit, Mode);

impl<T: Clone + Send + Sync + 'static> Execute for Generic<T> {
    type Params = ();
    async fn execute(&self, _: (), _: &ActivityContext) -> Result<ActivityResult, ActivityError> {
        let _ = self.value.clone();
        Ok(ActivityResult::empty())
    }
}

fn main() {
    let processor = TextProcessor { max_length: 500, language: "es".into() };
    let _ = (&processor.max_length, &processor.language, Tuple(1).0, Mode::Slow { factor: 2 });
    assert_eq!(processor.name(), "process_text");
    assert_eq!(Tuple(1).name(), "tuple");
    assert_eq!(Unit.name(), "unit");
    assert_eq!(Mode::Fast.name(), "mode");
    assert_eq!(Generic { value: 1u8 }.name(), "generic");
}
