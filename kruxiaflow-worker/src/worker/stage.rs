//! Who settles an attempt. The attempt settles itself, on the activities' runtime; when
//! its task cannot run — a handler blocking its thread past its deadline, or at the end
//! of a shutdown — the worker's own runtime takes it over. Exactly one side decides the
//! report, and the side that decided accounts for it.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, Ordering};

use bytes::Bytes;

use crate::report::Report;

const RUNNING: u8 = 0;
const SETTLED: u8 = 1;
const TAKEN_OVER: u8 = 2;
const DONE: u8 = 3;
/// Done by a takeover: the attempt's own task may never end.
const LEFT_BEHIND: u8 = 4;

/// How far an attempt has come towards its report.
pub(super) struct Stage {
    state: AtomicU8,
    /// The report the attempt decided on, once it did.
    report: OnceLock<(Report, Bytes)>,
}

/// What a takeover found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Taken {
    /// The handler never returned: the takeover decides the report.
    Unsettled,
    /// The attempt decided its report ([`Stage::decided`]) but may not have delivered
    /// it: the takeover delivers it too (a second delivery is answered 409).
    Settled,
}

impl Stage {
    pub(super) fn new() -> Self {
        Self { state: AtomicU8::new(RUNNING), report: OnceLock::new() }
    }

    /// The attempt decided `report`: returns it to deliver, or `None` when the attempt
    /// was taken over meanwhile (and must not report).
    pub(super) fn settle(&self, report: Report, body: Bytes) -> Option<(&Report, Bytes)> {
        if self.state.load(Ordering::Acquire) != RUNNING {
            return None;
        }
        // Only the attempt sets it, once.
        let (report, body) = self.report.get_or_init(|| (report, body));
        self.advance(RUNNING, SETTLED).then(|| (report, body.clone()))
    }

    /// The attempt ends with nothing to report (its lease is lost): `false` when it was
    /// taken over meanwhile.
    pub(super) fn abandon(&self) -> bool {
        self.advance(RUNNING, DONE)
    }

    /// The attempt delivered its report (or gave up on it): `false` when it was taken
    /// over meanwhile, and the takeover accounts for the report.
    pub(super) fn delivered(&self) -> bool {
        self.advance(SETTLED, DONE)
    }

    /// Takes the attempt over, unless it is done or already taken over. `include_settled`
    /// also takes over an attempt that decided its report but has not delivered it.
    pub(super) fn take_over(&self, include_settled: bool) -> Option<Taken> {
        if self.advance(RUNNING, TAKEN_OVER) {
            return Some(Taken::Unsettled);
        }
        (include_settled && self.advance(SETTLED, TAKEN_OVER)).then_some(Taken::Settled)
    }

    /// The report the attempt decided on, once it did.
    pub(super) fn decided(&self) -> Option<(&Report, Bytes)> {
        self.report.get().map(|(report, body)| (report, body.clone()))
    }

    /// The takeover is over: delivered, refused or given up.
    pub(super) fn takeover_ended(&self) {
        self.state.store(LEFT_BEHIND, Ordering::Release);
    }

    /// Whether nothing more will be sent for this attempt.
    pub(super) fn is_done(&self) -> bool {
        matches!(self.state.load(Ordering::Acquire), DONE | LEFT_BEHIND)
    }

    /// Whether its report is decided (delivered or not): a new claim of the same
    /// activity is then the server's next attempt.
    pub(super) fn is_decided(&self) -> bool {
        self.state.load(Ordering::Acquire) != RUNNING
    }

    /// Whether a takeover settled it: its own task (a handler blocking its thread) is
    /// not waited for.
    pub(super) fn is_left_behind(&self) -> bool {
        self.state.load(Ordering::Acquire) == LEFT_BEHIND
    }

    fn advance(&self, from: u8, to: u8) -> bool {
        self.state.compare_exchange(from, to, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::Spend;

    fn report() -> (Report, Bytes) {
        let report = Report::from_outcome("w", Ok(crate::ActivityResult::empty()), Spend::default());
        let body = crate::client::encode(&report);
        (report, body)
    }

    #[test]
    fn an_attempt_that_settles_first_keeps_its_report_and_a_takeover_finds_it() {
        let stage = Stage::new();
        let (r, b) = report();
        assert!(stage.settle(r, b.clone()).is_some());
        assert!(stage.take_over(false).is_none(), "a settled attempt is not taken over as unsettled");
        assert_eq!(stage.take_over(true), Some(Taken::Settled));
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
        assert_eq!(stage.take_over(false), Some(Taken::Unsettled));
        assert!(stage.take_over(true).is_none(), "taken over once");
        let (r, b) = report();
        assert!(stage.settle(r, b).is_none());
        assert!(!stage.abandon());
        assert!(!stage.delivered());
    }

    #[test]
    fn a_done_attempt_is_never_taken_over() {
        let stage = Stage::new();
        let (r, b) = report();
        assert!(stage.settle(r, b).is_some());
        assert!(stage.delivered());
        assert!(stage.is_done());
        assert!(stage.take_over(true).is_none());
        let abandoned = Stage::new();
        assert!(abandoned.abandon());
        assert!(abandoned.take_over(true).is_none());
    }
}
