//! The Python guide's activity samples as data: for each, the example binary that
//! serves it, the guide's input and the exact outputs a workflow receives. The demo
//! runs every sample, and the tests run each binary's registry against them, so a
//! workflow written from the guide runs unchanged against these binaries.

use kruxiaflow_worker::ActivityRegistry;
use kruxiaflow_worker_testing::NewActivity;
use rust_decimal::{Decimal, dec};
use serde_json::{Value, json};
use uuid::Uuid;

/// One of the guide's samples.
#[derive(Debug, Clone)]
pub struct GuideSample {
    /// The example binary whose registry serves it.
    pub binary: &'static str,
    /// The activity to enqueue: name, key, workflow and the guide's parameters.
    pub activity: NewActivity,
    /// Every output the workflow receives, as one JSON object.
    pub outputs: Value,
    /// The cost reported with the result.
    pub cost: Option<Decimal>,
}

/// What the samples need from their surroundings.
#[derive(Debug, Clone)]
pub struct Surroundings {
    /// Base URL of a [`crate::complete::start_local_api`] server, for `call_external_api`.
    pub local_api: String,
    /// The workflow the activities belong to.
    pub workflow_id: Uuid,
    /// Reference of a stored text file holding [`INPUT_FILE_TEXT`], for `process_file`.
    pub input_file: String,
}

/// The text of the file `process_file` reads in the samples.
pub const INPUT_FILE_TEXT: &str = "first line\nsecond line\n";

/// How an example module registers its activities under a worker type.
pub type Register = fn(&mut ActivityRegistry, &str);

/// The example binaries that serve guide samples, with their registration function.
pub const BINARIES: [(&str, Register); 6] = [
    ("quickstart", crate::quickstart::register),
    ("decorators", crate::decorators::register),
    ("class_based", crate::class_based::register),
    ("context", crate::context::register),
    ("files", crate::files::register),
    ("complete", crate::complete::register),
];

/// Every sample of the guide, with its input and exact outputs.
pub fn samples(around: &Surroundings) -> Vec<GuideSample> {
    let sample = |binary, name: &str, params: Value, outputs: Value| GuideSample {
        binary,
        activity: NewActivity::new("rust", name).workflow_id(around.workflow_id).params(params),
        outputs,
        cost: None,
    };
    let items: Vec<String> = (1..=120).map(|i| format!("item-{i}")).collect();
    let upper: Vec<String> = items.iter().map(|i| i.to_uppercase()).collect();
    vec![
        sample("quickstart", "my_activity", json!({"input": 21}), json!({"result": 42})),
        sample("decorators", "process_data", json!({"data": ["a", "b"]}), json!({"result": ["A", "B"]})),
        sample("decorators", "custom_name", json!({}), json!({"output": "done"})),
        sample(
            "class_based",
            "process_text",
            json!({"text": "Hola, ¿cómo estás?"}),
            json!({"result": {"processed": "HOLA, ¿CÓMO ESTÁS?", "language": "es"}}),
        ),
        sample(
            "context",
            "long_running",
            json!({"items": (0..25).collect::<Vec<u32>>()}),
            json!({"result": {"processed": 25}}),
        ),
        sample(
            "files",
            "process_file",
            json!({"file_url": around.input_file}),
            json!({"result": {"url": format!("postgres://{}/process_file/result.txt", around.workflow_id)}}),
        ),
        sample(
            "complete",
            "analyze_text",
            json!({"text": "I love this great product but the delivery was terrible"}),
            json!({"result": {"sentiment": "positive", "confidence": 0.5}}),
        ),
        GuideSample {
            cost: Some(dec!(0.001)),
            ..sample(
                "complete",
                "call_external_api",
                json!({"url": format!("{}/quote", around.local_api), "method": "GET"}),
                json!({"result": {"status": 200, "body": {"quote": "Flow like water."}}}),
            )
        },
        sample(
            "complete",
            "batch_process",
            json!({"items": items}),
            json!({"result": {"processed": 120, "items": upper}}),
        ),
    ]
}
