//! What the consumers did, as they tell it: the demo prints it after each step.

use std::sync::{Arc, Mutex, PoisonError};

/// Lines written by the consumers, shared by all of them.
#[derive(Debug, Clone, Default)]
pub struct Journal(Arc<Mutex<Vec<String>>>);

impl Journal {
    /// Records what `consumer` did.
    pub fn record(&self, consumer: &str, line: impl AsRef<str>) {
        let mut lines = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        lines.push(format!("{consumer:<18} {}", line.as_ref()));
    }

    /// The lines recorded since the last call.
    pub fn drain(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}
