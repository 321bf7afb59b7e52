//! The in-flight table: what comes due, when the keeper is woken, and a shutdown waiting for the last attempt.

use std::path::Path;

use super::*;
use crate::context::{ActivityInfo, BoxFuture, ContextBackend, HeartbeatError};
use crate::error::ActivityError;
use crate::files::FileReference;

struct NoServer;

impl ContextBackend for NoServer {
    fn heartbeat(&self) -> BoxFuture<'_, Result<(), HeartbeatError>> {
        Box::pin(async { Ok(()) })
    }
    fn download<'a>(&'a self, _: &'a FileReference, _: &'a Path) -> BoxFuture<'a, Result<(), ActivityError>> {
        Box::pin(async { Ok(()) })
    }
    fn upload<'a>(&'a self, _: &'a FileReference, _: &'a Path, _: &'a str) -> BoxFuture<'a, Result<(), ActivityError>> {
        Box::pin(async { Ok(()) })
    }
}

fn in_flight() -> Arc<InFlight> {
    Arc::new(InFlight::new(Arc::new(WorkerMetrics::new([("w", "n")]))))
}

fn ctx(activity_id: Uuid) -> ActivityContext {
    ActivityContext::new(ActivityInfo { activity_id, ..ActivityInfo::new("w", "n") }, Arc::new(NoServer))
}

fn watch(heartbeat_secs: u64, overdue_secs: u64) -> Watch {
    Watch {
        heartbeat_every: Duration::from_secs(heartbeat_secs),
        timeout: Duration::from_secs(1),
        overdue_at: Instant::now() + Duration::from_secs(overdue_secs),
    }
}

fn kinds(due: &[Due]) -> Vec<(&'static str, Uuid)> {
    due.iter()
        .map(|due| match due {
            Due::Heartbeat { activity_id, .. } => ("heartbeat", *activity_id),
            Due::Overdue(overdue) => ("overdue", overdue.ctx.activity_id()),
        })
        .collect()
}

/// Whether the keeper was told to look earlier than it planned.
async fn keeper_was_woken(in_flight: &InFlight) -> bool {
    tokio::time::timeout(Duration::ZERO, in_flight.keeper_woken()).await.is_ok()
}

#[tokio::test(start_paused = true)]
async fn the_keeper_is_woken_only_for_something_due_before_it_planned_to_look() {
    let in_flight = in_flight();
    let (a, b, c) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
    let _a =
        in_flight.register(&ctx(a), &AttemptState::new(None, &ActivityInfo::new("w", "n")), watch(10, 60)).unwrap();
    assert!(keeper_was_woken(&in_flight).await, "a keeper with nothing planned is woken");
    let (due, next) = in_flight.take_due(Instant::now());
    assert!(due.is_empty());
    assert_eq!(next, Some(Instant::now() + Duration::from_secs(10)));

    let _b =
        in_flight.register(&ctx(b), &AttemptState::new(None, &ActivityInfo::new("w", "n")), watch(20, 60)).unwrap();
    assert!(!keeper_was_woken(&in_flight).await, "due after what the keeper planned");
    let _c = in_flight.register(&ctx(c), &AttemptState::new(None, &ActivityInfo::new("w", "n")), watch(5, 60)).unwrap();
    assert!(keeper_was_woken(&in_flight).await, "due before what the keeper planned");
}

#[tokio::test(start_paused = true)]
async fn heartbeats_and_overdue_checks_come_due_in_order_and_a_released_attempt_leaves_nothing_due() {
    let in_flight = in_flight();
    let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
    let reg_a =
        in_flight.register(&ctx(a), &AttemptState::new(None, &ActivityInfo::new("w", "n")), watch(10, 25)).unwrap();
    let _b =
        in_flight.register(&ctx(b), &AttemptState::new(None, &ActivityInfo::new("w", "n")), watch(15, 40)).unwrap();

    tokio::time::advance(Duration::from_secs(16)).await;
    let (due, next) = in_flight.take_due(Instant::now());
    assert_eq!(kinds(&due), [("heartbeat", a), ("heartbeat", b)]);
    assert_eq!(next, Some(Instant::now() + Duration::from_secs(9)), "a's overdue check, 25 s after it started");
    let state_a = match &due[0] {
        Due::Heartbeat { state, .. } => Arc::clone(state),
        Due::Overdue(_) => unreachable!(),
    };
    in_flight.reschedule_heartbeat(&state_a, a, Some(Duration::from_secs(3)));
    let (_, next) = in_flight.take_due(Instant::now());
    assert_eq!(next, Some(Instant::now() + Duration::from_secs(3)), "the server asked for heartbeats every 3 s");

    drop(reg_a);
    let (due, next) = in_flight.take_due(Instant::now() + Duration::from_secs(20));
    assert!(due.is_empty(), "nothing of a released attempt is due: {:?}", kinds(&due));
    assert_eq!(next, Some(Instant::now() + Duration::from_secs(24)), "only b's overdue check is left");
    assert_eq!(in_flight.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_done_attempt_still_in_flight_is_replaced_by_the_next_claim_and_its_release_keeps_the_new_one() {
    let in_flight = in_flight();
    let a = Uuid::from_u128(1);
    let stuck = AttemptState::new(None, &ActivityInfo::new("w", "n"));
    let stuck_reg = in_flight.register(&ctx(a), &stuck, watch(10, 60)).unwrap();
    assert!(
        in_flight.register(&ctx(a), &AttemptState::new(None, &ActivityInfo::new("w", "n")), watch(10, 60)).is_none(),
        "running: not twice"
    );

    // Taken over and delivered while its handler still blocks its thread.
    assert!(stuck.stage.take_over(false).is_some());
    stuck.stage.takeover_ended();
    let retry = AttemptState::new(None, &ActivityInfo::new("w", "n"));
    let retry_reg = in_flight.register(&ctx(a), &retry, watch(10, 60)).expect("the retry runs");
    assert_eq!(in_flight.unsettled(), [a]);

    drop(stuck_reg);
    assert_eq!(in_flight.len(), 1, "the stuck attempt's release does not remove its retry");
    assert!(retry.stage.abandon());
    assert_eq!(in_flight.unsettled(), Vec::<Uuid>::new());
    drop(retry_reg);
    assert_eq!(in_flight.len(), 0);
}

#[tokio::test]
async fn a_shutdown_is_woken_by_the_last_attempt_to_end_and_not_held_by_one_left_behind() {
    let in_flight = in_flight();
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let reg_a =
        in_flight.register(&ctx(a), &AttemptState::new(None, &ActivityInfo::new("w", "n")), watch(10, 60)).unwrap();
    let stuck = AttemptState::new(None, &ActivityInfo::new("w", "n"));
    let _reg_b = in_flight.register(&ctx(b), &stuck, watch(10, 60)).unwrap();
    let waiting = tokio::spawn({
        let in_flight = Arc::clone(&in_flight);
        async move { in_flight.all_ended().await }
    });
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished(), "two attempts still to end");
    drop(reg_a);
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished(), "one still to end");
    // A takeover settles the second while its handler blocks its thread for good.
    assert!(stuck.stage.take_over(false).is_some());
    stuck.stage.takeover_ended();
    in_flight.attempt_ended();
    tokio::time::timeout(Duration::from_secs(1), waiting).await.expect("woken, not polled").unwrap();
}
