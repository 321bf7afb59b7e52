//! Who decides an attempt's report. The attempt decides itself, on the activities' runtime; when
//! its task cannot run — a handler blocking its thread past its deadline, or at the end
//! of a shutdown — the worker's own runtime takes it over. Exactly one side decides the
//! report, and the side that decided accounts for it.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, Ordering};

use bytes::Bytes;

use crate::report::Report;

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
    /// The report the attempt decided on, once it did.
    report: OnceLock<(Report, Bytes)>,
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
        let (report, body) = self.report.get_or_init(|| (report, body));
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
        self.report.get().map(|(report, body)| (report, body.clone()))
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
