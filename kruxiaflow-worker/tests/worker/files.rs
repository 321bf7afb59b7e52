//! Files: streaming download and upload, file outputs that reach the workflow, and
//! names that cannot escape the activity's temp dir.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kruxiaflow_worker::prelude::*;
use kruxiaflow_worker_testing::{Endpoint, FakeServer, Fault, NewActivity, RetrySettings};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::common::{RunningWorker, activity, config};

/// Downloads `params.input`, uppercases it, and returns it as the file output `result.txt`.
fn shout_file() -> impl Activity {
    activity("shout_file", |params: Value, ctx| async move {
        let input = ctx.download_file(params["input"].as_str().unwrap_or_default()).await?;
        let text = tokio::fs::read_to_string(&input).await?;
        let result = ctx.temp_dir()?.join("result.txt");
        tokio::fs::write(&result, text.to_uppercase()).await?;
        Ok(ActivityResult::empty().with_output(ctx.file_output("result.txt", &result).await?))
    })
}

fn registry_with(activity: impl Activity) -> ActivityRegistry {
    let mut registry = ActivityRegistry::new();
    registry.register(activity, "rust");
    registry
}

#[tokio::test]
async fn an_activity_downloads_transforms_and_uploads_a_file_output_that_reaches_the_workflow() {
    let server = FakeServer::start().await;
    let workflow_id = Uuid::now_v7();
    server.files().seed(workflow_id, "extract", "input.txt", b"three rows rendered\n", Some("text/plain"));
    let id = server.enqueue(
        NewActivity::new("rust", "shout_file")
            .key("shout")
            .workflow_id(workflow_id)
            .params(json!({"input": format!("postgres://{workflow_id}/extract/input.txt")}))
            .output("result.txt", OutputType::File),
    );
    let worker = RunningWorker::start(config(&server), registry_with(shout_file()));

    let completion = server.wait_for(id).await.expect_completed();
    worker.stop().await.unwrap();

    let reference = format!("postgres://{workflow_id}/shout/result.txt");
    assert_eq!(completion.output["result.txt"], reference, "the completion carries the reference");
    let stored = server.files().get(workflow_id, "shout", "result.txt").expect("the file is stored");
    assert_eq!(stored.content_type.as_deref(), Some("text/plain"));
    assert_eq!(server.files().bytes(workflow_id, "shout", "result.txt").unwrap(), b"THREE ROWS RENDERED\n");
    let upload = server.log().to(Endpoint::FileUpload)[0].seq;
    let complete = server.log().to(Endpoint::Complete)[0].seq;
    assert!(upload < complete, "uploaded before the completion was sent");
}

#[tokio::test]
async fn a_truncated_download_is_detected_and_retried_from_the_start() {
    let server = FakeServer::start().await;
    let workflow_id = Uuid::now_v7();
    server.files().seed(workflow_id, "extract", "input.txt", &[b'a'; 50_000], None);
    server.faults().inject(Endpoint::FileDownload, Fault::TruncateBody, 2);
    let id = server.enqueue(
        NewActivity::new("rust", "shout_file")
            .workflow_id(workflow_id)
            .params(json!({"input": format!("postgres://{workflow_id}/extract/input.txt")})),
    );
    let worker = RunningWorker::start(config(&server), registry_with(shout_file()));

    server.wait_for(id).await.expect_completed();
    worker.stop().await.unwrap();

    assert_eq!(server.files().bytes(workflow_id, "shout_file", "result.txt").unwrap(), vec![b'A'; 50_000]);
    assert_eq!(server.log().to(Endpoint::FileDownload).len(), 3);
}

#[tokio::test]
async fn a_download_cut_short_every_time_fails_saying_so() {
    let server = FakeServer::start().await;
    let workflow_id = Uuid::now_v7();
    server.files().seed(workflow_id, "extract", "input.txt", &[b'a'; 10_000], None);
    server.faults().inject(Endpoint::FileDownload, Fault::TruncateBody, 100);
    let id = server.enqueue(
        NewActivity::new("rust", "shout_file")
            .workflow_id(workflow_id)
            .retry(RetrySettings::attempts(1))
            .params(json!({"input": format!("postgres://{workflow_id}/extract/input.txt")})),
    );
    let worker = RunningWorker::start(config(&server), registry_with(shout_file()));

    let failure = server.wait_for(id).await.expect_failed();
    worker.stop().await.unwrap();

    assert_eq!(failure.code, "FILE_TRANSFER_FAILED");
    assert!(failure.retryable);
    assert!(failure.message.contains("download of postgres://"), "{}", failure.message);
}

#[tokio::test]
async fn a_missing_file_fails_with_file_not_found_naming_the_reference() {
    let server = FakeServer::start().await;
    let workflow_id = Uuid::now_v7();
    let reference = format!("postgres://{workflow_id}/extract/nope.txt");
    let id = server.enqueue(NewActivity::new("rust", "shout_file").params(json!({"input": reference})));
    let worker = RunningWorker::start(config(&server), registry_with(shout_file()));

    let failure = server.wait_for(id).await.expect_failed();
    worker.stop().await.unwrap();

    assert_eq!((failure.code.as_str(), failure.retryable), ("FILE_NOT_FOUND", false));
    assert_eq!(failure.message, format!("file not found: {reference}"));
}

#[tokio::test]
async fn traversal_attempts_are_refused_before_any_request_is_sent() {
    let server = FakeServer::start().await;
    let attempts = activity("sneaky", |_params, ctx: ActivityContext| async move {
        let wf = ctx.workflow_id();
        let local = ctx.temp_dir()?.join("local.txt");
        tokio::fs::write(&local, "x").await?;
        let mut codes = Vec::new();
        for name in ["../x", "a/b", "/etc/passwd", "a\0b", "", ".bashrc", ".."] {
            codes.push(ctx.upload_file(&local, name).await.unwrap_err().code().to_owned());
        }
        for reference in [
            format!("postgres://{wf}/key/../x"),
            format!("postgres://{wf}/key/a/b"),
            format!("postgres://{wf}/../../etc/passwd"),
            format!("postgres://{wf}/key/a%00b"),
            format!("postgres://{wf}/key/"),
            "file:///etc/passwd".to_owned(),
        ] {
            codes.push(ctx.download_file(&reference).await.unwrap_err().code().to_owned());
        }
        Ok(ActivityResult::value("codes", codes))
    });
    let id = server.enqueue(NewActivity::new("rust", "sneaky"));
    let worker = RunningWorker::start(config(&server), registry_with(attempts));

    let completion = server.wait_for(id).await.expect_completed();
    worker.stop().await.unwrap();

    let codes: Vec<String> = serde_json::from_value(completion.output["codes"].clone()).unwrap();
    assert_eq!(&codes[..7], ["INVALID_FILENAME"; 7]);
    assert_eq!(&codes[7..], ["INVALID_FILE_REFERENCE"; 6]);
    assert!(server.log().to(Endpoint::FileUpload).is_empty() && server.log().to(Endpoint::FileDownload).is_empty());
}

#[tokio::test]
async fn uploading_a_missing_local_file_names_the_path() {
    let server = FakeServer::start().await;
    let uploads = activity("uploads", |_params, ctx: ActivityContext| async move {
        ctx.upload_file("/nonexistent/report.pdf", "report.pdf").await?;
        Ok(ActivityResult::empty())
    });
    let id = server.enqueue(NewActivity::new("rust", "uploads"));
    let worker = RunningWorker::start(config(&server), registry_with(uploads));

    let failure = server.wait_for(id).await.expect_failed();
    worker.stop().await.unwrap();

    assert_eq!((failure.code.as_str(), failure.retryable), ("LOCAL_FILE_NOT_FOUND", false));
    assert_eq!(failure.message, "cannot upload /nonexistent/report.pdf: no such file");
}

#[tokio::test]
async fn the_temp_dir_is_gone_after_success_failure_and_timeout() {
    let server = FakeServer::start().await;
    let dirs: Arc<Mutex<Vec<PathBuf>>> = Arc::default();
    let seen = dirs.clone();
    let uses_temp = activity("uses_temp", move |params: Value, ctx: ActivityContext| {
        let seen = seen.clone();
        async move {
            let dir = ctx.temp_dir()?;
            tokio::fs::write(dir.join("scratch.bin"), [0u8; 1024]).await?;
            seen.lock().unwrap().push(dir);
            match params["end"].as_str() {
                Some("fail") => Err(ActivityError::terminal("FAILED", "on purpose")),
                Some("hang") => {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    Ok(ActivityResult::empty())
                }
                _ => Ok(ActivityResult::empty()),
            }
        }
    });
    let ids: Vec<_> = ["succeed", "fail", "hang"]
        .iter()
        .map(|end| {
            server.enqueue(
                NewActivity::new("rust", "uses_temp")
                    .timeout_seconds(1)
                    .retry(RetrySettings::attempts(1))
                    .params(json!({"end": end})),
            )
        })
        .collect();
    let worker = RunningWorker::start(config(&server), registry_with(uses_temp));

    for id in &ids {
        server.wait_for(*id).await;
    }
    worker.stop().await.unwrap();

    assert_eq!(server.activity(ids[2]).unwrap().outcome.unwrap().expect_failed().code, "TIMEOUT");
    let dirs = dirs.lock().unwrap();
    assert_eq!(dirs.len(), 3);
    for dir in dirs.iter() {
        assert!(!dir.exists(), "{} was left behind", dir.display());
    }
}
