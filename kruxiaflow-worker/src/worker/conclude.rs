//! How an attempt ends, whichever side ends it. The attempt ends itself on the
//! activities' runtime ([`Concluding::end`]); when its task cannot — a handler blocking
//! its thread past its deadline, or still running at the end of a shutdown — the
//! worker's runtime takes it over (`takeover.rs`). The attempt's [`Stage`] lets exactly
//! one side decide its report, and that side ends it here alike: the stream's end first,
//! then the report until the server answers it, then its metrics and its one log line.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use tracing::Span;

use super::delivery::Reporter;
use super::lease::Lease;
use crate::context::{ActivityContext, ActivityInfo};
use crate::report::{self, Report};
use crate::settle::{Ending, HandlerOutcome, settle};
use crate::stream::StreamEnding;
use crate::telemetry::{Finished, WorkerMetrics};
use crate::text::Escaped;

/// What both runtimes know of one attempt: what either needs to end it.
pub(super) struct AttemptState {
    pub(super) lease: Lease,
    pub(super) stage: Stage,
    /// When its handler started, once it did.
    pub(super) handler_started: OnceLock<std::time::Instant>,
    /// Its token stream, when the activity opted in: ended by whichever side
    /// concludes the attempt, before the report. Boxed: most attempts have none, and
    /// each in-flight attempt costs its size.
    pub(super) stream: Option<Box<StreamEnding>>,
    /// The span of everything its own task does (its handler, its report) and of its
    /// heartbeats. A takeover has a span of its own: the attempt's may never close while
    /// a handler blocks its thread, and an open span is never exported.
    pub(super) span: Span,
}

impl AttemptState {
    /// The state of the attempt at the activity of `info`, with its token `stream` if it
    /// has one.
    pub(super) fn new(stream: Option<Box<StreamEnding>>, info: &ActivityInfo) -> Arc<Self> {
        let (lease, stage, handler_started) = (Lease::new(), Stage::new(), OnceLock::new());
        Arc::new(Self { lease, stage, handler_started, stream, span: activity_span(info) })
    }
}

/// The span of everything done for one attempt (with the `otel` feature, in its
/// workflow's trace). The `otel.*` and id fields are empty unless traces fill them,
/// and empty fields are not written to log lines.
pub(super) fn activity_span(info: &ActivityInfo) -> Span {
    // A root of its own (or, with traces, a child of its workflow's): not a child of
    // the poll that claimed it.
    let span = tracing::info_span!(
        parent: None,
        "activity",
        otel.name = tracing::field::Empty,
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
        activity_id = %info.activity_id,
        workflow_id = %info.workflow_id,
        activity_key = %Escaped(&info.activity_key),
        worker = %Escaped(&info.worker),
        activity_name = %Escaped(&info.activity_name),
    );
    #[cfg(feature = "otel")]
    if !span.is_disabled() {
        span.record("otel.name", tracing::field::display(format_args!("activity {}", Escaped(&info.activity_name))));
        let ids = [
            ("kruxiaflow.workflow_id", info.workflow_id.to_string()),
            ("kruxiaflow.activity_id", info.activity_id.to_string()),
            ("kruxiaflow.activity_key", info.activity_key.clone()),
            ("kruxiaflow.activity_name", info.activity_name.clone()),
            ("kruxiaflow.worker", info.worker.clone()),
            ("kruxiaflow.worker_id", info.worker_id.clone()),
        ];
        crate::otel::attempt_started(&span, info.workflow_id, ids);
    }
    span
}

/// What ending attempts takes: the reports' delivery, the metrics, and the worker's id
/// to report as.
pub(super) struct Concluding {
    reporter: Reporter,
    metrics: Arc<WorkerMetrics>,
    worker_id: String,
}

/// An attempt whose handler is done — it returned, was dropped, or never started — as
/// its own task hands it over to be ended.
pub(super) struct HandlerDone<H> {
    pub(super) ctx: ActivityContext,
    pub(super) state: Arc<AttemptState>,
    pub(super) outcome: HandlerOutcome,
    /// Its execution timeout, for a `TIMEOUT` failure's message.
    pub(super) timeout: Duration,
    /// What the attempt holds while it lasts (its slot, its place among the in-flight
    /// attempts): given back once it ended.
    pub(super) held: H,
}

impl Concluding {
    pub(super) fn new(reporter: Reporter, metrics: Arc<WorkerMetrics>, worker_id: String) -> Self {
        Self { reporter, metrics, worker_id }
    }

    pub(super) fn reporter(&self) -> &Reporter {
        &self.reporter
    }

    /// The report of `ending` as this worker sends it (see [`settle`]).
    pub(super) fn settle(&self, ending: Ending) -> Option<(Report, Bytes)> {
        settle(&self.worker_id, ending)
    }

    /// Ends an attempt from its own task: settles its report, delivers it unless a
    /// takeover decided first, accounts for it, and gives back what it held.
    pub(super) async fn end<H>(&self, done: HandlerDone<H>) {
        let HandlerDone { ctx, state, outcome, timeout, held } = done;
        let ending = Ending {
            outcome,
            cancelled: ctx.cancel_reason(),
            lease: state.lease.state(),
            spend: ctx.take_spend(),
            timeout: Some(timeout),
        };
        self.report((&ctx, &state), ending).await;
        // Given back last: the attempt counts as in flight (a shutdown waits for it)
        // until its report is delivered and accounted for.
        drop((ctx, state));
        drop(held);
    }

    /// Settles the report of the attempt of `ctx` and, unless a takeover decided first,
    /// delivers it and accounts for it.
    async fn report(&self, attempt: (&ActivityContext, &AttemptState), ending: Ending) {
        let state = attempt.1;
        let Some((report, body)) = self.settle(ending) else {
            // The lease is lost: nothing may be reported. A takeover that ended the
            // attempt first accounted for it.
            if state.stage.abandon() {
                tracing::warn!("lease lost: the server gave this activity to another worker; nothing is reported");
                self.account(attempt, None);
            }
            return;
        };
        let Some((report, body)) = state.stage.decide(report, body) else {
            return tracing::debug!("the worker settled this attempt while its handler ran past its grace");
        };
        let accepted = self.deliver(attempt, report, body).await;
        if state.stage.delivered() {
            self.account(attempt, accepted.as_deref());
        }
    }

    /// Delivers the decided `report` (encoded as `body`) of the attempt of `ctx`: before
    /// a failure that may be retried, what its step record still lacks (so that the
    /// retry resumes from it); its stream's end (streaming never settles an activity);
    /// then the report until the server answers it, the lease is lost, or the reports are
    /// given up. Returns the report the server took: `report`, a fallback for it, or none.
    pub(super) async fn deliver<'r>(
        &self,
        (ctx, state): (&ActivityContext, &AttemptState),
        report: &'r Report,
        body: Bytes,
    ) -> Option<Cow<'r, Report>> {
        let reporter = &self.reporter;
        if report.may_be_retried()
            && let Some(journal) = ctx.used_journal()
        {
            reporter.unless_given_up(Box::pin(journal.flush())).await;
        }
        if let Some(stream) = &state.stream {
            // Boxed: only streaming attempts pay for this future's size.
            reporter.unless_given_up(Box::pin(stream.end(Some(report.stream_end())))).await;
        }
        reporter.deliver(ctx.activity_id(), report, body, Some(&state.lease)).await
    }

    /// Accounts for the attempt of `ctx` once it ended with `accepted` (the report the
    /// server took; `None`: nothing was reported): its metrics and its log line. Called
    /// once per attempt, by the side the stage says ended it, inside that side's span.
    pub(super) fn account(&self, (ctx, state): (&ActivityContext, &AttemptState), accepted: Option<&Report>) {
        let elapsed = state.handler_started.get().map(|started| started.elapsed());
        let info = ctx.info();
        #[cfg(feature = "otel")]
        crate::otel::attempt_ended(&Span::current(), accepted);
        let ended = report::ended(accepted);
        self.metrics.finished(&info.worker, &info.activity_name, ended, elapsed);
        log_finished(ended.finished, elapsed);
    }
}

/// One line per finished attempt, at `info` (inside the attempt's span, which names
/// the activity).
fn log_finished(finished: Finished<'_>, elapsed: Option<Duration>) {
    let took = Took(elapsed);
    match finished {
        Finished::Completed => tracing::info!(outcome = "completed", %took, "activity finished"),
        Finished::Failed { code } => {
            tracing::info!(outcome = "failed", code = %Escaped(code), %took, "activity finished")
        }
        Finished::Abandoned => tracing::info!(outcome = "abandoned", %took, "activity finished: nothing was reported"),
    }
}

/// How long a handler ran, formatted only when the line is written.
struct Took(Option<Duration>);

impl std::fmt::Display for Took {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(elapsed) => write!(f, "{:.3}s", elapsed.as_secs_f64()),
            None => f.write_str("not started"),
        }
    }
}

/// Where an attempt stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum State {
    /// Its handler runs (or waits for a slot); nobody decided its report.
    Running = 0,
    /// The attempt decided its report and is delivering it.
    Decided = 1,
    /// The worker's runtime took it over and decides or delivers its report.
    TakenOver = 2,
    /// The attempt itself ended: delivered, given up, or nothing to report.
    Done = 3,
    /// A takeover ended it; the attempt's own task (a handler blocking its thread) may
    /// never end, and is not waited for.
    LeftBehind = 4,
}

/// What happens to an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Event {
    /// The attempt decided its report.
    Decide,
    /// The attempt ends with nothing to report (its lease is lost).
    Abandon,
    /// The attempt delivered its report (or gave up on it).
    Delivered,
    /// The worker's runtime takes the attempt over; with `include_decided`, also one
    /// that decided its report but may not have delivered it.
    TakeOver { include_decided: bool },
    /// The takeover is over: delivered, refused or given up.
    TakeoverEnded,
}

impl State {
    /// The state after `event`, or `None` when `event` cannot happen now (and changes
    /// nothing).
    pub(super) fn after(self, event: Event) -> Option<Self> {
        use {Event::*, State::*};
        match (self, event) {
            (Running, Decide) => Some(Decided),
            (Running, Abandon) => Some(Done),
            (Decided, Delivered) => Some(Done),
            (Running, TakeOver { .. }) => Some(TakenOver),
            (Decided, TakeOver { include_decided: true }) => Some(TakenOver),
            (TakenOver, TakeoverEnded) => Some(LeftBehind),
            _ => None,
        }
    }

    fn from_u8(value: u8) -> Self {
        match value {
            0 => Self::Running,
            1 => Self::Decided,
            2 => Self::TakenOver,
            3 => Self::Done,
            _ => Self::LeftBehind,
        }
    }
}

/// How far an attempt has come towards its report, shared by the attempt's task and
/// the worker's runtime; it moves only as [`State::after`] allows.
pub(super) struct Stage {
    state: AtomicU8,
    /// The report the attempt decided on, once it did. Boxed: every attempt in flight
    /// carries this field, and most have no report yet.
    report: OnceLock<Box<(Report, Bytes)>>,
}

/// What a takeover found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Taken {
    /// The handler never returned: the takeover decides the report.
    Undecided,
    /// The attempt decided its report ([`Stage::decided`]) but may not have delivered
    /// it: the takeover delivers it too (a second delivery is answered 409).
    Decided,
}

impl Stage {
    pub(super) fn new() -> Self {
        Self { state: AtomicU8::new(State::Running as u8), report: OnceLock::new() }
    }

    pub(super) fn state(&self) -> State {
        State::from_u8(self.state.load(Ordering::Acquire))
    }

    /// Applies `event`: the state it left, or `None` when it could not happen.
    fn apply(&self, event: Event) -> Option<State> {
        let mut current = self.state();
        loop {
            let next = current.after(event)?;
            match self.state.compare_exchange(current as u8, next as u8, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Some(current),
                Err(actual) => current = State::from_u8(actual),
            }
        }
    }

    /// The attempt decided `report`: returns it to deliver, or `None` when the attempt
    /// was taken over meanwhile (and must not report).
    pub(super) fn decide(&self, report: Report, body: Bytes) -> Option<(&Report, Bytes)> {
        if self.state() != State::Running {
            return None;
        }
        // Only the attempt sets it, once, before it may say it settled.
        let (report, body) = &**self.report.get_or_init(|| Box::new((report, body)));
        self.apply(Event::Decide).map(|_| (report, body.clone()))
    }

    /// The attempt ends with nothing to report (its lease is lost): `false` when it was
    /// taken over meanwhile.
    pub(super) fn abandon(&self) -> bool {
        self.apply(Event::Abandon).is_some()
    }

    /// The attempt delivered its report (or gave up on it): `false` when it was taken
    /// over meanwhile, and the takeover accounts for the report.
    pub(super) fn delivered(&self) -> bool {
        self.apply(Event::Delivered).is_some()
    }

    /// Takes the attempt over, unless it is done or already taken over. `include_decided`
    /// also takes over an attempt that decided its report but has not delivered it.
    pub(super) fn take_over(&self, include_decided: bool) -> Option<Taken> {
        match self.apply(Event::TakeOver { include_decided })? {
            State::Running => Some(Taken::Undecided),
            _ => Some(Taken::Decided),
        }
    }

    /// The report the attempt decided on, once it did.
    pub(super) fn decided(&self) -> Option<(&Report, Bytes)> {
        self.report.get().map(|decided| (&decided.0, decided.1.clone()))
    }

    /// The takeover is over: delivered, refused or given up.
    pub(super) fn takeover_ended(&self) {
        self.apply(Event::TakeoverEnded);
    }

    /// Whether nothing more will be sent for this attempt.
    pub(super) fn is_done(&self) -> bool {
        matches!(self.state(), State::Done | State::LeftBehind)
    }

    /// Whether its report is decided (delivered or not): a new claim of the same
    /// activity is then the server's next attempt.
    pub(super) fn is_decided(&self) -> bool {
        self.state() != State::Running
    }

    /// Whether a takeover settled it: its own task (a handler blocking its thread) is
    /// not waited for.
    pub(super) fn is_left_behind(&self) -> bool {
        self.state() == State::LeftBehind
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::Spend;

    fn report() -> (Report, Bytes) {
        let report = Report::from_outcome("w", Ok(crate::ActivityResult::empty()), Spend::default());
        let body = crate::protocol::encode(&report);
        (report, body)
    }

    #[test]
    fn every_transition_of_the_stage() {
        use {Event::*, State::*};
        let states = [Running, Decided, TakenOver, Done, LeftBehind];
        let events = [
            Decide,
            Abandon,
            Delivered,
            TakeOver { include_decided: false },
            TakeOver { include_decided: true },
            TakeoverEnded,
        ];
        // (from, event) → to, for every pair that can happen; every other pair cannot.
        let allowed = [
            (Running, Decide, Decided),
            (Running, Abandon, Done),
            (Running, TakeOver { include_decided: false }, TakenOver),
            (Running, TakeOver { include_decided: true }, TakenOver),
            (Decided, Delivered, Done),
            (Decided, TakeOver { include_decided: true }, TakenOver),
            (TakenOver, TakeoverEnded, LeftBehind),
        ];
        for from in states {
            for event in events {
                let expected = allowed.iter().find(|(f, e, _)| *f == from && *e == event).map(|(_, _, to)| *to);
                assert_eq!(from.after(event), expected, "{from:?} on {event:?}");
            }
        }
        for state in states {
            assert_eq!(State::from_u8(state as u8), state);
        }
    }

    #[test]
    fn an_attempt_that_settles_first_keeps_its_report_and_a_takeover_finds_it() {
        let stage = Stage::new();
        let (r, b) = report();
        assert!(stage.decide(r, b.clone()).is_some());
        assert!(stage.take_over(false).is_none(), "a settled attempt is not taken over as unsettled");
        assert_eq!(stage.take_over(true), Some(Taken::Decided));
        let (taken, body) = stage.decided().unwrap();
        assert_eq!((taken.endpoint(), body), ("complete", b));
        assert!(!stage.delivered(), "the takeover accounts for the report");
        assert!(!stage.is_done());
        stage.takeover_ended();
        assert!(stage.is_done());
    }

    #[test]
    fn an_attempt_taken_over_before_it_settles_reports_nothing() {
        let stage = Stage::new();
        assert_eq!(stage.take_over(false), Some(Taken::Undecided));
        assert!(stage.take_over(true).is_none(), "taken over once");
        let (r, b) = report();
        assert!(stage.decide(r, b).is_none());
        assert!(!stage.abandon());
        assert!(!stage.delivered());
    }

    #[test]
    fn a_done_attempt_is_never_taken_over() {
        let stage = Stage::new();
        let (r, b) = report();
        assert!(stage.decide(r, b).is_some());
        assert!(stage.delivered());
        assert!(stage.is_done());
        assert!(stage.take_over(true).is_none());
        let abandoned = Stage::new();
        assert!(abandoned.abandon());
        assert!(abandoned.take_over(true).is_none());
    }
}
