//! What the fake adds on top of the protocol model for tests: injected faults and the
//! request log. The route handlers never see it: the gate applies the faults and
//! writes the log, the test-facing handles and the admin routes read them.

use super::faults::Faults;
use super::log::RequestLog;

#[derive(Default)]
pub(crate) struct Tooling {
    pub(crate) faults: Faults,
    pub(crate) log: RequestLog,
}
