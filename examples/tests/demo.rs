//! The README's first command: the demo runs as a process, prints its table and exits 0.

use std::process::Command;

#[test]
fn the_demo_prints_every_outcome_and_exits_zero() {
    let output = Command::new(env!("CARGO_BIN_EXE_demo")).output().expect("the demo starts");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "demo failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let rows: Vec<&str> = stdout.lines().filter(|l| l.contains(" yes ") || l.contains(" NO ")).collect();
    assert_eq!(rows.len(), 21, "one row per demo activity:\n{stdout}");
    assert!(rows.iter().all(|r| r.contains(" yes ")), "{stdout}");
    assert!(stdout.contains("file output stored by the fake server: result.txt"));
    assert!(
        stdout.contains(
            "llm_chat's busy model answered 429 with Retry-After: 1, then the answer: asked 2 times in one attempt\n"
        ),
        "{stdout}"
    );
    // The durable-steps row: the paid steps ran once, on the first attempt.
    assert!(
        stdout.contains("research attempt 1: paid $0.024 for 2 calls, then failed PUBLISH_UNAVAILABLE\n"),
        "{stdout}"
    );
    assert!(stdout.contains("research attempt 2: paid $0 (the paid steps were skipped), published"), "{stdout}");
    assert!(stdout.contains("research spend reported in total: $0.024 (two calls at $0.012)\n"), "{stdout}");
    let story = "Once upon a time, a worker streamed every word to whoever was watching.";
    // How many increments the pieces made depends on timing; the text and the end do not.
    let streamed = stdout
        .lines()
        .find_map(|line| line.strip_prefix("llm_chat's WebSocket subscriber received "))
        .unwrap_or_else(|| panic!("no line about the stream subscriber:\n{stdout}"));
    assert!(streamed.ends_with(&format!(r#"" watching."], then complete {{"text":"{story}"}}"#)), "{streamed}");
    assert!(stdout.trim_end().ends_with("every activity ended as expected"));
}
