//! The ceiling's storage half: raw inserts into SQLite through the same driver and with
//! the same durability as the server's writer (`store-sqlite/src/writer.rs`) — rusqlite
//! on a thread of its own, WAL, a group commit of whatever posts are waiting (up to 512)
//! with `synchronous = NORMAL`, and a sync thread that `fdatasync`s the log before it
//! answers the batch — with the work removed: no idempotency lookup, no rules, no
//! conversation row, no full text, no JSON.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{mpsc as std_mpsc, Arc};
use std::time::{Duration, Instant};

use rusqlite::{params, Connection};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use crate::util::{self, r2};

pub type Post = (i64, String, oneshot::Sender<i64>);

/// The storage under test: a fresh database file, its writer thread and its sync thread.
/// A post sent on `tx` is answered with its row id once its batch is committed and the
/// log is on disk.
pub struct Storage {
    pub tx: mpsc::Sender<Post>,
    batches: Arc<AtomicU64>,
    writer: std::thread::JoinHandle<rusqlite::Result<()>>,
}

impl Storage {
    /// The database file in `dir`.
    pub fn file(dir: &std::path::Path) -> std::path::PathBuf {
        dir.join("ceiling.db")
    }

    pub fn open(dir: &std::path::Path) -> anyhow::Result<Storage> {
        let path = Self::file(dir);
        let conn = Connection::open(&path)?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        anyhow::ensure!(mode.eq_ignore_ascii_case("wal"), "no WAL: {mode}");
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "cache_size", "-16000")?;
        conn.execute_batch(
            "CREATE TABLE messages (id INTEGER PRIMARY KEY, conversation_id INTEGER NOT NULL, seq INTEGER NOT NULL, \
             body TEXT NOT NULL, client_id TEXT, created_at TEXT NOT NULL, UNIQUE (conversation_id, seq))",
        )?;
        let wal = dir.join("ceiling.db-wal");
        let (tx, rx) = mpsc::channel::<Post>(4096);
        let (to_sync, synced) = std_mpsc::channel::<Vec<(oneshot::Sender<i64>, i64)>>();
        std::thread::spawn(move || {
            let mut log: Option<std::fs::File> = None;
            while let Ok(first) = synced.recv() {
                let mut pending = vec![first];
                pending.extend(synced.try_iter());
                if log.is_none() {
                    log = std::fs::File::open(&wal).ok();
                }
                // A failed sync answers nobody: the waiting producers see a closed channel.
                if log.as_ref().is_some_and(|f| f.sync_data().is_ok()) {
                    for (reply, id) in pending.into_iter().flatten() {
                        let _ = reply.send(id);
                    }
                }
            }
        });
        let batches = Arc::new(AtomicU64::new(0));
        let counted = batches.clone();
        let writer = std::thread::spawn(move || write_loop(conn, rx, &to_sync, &counted));
        Ok(Storage {
            tx,
            batches,
            writer,
        })
    }

    pub async fn close(self) -> u64 {
        drop(self.tx);
        let _ = tokio::task::spawn_blocking(move || self.writer.join()).await;
        self.batches.load(Relaxed).max(1)
    }
}

/// The writer thread: waits for a post, takes every other one already waiting (up to
/// 512), inserts them in one transaction, and hands the answers to the sync thread.
fn write_loop(
    mut conn: Connection,
    mut rx: mpsc::Receiver<Post>,
    to_sync: &std_mpsc::Sender<Vec<(oneshot::Sender<i64>, i64)>>,
    batches: &AtomicU64,
) -> rusqlite::Result<()> {
    let mut batch: Vec<Post> = Vec::with_capacity(512);
    let mut seqs = std::collections::HashMap::<i64, i64>::new();
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < 512 {
            match rx.try_recv() {
                Ok(post) => batch.push(post),
                Err(_) => break,
            }
        }
        let t = conn.transaction()?;
        let mut answers = Vec::with_capacity(batch.len());
        {
            let mut insert = t.prepare_cached(
                "INSERT INTO messages (conversation_id, seq, body, client_id, created_at) VALUES (?, ?, ?, ?, ?)",
            )?;
            for (conv, body, reply) in batch.drain(..) {
                let seq = seqs.entry(conv).or_insert(0);
                *seq += 1;
                insert.execute(params![
                    conv,
                    *seq,
                    body,
                    format!("c-{seq}"),
                    "2026-01-01T00:00:00Z"
                ])?;
                answers.push((reply, t.last_insert_rowid()));
            }
        }
        t.commit()?;
        batches.fetch_add(1, Relaxed);
        if to_sync.send(answers).is_err() {
            break;
        }
    }
    Ok(())
}

/// `producers` tasks each insert, wait for the commit, and insert again, for `secs`.
pub async fn sqlite(dir: &std::path::Path, producers: usize, secs: f64) -> anyhow::Result<Value> {
    let storage = Storage::open(dir)?;
    let tx = storage.tx.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let lat = Arc::new(std::sync::Mutex::new(util::hist()));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..producers {
        let (tx, stop, done, lat) = (tx.clone(), stop.clone(), done.clone(), lat.clone());
        tasks.push(tokio::spawn(async move {
            let mut h = util::hist();
            let mut talk = util::Talk::new(p as u64);
            while !stop.load(Relaxed) {
                let t = util::now_ns();
                let (rtx, rrx) = oneshot::channel();
                let body = util::body(t, 'v', "raw", &talk.line('v'));
                if tx.send((p as i64, body, rtx)).await.is_err() || rrx.await.is_err() {
                    break;
                }
                util::record_since(&mut h, t);
                done.fetch_add(1, Relaxed);
            }
            lat.lock().unwrap().add(&h).ok();
        }));
    }
    drop(tx);
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    stop.store(true, Relaxed);
    let n = done.load(Relaxed);
    let el = t0.elapsed().as_secs_f64();
    for t in tasks {
        let _ = t.await;
    }
    let b = storage.close().await;
    let h = lat.lock().unwrap();
    Ok(json!({
        "producers": producers,
        "inserts": n,
        "secs": r2(el),
        "inserts_per_s": (n as f64 / el).round(),
        "mean_batch": r2(n as f64 / b as f64),
        "commit_latency": util::lat(&h),
    }))
}

/// Open loop: inserts at `rate` per second on a fixed schedule for `secs`, whatever the
/// commits are doing, each timed from when it was due to when its commit was on disk.
/// This is the latency floor the storage sets for a message at that rate.
pub async fn sqlite_paced(dir: &std::path::Path, rate: f64, secs: f64) -> anyhow::Result<Value> {
    let storage = Storage::open(dir)?;
    let cpu0 = util::cpu_secs(std::process::id());
    let mut talk = util::Talk::new(0);
    let p = util::open_loop(rate, secs, |i, due_ns| {
        let (rtx, rrx) = oneshot::channel();
        // 1,000 conversations, as in the throughput scenario.
        let post = (
            (i % 1000) as i64,
            util::body(due_ns, 'v', "raw", &talk.line('v')),
            rtx,
        );
        let tx = storage.tx.clone();
        async move {
            tx.send(post).await.map_err(|_| "the storage has stopped")?;
            rrx.await
                .map(drop)
                .map_err(|_| "the sync failed".to_string())
        }
    })
    .await;
    // This process does nothing else meanwhile: its CPU time is the storage's (the
    // driver's thread, SQLite, the commits) plus the small pacer.
    let cores = (util::cpu_secs(std::process::id()) - cpu0) / p.secs;
    let b = storage.close().await;
    let inserts = p.lat.len();
    Ok(json!({
        "offered_per_s": rate,
        "cpu_cores": r2(cores),
        "inserts": inserts,
        "errors": p.errors,
        "secs": r2(p.secs),
        "mean_batch": r2(inserts as f64 / b as f64),
        "commit_latency": util::lat(&p.lat),
    }))
}

/// The disk alone: `n` appends of 32 KiB (about one group commit's WAL frames), each
/// followed by `fdatasync`, as the sync thread does for every batch (and SQLite at every
/// commit with `synchronous = FULL`).
pub fn disk_sync(dir: &std::path::Path, n: usize) -> anyhow::Result<Value> {
    use std::io::Write;
    let path = dir.join("sync-probe");
    let mut f = std::fs::File::create(&path)?;
    let block = vec![0x5au8; 32 * 1024];
    let mut h = util::hist();
    for _ in 0..n {
        f.write_all(&block)?;
        let t = Instant::now();
        f.sync_data()?;
        h.saturating_record((t.elapsed().as_micros() as u64).max(1));
        std::thread::sleep(Duration::from_millis(1));
    }
    drop(f);
    std::fs::remove_file(&path)?;
    Ok(json!({ "syncs": n, "fdatasync": util::lat(&h) }))
}
