//! The poll loop of one worker type.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::OwnedSemaphorePermit;

use super::shutdown::Phase;
use super::{Shared, dispatch};
use crate::protocol::PollRequest;

/// Claims activities while the worker runs. A slot is held before polling so that a
/// poll never claims more than this worker can start right away: anything claimed but
/// not started would sit idle while its lease runs down.
pub(super) async fn poll_loop(shared: Arc<Shared>, worker: String) {
    let mut phase = shared.phase.clone();
    let mut failures: Option<Box<dyn Iterator<Item = Duration> + Send>> = None;
    loop {
        if *phase.borrow_and_update() != Phase::Running {
            break;
        }
        let first = tokio::select! {
            biased;
            _ = phase.changed() => continue,
            permit = Arc::clone(&shared.slots).acquire_owned() => permit.expect("the slot semaphore is never closed"),
        };
        let mut permits = vec![first];
        let batch = shared.config.poll_max_activities as usize;
        while permits.len() < batch {
            match Arc::clone(&shared.slots).try_acquire_owned() {
                Ok(permit) => permits.push(permit),
                Err(_) => break,
            }
        }
        let request = PollRequest {
            worker: worker.clone(),
            worker_id: shared.config.worker_id.clone(),
            max_activities: permits.len() as u32,
        };
        let pause = match shared.client.poll(&request).await {
            Ok(items) => {
                failures = None;
                let found = !items.is_empty();
                start_all(&shared, items, permits).await;
                (!found).then_some(shared.config.poll_interval)
            }
            Err(error) => {
                drop(permits);
                let delays = failures.get_or_insert_with(|| {
                    Box::new(shared.retry.delays().chain(std::iter::repeat(shared.retry.max_delay)))
                });
                let delay = delays.next().unwrap_or(shared.retry.max_delay);
                tracing::error!(%error, %worker, ?delay, "poll failed; polling again after a pause");
                Some(delay)
            }
        };
        if let Some(pause) = pause {
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                _ = phase.changed() => {}
            }
        }
    }
    tracing::debug!(%worker, "poller stopped");
}

async fn start_all(shared: &Arc<Shared>, items: Vec<serde_json::Value>, mut permits: Vec<OwnedSemaphorePermit>) {
    for item in items {
        let permit = match permits.pop() {
            Some(permit) => permit,
            // The server sent more than we asked for. The items are claimed, so they
            // must run; waiting for a slot keeps the concurrency bound.
            None => Arc::clone(&shared.slots).acquire_owned().await.expect("the slot semaphore is never closed"),
        };
        dispatch::start(shared, item, permit);
    }
}
