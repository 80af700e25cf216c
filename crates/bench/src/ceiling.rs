//! The ceiling's storage half: raw inserts into SQLite through the same driver (sqlx) with
//! the same durability as the server — WAL, `synchronous=FULL`, one writer connection and
//! a group-commit task that writes whatever posts are waiting in one transaction (up to
//! 512) — with the work removed: no idempotency lookup, no rules, no conversation row, no
//! FTS trigger, no JSON.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use tokio::sync::{mpsc, oneshot};

use crate::util::{self, r2};

type Post = (i64, String, oneshot::Sender<i64>);

/// The storage under test: a fresh database file with one writer connection and its
/// group-commit task.
struct Storage {
    tx: mpsc::Sender<Post>,
    batches: Arc<AtomicU64>,
    committer: tokio::task::JoinHandle<Result<(), sqlx::Error>>,
    pool: sqlx::SqlitePool,
}

impl Storage {
    async fn open(dir: &std::path::Path) -> anyhow::Result<Storage> {
        let opts = SqliteConnectOptions::new()
            .filename(dir.join("ceiling.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .pragma("cache_size", "-16000");
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts)
            .await?;
        sqlx::query(
            "CREATE TABLE messages (id INTEGER PRIMARY KEY, conversation_id INTEGER NOT NULL, seq INTEGER NOT NULL, \
             body TEXT NOT NULL, client_id TEXT, created_at TEXT NOT NULL, UNIQUE (conversation_id, seq))",
        )
        .execute(&pool)
        .await?;
        let (tx, mut rx) = mpsc::channel::<Post>(4096);
        let batches = Arc::new(AtomicU64::new(0));
        let committer = {
            let pool = pool.clone();
            let batches = batches.clone();
            tokio::spawn(async move {
                let mut batch: Vec<Post> = Vec::with_capacity(512);
                let mut seqs = std::collections::HashMap::<i64, i64>::new();
                while rx.recv_many(&mut batch, 512).await > 0 {
                    let mut t = pool.begin().await?;
                    let mut ids = Vec::with_capacity(batch.len());
                    for (conv, body, _) in &batch {
                        let seq = seqs.entry(*conv).or_insert(0);
                        *seq += 1;
                        let r = sqlx::query("INSERT INTO messages (conversation_id, seq, body, client_id, created_at) VALUES (?, ?, ?, ?, ?)")
                            .bind(conv)
                            .bind(*seq)
                            .bind(body)
                            .bind(format!("c-{seq}"))
                            .bind("2026-01-01T00:00:00Z")
                            .execute(&mut *t)
                            .await?;
                        ids.push(r.last_insert_rowid());
                    }
                    t.commit().await?;
                    batches.fetch_add(1, Relaxed);
                    for ((_, _, reply), id) in batch.drain(..).zip(ids) {
                        let _ = reply.send(id);
                    }
                }
                Ok::<_, sqlx::Error>(())
            })
        };
        Ok(Storage {
            tx,
            batches,
            committer,
            pool,
        })
    }

    async fn close(self) -> u64 {
        drop(self.tx);
        let _ = self.committer.await;
        self.pool.close().await;
        self.batches.load(Relaxed).max(1)
    }
}

/// `producers` tasks each insert, wait for the commit, and insert again, for `secs`.
pub async fn sqlite(dir: &std::path::Path, producers: usize, secs: f64) -> anyhow::Result<Value> {
    let storage = Storage::open(dir).await?;
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
            while !stop.load(Relaxed) {
                let t = util::now_ns();
                let (rtx, rrx) = oneshot::channel();
                let body = util::body(t, 'v', "a message of about the usual length, hello there");
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
    let storage = Storage::open(dir).await?;
    let lat = Arc::new(std::sync::Mutex::new(util::hist()));
    let cpu0 = util::cpu_secs(std::process::id());
    let start = tokio::time::Instant::now();
    let start_ns = util::now_ns();
    let total = (rate * secs).round() as u64;
    let mut waits = tokio::task::JoinSet::new();
    for i in 0..total {
        let due = Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(start + due).await;
        let scheduled = start_ns + due.as_nanos() as u64;
        let (rtx, rrx) = oneshot::channel();
        // 1,000 conversations, as in the throughput scenario.
        let body = util::body(
            scheduled,
            'v',
            "a message of about the usual length, hello there",
        );
        if storage
            .tx
            .send(((i % 1000) as i64, body, rtx))
            .await
            .is_err()
        {
            break;
        }
        let lat = lat.clone();
        waits.spawn(async move {
            if rrx.await.is_ok() {
                util::record_since(&mut lat.lock().unwrap(), scheduled);
            }
        });
    }
    while waits.join_next().await.is_some() {}
    let el = start.elapsed().as_secs_f64();
    // This process does nothing else meanwhile: its CPU time is the storage's (the
    // driver's thread, SQLite, the commits) plus the small pacer.
    let cores = (util::cpu_secs(std::process::id()) - cpu0) / el;
    let b = storage.close().await;
    let h = lat.lock().unwrap();
    Ok(json!({
        "offered_per_s": rate,
        "cpu_cores": r2(cores),
        "inserts": h.len(),
        "secs": r2(el),
        "mean_batch": r2(h.len() as f64 / b as f64),
        "commit_latency": util::lat(&h),
    }))
}

/// The disk alone: `n` appends of 32 KiB (about one group commit's WAL frames), each
/// followed by `fdatasync`, as SQLite does at every commit with `synchronous=FULL`.
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
