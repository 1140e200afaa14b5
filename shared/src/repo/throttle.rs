//! Fixed-window rate limits: one counter item per scope and window,
//! `THROTTLE#<SHA-256 of the scope>#<window start>`/`-` (hashed, because
//! scopes name emails and addresses, which must not sit in the table in clear), incremented atomically by
//! `Store::increment` *before* the guarded work, so N concurrent attempts see N
//! distinct counts and at most `max` of them pass. Counters expire with their window.

use sha2::Digest;
use time::OffsetDateTime;

use crate::ports::{Condition, ItemKey, Store, StoreError};

/// At most `max` hits per `window_secs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub max: i64,
    pub window_secs: i64,
}

impl Limit {
    pub const fn new(max: i64, window_secs: i64) -> Self {
        Self { max, window_secs }
    }

    /// The start of the window holding `now`, and the seconds until it ends.
    fn window(self, now: OffsetDateTime) -> (i64, u64) {
        let now = now.unix_timestamp();
        let start = now - now.rem_euclid(self.window_secs);
        (start, (start + self.window_secs - now).max(1) as u64)
    }
}

fn key(scope: &str, window_start: i64) -> ItemKey {
    let scope = hex::encode(sha2::Sha256::digest(scope.as_bytes()));
    ItemKey::new(format!("THROTTLE#{scope}#{window_start}"), "-")
}

/// Counts one hit on `scope`; `Some(seconds until the window ends)` when this
/// hit is over the limit (the work it guards must not run).
pub async fn hit(store: &dyn Store, scope: &str, limit: Limit, now: OffsetDateTime) -> Result<Option<u64>, StoreError> {
    let (start, retry_after) = limit.window(now);
    let count = store.increment(&key(scope, start), "count", start + limit.window_secs + 60).await?;
    Ok((count > limit.max).then_some(retry_after))
}

/// Forgets the hits of `scope` in the current window (e.g. after a successful login).
pub async fn reset(store: &dyn Store, scope: &str, limit: Limit, now: OffsetDateTime) -> Result<(), StoreError> {
    let (start, _) = limit.window(now);
    store.delete(key(scope, start), Condition::None).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_hit_past_the_limit_is_refused_until_the_window_ends() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::adapters::EmbeddedStore::open(&dir.path().join("t.db")).unwrap();
        let limit = Limit::new(3, 60);
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_010).unwrap();
        for _ in 0..3 {
            assert_eq!(hit(&store, "s", limit, now).await.unwrap(), None);
        }
        assert_eq!(hit(&store, "s", limit, now).await.unwrap(), Some(50));
        assert_eq!(hit(&store, "other", limit, now).await.unwrap(), None, "scopes are separate");
        let next_window = now + time::Duration::seconds(60);
        assert_eq!(hit(&store, "s", limit, next_window).await.unwrap(), None);
        reset(&store, "s", limit, now).await.unwrap();
        assert_eq!(hit(&store, "s", limit, now).await.unwrap(), None, "a reset window starts again");
    }
}
