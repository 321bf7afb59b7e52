//! The in-memory activity queue: the states and transitions of the real server's queue
//! (claims as leases, heartbeat renewal, poll-time reclaim, sweep, retry decisions with
//! backoff, and the conflict matrix), with no HTTP in sight.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use rust_decimal::Decimal;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::activity::{ActivitySnapshot, Completion, Failure, NewActivity, Outcome, Status};
use super::usage::Usage;

/// Lease when an activity has no `timeout_seconds` (the server's default).
pub(crate) const DEFAULT_LEASE: Duration = Duration::from_secs(60);

pub(crate) struct Row {
    pub(crate) new: NewActivity,
    pub(crate) id: Uuid,
    pub(crate) workflow_id: Uuid,
    pub(crate) status: Status,
    pub(crate) claimed_by: Option<String>,
    pub(crate) claimed_at: Option<Instant>,
    pub(crate) lease: Duration,
    pub(crate) retry_count: u32,
    pub(crate) max_retries: u32,
    pub(crate) scheduled_for: Instant,
    pub(crate) seq: u64,
    pub(crate) claims: u32,
    pub(crate) failures: Vec<Failure>,
    pub(crate) outcome: Option<Outcome>,
    pub(crate) enqueued_at_us: u64,
    pub(crate) settled_at_us: Option<u64>,
}

/// Wall-clock microseconds since the Unix epoch (the fake's clock offset is for leases
/// and backoffs; these stamps are for measuring latency across processes).
pub(crate) fn unix_micros() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

impl Row {
    fn lease_expired(&self, now: Instant) -> bool {
        self.status == Status::Running && self.claimed_at.is_some_and(|at| now > at + self.lease)
    }

    /// The poll item exactly as the server sends it.
    pub(crate) fn poll_item(&self) -> Value {
        let mut item = Map::new();
        item.insert("activity_id".into(), Value::String(self.id.to_string()));
        item.insert("workflow_id".into(), Value::String(self.workflow_id.to_string()));
        item.insert("activity_key".into(), Value::String(self.new.activity_key.clone()));
        item.insert("worker".into(), Value::String(self.new.worker.clone()));
        item.insert("activity_name".into(), Value::String(self.new.activity_name.clone()));
        item.insert("parameters".into(), self.new.parameters.clone());
        item.insert("settings".into(), self.new.settings_json());
        item.insert("timeout_seconds".into(), self.new.timeout_seconds.map_or(Value::Null, Value::from));
        if let Some(definitions) = &self.new.output_definitions {
            item.insert("output_definitions".into(), serde_json::to_value(definitions).unwrap_or_default());
        }
        if let Some(signal) = &self.new.signal_data {
            item.insert("signal_data".into(), signal.clone());
        }
        for (key, value) in &self.new.item_overrides {
            item.insert(key.clone(), value.clone());
        }
        Value::Object(item)
    }

    fn snapshot(&self) -> ActivitySnapshot {
        ActivitySnapshot {
            activity_id: self.id,
            workflow_id: self.workflow_id,
            activity_key: self.new.activity_key.clone(),
            activity_name: self.new.activity_name.clone(),
            status: self.status,
            claimed_by: self.claimed_by.clone(),
            retry_count: self.retry_count,
            claims: self.claims,
            failures: self.failures.clone(),
            outcome: self.outcome.clone(),
            enqueued_at_us: self.enqueued_at_us,
            settled_at_us: self.settled_at_us,
        }
    }
}

/// Why a heartbeat, complete or fail was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    NotFound,
    ClaimedByOther,
    AlreadyCompleted,
    /// Claimed by the caller but live and not running (heartbeat only).
    Internal,
}

/// What a poll-time or sweep expiry did.
#[derive(Debug, Default)]
pub(crate) struct SweepReport {
    pub(crate) requeued: usize,
    pub(crate) timed_out: usize,
}

#[derive(Default)]
pub(crate) struct Queue {
    rows: HashMap<Uuid, Row>,
    /// Pending rows by worker type, in claim order.
    pending: HashMap<String, BTreeSet<(Instant, u64, Uuid)>>,
    /// Running rows by worker type, checked for expired leases.
    running: HashMap<String, HashSet<Uuid>>,
    running_by_worker_id: HashMap<String, usize>,
    max_running_by_worker_id: HashMap<String, usize>,
    next_seq: u64,
    pub(crate) default_max_retries: u32,
}

/// What a worker's `/fail` report says, before the queue numbers the attempt.
pub(crate) struct FailureReport {
    pub(crate) code: String,
    pub(crate) message: String,
    pub(crate) retryable: bool,
    pub(crate) cost_usd: Option<Decimal>,
    pub(crate) usage: Vec<Usage>,
}

impl Queue {
    pub(crate) fn new(default_max_retries: u32) -> Self {
        Self { default_max_retries, ..Self::default() }
    }

    pub(crate) fn enqueue(&mut self, new: NewActivity, now: Instant) -> Uuid {
        let new = new.with_default_key();
        let id = new.activity_id.unwrap_or_else(Uuid::now_v7);
        let workflow_id = new.workflow_id.unwrap_or_else(Uuid::now_v7);
        let max_retries = match &new.retry {
            Some(retry) => retry.max_attempts.saturating_sub(1),
            None => self.default_max_retries,
        };
        let lease = new.timeout_seconds.filter(|&s| s > 0).map_or(DEFAULT_LEASE, |s| Duration::from_secs(s as u64));
        self.next_seq += 1;
        let row = Row {
            id,
            workflow_id,
            status: Status::Pending,
            claimed_by: None,
            claimed_at: None,
            lease,
            retry_count: 0,
            max_retries,
            scheduled_for: now + new.delay,
            seq: self.next_seq,
            claims: 0,
            failures: Vec::new(),
            outcome: None,
            enqueued_at_us: unix_micros(),
            settled_at_us: None,
            new,
        };
        self.index_pending(&row);
        self.rows.insert(id, row);
        id
    }

    fn index_pending(&mut self, row: &Row) {
        self.pending.entry(row.new.worker.clone()).or_default().insert((row.scheduled_for, row.seq, row.id));
    }

    /// Moves a row between states, keeping the indexes and per-worker counts right.
    fn transition(&mut self, id: Uuid, status: Status, claimed_by: Option<String>, now: Instant) {
        let row = self.rows.get_mut(&id).expect("transition of a known row");
        let worker = row.new.worker.clone();
        if row.status == Status::Pending
            && let Some(set) = self.pending.get_mut(&worker)
        {
            set.remove(&(row.scheduled_for, row.seq, id));
        }
        if row.status == Status::Running {
            if let Some(set) = self.running.get_mut(&worker) {
                set.remove(&id);
            }
            if let Some(claimer) = &row.claimed_by
                && let Some(count) = self.running_by_worker_id.get_mut(claimer)
            {
                *count = count.saturating_sub(1);
            }
        }
        row.status = status;
        if status.is_finished() && row.settled_at_us.is_none() {
            row.settled_at_us = Some(unix_micros());
        }
        if claimed_by.is_some() || status == Status::Pending {
            row.claimed_by = claimed_by;
        }
        match status {
            Status::Running => {
                row.claimed_at = Some(now);
                self.running.entry(worker).or_default().insert(id);
                if let Some(claimer) = &row.claimed_by {
                    let count = self.running_by_worker_id.entry(claimer.clone()).or_default();
                    *count += 1;
                    let max = self.max_running_by_worker_id.entry(claimer.clone()).or_default();
                    *max = (*max).max(*count);
                }
            }
            Status::Pending => {
                let row = &*row;
                let key = (row.scheduled_for, row.seq, id);
                self.pending.entry(worker).or_default().insert(key);
            }
            _ => {}
        }
    }

    /// Claims up to `max` activities of `worker` for `worker_id`: due pending rows, and
    /// running rows whose lease expired while they still have retries (poll-time
    /// reclaim), oldest `scheduled_for` first.
    pub(crate) fn poll(&mut self, worker: &str, worker_id: &str, max: usize, now: Instant) -> Vec<Value> {
        let mut candidates: Vec<(Instant, u64, Uuid)> = self
            .pending
            .get(worker)
            .into_iter()
            .flat_map(|set| set.iter().take_while(|(at, _, _)| *at <= now).take(max).copied())
            .collect();
        if let Some(running) = self.running.get(worker) {
            candidates.extend(running.iter().filter_map(|id| {
                let row = &self.rows[id];
                (row.lease_expired(now) && row.retry_count < row.max_retries).then_some((
                    row.scheduled_for,
                    row.seq,
                    row.id,
                ))
            }));
        }
        candidates.sort_unstable();
        candidates.truncate(max);
        candidates
            .into_iter()
            .map(|(_, _, id)| {
                let reclaim = self.rows[&id].status == Status::Running;
                self.transition(id, Status::Running, Some(worker_id.to_owned()), now);
                let row = self.rows.get_mut(&id).expect("claimed row exists");
                if reclaim {
                    row.retry_count += 1;
                }
                row.claims += 1;
                row.poll_item()
            })
            .collect()
    }

    /// Renews the lease (200) or refuses. Finished rows answer 200 whoever asks.
    pub(crate) fn heartbeat(&mut self, id: Uuid, worker_id: &str, now: Instant) -> Result<(), Refusal> {
        let row = self.rows.get_mut(&id).ok_or(Refusal::NotFound)?;
        if row.status.is_finished() {
            return Ok(());
        }
        if row.claimed_by.as_deref() != Some(worker_id) {
            return Err(Refusal::ClaimedByOther);
        }
        if row.status != Status::Running {
            return Err(Refusal::Internal);
        }
        row.claimed_at = Some(now);
        Ok(())
    }

    /// Checks the claimer first, then the status, as the server does.
    fn check_settle(&self, id: Uuid, worker_id: &str) -> Result<&Row, Refusal> {
        let row = self.rows.get(&id).ok_or(Refusal::NotFound)?;
        if row.claimed_by.as_deref() != Some(worker_id) {
            return Err(Refusal::ClaimedByOther);
        }
        Ok(row)
    }

    pub(crate) fn complete(
        &mut self,
        id: Uuid,
        worker_id: &str,
        output: Map<String, Value>,
        cost_usd: Option<Decimal>,
        usage: Vec<Usage>,
        now: Instant,
    ) -> Result<(), Refusal> {
        let row = self.check_settle(id, worker_id)?;
        match row.status {
            // A repeat from the claimer is an idempotent no-op: the first output wins.
            Status::Completed => return Ok(()),
            Status::Running => {}
            _ => return Err(Refusal::AlreadyCompleted),
        }
        let attempts = row.claims;
        self.transition(id, Status::Completed, None, now);
        let row = self.rows.get_mut(&id).expect("row exists");
        row.outcome =
            Some(Outcome::Completed(Completion { output, cost_usd, usage, worker_id: worker_id.to_owned(), attempts }));
        Ok(())
    }

    /// Records a failure `worker_id` reported; returns `will_retry`.
    pub(crate) fn fail(
        &mut self,
        id: Uuid,
        worker_id: &str,
        reported: FailureReport,
        now: Instant,
    ) -> Result<bool, Refusal> {
        let row = self.check_settle(id, worker_id)?;
        if row.status != Status::Running {
            return Err(Refusal::AlreadyCompleted);
        }
        let FailureReport { code, message, retryable, cost_usd, usage } = reported;
        let failure = Failure {
            code,
            message,
            retryable,
            attempts: row.claims,
            worker_id: Some(worker_id.to_owned()),
            cost_usd,
            usage,
        };
        let will_retry = failure.retryable && row.retry_count < row.max_retries;
        let delay = row.new.backoff(row.retry_count + 1);
        if will_retry {
            let row = self.rows.get_mut(&id).expect("row exists");
            row.failures.push(failure);
            row.retry_count += 1;
            row.scheduled_for = now + delay;
            self.transition(id, Status::Pending, None, now);
        } else {
            self.transition(id, Status::Failed, None, now);
            let row = self.rows.get_mut(&id).expect("row exists");
            row.failures.push(failure.clone());
            row.outcome = Some(Outcome::Failed(failure));
        }
        Ok(will_retry)
    }

    /// The timeout checker: expired leases go back to pending (retries left) or fail
    /// with `ACTIVITY_TIMEOUT`.
    pub(crate) fn sweep(&mut self, now: Instant) -> SweepReport {
        let expired: Vec<Uuid> =
            self.running.values().flatten().filter(|id| self.rows[*id].lease_expired(now)).copied().collect();
        let mut report = SweepReport::default();
        for id in expired {
            let row = self.rows.get_mut(&id).expect("row exists");
            if row.retry_count < row.max_retries {
                row.retry_count += 1;
                row.scheduled_for = now;
                self.transition(id, Status::Pending, None, now);
                report.requeued += 1;
            } else {
                let failure = Failure {
                    code: "ACTIVITY_TIMEOUT".to_owned(),
                    message: format!("Activity lease expired after {:?} without a heartbeat", row.lease),
                    retryable: false,
                    attempts: row.claims,
                    worker_id: row.claimed_by.clone(),
                    cost_usd: None,
                    usage: Vec::new(),
                };
                // The sweep keeps `claimed_by`, so the claimer's later reports get 409
                // "already completed" rather than "claimed by different worker".
                let claimer = row.claimed_by.clone();
                self.transition(id, Status::Failed, claimer, now);
                let row = self.rows.get_mut(&id).expect("row exists");
                row.failures.push(failure.clone());
                row.outcome = Some(Outcome::Failed(failure));
                report.timed_out += 1;
            }
        }
        report
    }

    /// Gives a running activity to another worker id, as a reclaim by another process
    /// would: the original claimer's heartbeats and reports then get 409.
    pub(crate) fn reassign(&mut self, id: Uuid, to: &str, now: Instant) -> bool {
        let Some(row) = self.rows.get(&id) else { return false };
        if row.status != Status::Running {
            return false;
        }
        self.transition(id, Status::Running, Some(to.to_owned()), now);
        true
    }

    pub(crate) fn snapshot(&self, id: Uuid) -> Option<ActivitySnapshot> {
        self.rows.get(&id).map(Row::snapshot)
    }

    pub(crate) fn snapshots(&self) -> Vec<ActivitySnapshot> {
        let mut all: Vec<_> = self.rows.values().collect();
        all.sort_by_key(|row| row.seq);
        all.into_iter().map(Row::snapshot).collect()
    }

    pub(crate) fn outcome(&self, id: Uuid) -> Option<Outcome> {
        self.rows.get(&id).and_then(|row| row.outcome.clone())
    }

    pub(crate) fn unsettled(&self) -> Vec<Uuid> {
        let mut ids: Vec<_> = self.rows.values().filter(|r| !r.status.is_finished()).map(|r| (r.seq, r.id)).collect();
        ids.sort_unstable();
        ids.into_iter().map(|(_, id)| id).collect()
    }

    pub(crate) fn settled_count(&self) -> usize {
        self.rows.values().filter(|r| r.status.is_finished()).count()
    }

    pub(crate) fn running_ids(&self) -> Vec<Uuid> {
        self.running.values().flatten().copied().collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }

    pub(crate) fn max_running(&self, worker_id: &str) -> usize {
        self.max_running_by_worker_id.get(worker_id).copied().unwrap_or(0)
    }

    pub(crate) fn running_count(&self, worker_id: &str) -> usize {
        self.running_by_worker_id.get(worker_id).copied().unwrap_or(0)
    }
}
