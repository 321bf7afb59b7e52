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
    assert_eq!(rows.len(), 18, "one row per demo activity:\n{stdout}");
    assert!(rows.iter().all(|r| r.contains(" yes ")), "{stdout}");
    assert!(stdout.contains("file output stored by the fake server: result.txt"));
    assert!(stdout.trim_end().ends_with("every activity ended as expected"));
}
