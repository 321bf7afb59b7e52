//! The activity registry: which handler runs for which `worker.name`.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::activity::{Activity, DynActivity};
use crate::names::is_identifier;

/// Maps `"{worker}.{name}"` to a handler. The worker polls every worker type present.
///
/// ```
/// use kruxiaflow_worker::prelude::*;
/// # struct A(&'static str);
/// # impl Activity for A {
/// #     fn name(&self) -> &str { self.0 }
/// #     async fn run(&self, _: serde_json::Value, _: ActivityContext) -> Result<ActivityResult, ActivityError> {
/// #         Ok(ActivityResult::empty())
/// #     }
/// # }
/// let mut registry = ActivityRegistry::new();
/// registry.register(A("my_activity"), "rust");
/// registry.register(A("process_text"), "rust");
/// assert_eq!(registry.activity_types(), ["rust.my_activity", "rust.process_text"]);
///
/// let err = registry.try_register(A("my_activity"), "rust").unwrap_err();
/// assert_eq!(err.to_string(), "activity 'rust.my_activity' is already registered");
/// ```
#[derive(Default, Clone)]
pub struct ActivityRegistry {
    entries: Vec<Entry>,
    /// worker type → activity name → position in `entries`; nested so that dispatch
    /// looks up by `&str` without allocating.
    index: HashMap<String, HashMap<String, usize>>,
}

#[derive(Clone)]
struct Entry {
    worker: String,
    name: String,
    handler: Handler,
}

/// A registered activity as attempts run it.
#[derive(Clone)]
pub(crate) struct Handler {
    pub(crate) activity: Arc<dyn DynActivity>,
    /// Its `max_concurrency`, shared by the attempts of this registry's worker.
    pub(crate) cap: Option<Arc<Semaphore>>,
    pub(crate) local_retries: u32,
}

/// An activity could not be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The same `worker.name` was registered twice.
    #[error("activity '{worker}.{name}' is already registered")]
    Duplicate {
        /// Worker type.
        worker: String,
        /// Activity name.
        name: String,
    },
    /// The activity name breaks `^[A-Za-z0-9_-]{{1,255}}$`.
    #[error("activity name {0:?} is invalid: use 1 to 255 letters, digits, '_' or '-'")]
    InvalidName(String),
    /// The worker type breaks `^[A-Za-z0-9_-]{{1,255}}$`.
    #[error("worker type {0:?} is invalid: use 1 to 255 letters, digits, '_' or '-'")]
    InvalidWorker(String),
}

impl ActivityRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `activity` under `worker`.
    ///
    /// # Panics
    /// On a duplicate or invalid name: both are programming errors best caught at
    /// startup. Use [`try_register`](Self::try_register) to handle them instead.
    #[track_caller]
    pub fn register<A: Activity>(&mut self, activity: A, worker: &str) -> &mut Self {
        if let Err(error) = self.try_register(activity, worker) {
            panic!("{error}");
        }
        self
    }

    /// Registers `activity` under `worker`, or says why it cannot be.
    pub fn try_register<A: Activity>(&mut self, activity: A, worker: &str) -> Result<&mut Self, RegistryError> {
        let name = Activity::name(&activity).to_owned();
        if !is_identifier(worker) {
            return Err(RegistryError::InvalidWorker(worker.to_owned()));
        }
        if !is_identifier(&name) {
            return Err(RegistryError::InvalidName(name));
        }
        let names = self.index.entry(worker.to_owned()).or_default();
        if names.contains_key(&name) {
            return Err(RegistryError::Duplicate { worker: worker.to_owned(), name });
        }
        names.insert(name.clone(), self.entries.len());
        let handler = Handler {
            cap: activity.max_concurrency().map(|n| Arc::new(Semaphore::new(n.max(1)))),
            local_retries: activity.local_retries(),
            activity: Arc::new(activity),
        };
        self.entries.push(Entry { worker: worker.to_owned(), name, handler });
        Ok(self)
    }

    /// `"{worker}.{name}"` of every activity, in registration order.
    pub fn activity_types(&self) -> Vec<String> {
        self.entries.iter().map(|e| format!("{}.{}", e.worker, e.name)).collect()
    }

    /// Distinct worker types, in registration order.
    pub fn worker_types(&self) -> Vec<String> {
        let mut types: Vec<String> = Vec::new();
        for entry in &self.entries {
            if !types.contains(&entry.worker) {
                types.push(entry.worker.clone());
            }
        }
        types
    }

    /// Number of registered activities.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(crate) fn get(&self, worker: &str, name: &str) -> Option<&Handler> {
        self.index.get(worker)?.get(name).map(|&i| &self.entries[i].handler)
    }

    /// `(worker type, name)` of every activity, in registration order.
    pub(crate) fn activity_names(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|e| (e.worker.as_str(), e.name.as_str()))
    }

    /// Names registered for `worker`, for "not found" messages.
    pub(crate) fn names_for(&self, worker: &str) -> Vec<&str> {
        self.entries.iter().filter(|e| e.worker == worker).map(|e| e.name.as_str()).collect()
    }
}

impl std::fmt::Debug for ActivityRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActivityRegistry").field("activities", &self.activity_types()).finish()
    }
}
