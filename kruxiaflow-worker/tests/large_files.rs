//! A 200 MiB file through download and upload with flat memory. This is its own test
//! binary so that no other test shares the process whose memory is measured.
#![cfg(target_os = "linux")]

use std::io::{BufWriter, Read, Write};
use std::path::Path;
use std::time::Duration;

use kruxiaflow_worker::prelude::*;
use kruxiaflow_worker_testing::{FakeServer, NewActivity, RetrySettings};
use serde_json::json;

const SIZE_MIB: usize = 200;

/// A `kB` field of `/proc/self/status` (`VmRSS`, `VmHWM`), in KiB.
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap_or_else(|| panic!("no {field}"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn write_pattern(path: &Path) {
    let mut out = BufWriter::new(std::fs::File::create(path).unwrap());
    let mut chunk: Vec<u8> = (0..64 * 1024).map(|j| (j % 251) as u8).collect();
    for i in 0..(SIZE_MIB as u64) * 16 {
        // Each chunk carries its index, so a misplaced chunk cannot compare equal.
        chunk[..8].copy_from_slice(&i.to_le_bytes());
        out.write_all(&chunk).unwrap();
    }
    out.flush().unwrap();
}

fn same_contents(a: &Path, b: &Path) -> bool {
    let (mut a, mut b) = (std::fs::File::open(a).unwrap(), std::fs::File::open(b).unwrap());
    let (mut x, mut y) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = a.read(&mut x).unwrap();
        let m = b.read(&mut y[..n.max(1)]).unwrap();
        if n != m || x[..n] != y[..m] {
            return false;
        }
        if n == 0 {
            return true;
        }
    }
}

#[activity]
async fn copy_file(params: serde_json::Value, ctx: &ActivityContext) -> Result<ActivityResult, ActivityError> {
    let input = ctx.download_file(params["input"].as_str().unwrap_or_default()).await?;
    let reference = ctx.upload_file(&input, "copy.bin").await?;
    Ok(ActivityResult::empty().with_output(ActivityOutput::file("copy.bin", reference)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_mib_file_round_trips_through_download_and_upload_with_flat_memory() {
    let scratch = tempfile::tempdir().unwrap();
    let source = scratch.path().join("big.bin");
    write_pattern(&source);
    let server = FakeServer::start().await;
    let workflow_id = uuid::Uuid::now_v7();
    server.files().seed_from_path(workflow_id, "extract", "big.bin", &source, None).unwrap();
    let config = WorkerConfig { poll_interval: Duration::from_millis(10), ..WorkerConfig::new(server.url()) };
    let mut registry = ActivityRegistry::new();
    registry.register(copy_file, "rust");
    let manager = WorkerManager::new(config, registry);
    let handle = manager.handle();
    let worker = tokio::spawn(manager.run(std::future::pending()));

    // Warm up (connections, buffers, threads), then measure from a reset peak.
    let warm = server.enqueue(NewActivity::new("rust", "missing_on_purpose").retry(RetrySettings::attempts(1)));
    server.wait_for(warm).await;
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let baseline = status_kib("VmRSS");
    let started = std::time::Instant::now();
    let id = server.enqueue(
        NewActivity::new("rust", "copy_file")
            .workflow_id(workflow_id)
            .params(json!({"input": format!("postgres://{workflow_id}/extract/big.bin")})),
    );
    let completion = server.wait_for(id).await.expect_completed();
    let elapsed = started.elapsed();
    let growth_mib = status_kib("VmHWM").saturating_sub(baseline) as f64 / 1024.0;
    handle.shutdown();
    worker.await.unwrap().unwrap();

    println!(
        "{SIZE_MIB} MiB down and up in {elapsed:.2?} ({:.0} MB/s each way, worker and fake in one process); peak RSS growth {growth_mib:.1} MiB",
        (SIZE_MIB as f64 * 1.048_576 * 2.0) / elapsed.as_secs_f64() / 2.0
    );
    assert_eq!(completion.output["copy.bin"], format!("postgres://{workflow_id}/copy_file/copy.bin"));
    let stored = server.files().get(workflow_id, "copy_file", "copy.bin").unwrap();
    assert_eq!(stored.size, (SIZE_MIB << 20) as u64);
    assert!(same_contents(&source, stored.path()), "the uploaded copy differs from the source");
    assert!(growth_mib < 32.0, "peak RSS grew by {growth_mib:.1} MiB moving a {SIZE_MIB} MiB file");
}
