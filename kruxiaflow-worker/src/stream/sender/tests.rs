//! The sender against an in-memory transport, on tokio's paused clock.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use serde_json::{Map, json};

use super::*;
use crate::stream::MAX_QUEUED_BYTES;

#[derive(Debug, Clone, PartialEq)]
enum Call {
    Subscribers,
    Token(String, u32),
    End(StreamEnd),
}

/// Answers as scripted and records every call.
#[derive(Default)]
struct Script {
    subscribers: AtomicU32,
    /// Answers for the next token requests, before the normal answer resumes.
    token_failures: Mutex<VecDeque<bool>>,
    hang_tokens: AtomicBool,
    hang_ends: AtomicBool,
    /// Subscriber checks fail definitively (a 401 for the stream).
    refuse_subscribers: AtomicBool,
    calls: Mutex<Vec<Call>>,
}

impl Script {
    fn with_subscribers(count: u32) -> Arc<Self> {
        let script = Self::default();
        script.subscribers.store(count, Ordering::SeqCst);
        Arc::new(script)
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    fn record(&self, call: Call) {
        self.calls.lock().unwrap().push(call);
    }

    /// The next `n` token requests fail, transiently or not.
    fn fail_tokens(&self, n: usize, transient: bool) {
        self.token_failures.lock().unwrap().extend(std::iter::repeat_n(transient, n));
    }
}

struct Memory(Arc<Script>);

impl StreamTransport for Memory {
    fn subscribers(&self) -> BoxFuture<'_, Result<u32, Failure>> {
        self.0.record(Call::Subscribers);
        let count = self.0.subscribers.load(Ordering::SeqCst);
        let refused = self.0.refuse_subscribers.load(Ordering::SeqCst);
        Box::pin(async move {
            match refused {
                true => Err(Failure { transient: false, message: "HTTP 401".to_owned() }),
                false => Ok(count),
            }
        })
    }

    fn token<'a>(&'a self, text: &'a str, index: u32) -> BoxFuture<'a, Result<u32, Failure>> {
        self.0.record(Call::Token(text.to_owned(), index));
        let failure = self.0.token_failures.lock().unwrap().pop_front();
        let hang = self.0.hang_tokens.load(Ordering::SeqCst);
        let count = self.0.subscribers.load(Ordering::SeqCst);
        Box::pin(async move {
            if hang {
                std::future::pending::<()>().await;
            }
            match failure {
                Some(transient) => Err(Failure { transient, message: "HTTP 500".to_owned() }),
                None => Ok(count),
            }
        })
    }

    fn end<'a>(&'a self, end: &'a StreamEnd) -> BoxFuture<'a, Result<(), Failure>> {
        self.0.record(Call::End(end.clone()));
        let hang = self.0.hang_ends.load(Ordering::SeqCst);
        Box::pin(async move {
            if hang {
                std::future::pending::<()>().await;
            }
            Ok(())
        })
    }
}

/// A started stream that sends each increment as soon as the last was answered.
fn started(script: &Arc<Script>) -> (StreamDriver, TokenStream) {
    lingering(script, Duration::ZERO)
}

fn lingering(script: &Arc<Script>, linger: Duration) -> (StreamDriver, TokenStream) {
    let (mut driver, stream) = StreamDriver::new(Memory(Arc::clone(script)), linger);
    driver.start(&tokio::runtime::Handle::current());
    (driver, stream)
}

fn tokens(calls: &[Call]) -> usize {
    calls.iter().filter(|call| matches!(call, Call::Token(..))).count()
}

fn complete(text: &str) -> StreamEnd {
    StreamEnd::Complete(Map::from_iter([("text".to_owned(), json!(text))]))
}

fn token(text: &str, index: u32) -> Call {
    Call::Token(text.to_owned(), index)
}

#[tokio::test(start_paused = true)]
async fn nobody_subscribed_means_no_tokens_a_check_every_second_and_no_end() {
    let script = Script::with_subscribers(0);
    let (driver, stream) = started(&script);
    stream.send("dropped");
    tokio::time::sleep(Duration::from_millis(3500)).await;
    stream.flush().await;
    driver.finish(Some(complete("dropped"))).await;
    // Checks at 0, 1, 2 and 3 s, and one at the end: still nobody, so no end.
    assert_eq!(script.calls(), vec![Call::Subscribers; 5]);
}

#[tokio::test(start_paused = true)]
async fn text_queued_while_the_sender_was_busy_goes_out_as_one_increment() {
    let script = Script::with_subscribers(1);
    let (driver, stream) = started(&script);
    for piece in ["a", "b", "c"] {
        stream.send(piece);
    }
    stream.flush().await;
    stream.send("d");
    stream.send("e");
    stream.flush().await;
    driver.finish(Some(complete("abcde"))).await;
    assert_eq!(script.calls(), [Call::Subscribers, token("abc", 0), token("de", 1), Call::End(complete("abcde"))]);
}

#[tokio::test(start_paused = true)]
async fn a_subscriber_who_joins_later_gets_what_is_sent_from_then_on() {
    let script = Script::with_subscribers(0);
    let (driver, stream) = started(&script);
    stream.send("before ");
    stream.flush().await;
    script.subscribers.store(1, Ordering::SeqCst);
    tokio::time::sleep(RECHECK_EVERY + Duration::from_millis(100)).await;
    stream.send("after");
    stream.flush().await;
    driver.finish(Some(complete("before after"))).await;
    assert_eq!(
        script.calls(),
        [Call::Subscribers, Call::Subscribers, token("after", 0), Call::End(complete("before after"))]
    );
}

#[tokio::test(start_paused = true)]
async fn a_transient_failure_is_retried_with_the_same_text_and_index() {
    let script = Script::with_subscribers(1);
    let (driver, stream) = started(&script);
    stream.flush().await;
    script.fail_tokens(2, true);
    stream.send("x");
    stream.flush().await;
    stream.send("y");
    stream.flush().await;
    driver.finish(None).await;
    assert_eq!(script.calls(), [Call::Subscribers, token("x", 0), token("x", 0), token("x", 0), token("y", 1)]);
}

#[tokio::test(start_paused = true)]
async fn a_stream_that_keeps_failing_gives_up_but_its_subscribers_still_get_the_end() {
    let script = Script::with_subscribers(1);
    let (driver, stream) = started(&script);
    script.fail_tokens(3, true);
    stream.send("x");
    stream.flush().await;
    stream.send("dropped");
    stream.flush().await;
    let end = StreamEnd::Error("boom".to_owned());
    driver.finish(Some(end.clone())).await;
    assert_eq!(script.calls(), [Call::Subscribers, token("x", 0), token("x", 0), token("x", 0), Call::End(end)]);
}

#[tokio::test(start_paused = true)]
async fn a_definitive_failure_gives_up_at_once() {
    let script = Script::with_subscribers(1);
    let (driver, stream) = started(&script);
    stream.flush().await;
    script.fail_tokens(1, false);
    stream.send("x");
    stream.flush().await;
    stream.send("y");
    stream.flush().await;
    driver.finish(None).await;
    assert_eq!(script.calls(), [Call::Subscribers, token("x", 0)]);
}

#[tokio::test(start_paused = true)]
async fn when_the_last_subscriber_leaves_the_stream_idles_until_one_is_back() {
    let script = Script::with_subscribers(1);
    let (driver, stream) = started(&script);
    tokio::time::sleep(Duration::from_millis(10)).await;
    script.subscribers.store(0, Ordering::SeqCst);
    stream.send("to nobody");
    stream.flush().await;
    stream.send("dropped");
    stream.flush().await;
    script.subscribers.store(1, Ordering::SeqCst);
    tokio::time::sleep(RECHECK_EVERY + Duration::from_millis(100)).await;
    stream.send("back");
    stream.flush().await;
    driver.finish(None).await;
    assert_eq!(script.calls(), [Call::Subscribers, token("to nobody", 0), Call::Subscribers, token("back", 1)]);
}

#[tokio::test(start_paused = true)]
async fn a_quick_activity_still_streams_and_ends_when_it_finishes_before_the_first_check() {
    let script = Script::with_subscribers(1);
    let (driver, stream) = started(&script);
    stream.send("all at once");
    driver.finish(Some(complete("all at once"))).await;
    assert_eq!(script.calls(), [Call::Subscribers, token("all at once", 0), Call::End(complete("all at once"))]);
}

#[tokio::test(start_paused = true)]
async fn a_slow_token_endpoint_cannot_keep_the_end_from_its_subscribers() {
    let script = Script::with_subscribers(1);
    script.hang_tokens.store(true, Ordering::SeqCst);
    let (driver, stream) = started(&script);
    stream.send("x");
    tokio::time::sleep(Duration::from_millis(10)).await;
    let started = tokio::time::Instant::now();
    driver.finish(Some(complete("x"))).await;
    assert_eq!(started.elapsed(), LAST_TEXT_WITHIN, "the request in flight gets its time, then the end goes");
    assert_eq!(script.calls(), [Call::Subscribers, token("x", 0), Call::End(complete("x"))]);
    // The flush of a stream whose sender was stopped returns.
    stream.flush().await;
}

#[tokio::test(start_paused = true)]
async fn a_hung_server_delays_the_end_of_the_attempt_by_the_deadline_at_most() {
    let script = Script::with_subscribers(1);
    script.hang_tokens.store(true, Ordering::SeqCst);
    script.hang_ends.store(true, Ordering::SeqCst);
    let (driver, stream) = started(&script);
    stream.send("x");
    let started = tokio::time::Instant::now();
    driver.finish(Some(complete("x"))).await;
    assert_eq!(started.elapsed(), FINISH_DEADLINE);
    assert_eq!(script.calls(), [Call::Subscribers, token("x", 0), Call::End(complete("x"))]);
    stream.flush().await;
}

#[tokio::test(start_paused = true)]
async fn a_stream_whose_first_send_overflows_still_ends_for_its_subscribers() {
    let script = Script::with_subscribers(1);
    let (driver, stream) = started(&script);
    stream.send("x".repeat(MAX_QUEUED_BYTES + 1));
    stream.flush().await;
    driver.finish(Some(complete("long"))).await;
    assert_eq!(script.calls(), [Call::Subscribers, Call::End(complete("long"))]);
}

#[tokio::test(start_paused = true)]
async fn a_subscriber_who_came_after_the_last_check_still_gets_the_end() {
    let script = Script::with_subscribers(0);
    let (driver, stream) = started(&script);
    stream.send("unseen");
    tokio::time::sleep(Duration::from_millis(500)).await;
    script.subscribers.store(1, Ordering::SeqCst);
    driver.finish(Some(complete("unseen"))).await;
    assert_eq!(script.calls(), [Call::Subscribers, Call::Subscribers, Call::End(complete("unseen"))]);
}

#[tokio::test(start_paused = true)]
async fn a_stream_the_server_refuses_gives_up_for_good_and_asks_nothing_more() {
    let script = Script::with_subscribers(1);
    script.refuse_subscribers.store(true, Ordering::SeqCst);
    let (driver, stream) = started(&script);
    stream.send("x");
    tokio::time::sleep(RECHECK_EVERY * 3).await;
    driver.finish(Some(complete("x"))).await;
    assert_eq!(script.calls(), [Call::Subscribers]);
}

#[tokio::test(start_paused = true)]
async fn a_lingering_stream_sends_its_first_text_at_once_and_then_one_request_per_linger() {
    let linger = Duration::from_millis(40);
    let script = Script::with_subscribers(1);
    let (driver, stream) = lingering(&script, linger);
    stream.flush().await;
    let started = tokio::time::Instant::now();
    stream.send("first");
    tokio::task::yield_now().await;
    assert_eq!(script.calls(), [Call::Subscribers, token("first", 0)], "the first text goes out at once");
    // 200 tokens a second for one second.
    for n in 0..200 {
        stream.send(format!("{n} "));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    stream.flush().await;
    let calls = script.calls();
    // One request at 0 ms, then one each 40 ms: at 40, 80, … 1000 ms.
    assert_eq!(tokens(&calls), 26);
    driver.finish(None).await;
    let sent: String = calls
        .iter()
        .filter_map(|call| match call {
            Call::Token(text, _) => Some(text.as_str()),
            _ => None,
        })
        .collect();
    let expected: String = std::iter::once("first".to_owned()).chain((0..200).map(|n| format!("{n} "))).collect();
    assert_eq!(sent, expected, "nothing lost, nothing reordered");
}

#[tokio::test(start_paused = true)]
async fn without_a_linger_every_token_of_a_slow_stream_is_its_own_request() {
    let script = Script::with_subscribers(1);
    let (driver, stream) = started(&script);
    stream.flush().await;
    for n in 0..50 {
        stream.send(format!("{n} "));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stream.flush().await;
    driver.finish(None).await;
    assert_eq!(tokens(&script.calls()), 50);
}

#[tokio::test(start_paused = true)]
async fn a_stream_that_never_started_sends_nothing() {
    let script = Script::with_subscribers(1);
    let (driver, stream) = StreamDriver::new(Memory(Arc::clone(&script)), Duration::ZERO);
    stream.send("x");
    driver.finish(Some(complete("x"))).await;
    stream.flush().await;
    assert_eq!(script.calls(), []);
}
