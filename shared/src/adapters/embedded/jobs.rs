//! The embedded job queue: SQS semantics (at-least-once, visibility timeout,
//! receive counts, per-receive receipts) on the SQLite table `jobs`, which may
//! share its file with the item store.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, Connection, TransactionBehavior};
use tokio::sync::Notify;
use ulid::Ulid;

use super::db::Db;
use super::wake;
use crate::ports::{JobError, JobMessage, JobQueue};

/// One row per message; times are epoch milliseconds. `receipt` is replaced on
/// every receive, so only the latest receiver can delete the message.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    queue         TEXT NOT NULL,
    id            TEXT NOT NULL,
    body          TEXT NOT NULL,
    receipt       TEXT,
    receive_count INTEGER NOT NULL DEFAULT 0,
    visible_at    INTEGER NOT NULL,
    sent_at       INTEGER NOT NULL,
    PRIMARY KEY (queue, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS jobs_visible ON jobs (queue, visible_at, sent_at);
CREATE INDEX IF NOT EXISTS jobs_receipt ON jobs (queue, receipt);
";

/// Largest batch one receive returns (SQS's limit).
const MAX_BATCH: usize = 10;

/// A named queue in a SQLite file.
#[derive(Clone)]
pub struct EmbeddedJobs {
    db: Db,
    queue: String,
    /// Notified after each send (see `wake`).
    sent: Arc<Notify>,
}

impl std::fmt::Debug for EmbeddedJobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedJobs").field("queue", &self.queue).finish_non_exhaustive()
    }
}

fn now_millis() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

impl EmbeddedJobs {
    /// Opens (creating if needed) queue `queue_name` in the SQLite file at `path`.
    pub fn open(path: &Path, queue_name: &str) -> Result<Self, JobError> {
        let db = Db::open(path, SCHEMA)
            .map_err(|e| JobError::backend(format!("open embedded queue {queue_name} in {}", path.display()), e))?;
        Ok(Self { db, queue: queue_name.to_owned(), sent: wake::waker(path, &wake::queue_sends(queue_name)) })
    }

    /// Notified after each message sent to this queue by this process.
    pub fn sent(&self) -> Arc<Notify> {
        self.sent.clone()
    }

    /// The queue's name.
    pub fn queue_name(&self) -> &str {
        &self.queue
    }

    async fn call<T: Send + 'static>(
        &self,
        context: String,
        f: impl FnOnce(&mut Connection, &str, &str) -> Result<T, JobError> + Send + 'static,
    ) -> Result<T, JobError> {
        let (queue, inner) = (self.queue.clone(), context.clone());
        self.db.call(move |conn| f(conn, &queue, &inner)).await.map_err(|e| JobError::backend(context, e))?
    }
}

/// Hides up to `max` visible messages (oldest first) for `visibility`, giving each
/// a fresh receipt, in one write transaction so two receivers never share one.
fn receive(
    conn: &mut Connection,
    queue: &str,
    max: usize,
    visibility: Duration,
    context: &str,
) -> Result<Vec<JobMessage>, JobError> {
    let err = |e: rusqlite::Error| JobError::backend(context, e);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(err)?;
    let now = now_millis();
    let hidden_until = now.saturating_add(i64::try_from(visibility.as_millis()).unwrap_or(i64::MAX));
    let mut messages = Vec::new();
    {
        let mut pick = tx
            .prepare_cached(
                "SELECT id, body, receive_count FROM jobs WHERE queue = ?1 AND visible_at <= ?2
                 ORDER BY sent_at, id LIMIT ?3",
            )
            .map_err(err)?;
        let picked = pick
            .query_map(params![queue, now, max.clamp(1, MAX_BATCH)], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get::<_, u32>(2)?))
            })
            .map_err(err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        let mut hide = tx
            .prepare_cached(
                "UPDATE jobs SET receipt = ?1, receive_count = receive_count + 1, visible_at = ?2
                 WHERE queue = ?3 AND id = ?4",
            )
            .map_err(err)?;
        for (id, body, count) in picked {
            let receipt = format!("{id}.{}", Ulid::new());
            hide.execute(params![receipt, hidden_until, queue, id]).map_err(err)?;
            messages.push(JobMessage { id, body, receipt, receive_count: count.saturating_add(1) });
        }
    }
    tx.commit().map_err(err)?;
    Ok(messages)
}

#[async_trait]
impl JobQueue for EmbeddedJobs {
    async fn send(&self, body: &str) -> Result<String, JobError> {
        let body = body.to_owned();
        let id = self
            .call(format!("send job to queue {}", self.queue), move |conn, queue, context| {
                let id = Ulid::new().to_string();
                let now = now_millis();
                conn.execute(
                    "INSERT INTO jobs (queue, id, body, receipt, receive_count, visible_at, sent_at)
                 VALUES (?1, ?2, ?3, NULL, 0, ?4, ?4)",
                    params![queue, id, body, now],
                )
                .map_err(|e| JobError::backend(context, e))?;
                Ok(id)
            })
            .await?;
        self.sent.notify_waiters();
        Ok(id)
    }

    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<JobMessage>, JobError> {
        self.call(format!("receive jobs from queue {}", self.queue), move |conn, queue, context| {
            receive(conn, queue, max, visibility, context)
        })
        .await
    }

    async fn delete(&self, receipt: &str) -> Result<(), JobError> {
        let receipt = receipt.to_owned();
        self.call(format!("delete job {receipt} from queue {}", self.queue), move |conn, queue, context| {
            conn.execute("DELETE FROM jobs WHERE queue = ?1 AND receipt = ?2", params![queue, receipt])
                .map_err(|e| JobError::backend(context, e))?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stale_receipt_deletes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let jobs = EmbeddedJobs::open(&dir.path().join("q.db"), "q").unwrap();
        jobs.send("hello").await.unwrap();
        let first = jobs.receive(1, Duration::ZERO).await.unwrap().remove(0);
        let second = jobs.receive(1, Duration::from_secs(60)).await.unwrap().remove(0);
        assert_eq!((first.id.as_str(), second.receive_count), (second.id.as_str(), 2));
        jobs.delete(&first.receipt).await.unwrap();
        let other = EmbeddedJobs::open(&dir.path().join("q.db"), "other").unwrap();
        other.delete(&second.receipt).await.unwrap();
        // Still there: neither the stale receipt nor another queue deleted it.
        let count: i64 = jobs
            .db
            .call(|conn| conn.query_row("SELECT count(*) FROM jobs", [], |row| row.get(0)))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(count, 1);
    }
}
