//! PROTOCOL.md §5: upload and download.

use kruxiaflow_worker_testing::FakeServer;
use serde_json::json;
use uuid::Uuid;

use crate::common::Api;

fn file_path(workflow_id: Uuid, filename: &str) -> String {
    format!("/api/v1/workflows/{workflow_id}/activities/render_report/files/{filename}")
}

#[tokio::test]
async fn upload_answers_201_with_metadata_and_stores_the_content_type() {
    let server = FakeServer::start().await;
    let api = Api::new(&server);
    let workflow_id = Uuid::now_v7();
    let reply = api.post_raw(&file_path(workflow_id, "report.txt"), Some("text/plain"), "3 rows rendered\n").await;
    assert_eq!(reply.status, 201);
    let body = reply.json();
    assert_eq!(body["workflow_id"], workflow_id.to_string());
    assert_eq!(body["activity_key"], "render_report");
    assert_eq!(body["filename"], "report.txt");
    assert_eq!(body["size"], 16);
    assert_eq!(body["content_type"], "text/plain");
    assert!(body["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(server.files().bytes(workflow_id, "render_report", "report.txt").unwrap(), b"3 rows rendered\n");
}

#[tokio::test]
async fn upload_without_a_content_type_stores_null() {
    let server = FakeServer::start().await;
    let reply = Api::new(&server).post_raw(&file_path(Uuid::now_v7(), "blob.bin"), None, "\u{0}\u{1}\u{2}").await;
    assert_eq!((reply.status, &reply.json()["content_type"]), (201, &json!(null)));
}

#[tokio::test]
async fn a_second_upload_overwrites_the_first() {
    let server = FakeServer::start().await;
    let api = Api::new(&server);
    let workflow_id = Uuid::now_v7();
    api.post_raw(&file_path(workflow_id, "r.txt"), Some("text/plain"), "old contents").await;
    let reply = api.post_raw(&file_path(workflow_id, "r.txt"), Some("text/csv"), "new").await;
    assert_eq!((reply.json()["size"].as_u64(), reply.json()["content_type"].as_str()), (Some(3), Some("text/csv")));
    assert_eq!(server.files().bytes(workflow_id, "render_report", "r.txt").unwrap(), b"new");
    assert_eq!(server.files().all().len(), 1);
}

#[tokio::test]
async fn download_streams_the_bytes_with_type_disposition_and_length() {
    let server = FakeServer::start().await;
    let workflow_id = Uuid::now_v7();
    server.files().seed(workflow_id, "render_report", "report.txt", b"3 rows rendered\n", Some("text/plain"));
    let response = reqwest::get(format!("{}{}", server.url(), file_path(workflow_id, "report.txt"))).await.unwrap();
    assert_eq!(response.status(), 200);
    let header = |name: &str| response.headers()[name].to_str().unwrap().to_owned();
    assert_eq!(header("content-type"), "text/plain");
    assert_eq!(header("content-disposition"), "attachment; filename=\"report.txt\"");
    assert_eq!(header("content-length"), "16");
    assert_eq!(response.bytes().await.unwrap().as_ref(), b"3 rows rendered\n");
}

#[tokio::test]
async fn download_without_a_stored_type_is_octet_stream() {
    let server = FakeServer::start().await;
    let workflow_id = Uuid::now_v7();
    server.files().seed(workflow_id, "render_report", "blob.bin", &[0, 1, 2], None);
    let response = reqwest::get(format!("{}{}", server.url(), file_path(workflow_id, "blob.bin"))).await.unwrap();
    assert_eq!(response.headers()["content-type"], "application/octet-stream");
}

#[tokio::test]
async fn download_of_a_missing_file_is_the_404_envelope() {
    let server = FakeServer::start().await;
    Api::new(&server).get(&file_path(Uuid::now_v7(), "nope.txt")).await.assert_error(
        404,
        "NOT_FOUND",
        "Not found: File 'nope.txt' not found",
    );
}

#[tokio::test]
async fn filenames_are_percent_decoded_and_taken_literally() {
    let server = FakeServer::start().await;
    let workflow_id = Uuid::now_v7();
    let reply = Api::new(&server).post_raw(&file_path(workflow_id, "a%20b.txt"), Some("text/plain"), "x").await;
    assert_eq!(reply.json()["filename"], "a b.txt");
}
