//! The end of one attempt's stream, shared by whichever side concludes the attempt —
//! its own task, or a takeover from the worker's runtime. The first to conclude sends
//! the end; the other waits for it. Either way no report leaves before the stream's
//! end (or [`FINISH_DEADLINE`]).

use std::sync::Mutex;

use tokio::sync::watch;

use super::StreamEnd;
use super::sender::{FINISH_DEADLINE, StreamDriver};

pub(crate) struct StreamEnding {
    driver: Mutex<Option<StreamDriver>>,
    /// Set once the side that took the driver is done with it.
    ended: watch::Sender<bool>,
}

impl StreamEnding {
    pub(crate) fn new(driver: StreamDriver) -> Self {
        Self { driver: Mutex::new(Some(driver)), ended: watch::Sender::new(false) }
    }

    /// Starts the sender on `runtime`, in the current span.
    pub(crate) fn start(&self, runtime: &tokio::runtime::Handle) {
        if let Some(driver) = self.lock().as_mut() {
            driver.start(runtime);
        }
    }

    /// Ends the stream with `end` (nothing for `None`: a lost lease), or waits until
    /// the side that is doing so is done.
    pub(crate) async fn end(&self, end: Option<StreamEnd>) {
        let taken = self.lock().take();
        match taken {
            Some(driver) => {
                // Marks the end as done however this future ends, dropped included.
                let _done = Done(&self.ended);
                driver.finish(end).await;
            }
            None => {
                let mut ended = self.ended.subscribe();
                let _ = tokio::time::timeout(FINISH_DEADLINE, ended.wait_for(|ended| *ended)).await;
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<StreamDriver>> {
        self.driver.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct Done<'a>(&'a watch::Sender<bool>);

impl Drop for Done<'_> {
    fn drop(&mut self) {
        self.0.send_replace(true);
    }
}
