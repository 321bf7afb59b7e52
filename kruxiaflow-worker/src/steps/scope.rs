//! Which step a piece of spend belongs to: the spend an activity records while a step's
//! future runs is that step's (the innermost one's, when steps nest), so that the
//! step's record can say what it cost.

use std::future::Future;
use std::sync::{Arc, Mutex};

use crate::result::Spend;

/// The step running in this task, and the context it belongs to.
#[derive(Clone)]
struct Current {
    /// The context's identity: spend recorded on another context is not this step's.
    owner: usize,
    spend: Arc<Mutex<Spend>>,
}

tokio::task_local! {
    static CURRENT: Current;
}

/// Runs `future` as a step of the context `owner`; returns its output and the spend
/// recorded on that context while it ran (in this task).
pub(crate) async fn collecting<F: Future>(owner: usize, future: F) -> (F::Output, Spend) {
    let spend = Arc::new(Mutex::new(Spend::default()));
    let output = CURRENT.scope(Current { owner, spend: Arc::clone(&spend) }, future).await;
    let spend = std::mem::take(&mut *spend.lock().unwrap_or_else(|e| e.into_inner()));
    (output, spend)
}

/// Adds to the running step's spend, when a step of `owner` is running in this task.
pub(crate) fn note(owner: usize, add: impl FnOnce(&mut Spend)) {
    let _ = CURRENT.try_with(|current| {
        if current.owner == owner {
            add(&mut current.spend.lock().unwrap_or_else(|e| e.into_inner()));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;

    fn add(owner: usize, cents: i64) {
        note(owner, |s| s.cost = Some(s.cost.unwrap_or_default() + Decimal::new(cents, 2)));
    }

    #[tokio::test]
    async fn spend_goes_to_the_innermost_step_of_its_own_context_only() {
        add(1, 100); // outside any step: nobody's
        let (inner, outer) = collecting(1, async {
            add(1, 1);
            add(2, 50); // another context's spend
            let ((), inner) = collecting(1, async { add(1, 10) }).await;
            add(1, 2);
            inner
        })
        .await;
        assert_eq!(inner.cost, Some(Decimal::new(10, 2)));
        assert_eq!(outer.cost, Some(Decimal::new(3, 2)));
    }
}
