//! The boxed future that object-safe traits of this crate return.

use std::future::Future;
use std::pin::Pin;

/// A boxed, sendable future, as the [`ContextBackend`](crate::context::ContextBackend)
/// methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
