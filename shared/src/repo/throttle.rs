//! Sliding-window rate limits: one counter item per scope and fixed window,
//! `THROTTLE#<SHA-256 of the scope>#<window start>`/`-` (hashed, because
//! scopes name emails and addresses, which must not sit in the table in clear).
//! A hit increments the current window's counter atomically with
//! `Store::increment` *before* the guarded work, so N concurrent attempts see N
//! distinct counts, and is refused when the current count plus the previous
//! window's count, weighted by the share of that window still inside the last
//! `window_secs`, exceeds `max`. Fixed windows alone let a burst of twice the
//! limit through across a boundary; the weighting closes that. A refused hit is
//! taken back, so hammering a limit does not lengthen it: the rate that gets
//! through stays `max` per window. Counters expire once they no longer weigh.

use sha2::Digest;
use time::OffsetDateTime;

use crate::ports::{Condition, ItemKey, Store, StoreError, WriteOp};

/// At most `max` hits in any `window_secs` (as estimated from the current and
/// previous fixed windows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub max: i64,
    pub window_secs: i64,
}

impl Limit {
    pub const fn new(max: i64, window_secs: i64) -> Self {
        Self { max, window_secs }
    }

    /// The start of the fixed window holding `now`, and the seconds since.
    fn window(self, now: OffsetDateTime) -> (i64, i64) {
        let now = now.unix_timestamp();
        let elapsed = now.rem_euclid(self.window_secs);
        (now - elapsed, elapsed)
    }

    /// Whether `current` hits in this window and `previous` in the one before,
    /// `elapsed` seconds into this one, are more than the limit.
    fn exceeded(self, previous: i64, current: i64, elapsed: i64) -> bool {
        previous * (self.window_secs - elapsed) + current * self.window_secs > self.max * self.window_secs
    }

    /// Seconds from `elapsed` into this window until one more hit passes,
    /// given `previous` and `current` counted hits (none added meanwhile).
    fn retry_after(self, previous: i64, current: i64, elapsed: i64) -> u64 {
        let w = self.window_secs;
        let left = w - elapsed;
        let seconds = if current < self.max {
            // This window, once enough of the previous one has slid out:
            // previous * (left - t) + (current + 1) * w <= max * w. (A hit
            // refused with `current` below the limit had a previous window
            // weighing on it, so `previous` is at least one here.)
            ceil_div(previous * left - (self.max - current - 1) * w, previous).min(left)
        } else {
            // The next window, once enough of this one has slid out:
            // current * (w - t') + w <= max * w.
            left + ceil_div((current + 1 - self.max) * w, current)
        };
        seconds.max(1) as u64
    }
}

fn ceil_div(a: i64, b: i64) -> i64 {
    (a + b - 1).div_euclid(b)
}

fn key(scope: &str, window_start: i64) -> ItemKey {
    let scope = hex::encode(sha2::Sha256::digest(scope.as_bytes()));
    ItemKey::new(format!("THROTTLE#{scope}#{window_start}"), "-")
}

async fn count(store: &dyn Store, key: &ItemKey) -> Result<i64, StoreError> {
    Ok(store.get(key).await?.and_then(|item| item.int("count")).unwrap_or(0))
}

/// Counts one hit on `scope`; `Some(seconds until a hit would pass)` when this
/// hit is over the limit (the work it guards must not run, and the hit is
/// taken back).
pub async fn hit(store: &dyn Store, scope: &str, limit: Limit, now: OffsetDateTime) -> Result<Option<u64>, StoreError> {
    let (start, elapsed) = limit.window(now);
    let current_key = key(scope, start);
    // Kept through the next window, where it is the previous one.
    let current = store.increment(&current_key, "count", start + 2 * limit.window_secs + 60).await?;
    // Past the limit on its own, the previous window cannot matter.
    let previous = if current > limit.max { 0 } else { count(store, &key(scope, start - limit.window_secs)).await? };
    if !limit.exceeded(previous, current, elapsed) {
        return Ok(None);
    }
    let take_back = WriteOp::Adjust { key: current_key, add: vec![("count".into(), -1)], guards: Vec::new() };
    store.transact(vec![take_back]).await?;
    Ok(Some(limit.retry_after(previous, current - 1, elapsed)))
}

/// Forgets the hits of `scope` in the last window (e.g. after a successful
/// login). Two plain deletes at once: they need not be atomic, and in a
/// transaction each would cost twice the write units.
pub async fn reset(store: &dyn Store, scope: &str, limit: Limit, now: OffsetDateTime) -> Result<(), StoreError> {
    let (start, _) = limit.window(now);
    let (current, previous) = tokio::join!(
        store.delete(key(scope, start), Condition::None),
        store.delete(key(scope, start - limit.window_secs), Condition::None),
    );
    current.and(previous)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Limit = Limit::new(3, 60);
    /// The start of a window of `LIMIT`.
    const WINDOW: i64 = 1_800_000_000;

    fn at(seconds: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(WINDOW + seconds).unwrap()
    }

    fn store() -> (tempfile::TempDir, crate::adapters::EmbeddedStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::adapters::EmbeddedStore::open(&dir.path().join("t.db")).unwrap();
        (dir, store)
    }

    async fn passes(store: &dyn Store, scope: &str, seconds: i64) -> bool {
        hit(store, scope, LIMIT, at(seconds)).await.unwrap().is_none()
    }

    /// Spends the whole limit of `scope` at `seconds`: every hit passes.
    async fn use_up(store: &dyn Store, scope: &str, seconds: i64) {
        for _ in 0..LIMIT.max {
            assert!(passes(store, scope, seconds).await);
        }
    }

    /// Refused at `seconds`; a hit one second before the `Retry-After` it
    /// gives is refused too, and one at it passes.
    async fn assert_retry_after_is_exact(store: &dyn Store, scope: &str, seconds: i64) -> i64 {
        let retry = hit(store, scope, LIMIT, at(seconds)).await.unwrap().expect("refused") as i64;
        if retry > 1 {
            assert!(!passes(store, scope, seconds + retry - 1).await, "passed before its Retry-After {retry}");
        }
        assert!(passes(store, scope, seconds + retry).await, "refused at its Retry-After {retry}");
        retry
    }

    #[tokio::test]
    async fn the_hit_past_the_limit_is_refused_and_told_exactly_when_to_retry() {
        let (_dir, store) = store();
        use_up(&store, "s", 10).await;
        assert!(passes(&store, "other", 10).await, "scopes are separate");
        // Into the next window, until enough of this one has slid out:
        // 3 * (60 - 20) + 60 <= 3 * 60 at 20 s into it.
        assert_eq!(assert_retry_after_is_exact(&store, "s", 10).await, 70);

        // Three late in a window still weigh 2.75 five seconds into the next
        // one; a hit there waits until 3 * (60 - t) + 60 <= 180, at t = 20 s.
        use_up(&store, "late", 55).await;
        assert_eq!(assert_retry_after_is_exact(&store, "late", 65).await, 15);
    }

    #[tokio::test]
    async fn a_burst_across_a_window_boundary_gets_no_more_than_the_limit() {
        let (_dir, store) = store();
        use_up(&store, "s", 59).await;
        // A fixed window would let three more through here.
        for _ in 0..10 {
            assert!(!passes(&store, "s", 61).await);
        }
    }

    #[tokio::test]
    async fn refused_hits_are_taken_back_so_hammering_does_not_lengthen_the_wait() {
        let (_dir, store) = store();
        use_up(&store, "s", 10).await;
        for _ in 0..50 {
            assert!(!passes(&store, "s", 11).await);
        }
        // As if only the three had counted: 3 * (60 - 20) + 60 <= 180.
        assert!(!passes(&store, "s", 79).await);
        assert!(passes(&store, "s", 80).await);
    }

    #[tokio::test]
    async fn a_reset_forgets_this_window_and_the_previous_one() {
        let (_dir, store) = store();
        use_up(&store, "s", 10).await;
        // 20 s into the next window, the three weigh two: one more passes.
        assert!(passes(&store, "s", 80).await);
        assert!(!passes(&store, "s", 80).await);
        reset(&store, "s", LIMIT, at(80)).await.unwrap();
        for _ in 0..3 {
            assert!(passes(&store, "s", 80).await, "a reset starts again");
        }
    }
}
