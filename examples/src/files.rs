//! The guide's file sample: download an input from workflow storage, transform it,
//! upload the result and return its reference.

use kruxiaflow_worker::prelude::*;

/// Parameters of [`process_file`]: `{"file_url": reference}`.
#[derive(Debug, serde::Deserialize)]
pub struct FileParams {
    /// Reference of the input, as another activity's file output gives it.
    pub file_url: String,
}

/// Downloads `file_url`, upper-cases its text into `<local>.out`, uploads that as
/// `result.txt`; `result` is `{"url": reference of result.txt}`.
#[activity]
pub async fn process_file(params: FileParams, ctx: &ActivityContext) -> Result<ActivityResult, ActivityError> {
    let local_path = ctx.download_file(&params.file_url).await?;
    let content = tokio::fs::read_to_string(&local_path).await?;
    let result = transform(&content);
    let mut output_path = local_path.into_os_string();
    output_path.push(".out");
    tokio::fs::write(&output_path, result).await?;
    let result_url = ctx.upload_file(&output_path, "result.txt").await?;
    Ok(ActivityResult::value("result", serde_json::json!({"url": result_url})))
}

/// The transformation: upper-cases the text.
fn transform(content: &str) -> String {
    content.to_uppercase()
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
    async fn uploads_the_upper_cased_file_and_returns_its_reference() {
        let builder = MockContext::builder("rust", "process_file");
        let input = builder.reference("input.txt");
        let mock = builder.file(&input, "one\ntwo\n").build();
        let result = mock.run(&process_file, json!({"file_url": input})).await.unwrap();
        assert_eq!(mock.uploaded("result.txt").as_deref(), Some(&b"ONE\nTWO\n"[..]));
        assert_eq!(result.outputs().len(), 1);
        assert_eq!(result.output("result"), Some(&json!({"url": mock.reference("result.txt")})));
    }
}
