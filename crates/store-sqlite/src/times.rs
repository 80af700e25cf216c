//! Where the writer's time goes, batch by batch: the instrument behind
//! [`crate::SqliteStore::take_writer_times`] (docs/performance.md, round 22).
//!
//! A post's time in the store is its statements and those of the posts written after it
//! in its batch, the time the batch's transaction waited (for more posts, or for the batch
//! before it to be synced), the batch's commit, and the sync of the log that makes it
//! durable.
//! The load generator sees only their sum; these say which part a slow post spent its
//! time in (a checkpoint falls inside a commit, a slow disk inside a sync). Recording
//! is a few histogram counters per batch, under a lock each thread takes once per batch.

use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;

/// Per-batch times in microseconds (and ops per batch), since the last
/// [`crate::SqliteStore::take_writer_times`].
#[derive(Clone, Debug)]
pub struct WriterTimes {
    /// Within a batch: how long its open transaction waited, for posts to come or for the
    /// batch before it to be synced (the writer commits no more often than the log is
    /// synced, and writes what comes meanwhile at once). Until round 24 the writer waited
    /// for the sync before it wrote anything, and this was that wait.
    pub wait: Histogram<u64>,
    /// The batch's statements, inside its transaction.
    pub apply: Histogram<u64>,
    /// The batch's commit: its frames written to the log, and a checkpoint of the log
    /// into the database when one falls due (SQLite runs it inside the commit).
    pub commit: Histogram<u64>,
    /// Each `fdatasync` of the log by the sync thread (one for every batch committed
    /// while the one before was being synced).
    pub sync: Histogram<u64>,
    /// Ops (posts, starts, page views, …) per batch.
    pub ops: Histogram<u64>,
}

impl Default for WriterTimes {
    fn default() -> Self {
        // 1 µs to 10 min, 3 significant figures: the load generator's histograms.
        let h = || Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds");
        Self {
            wait: h(),
            apply: h(),
            commit: h(),
            sync: h(),
            ops: h(),
        }
    }
}

impl WriterTimes {
    /// All the ops of the batches counted (exact: a batch holds at most `MAX_BATCH`, 512, and the
    /// histograms count every value up to 2,048 exactly).
    pub fn ops_total(&self) -> u64 {
        self.ops
            .iter_recorded()
            .map(|v| v.value_iterated_to() * v.count_at_value())
            .sum()
    }
}

/// The store's [`WriterTimes`], written by the writer and sync threads.
#[derive(Default)]
pub(crate) struct Times(Mutex<WriterTimes>);

impl Times {
    /// One committed batch of `ops` ops.
    pub(crate) fn batch(&self, wait: Duration, apply: Duration, commit: Duration, ops: usize) {
        let mut t = self.0.lock().unwrap_or_else(|e| e.into_inner());
        t.wait.saturating_record(micros(wait));
        t.apply.saturating_record(micros(apply));
        t.commit.saturating_record(micros(commit));
        t.ops.saturating_record(ops as u64);
    }

    pub(crate) fn sync(&self, took: Duration) {
        let mut t = self.0.lock().unwrap_or_else(|e| e.into_inner());
        t.sync.saturating_record(micros(took));
    }

    pub(crate) fn take(&self) -> WriterTimes {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// At least 1 µs: the histograms start there.
fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).max(1)
}
