//! The SQLite file shared by the embedded store and job queues: one writer
//! connection per file and process (WAL mode, busy timeout) and a small pool of
//! read-only connections beside it, with every call run off the async threads.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, PoisonError, Weak};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::Semaphore;

/// How long a write waits for another process's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Bytes of the database file SQLite may memory-map.
const MMAP_BYTES: i64 = 256 * 1024 * 1024;
/// The page cache of each connection: negative is KiB in SQLite's convention
/// (64 MB at most; pages shared through the memory map are not counted twice).
const CACHE_KIB: i64 = -64 * 1024;

/// Read-only connections open at most: one per CPU, at least two. A read is CPU
/// work on memory-mapped pages, so more than the CPUs would only queue inside.
static MAX_READERS: LazyLock<usize> =
    LazyLock::new(|| std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(2, 8));

/// Opening the database failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum OpenError {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error("could not resolve the database path: {0}")]
    Path(#[from] std::io::Error),
    /// WAL mode is what lets several processes share the file; without it
    /// (e.g. on a network file system) the store refuses to open.
    #[error("could not switch the database to WAL mode (journal mode is {0})")]
    NotWal(String),
}

/// A call could not run: its blocking task failed (panicked or was cancelled),
/// or no read connection could be opened.
#[derive(Debug, thiserror::Error)]
pub(super) enum CallError {
    #[error("the database call did not finish: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("could not open a read connection: {0}")]
    OpenReader(#[from] rusqlite::Error),
}

/// A database file as this process has it open; cheap to clone.
///
/// Writes go to one writer connection, one call at a time. In WAL mode a reader
/// sees the last transaction committed when its statement began and never waits
/// for the writer, so reads (single statements) go to a pool of read-only
/// connections: a page request does not wait behind a checkout or the outbox
/// relay.
///
/// Every `Db::open` of one file in a process shares one `OpenFile` (the store
/// and each job queue live in the same file). Two writer connections of one
/// process would otherwise take turns through SQLite's busy handler, which
/// sleeps 1, 2, 5, 10… ms between tries; a mutex hands the writer over at once.
/// Other processes on the same file still meet the busy timeout.
#[derive(Clone)]
pub(super) struct Db {
    file: Arc<OpenFile>,
}

struct OpenFile {
    path: PathBuf,
    writer: Mutex<Connection>,
    /// Read-only connections, opened on first need up to `MAX_READERS`; a
    /// permit is held for each one in use, so no more are ever opened.
    idle_readers: Mutex<Vec<Connection>>,
    reader_permits: Arc<Semaphore>,
}

/// The files open in this process, by absolute path.
static OPEN_FILES: LazyLock<Mutex<HashMap<PathBuf, Weak<OpenFile>>>> = LazyLock::new(Default::default);

impl Db {
    /// Opens (creating if needed) the database at `path` in WAL mode, so several
    /// local processes can read while one writes, and runs `schema`. A file this
    /// process already has open is shared, not opened again.
    pub(super) fn open(path: &Path, schema: &str) -> Result<Self, OpenError> {
        let path = std::path::absolute(path)?;
        let file = {
            let mut open_files = OPEN_FILES.lock().unwrap_or_else(PoisonError::into_inner);
            open_files.retain(|_, file| file.strong_count() > 0);
            match open_files.get(&path).and_then(Weak::upgrade) {
                Some(file) => file,
                None => {
                    let file = Arc::new(OpenFile::open(path.clone())?);
                    open_files.insert(path, Arc::downgrade(&file));
                    file
                }
            }
        };
        Self::with_schema(file, schema)
    }

    /// Opens the file with connections of its own, shared with no other handle:
    /// what another process on the file has. The contract suite's concurrent
    /// writers use it, so they race through SQLite's locks as processes do.
    pub(super) fn open_unshared(path: &Path, schema: &str) -> Result<Self, OpenError> {
        Self::with_schema(Arc::new(OpenFile::open(std::path::absolute(path)?)?), schema)
    }

    fn with_schema(file: Arc<OpenFile>, schema: &str) -> Result<Self, OpenError> {
        let db = Self { file };
        db.with_conn(|conn| conn.execute_batch(schema))?;
        Ok(db)
    }

    /// Runs `f` with the writer on the calling thread (for start-up work).
    pub(super) fn with_conn<T>(&self, f: impl FnOnce(&mut Connection) -> T) -> T {
        let mut guard = self.file.writer.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut guard)
    }

    /// Runs `f` with the writer on tokio's blocking pool. A panic inside an
    /// earlier call leaves the connection usable (any open transaction rolled
    /// back on drop), so a poisoned lock is recovered rather than propagated.
    pub(super) async fn call<T, E>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    ) -> Result<Result<T, E>, CallError>
    where
        T: Send + 'static,
        E: Send + 'static,
    {
        let db = self.clone();
        tokio::task::spawn_blocking(move || db.with_conn(f)).await.map_err(CallError::Task)
    }

    /// Runs `f`, which must only read, with a read-only connection on tokio's
    /// blocking pool. It waits (without holding a thread) while every reader is
    /// busy. The connection refuses writes, so a mistaken write fails loudly.
    pub(super) async fn read<T, E>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    ) -> Result<Result<T, E>, CallError>
    where
        T: Send + 'static,
        E: Send + 'static,
    {
        let permit =
            Arc::clone(&self.file.reader_permits).acquire_owned().await.expect("the reader semaphore is never closed");
        let file = Arc::clone(&self.file);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let idle = file.idle_readers.lock().unwrap_or_else(PoisonError::into_inner).pop();
            let conn = match idle {
                Some(conn) => conn,
                None => open_reader(&file.path)?,
            };
            let result = f(&conn);
            file.idle_readers.lock().unwrap_or_else(PoisonError::into_inner).push(conn);
            Ok(result)
        })
        .await?
    }
}

impl OpenFile {
    fn open(path: PathBuf) -> Result<Self, OpenError> {
        let conn = Connection::open(&path)?;
        let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(OpenError::NotWal(mode));
        }
        tune(&conn)?;
        Ok(Self {
            path,
            writer: Mutex::new(conn),
            idle_readers: Mutex::new(Vec::new()),
            reader_permits: Arc::new(Semaphore::new(*MAX_READERS)),
        })
    }
}

/// A read-only connection to the (already WAL) file at `path`.
fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags)?;
    tune(&conn)?;
    Ok(conn)
}

/// Settings every connection shares: the busy timeout, and reads from
/// memory-mapped pages and a page cache instead of a read(2) per page (see
/// BENCHMARKS.md).
fn tune(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "mmap_size", MMAP_BYTES)?;
    conn.pragma_update(None, "cache_size", CACHE_KIB)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(conn: &Connection) -> rusqlite::Result<i64> {
        conn.query_row("SELECT count(*) FROM t", [], |row| row.get(0))
    }

    fn open_with_one_row(dir: &tempfile::TempDir) -> Db {
        Db::open(&dir.path().join("d.db"), "CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1);").unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_read_sees_the_last_commit_without_waiting_for_an_open_write() {
        let dir = tempfile::tempdir().unwrap();
        let db = open_with_one_row(&dir);
        let (started_tx, started) = std::sync::mpsc::channel();
        let (finish, finish_rx) = std::sync::mpsc::channel::<()>();
        let writer = db.clone();
        let writing = tokio::spawn(async move {
            writer
                .call(move |conn| {
                    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                    tx.execute("INSERT INTO t VALUES (2)", [])?;
                    started_tx.send(()).unwrap();
                    finish_rx.recv().unwrap();
                    tx.commit()
                })
                .await
        });
        tokio::task::spawn_blocking(move || started.recv().unwrap()).await.unwrap();

        let during = tokio::time::timeout(Duration::from_secs(5), db.read(count)).await;
        assert_eq!(during.expect("the read waited for the writer").unwrap().unwrap(), 1);
        finish.send(()).unwrap();
        writing.await.unwrap().unwrap().unwrap();
        assert_eq!(db.read(count).await.unwrap().unwrap(), 2);
    }

    #[tokio::test]
    async fn read_connections_refuse_writes() {
        let dir = tempfile::tempdir().unwrap();
        let db = open_with_one_row(&dir);
        let write = db.read(|conn| conn.execute("INSERT INTO t VALUES (3)", [])).await.unwrap();
        assert!(write.is_err(), "a read connection accepted a write");
        assert_eq!(db.read(count).await.unwrap().unwrap(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_more_read_connections_open_than_the_pool_allows() {
        let dir = tempfile::tempdir().unwrap();
        let db = open_with_one_row(&dir);
        let reads = (0..64).map(|_| {
            db.read(|conn| {
                std::thread::sleep(Duration::from_millis(2));
                count(conn)
            })
        });
        for result in futures::future::join_all(reads).await {
            assert_eq!(result.unwrap().unwrap(), 1);
        }
        let opened = db.file.idle_readers.lock().unwrap().len();
        assert!((2..=*MAX_READERS).contains(&opened), "{opened} read connections for at most {}", *MAX_READERS);
    }

    #[test]
    fn opening_a_file_this_process_has_open_shares_its_writer() {
        let dir = tempfile::tempdir().unwrap();
        let first = open_with_one_row(&dir);
        let again = Db::open(&dir.path().join(".").join("d.db"), "CREATE TABLE IF NOT EXISTS u (y INTEGER);").unwrap();
        assert!(Arc::ptr_eq(&first.file, &again.file));
        // Both schemas ran on the one writer.
        first.with_conn(|conn| conn.execute("INSERT INTO u VALUES (1)", [])).unwrap();
        let other = Db::open(&dir.path().join("e.db"), "CREATE TABLE t (x INTEGER);").unwrap();
        assert!(!Arc::ptr_eq(&first.file, &other.file));
        let unshared = Db::open_unshared(&dir.path().join("d.db"), "").unwrap();
        assert!(!Arc::ptr_eq(&first.file, &unshared.file));
        assert_eq!(unshared.with_conn(|conn| count(conn)).unwrap(), 1);
    }
}
