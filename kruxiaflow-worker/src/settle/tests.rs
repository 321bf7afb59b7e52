use rust_decimal::Decimal;

use super::*;
use crate::UsageEntry;

const OUTCOMES: [&str; 5] = ["ok", "error", "panic", "aborted", "not started"];
const CANCELS: [Option<CancelReason>; 5] = [
    None,
    Some(CancelReason::Requested),
    Some(CancelReason::Timeout),
    Some(CancelReason::Shutdown),
    Some(CancelReason::LeaseLost),
];

fn outcome(name: &str) -> HandlerOutcome {
    match name {
        "ok" => HandlerOutcome::Returned(Ok(ActivityResult::value("n", 1))),
        "error" => HandlerOutcome::Returned(Err(ActivityError::terminal("BAD_INPUT", "no"))),
        "panic" => HandlerOutcome::Returned(Err(ActivityError::from_panic(&"boom"))),
        "aborted" => HandlerOutcome::Aborted,
        _ => HandlerOutcome::NotStarted,
    }
}

fn spend() -> Spend {
    Spend { cost: Some(Decimal::new(5, 3)), usage: vec![UsageEntry::new("openai", "gpt-4o-mini").input_tokens(3)] }
}

/// (endpoint, error code, retryable) of a report.
type Sent = (&'static str, String, bool);

/// What is sent for one combination, or `None` for no report.
fn settled(name: &str, cancelled: Option<CancelReason>, lease: LeaseState) -> Option<Sent> {
    let ending =
        Ending { outcome: outcome(name), cancelled, lease, spend: spend(), timeout: Some(Duration::from_secs(3)) };
    let (report, body) = settle("w", ending)?;
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&body).unwrap(), report.to_json(), "body is the report");
    let json = report.to_json();
    assert_eq!(json["cost_usd"], "0.005", "spend rides on every report");
    let code = json["error"]["code"].as_str().unwrap_or("").to_owned();
    Some((report.endpoint(), code, json["error"]["retryable"].as_bool().unwrap_or(false)))
}

#[test]
fn every_combination_of_outcome_cancellation_and_lease_settles_by_the_table() {
    // Rows: outcome; columns: not cancelled, requested, timeout, shutdown, lease lost
    // (the handler's view; the lease state is what decides about reporting at all).
    let c = |code: &str, retryable: bool| Some(("fail", code.to_owned(), retryable));
    let ok = Some(("complete", String::new(), false));
    let table: [(&str, [Option<Sent>; 5]); 5] = [
        ("ok", [ok.clone(), ok.clone(), ok.clone(), ok.clone(), ok.clone()]),
        (
            "error",
            [
                c("BAD_INPUT", false),
                c("BAD_INPUT", false),
                c("TIMEOUT", true),
                c("WORKER_SHUTDOWN", true),
                c("BAD_INPUT", false),
            ],
        ),
        (
            "panic",
            [c("PANIC", true), c("PANIC", true), c("TIMEOUT", true), c("WORKER_SHUTDOWN", true), c("PANIC", true)],
        ),
        (
            "aborted",
            [
                c("EXECUTION_ERROR", true),
                c("EXECUTION_ERROR", true),
                c("TIMEOUT", true),
                c("WORKER_SHUTDOWN", true),
                c("EXECUTION_ERROR", true),
            ],
        ),
        (
            "not started",
            [
                c("EXECUTION_ERROR", true),
                c("EXECUTION_ERROR", true),
                c("TIMEOUT", true),
                c("WORKER_SHUTDOWN", true),
                c("EXECUTION_ERROR", true),
            ],
        ),
    ];
    assert_eq!(table.each_ref().map(|(name, _)| *name), OUTCOMES);
    for (name, row) in table {
        for (cancelled, expected) in CANCELS.into_iter().zip(row) {
            assert_eq!(settled(name, cancelled, LeaseState::Held), expected, "{name}, {cancelled:?}, held");
            assert_eq!(settled(name, cancelled, LeaseState::Unknown), expected, "{name}, {cancelled:?}, unknown");
            assert_eq!(settled(name, cancelled, LeaseState::Lost), None, "{name}, {cancelled:?}, lost");
        }
    }
}

#[test]
fn a_timeout_names_the_limit() {
    let ending = Ending {
        outcome: HandlerOutcome::Aborted,
        cancelled: Some(CancelReason::Timeout),
        lease: LeaseState::Held,
        spend: Spend::default(),
        timeout: Some(Duration::from_secs(1)),
    };
    let (report, _) = settle("w", ending).unwrap();
    assert_eq!(report.to_json()["error"]["message"], "Activity execution timed out after 1s");
}

#[test]
fn an_output_over_the_body_limit_fails_terminally_with_its_size_and_keeps_the_spend() {
    let big = "x".repeat(MAX_JSON_BODY);
    let ending = Ending {
        outcome: HandlerOutcome::Returned(Ok(ActivityResult::value("text", big))),
        cancelled: None,
        lease: LeaseState::Held,
        spend: spend(),
        timeout: None,
    };
    let original = Report::from_outcome("w", Ok(ActivityResult::value("text", "x".repeat(MAX_JSON_BODY))), spend());
    let size = crate::protocol::encode(&original).len();
    let (report, body) = settle("w", ending).unwrap();
    let json = report.to_json();
    assert_eq!(report.endpoint(), "fail");
    assert_eq!(json["error"]["code"], "OUTPUT_TOO_LARGE");
    assert_eq!(json["error"]["retryable"], false);
    assert_eq!(
        json["error"]["message"],
        format!(
            "the output is {size} bytes of JSON, over the server's limit of 52428800 bytes; \
             return large data as a file output (ctx.file_output) instead"
        )
    );
    assert_eq!(json["cost_usd"], "0.005");
    assert_eq!(json["usage"][0]["input_tokens"], 3);
    assert_eq!(body, crate::protocol::encode(&report));
}

#[test]
fn an_oversized_failure_message_is_cut_so_the_failure_still_settles() {
    let ending = Ending {
        outcome: HandlerOutcome::Returned(Err(ActivityError::terminal("HUGE", "y".repeat(MAX_JSON_BODY)))),
        cancelled: None,
        lease: LeaseState::Held,
        spend: Spend::default(),
        timeout: None,
    };
    let (report, body) = settle("w", ending).unwrap();
    let message = report.to_json()["error"]["message"].as_str().unwrap().to_owned();
    assert_eq!(message.chars().count(), MAX_MESSAGE_CHARS + "… (message cut at 65536 characters)".chars().count());
    assert!(body.len() < MAX_JSON_BODY);
}
