//! The SQLite connection shared by the embedded store and job queue: opening a
//! file in WAL mode with a busy timeout, and running calls off the async threads.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::Connection;

/// How long a write waits for another process's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Bytes of the database file SQLite may memory-map.
const MMAP_BYTES: i64 = 256 * 1024 * 1024;
/// The page cache: negative is KiB in SQLite's convention (64 MB).
const CACHE_KIB: i64 = -64 * 1024;

/// Opening the database failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum OpenError {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// WAL mode is what lets several processes share the file; without it
    /// (e.g. on a network file system) the store refuses to open.
    #[error("could not switch the database to WAL mode (journal mode is {0})")]
    NotWal(String),
}

/// One SQLite connection, used by one call at a time on the blocking pool.
#[derive(Clone)]
pub(super) struct Db {
    conn: Arc<Mutex<Connection>>,
}

impl Db {
    /// Opens (creating if needed) the database at `path` in WAL mode, so several
    /// local processes can read while one writes, and runs `schema`.
    pub(super) fn open(path: &Path, schema: &str) -> Result<Self, OpenError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(OpenError::NotWal(mode));
        }
        // Reads come from memory-mapped pages and a 64 MB page cache instead of
        // a read(2) per page (measured: about a third of a page request's time
        // under load went to pread and its copies).
        conn.pragma_update(None, "mmap_size", MMAP_BYTES)?;
        conn.pragma_update(None, "cache_size", CACHE_KIB)?;
        conn.execute_batch(schema)?;
        Ok(Self { conn: Arc::new(Mutex::new(conn)) })
    }

    /// Runs `f` with the connection on the calling thread (for start-up work).
    pub(super) fn with_conn<T>(&self, f: impl FnOnce(&mut Connection) -> T) -> T {
        let mut guard = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut guard)
    }

    /// Runs `f` with the connection on tokio's blocking pool. A panic inside an
    /// earlier call leaves the connection usable (any open transaction rolled
    /// back on drop), so a poisoned lock is recovered rather than propagated.
    pub(super) async fn call<T, E>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    ) -> Result<Result<T, E>, tokio::task::JoinError>
    where
        T: Send + 'static,
        E: Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut guard)
        })
        .await
    }
}
