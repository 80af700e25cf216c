//! Point reads on the calling thread.
//!
//! sqlx runs every SQLite connection on a thread of its own: a read is a hand-off to that
//! thread and one back, two wake-ups and two context switches. The lookups by key that
//! every request and socket makes (a visitor's session, an agent's session, a
//! conversation) take SQLite a few microseconds, and on a busy day those hand-offs cost
//! more than the reads: the sqlx threads were a fifth of the server's CPU time for the
//! day's requests and sockets, and sleeping and waking was two fifths of theirs
//! (docs/performance.md, round 12). These reads run here instead, on rusqlite
//! connections of their own, on the thread that asks; it blocks for as long as the
//! lookup takes, as it would for a lock.
//!
//! Only lookups of one row by a unique key go here, and reads of at most [`MAX_ROWS`] rows
//! along an index: a socket's catch-up reads its first page that small, and a visitor's
//! conversations are read here when there are no more than that (one row over tells).
//! Anything longer (lists, search, a long catch-up or history) stays on sqlx's threads, so
//! a tokio worker never waits long.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use confab_store::{Result, StoreError};
use rusqlite::{Connection, OpenFlags};

/// The most rows a read here may return.
pub const MAX_ROWS: i64 = 32;

/// Idle connections kept; a thread that finds none opens one. Reads happen on the
/// runtime's worker threads, so about that many are in use at once.
const KEEP: usize = 8;

pub struct Inline {
    path: PathBuf,
    cache_kib: &'static str,
    idle: Mutex<Vec<Connection>>,
    closed: AtomicBool,
}

impl Inline {
    pub fn new(path: &Path, cache_kib: &'static str) -> Self {
        Self {
            path: path.to_owned(),
            cache_kib,
            idle: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
        }
    }

    fn open(&self) -> Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        conn.busy_timeout(Duration::from_secs(10))
            .map_err(crate::writer::db_err)?;
        conn.pragma_update(None, "cache_size", self.cache_kib)
            .map_err(crate::writer::db_err)?;
        conn.set_prepared_statement_cache_capacity(16);
        Ok(conn)
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        // A panic while holding the lock leaves a plain list behind: still consistent.
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on an idle connection (or a new one), here and now.
    pub fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Unavailable("the database is closed".into()));
        }
        let idle = self.idle().pop();
        let conn = match idle {
            Some(conn) => conn,
            None => self.open()?,
        };
        let result = f(&conn);
        let mut idle = self.idle();
        if idle.len() < KEEP && !self.closed.load(Ordering::Acquire) {
            idle.push(conn);
        }
        result
    }

    /// Closes the idle connections, before the store's last connection closes and
    /// checkpoints the log; no reads run here afterwards.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.idle().clear();
    }
}
