//! Connections handed out to one task at a time, without sqlx's pool.
//!
//! sqlx runs every SQLite connection on a thread of its own, so each statement is a round
//! trip between threads. Its pool adds one more to every use: a connection it takes back
//! is pinged first. For a file on local disk that check never finds anything, and on a
//! busy day the extra wake-ups were a large share of the server's CPU time
//! (docs/performance.md). Here a connection goes back as it is. A transaction dropped
//! half-way (a cancelled request) is still rolled back: sqlx queues the rollback on the
//! connection's thread before the next user's statements.

use std::ops::{Deref, DerefMut};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use confab_store::{Result, StoreError};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::Connection;
use tokio::sync::{Semaphore, SemaphorePermit};

pub struct Conns {
    idle: Mutex<Vec<SqliteConnection>>,
    free: Semaphore,
    /// How many connections there are (and permits, when none is out).
    size: u32,
    /// How long a caller waits for a connection before it is told to try again.
    wait: Duration,
}

impl Conns {
    pub async fn open(opts: &SqliteConnectOptions, n: usize, wait: Duration) -> Result<Self> {
        let mut idle = Vec::with_capacity(n);
        for _ in 0..n {
            idle.push(
                SqliteConnection::connect_with(opts)
                    .await
                    .map_err(|e| StoreError::Unavailable(e.to_string()))?,
            );
        }
        Ok(Self {
            idle: Mutex::new(idle),
            free: Semaphore::new(n),
            size: u32::try_from(n).unwrap_or(u32::MAX),
            wait,
        })
    }

    /// Attaches the database file `file` as `name` to every connection (before any use).
    pub async fn attach(&self, file: &std::path::Path, name: &str) -> Result<()> {
        let file = file.to_str().ok_or_else(|| {
            StoreError::Internal(format!("the path is not UTF-8: {}", file.display()))
        })?;
        let mut conns = std::mem::take(&mut *self.idle());
        let mut done = Ok(());
        for c in &mut conns {
            if done.is_ok() {
                done = sqlx::query(&format!("ATTACH DATABASE ? AS {name}"))
                    .bind(file)
                    .execute(&mut *c)
                    .await
                    .map(|_| ())
                    .map_err(|e| StoreError::Unavailable(e.to_string()));
            }
        }
        self.idle().extend(conns);
        done
    }

    fn idle(&self) -> MutexGuard<'_, Vec<SqliteConnection>> {
        // A panic while holding the lock leaves a plain list behind: still consistent.
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A connection for this task alone, back to the others when dropped.
    pub async fn get(&self) -> Result<Conn<'_>> {
        let permit = tokio::time::timeout(self.wait, self.free.acquire())
            .await
            .map_err(|_| StoreError::Unavailable("the database is busy; try again".into()))?
            .map_err(|_| StoreError::Unavailable("the database is closed".into()))?;
        let conn = self.idle().pop();
        match conn {
            Some(conn) => Ok(Conn {
                conns: self,
                conn: Some(conn),
                _permit: permit,
            }),
            None => Err(StoreError::Internal(
                "no idle connection under a permit".into(),
            )),
        }
    }

    /// Holds every connection off, from a thread outside the runtime, until the permit is
    /// dropped. With one connection (the store's writer) this keeps sqlx's writes from
    /// running beside the group-commit thread's.
    ///
    /// It waits as long as the connection is out, without a time limit: a timer would need
    /// the runtime, which may already be shutting down when the last posts are written.
    /// Every use of the connection is one short transaction.
    pub fn hold(&self, rt: &tokio::runtime::Handle) -> Result<SemaphorePermit<'_>> {
        let permit = match self.free.try_acquire_many(self.size) {
            Err(tokio::sync::TryAcquireError::NoPermits) => {
                rt.block_on(self.free.acquire_many(self.size)).ok()
            }
            other => other.ok(),
        };
        permit.ok_or_else(|| StoreError::Unavailable("the database is closed".into()))
    }

    /// Closes the idle connections (the last one to close checkpoints the WAL); no one
    /// gets a connection afterwards.
    pub async fn close(&self) {
        self.free.close();
        let idle = std::mem::take(&mut *self.idle());
        for c in idle {
            let _ = c.close().await;
        }
    }
}

pub struct Conn<'a> {
    conns: &'a Conns,
    conn: Option<SqliteConnection>,
    // Dropped after `drop` below has put the connection back.
    _permit: SemaphorePermit<'a>,
}

impl Deref for Conn<'_> {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        self.conn.as_ref().expect("present until dropped")
    }
}

impl DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        self.conn.as_mut().expect("present until dropped")
    }
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.conn.take() {
            self.conns.idle().push(c);
        }
    }
}
