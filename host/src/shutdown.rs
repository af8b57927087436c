//! The shutdown signal shared by every thread: set once, read at safe points.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set when tailcar should stop reading; tailers check it between chunks and when woken.
#[derive(Debug, Clone, Default)]
pub struct Shutdown(Arc<AtomicBool>);

impl Shutdown {
    pub fn trigger(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}
