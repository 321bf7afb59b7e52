//! Files: download an input from workflow storage, transform it, upload the result
//! and return it as a file output.

use kruxiaflow_worker::prelude::*;

/// Parameters of [`process_file`].
#[derive(Debug, serde::Deserialize)]
pub struct FileParams {
    /// `postgres://{workflow_id}/{activity_key}/{filename}` of the input.
    pub input: String,
}

/// Uppercases a text file and returns it as the file output `result.txt`.
#[activity]
pub async fn process_file(params: FileParams, ctx: &ActivityContext) -> Result<ActivityResult, ActivityError> {
    let input = ctx.download_file(&params.input).await?;
    let text = tokio::fs::read_to_string(&input).await?;
    let output = ctx.temp_dir()?.join("result.txt");
    tokio::fs::write(&output, text.to_uppercase()).await?;
    let lines = text.lines().count();
    Ok(ActivityResult::value("lines", lines).with_output(ctx.file_output("result.txt", &output).await?))
}

/// Registers this example's activities under `worker`.
pub fn register(registry: &mut ActivityRegistry, worker: &str) {
    registry.register(process_file, worker);
}

#[cfg(test)]
mod tests {
    use super::*;
    use kruxiaflow_worker_testing::MockContext;
    use serde_json::json;

    #[tokio::test]
    async fn uppercases_the_input_into_a_file_output() {
        let mock = MockContext::new("rust", "process_file");
        let input = mock.reference("input.txt");
        let mock = mock.file(&input, "one\ntwo\n");
        let result = mock.run(&process_file, json!({"input": input})).await.unwrap();
        assert_eq!(mock.uploaded("result.txt").as_deref(), Some(&b"ONE\nTWO\n"[..]));
        assert_eq!(result.output("lines"), Some(&json!(2)));
        assert!(result.output("result.txt").unwrap().as_str().unwrap().ends_with("/process_file/result.txt"));
    }
}
