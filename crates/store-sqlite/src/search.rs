//! The full-text index (I9), in a file of its own beside the database, kept by a thread of
//! its own.
//!
//! Every entry is derived from a message in the database, so the index needs none of the
//! database's guarantees. Its commits are not synced before anyone hears back (its
//! connection has `synchronous = NORMAL`), and they never wait for, or hold up, the writer
//! thread's group commits. Until round 21 a step of the index ran on the writer thread,
//! in the database's log: at 5,000 msg/s that was p99 4.84 against 4.61 ms without it, and
//! 5 % of the server's CPU at 10,000 (docs/performance.md).
//!
//! What keeps it right:
//! - **A mark in the same transactions.** `progress.indexed_upto` is the last message id a
//!   step has looked at; a crash that loses the last steps loses their mark with them, and
//!   the next step takes them again.
//! - **Deletes through the database.** A message deleted from the database (a conversation
//!   or contact erased) leaves its id in `search_erasures` in the same transaction (a
//!   trigger, migrations/0007); a step removes those entries from the index, syncs that
//!   commit, and only then forgets the ids. An index entry of a deleted message is never
//!   found meanwhile: a search joins its hits to the messages.
//! - **Read your writes.** A search first asks this thread to index every message stored
//!   so far ([`Search::catch_up`]).
//! - **Rebuilt when in doubt.** A missing or unreadable file, or a mark beyond the
//!   database's last id (a database restored from an older backup beside a newer index),
//!   starts the index again from the first message, in steps, while the server runs.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use confab_store::{Result, StoreError};
use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;

use crate::sibling;
use crate::writer::{db_err, open_wal};

/// How long the thread waits for new messages between two steps when nobody asks.
const STEP_EVERY: Duration = Duration::from_millis(100);
/// The most messages one step (one transaction) indexes: a rebuild goes in steps this
/// size, so a search may interleave and the log stays short.
const STEP_ROWS: i64 = 20_000;
/// The most deleted messages one step removes from the index.
const ERASE_ROWS: i64 = 5_000;
/// How long a search waits for the index to catch up before it is told to try again
/// (only a rebuild of a large index takes longer).
const CATCH_UP_WAIT: Duration = Duration::from_secs(10);
/// How often a long build of the index logs how far it has got.
const SAY_EVERY: Duration = Duration::from_secs(5);

/// The schema of the index file; a file of another version is rebuilt.
const VERSION: i64 = 1;

/// The index file of the database at `db`: `confab.db` → `confab.db-search`.
pub(crate) fn path_of(db: &Path) -> PathBuf {
    sibling(db, "-search")
}

/// Deletes the index file `file` and the log and shared memory SQLite keeps beside it.
fn remove_files(file: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(sibling(file, suffix));
    }
}

enum Ask {
    /// Index every message stored so far, then answer.
    CatchUp(oneshot::Sender<Result<()>>),
    /// Index what is left, then stop.
    Stop,
}

/// The handle of the index thread. Dropped without [`Search::stop`], it closes the
/// thread's channel, and the thread indexes what is left and ends.
pub(crate) struct Search {
    asks: Mutex<Option<mpsc::Sender<Ask>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Search {
    /// Opens (creating or rebuilding) the index beside the migrated database at `db` and
    /// starts its thread. Returns once the file exists, so read connections may attach it.
    pub(crate) fn start(db: &Path) -> Result<Self> {
        let conn = open(db)?;
        let wal = sibling(&path_of(db), "-wal");
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("confab-search".into())
            .spawn(move || run(&conn, &wal, &rx))
            .map_err(|e| StoreError::Internal(format!("could not start the search thread: {e}")))?;
        Ok(Self {
            asks: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Waits until every message stored before the call is in the index.
    pub(crate) async fn catch_up(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        let gone = || StoreError::Unavailable("the search index has stopped".into());
        self.asks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .ok_or_else(gone)?
            .send(Ask::CatchUp(tx))
            .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    /// Indexes what is left and stops the thread (blocking until it has).
    pub(crate) fn stop(&self) {
        if let Some(tx) = self.asks.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = tx.send(Ask::Stop);
        }
        if let Some(thread) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = thread.join();
        }
    }
}

/// Opens the index file, with the database attached as `content`; a file that cannot be
/// used is deleted and made again.
fn open(db: &Path) -> Result<Connection> {
    let file = path_of(db);
    match open_file(db, &file) {
        Ok(conn) => Ok(conn),
        Err(e) => {
            tracing::warn!(error = %e, file = %file.display(), "the search index could not be opened; rebuilding it");
            remove_files(&file);
            open_file(db, &file)
        }
    }
}

fn open_file(db: &Path, file: &Path) -> Result<Connection> {
    let conn = open_wal(file, OpenFlags::SQLITE_OPEN_CREATE, "the search index")?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(db_err)?;
    conn.execute(
        "ATTACH DATABASE ?1 AS content",
        [db.to_str().ok_or_else(|| {
            StoreError::Internal(format!("the database path is not UTF-8: {}", db.display()))
        })?],
    )
    .map_err(db_err)?;
    let version: i64 = conn
        .query_row("PRAGMA main.user_version", [], |r| r.get(0))
        .map_err(db_err)?;
    let stale = version == VERSION && {
        // A mark beyond the database's last ids: the database is older than the index.
        let (indexed, erased): (i64, i64) = conn
            .query_row("SELECT indexed_upto, erased_upto FROM progress", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map_err(db_err)?;
        let last = |table: &str| -> Result<i64> {
            conn.query_row(
                "SELECT COALESCE((SELECT seq FROM content.sqlite_sequence WHERE name = ?1), 0)",
                [table],
                |r| r.get(0),
            )
            .map_err(db_err)
        };
        indexed > last("messages")? || erased > last("search_erasures")?
    };
    if version != VERSION || stale {
        if version != 0 {
            tracing::warn!(version, stale, "rebuilding the search index");
        }
        conn.execute_batch(
            "BEGIN;
             DROP TABLE IF EXISTS main.messages_fts;
             DROP TABLE IF EXISTS main.progress;
             CREATE VIRTUAL TABLE main.messages_fts USING fts5(body, content = '', contentless_delete = 1);
             CREATE TABLE main.progress (
                 id INTEGER PRIMARY KEY CHECK (id = 1),
                 indexed_upto INTEGER NOT NULL,
                 erased_upto INTEGER NOT NULL
             );
             INSERT INTO main.progress (id, indexed_upto, erased_upto)
                 VALUES (1, 0, 0);
             COMMIT;",
        )
        .map_err(db_err)?;
        conn.pragma_update(Some(rusqlite::DatabaseName::Main), "user_version", VERSION)
            .map_err(db_err)?;
    }
    Ok(conn)
}

/// The thread: a step whenever there may be something to index, and every catch-up asked
/// for, until the store stops.
fn run(conn: &Connection, wal: &Path, asks: &mpsc::Receiver<Ask>) {
    let mut behind = true;
    // A long build logs how far it has got, and when it is done.
    let (mut last_said, mut building) = (Instant::now(), false);
    loop {
        let wait = if behind { Duration::ZERO } else { STEP_EVERY };
        match asks.recv_timeout(wait) {
            Ok(Ask::CatchUp(first)) => {
                let mut waiting = vec![first];
                let mut stop = false;
                for ask in asks.try_iter() {
                    match ask {
                        Ask::CatchUp(tx) => waiting.push(tx),
                        Ask::Stop => stop = true,
                    }
                }
                let done = catch_up(conn, wal, Instant::now() + CATCH_UP_WAIT);
                behind = done.is_err();
                for tx in waiting {
                    let _ = tx.send(match &done {
                        Ok(()) => Ok(()),
                        Err(StoreError::Unavailable(m)) => Err(StoreError::Unavailable(m.clone())),
                        Err(e) => Err(StoreError::Internal(e.to_string())),
                    });
                }
                if stop {
                    return finish(conn, wal);
                }
            }
            Ok(Ask::Stop) | Err(RecvTimeoutError::Disconnected) => return finish(conn, wal),
            Err(RecvTimeoutError::Timeout) => match step(conn, wal) {
                Ok(stepped) => {
                    let full = stepped == Stepped::Full;
                    if full && last_said.elapsed() >= SAY_EVERY {
                        last_said = Instant::now();
                        building = true;
                        say_progress(conn);
                    } else if building && !full {
                        building = false;
                        tracing::info!("the search index has caught up with the messages");
                    }
                    behind = full;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not index messages for search");
                    behind = false;
                }
            },
        }
    }
}

/// The thread's last catch-up, when the store stops.
fn finish(conn: &Connection, wal: &Path) {
    if let Err(e) = catch_up(conn, wal, Instant::now() + CATCH_UP_WAIT) {
        tracing::warn!(error = %e, "the search index stopped behind the messages");
    }
}

/// Logs how far a long build of the index has got.
fn say_progress(conn: &Connection) {
    let at = conn.query_row(
        "SELECT (SELECT indexed_upto FROM progress), \
         (SELECT COALESCE(MAX(id), 0) FROM content.messages)",
        [],
        |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
    );
    if let Ok((indexed, last)) = at {
        tracing::info!(
            indexed,
            last,
            "building the search index: up to message {indexed} of {last}"
        );
    }
}

/// Steps until every message stored before the call is indexed and every deletion so far
/// applied, or until `deadline`.
fn catch_up(conn: &Connection, wal: &Path, deadline: Instant) -> Result<()> {
    let last = |sql: &str| -> Result<i64> { conn.query_row(sql, [], |r| r.get(0)).map_err(db_err) };
    let target = last("SELECT COALESCE(MAX(id), 0) FROM content.messages")?;
    let erasures = last("SELECT COALESCE(MAX(id), 0) FROM content.search_erasures")?;
    loop {
        let (indexed, erased): (i64, i64) = conn
            .query_row("SELECT indexed_upto, erased_upto FROM progress", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map_err(db_err)?;
        if indexed >= target && erased >= erasures {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(StoreError::Unavailable(format!(
                "the search index is still being built ({indexed} of {target} messages); try again shortly"
            )));
        }
        if step(conn, wal)? == Stepped::Nothing {
            // Nothing above the mark and nothing to remove: the last messages were
            // deleted meanwhile.
            return Ok(());
        }
    }
}

/// One step: indexes up to [`STEP_ROWS`] messages above the mark and removes up to
/// [`ERASE_ROWS`] deleted ones, in one transaction of the index file (the database is
/// only read, from one snapshot).
fn step(conn: &Connection, wal: &Path) -> Result<Stepped> {
    step_by(conn, wal, STEP_ROWS, ERASE_ROWS)
}

/// [`step`], with its limits given.
fn step_by(conn: &Connection, wal: &Path, rows: i64, erase: i64) -> Result<Stepped> {
    // Deferred: SQLite locks for writing only the file written (the index), never the
    // database the writer thread commits to.
    let tx = conn.unchecked_transaction().map_err(db_err)?;
    let (from, erased_from): (i64, i64) = tx
        .query_row("SELECT indexed_upto, erased_upto FROM progress", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .map_err(db_err)?;
    let (upto, seen): (Option<i64>, i64) = tx
        .prepare_cached(
            "SELECT MAX(id), COUNT(*) FROM \
             (SELECT id FROM content.messages WHERE id > ?1 ORDER BY id LIMIT ?2)",
        )
        .and_then(|mut st| st.query_row([from, rows], |r| Ok((r.get(0)?, r.get(1)?))))
        .map_err(db_err)?;
    if let Some(upto) = upto {
        tx.prepare_cached(
            "INSERT INTO messages_fts (rowid, body) SELECT id, body FROM content.messages \
             WHERE id > ?1 AND id <= ?2 AND kind <> 'event' ORDER BY id",
        )
        .and_then(|mut st| st.execute([from, upto]))
        .map_err(db_err)?;
        tx.prepare_cached("UPDATE progress SET indexed_upto = ?1")
            .and_then(|mut st| st.execute([upto]))
            .map_err(db_err)?;
    }
    let erasures: Vec<(i64, i64)> = {
        let mut st = tx
            .prepare_cached(
                "SELECT id, message_id FROM content.search_erasures WHERE id > ?1 ORDER BY id LIMIT ?2",
            )
            .map_err(db_err)?;
        let rows = st
            .query_map([erased_from, erase], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(db_err)?;
        rows.collect::<rusqlite::Result<_>>().map_err(db_err)?
    };
    let erased_upto = erasures.last().map(|(id, _)| *id);
    if let Some(erased_upto) = erased_upto {
        let mut delete = tx
            .prepare_cached("DELETE FROM messages_fts WHERE rowid = ?1")
            .map_err(db_err)?;
        for (_, message) in &erasures {
            delete.execute([message]).map_err(db_err)?;
        }
        drop(delete);
        tx.prepare_cached("UPDATE progress SET erased_upto = ?1")
            .and_then(|mut st| st.execute([erased_upto]))
            .map_err(db_err)?;
    }
    tx.commit().map_err(db_err)?;
    if let Some(erased_upto) = erased_upto {
        // The removal is on disk before the database forgets which entries to remove.
        std::fs::File::open(wal)
            .and_then(|f| f.sync_data())
            .map_err(|e| {
                StoreError::Unavailable(format!("could not sync the search index: {e}"))
            })?;
        conn.prepare_cached("DELETE FROM content.search_erasures WHERE id <= ?1")
            .and_then(|mut st| st.execute([erased_upto]))
            .map_err(db_err)?;
    }
    Ok(if seen >= rows || erasures.len() as i64 >= erase {
        Stepped::Full
    } else if seen == 0 && erasures.is_empty() {
        Stepped::Nothing
    } else {
        Stepped::Some
    })
}

/// What a [`step`] found to do.
#[derive(Debug, PartialEq, Eq)]
enum Stepped {
    Nothing,
    Some,
    /// As much as a step takes: there may be more.
    Full,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SqliteStore;
    use confab_store::conformance::{contact, site, start, visitor_msg};
    use confab_store::Store;

    fn count(conn: &Connection, sql: &str) -> i64 {
        conn.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    /// A build of the index goes in steps of a bounded size, each leaving a mark the next
    /// starts from; deletes are applied in bounded steps too; and a catch-up that runs out
    /// of time says how far the build has got instead of waiting on.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn builds_and_deletes_go_in_bounded_steps() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("confab.db");
        let store = SqliteStore::open(&db).await.unwrap();
        let site = site(&store, "s").await;
        let a = start(&store, site.id, contact(&store, site.id).await.id).await;
        let b = start(&store, site.id, contact(&store, site.id).await.id).await;
        for i in 0..5 {
            for conv in [&a, &b] {
                let body = format!("parcel {i} in {}", conv.id.0);
                store
                    .post_message(visitor_msg(conv, &body, &body))
                    .await
                    .unwrap();
            }
        }
        store.close().await;
        remove_files(&path_of(&db));
        let wal = sibling(&path_of(&db), "-wal");

        // Out of time at once: the answer says how far it got, and changes nothing.
        let conn = open(&db).unwrap();
        let Err(StoreError::Unavailable(why)) = catch_up(&conn, &wal, Instant::now()) else {
            panic!("a catch-up out of time succeeded");
        };
        assert!(why.contains("still being built (0 of"), "{why}");

        let mut steps = 0;
        while step_by(&conn, &wal, 3, 1).unwrap() == Stepped::Full {
            steps += 1;
            assert_eq!(
                count(&conn, "SELECT indexed_upto FROM progress"),
                count(
                    &conn,
                    &format!(
                        "SELECT MAX(id) FROM (SELECT id FROM content.messages ORDER BY id LIMIT {})",
                        3 * steps
                    )
                ),
                "step {steps} left its mark after the rows it looked at"
            );
        }
        assert!(steps >= 3, "{steps} steps");
        assert_eq!(
            count(&conn, "SELECT indexed_upto FROM progress"),
            count(&conn, "SELECT MAX(id) FROM content.messages")
        );
        let searchable = "SELECT count(*) FROM content.messages WHERE kind <> 'event'";
        assert_eq!(
            count(&conn, "SELECT count(*) FROM messages_fts_docsize"),
            count(&conn, searchable)
        );
        assert_eq!(catch_up(&conn, &wal, Instant::now()).ok(), Some(()));

        // Five deleted messages, one removal a step.
        let content = Connection::open(&db).unwrap();
        content
            .execute("DELETE FROM messages WHERE conversation_id = ?1", [b.id.0])
            .unwrap();
        let mut removals = 0;
        while step_by(&conn, &wal, 3, 1).unwrap() != Stepped::Nothing {
            removals += 1;
        }
        assert_eq!(removals, 5);
        assert_eq!(
            count(&conn, "SELECT count(*) FROM messages_fts_docsize"),
            count(&conn, searchable)
        );
        assert_eq!(
            count(&conn, "SELECT count(*) FROM content.search_erasures"),
            0
        );
        assert_eq!(
            count(
                &conn,
                "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'parcel'"
            ),
            5
        );
    }
}
