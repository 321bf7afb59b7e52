//! The text an activity queued and the sender has not sent yet. `send` appends to it
//! from the activity's threads; the sender takes it whole, so whatever piled up while
//! a request was in flight goes out as one increment.

use std::sync::{Mutex, MutexGuard};

use tokio::sync::{Notify, watch};

use super::StreamSink;
use crate::future::BoxFuture;

/// Most text that may wait for the sender. Past it the server is not keeping up, and
/// the stream gives up rather than grow without bound.
pub(crate) const MAX_QUEUED_BYTES: usize = 1024 * 1024;

/// Where the stream stands, as far as sending goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// The first subscriber check is under way: text is kept, so that nothing the
    /// activity sends at once is lost when someone is already watching.
    Checking,
    /// Someone is subscribed: text is kept and sent.
    Active,
    /// Nobody is subscribed: text is dropped until a re-check finds someone.
    Idle,
    /// The server failed or fell too far behind: text is dropped for good.
    GivenUp,
}

pub(crate) struct Outbox {
    queue: Mutex<Queue>,
    /// Wakes the sender when text arrives.
    pub(super) arrived: Notify,
    /// Bytes sent or dropped so far, for `flush`.
    done: watch::Sender<u64>,
}

struct Queue {
    mode: Mode,
    pending: String,
    /// Bytes ever queued (sent, dropped or pending), for `flush`.
    accepted: u64,
    /// Set when the stream gave up for lack of room, for the sender's one warning.
    overflowed: bool,
}

impl Outbox {
    pub(crate) fn new() -> Self {
        Self {
            queue: Mutex::new(Queue { mode: Mode::Checking, pending: String::new(), accepted: 0, overflowed: false }),
            arrived: Notify::new(),
            done: watch::channel(0).0,
        }
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        // Every update leaves the queue consistent, so a panic elsewhere cannot spoil it.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn mode(&self) -> Mode {
        self.queue().mode
    }

    /// Takes everything queued, as one increment.
    pub(super) fn take(&self) -> String {
        std::mem::take(&mut self.queue().pending)
    }

    /// `bytes` taken earlier were sent (or given up on).
    pub(super) fn count_done(&self, bytes: usize) {
        self.done.send_modify(|done| *done = done.saturating_add(bytes as u64));
    }

    /// Someone subscribed: queue and send from now on.
    pub(super) fn activate(&self) {
        let mut queue = self.queue();
        if queue.mode != Mode::GivenUp {
            queue.mode = Mode::Active;
        }
    }

    /// Nobody is subscribed: drop what waits and what comes until someone is.
    pub(super) fn idle(&self) {
        self.drop_pending(Mode::Idle);
    }

    /// Stop sending for good.
    pub(super) fn give_up(&self) {
        self.drop_pending(Mode::GivenUp);
    }

    /// Whether the stream gave up because too much text waited.
    pub(super) fn overflowed(&self) -> bool {
        self.queue().overflowed
    }

    fn drop_pending(&self, mode: Mode) {
        let mut queue = self.queue();
        if queue.mode != Mode::GivenUp {
            queue.mode = mode;
        }
        let dropped = std::mem::take(&mut queue.pending).len();
        self.count_done(dropped);
    }

    /// The sender is gone: nothing queued will ever be sent, so no flush may wait.
    pub(super) fn close(&self) {
        self.give_up();
        self.done.send_replace(u64::MAX);
    }
}

impl StreamSink for Outbox {
    fn send(&self, text: String) {
        let mut queue = self.queue();
        queue.accepted += text.len() as u64;
        match queue.mode {
            Mode::Checking | Mode::Active if queue.pending.len() + text.len() <= MAX_QUEUED_BYTES => {
                queue.pending.push_str(&text);
                drop(queue);
                self.arrived.notify_one();
            }
            Mode::Checking | Mode::Active => {
                queue.overflowed = true;
                drop(queue);
                self.count_done(text.len());
                self.give_up();
                self.arrived.notify_one();
            }
            Mode::Idle | Mode::GivenUp => self.count_done(text.len()),
        }
    }

    fn flush(&self) -> BoxFuture<'_, ()> {
        let target = self.queue().accepted;
        let mut done = self.done.subscribe();
        Box::pin(async move {
            // The sender only stops after closing the outbox, which releases every waiter.
            let _ = done.wait_for(|done| *done >= target).await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_kept_while_checking_and_active_and_dropped_while_idle() {
        let outbox = Outbox::new();
        outbox.send("a".into());
        outbox.activate();
        outbox.send("b".into());
        assert_eq!(outbox.take(), "ab");
        outbox.idle();
        outbox.send("c".into());
        assert_eq!(outbox.take(), "");
        outbox.activate();
        outbox.send("d".into());
        assert_eq!(outbox.take(), "d");
    }

    #[test]
    fn more_than_the_cap_gives_up_and_frees_the_queue() {
        let outbox = Outbox::new();
        outbox.activate();
        outbox.send("x".repeat(MAX_QUEUED_BYTES));
        assert_eq!(outbox.mode(), Mode::Active);
        outbox.send("y".into());
        assert_eq!((outbox.mode(), outbox.overflowed(), outbox.take().len()), (Mode::GivenUp, true, 0));
        outbox.activate();
        assert_eq!(outbox.mode(), Mode::GivenUp, "a stream that gave up stays given up");
    }

    #[tokio::test]
    async fn flush_waits_for_what_was_queued_before_it() {
        let outbox = std::sync::Arc::new(Outbox::new());
        outbox.activate();
        outbox.send("abc".into());
        let flushed = tokio::spawn({
            let outbox = std::sync::Arc::clone(&outbox);
            async move { outbox.flush().await }
        });
        tokio::task::yield_now().await;
        assert!(!flushed.is_finished());
        let taken = outbox.take();
        outbox.send("later".into());
        outbox.count_done(taken.len());
        flushed.await.unwrap();
    }

    #[tokio::test]
    async fn closing_releases_flushes_that_would_wait_for_ever() {
        let outbox = Outbox::new();
        outbox.activate();
        outbox.send("never sent".into());
        outbox.close();
        outbox.flush().await;
        outbox.send("after".into());
        outbox.flush().await;
    }
}
