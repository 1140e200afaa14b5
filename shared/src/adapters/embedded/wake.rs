//! Wake-ups within one process, so the local stack's outbox relay and queue
//! pumps react to a write at once instead of on their next poll: a store
//! notifies after each committed write, a queue after each send. They are keyed
//! by the SQLite file (and what on it), so every handle this process opens on
//! one file shares them. Pollers still poll, more slowly, for what no
//! notification announces (a message whose visibility timeout lapsed, another
//! process's writes).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};

use tokio::sync::Notify;

/// What a store's waker announces: a committed write.
pub const STORE_WRITES: &str = "store writes";

/// What a queue's waker announces: a message sent to `queue`.
pub fn queue_sends(queue: &str) -> String {
    format!("sends to queue {queue}")
}

/// Every waker of this process, by file and what it announces.
type Wakers = HashMap<(PathBuf, String), Arc<Notify>>;

/// The waker for `what` on the SQLite file at `path`: the same one for every
/// caller naming that file and `what` in this process.
pub fn waker(path: &Path, what: &str) -> Arc<Notify> {
    static WAKERS: LazyLock<Mutex<Wakers>> = LazyLock::new(Default::default);
    let file = path.canonicalize().unwrap_or_else(|_| path.to_owned());
    let mut wakers = WAKERS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    wakers.entry((file, what.to_owned())).or_default().clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_file_and_name_share_a_waker_others_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("marketplace.db");
        std::fs::write(&file, b"").unwrap();
        let relative = dir.path().join(".").join("marketplace.db");
        assert!(Arc::ptr_eq(&waker(&file, STORE_WRITES), &waker(&relative, STORE_WRITES)));
        assert!(!Arc::ptr_eq(&waker(&file, STORE_WRITES), &waker(&file, &queue_sends("jobs"))));
        let waiting = waker(&file, STORE_WRITES);
        let notified = waiting.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        waker(&relative, STORE_WRITES).notify_waiters();
        tokio::time::timeout(std::time::Duration::from_secs(1), notified).await.expect("woken");
    }
}
