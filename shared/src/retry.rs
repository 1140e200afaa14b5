//! The one way to retry: named policies (how many attempts, how long to wait
//! between them) and `run`, which runs an async attempt under one. Every write
//! that may lose a race, and every DynamoDB write that a concurrent transaction
//! or throttling cancelled, goes through here.

use std::future::Future;
use std::time::Duration;

use rand::Rng;

/// How many attempts an action gets and how long `run` waits before each one
/// after the first: a random wait (jitter), so the writers of a burst spread
/// out instead of colliding again, up to a ceiling that starts at
/// `first_wait` and doubles per attempt up to `max_wait`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Attempts in all, the first one included.
    pub attempts: usize,
    /// The ceiling of the wait before the second attempt (zero: no waits).
    pub first_wait: Duration,
    /// The ceiling never grows past this.
    pub max_wait: Duration,
    /// Where under the ceiling the wait falls.
    pub jitter: Jitter,
}

/// Where under its ceiling a wait falls, uniformly at random.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    /// From 1 ms to the ceiling ("full jitter").
    Full,
    /// From a quarter of the ceiling to the ceiling, so no retry comes back
    /// at once.
    FromQuarter,
}

/// A read-modify-write under a version condition that lost a race (the item
/// changed between its read and its write): the account, category, product,
/// farmer page or order writes of the use cases, and a product write whose
/// counts (a farmer page's `listedProducts`, a category's product count)
/// changed under it. Eight attempts let six edits of one item at once all
/// land; the waits (full jitter, 8 ms doubling to 256 ms) outgrow one
/// attempt's round trips on DynamoDB.
pub const CONTENDED_WRITE: Policy = Policy {
    attempts: 8,
    first_wait: Duration::from_millis(8),
    max_wait: Duration::from_millis(256),
    jitter: Jitter::Full,
};

/// A write to a product's upload reservations (issuing or freeing a ticket)
/// that found them, or the product, changed since it read them. Each lost
/// attempt means another such write landed, and those are few: only the
/// product's farmer asks for tickets (at most `catalogue::TICKETS_PER_FARMER`
/// an hour), at most 8 of a burst can land before the rest find the slots
/// full, and each landed ticket is attached and freed once. So a farmer
/// uploading a whole selection of photos at once gets every ticket the free
/// slots allow instead of a spurious "busy" (three attempts refused about
/// half of a burst of eight): 32 attempts, waits as for `CONTENDED_WRITE`.
pub const UPLOAD_RESERVATION: Policy = Policy { attempts: 32, ..CONTENDED_WRITE };

/// The worker attaching a checked photo to its product while the product
/// keeps changing: five attempts, waits as for `CONTENDED_WRITE`. A message
/// that still fails stays on the queue and is delivered again, so the queue's
/// own redelivery adds the attempts this leaves out.
pub const IMAGE_ATTACH: Policy = Policy { attempts: 5, ..CONTENDED_WRITE };

/// A sign-in session revoked (or restamped after a password change) while
/// its other requests keep changing it: twenty attempts, waits as for
/// `CONTENDED_WRITE`, because a revocation that gave up would leave alive a
/// session that was meant to end.
pub const SESSION_CHANGE: Policy = Policy { attempts: 20, ..CONTENDED_WRITE };

/// Applying an order event to a farmer's sales day while other events of
/// that day keep changing it: twenty attempts, waits as for
/// `CONTENDED_WRITE`, because every event of a busy day lands on the same
/// item and no user waits on the worker.
pub const SALES_DAY: Policy = Policy { attempts: 20, ..CONTENDED_WRITE };

/// A notification added or marked read while the user's unread count (one
/// item changed in the same transaction) keeps changing: ten attempts, waits
/// as for `CONTENDED_WRITE`; the count changes only as that user's own
/// notifications arrive or are read.
pub const UNREAD_COUNT: Policy = Policy { attempts: 10, ..CONTENDED_WRITE };

/// Completing an archive batch again after one of its orders changed between
/// the object's write and the order's delete: three attempts and no wait,
/// since every attempt rewrites and reads back the whole object; a batch
/// whose orders keep changing stays in the journal, and the next run
/// completes it first.
pub const ARCHIVE_BATCH: Policy =
    Policy { attempts: 3, first_wait: Duration::ZERO, max_wait: Duration::ZERO, jitter: Jitter::Full };

/// Rotating the cursor key while another rotation lands: without a bound or a
/// wait, since every lost race means another rotation landed, and rotations
/// are an operator's rare command, so the next read finds the key settled.
pub const CURSOR_KEY_ROTATION: Policy = Policy { attempts: usize::MAX, ..ARCHIVE_BATCH };

/// A DynamoDB write cancelled for a conflicting concurrent transaction (or,
/// in a transaction, throttled): nothing was wrong with the request, and the
/// SDK's own retries do not cover these. Five attempts, the waits from a
/// quarter of a ceiling of 25 ms doubling to 1.6 s, as DynamoDB advises for
/// conflicts (exponential, jittered, never at once).
pub const TRANSACTION_CONFLICT: Policy = Policy {
    attempts: 5,
    first_wait: Duration::from_millis(25),
    max_wait: Duration::from_millis(1600),
    jitter: Jitter::FromQuarter,
};

impl Policy {
    /// The ceiling of the wait before attempt `attempt` (counted from 0):
    /// nothing before the first.
    pub fn ceiling(&self, attempt: usize) -> Duration {
        if attempt == 0 {
            return Duration::ZERO;
        }
        let doublings = u32::try_from(attempt - 1).unwrap_or(u32::MAX).min(31);
        self.first_wait.saturating_mul(1 << doublings).min(self.max_wait)
    }

    /// A random wait before attempt `attempt` (counted from 0), under its
    /// `ceiling` as `jitter` says.
    pub fn wait(&self, attempt: usize) -> Duration {
        let ceiling = u64::try_from(self.ceiling(attempt).as_millis()).unwrap_or(u64::MAX);
        if ceiling == 0 {
            return Duration::ZERO;
        }
        let floor = match self.jitter {
            Jitter::Full => 1,
            Jitter::FromQuarter => ceiling / 4,
        };
        Duration::from_millis(rand::thread_rng().gen_range(floor..=ceiling))
    }
}

/// How one attempt ended, when it did not fail outright (an `Err` from the
/// attempt stops `run` at once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt<T, E> {
    /// It succeeded: `run` returns `Ok` with this.
    Done(T),
    /// It lost a race another attempt may win: `run` tries again while the
    /// policy allows, and returns `Err` with this error when it does not.
    Again(E),
}

/// Runs `attempt` (given its number, counted from 0) under `policy`: again
/// after every `Attempt::Again`, waiting `policy.wait` first, until one is
/// `Done`, one fails (`Err`, returned at once), or the attempts run out
/// (the last `Again`'s error).
pub async fn run<T, E, F, Fut>(policy: Policy, mut attempt: F) -> Result<T, E>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Result<Attempt<T, E>, E>>,
{
    let mut number = 0;
    loop {
        let wait = policy.wait(number);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        match attempt(number).await? {
            Attempt::Done(value) => return Ok(value),
            Attempt::Again(error) if number + 1 >= policy.attempts => return Err(error),
            Attempt::Again(_) => number += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// `CONTENDED_WRITE`'s shape with millisecond waits, so tests run fast.
    const QUICK: Policy = Policy {
        attempts: 4,
        first_wait: Duration::from_millis(1),
        max_wait: Duration::from_millis(2),
        ..CONTENDED_WRITE
    };

    const ALL: [Policy; 9] = [
        CONTENDED_WRITE,
        UPLOAD_RESERVATION,
        IMAGE_ATTACH,
        SESSION_CHANGE,
        SALES_DAY,
        UNREAD_COUNT,
        ARCHIVE_BATCH,
        CURSOR_KEY_ROTATION,
        TRANSACTION_CONFLICT,
    ];

    #[tokio::test]
    async fn a_policy_gives_exactly_its_attempts_then_the_last_error() {
        let calls = AtomicUsize::new(0);
        let result: Result<(), usize> = run(QUICK, |number| {
            calls.fetch_add(1, Ordering::Relaxed);
            async move { Ok(Attempt::Again(number)) }
        })
        .await;
        assert_eq!(result, Err(QUICK.attempts - 1), "the last attempt's error");
        assert_eq!(calls.load(Ordering::Relaxed), QUICK.attempts);
    }

    #[tokio::test]
    async fn a_failed_attempt_stops_at_once() {
        let calls = AtomicUsize::new(0);
        let result: Result<(), &str> = run(QUICK, |_| {
            calls.fetch_add(1, Ordering::Relaxed);
            async { Err("broken") }
        })
        .await;
        assert_eq!(result, Err("broken"));
        assert_eq!(calls.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn the_first_success_ends_the_run() {
        let calls = AtomicUsize::new(0);
        let result: Result<usize, &str> = run(QUICK, |number| {
            calls.fetch_add(1, Ordering::Relaxed);
            async move { Ok(if number == 2 { Attempt::Done(number) } else { Attempt::Again("busy") }) }
        })
        .await;
        assert_eq!(result, Ok(2));
        assert_eq!(calls.load(Ordering::Relaxed), 3);
    }

    #[tokio::test]
    async fn a_policy_of_no_waits_retries_at_once() {
        let started = std::time::Instant::now();
        let result: Result<(), ()> = run(ARCHIVE_BATCH, |_| async { Ok(Attempt::Again(())) }).await;
        assert_eq!(result, Err(()));
        assert!(started.elapsed() < Duration::from_millis(50));
    }

    #[test]
    fn no_wait_comes_before_the_first_attempt() {
        for policy in ALL {
            assert_eq!(policy.ceiling(0), Duration::ZERO);
            assert_eq!(policy.wait(0), Duration::ZERO);
        }
    }

    #[test]
    fn ceilings_double_up_to_the_maximum_and_waits_stay_under_them() {
        for policy in ALL {
            for attempt in 1..40 {
                let ceiling = policy.ceiling(attempt);
                assert!(ceiling <= policy.max_wait, "{policy:?} attempt {attempt}: {ceiling:?}");
                assert!(ceiling >= policy.ceiling(attempt - 1).min(policy.max_wait));
                let floor = match policy.jitter {
                    _ if ceiling.is_zero() => Duration::ZERO,
                    Jitter::Full => Duration::from_millis(1),
                    // Whole milliseconds, as the waits are drawn.
                    Jitter::FromQuarter => Duration::from_millis(ceiling.as_millis() as u64 / 4),
                };
                for _ in 0..20 {
                    let wait = policy.wait(attempt);
                    assert!(floor <= wait && wait <= ceiling, "{policy:?} attempt {attempt}: {wait:?}");
                }
            }
        }
        assert_eq!(CONTENDED_WRITE.ceiling(1), Duration::from_millis(8));
        assert_eq!(CONTENDED_WRITE.ceiling(6), Duration::from_millis(256));
        assert_eq!(CONTENDED_WRITE.ceiling(7), Duration::from_millis(256));
        assert_eq!(TRANSACTION_CONFLICT.ceiling(1), Duration::from_millis(25));
        assert_eq!(TRANSACTION_CONFLICT.ceiling(4), Duration::from_millis(200));
        assert_eq!(TRANSACTION_CONFLICT.ceiling(99), Duration::from_millis(1600));
    }

    #[test]
    fn the_longest_run_of_a_bounded_policy_waits_a_bounded_time() {
        for policy in ALL.into_iter().filter(|p| p.attempts < usize::MAX) {
            let total: Duration = (0..policy.attempts).map(|a| policy.ceiling(a)).sum();
            assert!(total <= Duration::from_secs(8), "{policy:?} may wait {total:?}");
        }
    }
}
