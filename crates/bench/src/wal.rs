//! Where a SQLite server's log pages go: which B-trees the commits in a write-ahead log
//! touched, and how many messages each commit carried.
//!
//! The bytes a server writes per message (`wchar`) say how much; this says what. During a
//! throughput step the bench copies the log of the server's database while it runs, and
//! after the step maps each page number to its table or index (SQLite's `dbstat`). A
//! commit of a dozen messages that rewrites thirty pages shows here as the thirty pages,
//! by B-tree (docs/performance.md, round 17).
//!
//! The format is SQLite's (<https://www.sqlite.org/fileformat2.html#walformat>): a
//! 32-byte header, then frames of a 24-byte header and one page. A frame belongs to the
//! log only if its salts match the header's and its running checksum holds, so a copy
//! taken while the server writes ends at the last frame written whole, and frames left
//! over from before the log restarted are not counted.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use serde::Serialize;

use crate::util::{now_ns, r2};

const HEADER: usize = 32;
const FRAME_HEADER: usize = 24;

/// One commit: the pages it wrote, each once, with the highest row id on each that is a
/// table's leaf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    pub pages: Vec<(u32, Option<i64>)>,
}

/// What a copy of a log holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Log {
    pub page_size: usize,
    /// Which log this is: SQLite draws new salts each time it starts the log over.
    pub salts: [u8; 8],
    /// Complete commits, oldest first. Frames after the last commit frame are left out.
    pub commits: Vec<Commit>,
}

/// The commits in `wal` (a copy of a `-wal` file). A header that is not a log's gives an
/// error; a log cut short gives the commits before the cut.
pub fn read_log(wal: &[u8]) -> anyhow::Result<Log> {
    anyhow::ensure!(
        wal.len() >= HEADER,
        "a write-ahead log is at least 32 bytes"
    );
    let word = |b: &[u8], at: usize| u32::from_be_bytes(b[at..at + 4].try_into().unwrap());
    let magic = word(wal, 0);
    anyhow::ensure!(
        magic & !1 == 0x377f_0682,
        "not a SQLite write-ahead log (magic {magic:#x})"
    );
    // The checksums read the log's words big-endian when the magic's low bit is set.
    let big = magic & 1 == 1;
    let page_size = word(wal, 8) as usize;
    anyhow::ensure!(
        page_size.is_power_of_two() && (512..=65_536).contains(&page_size),
        "page size {page_size} in the log's header"
    );
    let salts: [u8; 8] = wal[16..24].try_into().unwrap();
    let mut sum = checksum(big, (0, 0), &wal[..24]);
    anyhow::ensure!(
        sum == (word(wal, 24), word(wal, 28)),
        "the log's header fails its checksum"
    );
    let mut commits = Vec::new();
    let mut pages: Vec<(u32, Option<i64>)> = Vec::new();
    let mut at = HEADER;
    while at + FRAME_HEADER + page_size <= wal.len() {
        let head = &wal[at..at + FRAME_HEADER];
        let page = &wal[at + FRAME_HEADER..at + FRAME_HEADER + page_size];
        if head[8..16] != salts {
            break;
        }
        sum = checksum(big, checksum(big, sum, &head[..8]), page);
        if sum != (word(head, 16), word(head, 20)) {
            break;
        }
        let (pgno, rowid) = (word(head, 0), leaf_max_rowid(page));
        // A page written twice in one commit: its last image counts.
        match pages.iter_mut().find(|(p, _)| *p == pgno) {
            Some(seen) => seen.1 = rowid,
            None => pages.push((pgno, rowid)),
        }
        if word(head, 4) != 0 {
            commits.push(Commit {
                pages: std::mem::take(&mut pages),
            });
        }
        at += FRAME_HEADER + page_size;
    }
    Ok(Log {
        page_size,
        salts,
        commits,
    })
}

/// Copies of logs taken one after another, each log once: of several copies of the same
/// log (the same salts) the longest, which holds the others' commits.
#[derive(Debug, Default)]
pub struct Copies(Vec<Log>);

impl Copies {
    pub fn add(&mut self, log: Log) {
        match self.0.iter_mut().find(|l| l.salts == log.salts) {
            Some(l) if l.commits.len() >= log.commits.len() => {}
            Some(l) => *l = log,
            None => self.0.push(log),
        }
    }

    pub fn logs(&self) -> &[Log] {
        &self.0
    }
}

/// SQLite's log checksum: two running 32-bit sums over pairs of words.
fn checksum(big: bool, (mut s1, mut s2): (u32, u32), bytes: &[u8]) -> (u32, u32) {
    let word = |c: &[u8]| {
        let b = c.try_into().unwrap();
        if big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    };
    for pair in bytes.chunks_exact(8) {
        s1 = s1.wrapping_add(word(&pair[..4])).wrapping_add(s2);
        s2 = s2.wrapping_add(word(&pair[4..])).wrapping_add(s1);
    }
    (s1, s2)
}

/// The highest row id on a table's leaf page (not page 1), or `None` for any other page.
fn leaf_max_rowid(page: &[u8]) -> Option<i64> {
    if page.first() != Some(&0x0d) {
        return None;
    }
    let cells = u16::from_be_bytes([page[3], page[4]]) as usize;
    (0..cells)
        .filter_map(|i| {
            let ptr = page.get(8 + 2 * i..10 + 2 * i)?;
            let at = u16::from_be_bytes([ptr[0], ptr[1]]) as usize;
            let (_, at) = varint(page, at)?;
            varint(page, at).map(|(v, _)| v as i64)
        })
        .max()
}

/// A SQLite varint at `at`: its value and where the next field starts.
fn varint(b: &[u8], at: usize) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for k in 0..9 {
        let c = *b.get(at + k)?;
        if k == 8 {
            return Some(((v << 8) | u64::from(c), at + 9));
        }
        v = (v << 7) | u64::from(c & 0x7f);
        if c < 0x80 {
            return Some((v, at + k + 1));
        }
    }
    None
}

/// Which table or index each page of the database belongs to, from `dbstat` (on a
/// read-only connection; the server may keep writing).
fn page_owners(conn: &Connection) -> anyhow::Result<HashMap<u32, String>> {
    let mut st = conn.prepare("SELECT pageno, name FROM dbstat")?;
    let rows = st.query_map([], |r| Ok((r.get::<_, u32>(0)?, r.get::<_, String>(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// A log's commits summed up, for the results.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Anatomy {
    pub commits: usize,
    pub pages_per_commit: f64,
    /// Rows added to the counted table per commit, from the first commit of each log that
    /// wrote it to the last (`None` when no log had two such commits).
    pub rows_per_commit: Option<f64>,
    /// Pages per commit by the B-tree they belong to, most first. Pages the map does not
    /// know (freelist pages, or pages added after it was read) are "(other)".
    pub by_tree: Vec<(String, f64)>,
}

/// Sums up `logs` by the owners of their pages, counting the rows added to `table`, whose
/// highest row id is `top_rowid`.
///
/// Owners are read after the copies were taken: a page freed and reused in between (the
/// full-text index frees pages when it merges segments) counts under its later owner. Such
/// a page's row ids are another table's, so leaves whose row ids lie above `top_rowid` are
/// not counted as `table`'s rows.
pub fn anatomy(
    logs: &[Log],
    owners: &HashMap<u32, String>,
    table: &str,
    top_rowid: i64,
) -> Anatomy {
    let commits: usize = logs.iter().map(|l| l.commits.len()).sum();
    let n = commits.max(1) as f64;
    let mut by: BTreeMap<&str, usize> = BTreeMap::new();
    let (mut rows, mut spans, mut pages) = (0i64, 0usize, 0usize);
    for log in logs {
        let mut first_last: Option<((usize, i64), (usize, i64))> = None;
        for (i, c) in log.commits.iter().enumerate() {
            let mut top = None;
            pages += c.pages.len();
            for (p, rowid) in &c.pages {
                let owner = owners.get(p).map(String::as_str);
                *by.entry(owner.unwrap_or("(other)")).or_default() += 1;
                if owner == Some(table) && rowid.is_some_and(|r| r <= top_rowid) {
                    top = top.max(*rowid);
                }
            }
            if let Some(r) = top {
                first_last = Some(first_last.map_or(((i, r), (i, r)), |(f, _)| (f, (i, r))));
            }
        }
        // Rows are counted from the first commit that wrote the table to the last.
        if let Some(((i0, r0), (i1, r1))) = first_last {
            rows += r1 - r0;
            spans += i1 - i0;
        }
    }
    let mut by_tree: Vec<(String, f64)> = by
        .into_iter()
        .map(|(k, v)| (k.to_owned(), r2(v as f64 / n)))
        .collect();
    by_tree.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Anatomy {
        commits,
        pages_per_commit: r2(pages as f64 / n),
        rows_per_commit: (spans > 0).then(|| r2(rows as f64 / spans as f64)),
        by_tree,
    }
}

/// A copy of the log of the database at `db` as it is now (the writer may be mid-frame:
/// [`read_log`] stops at the last whole commit).
pub fn snapshot(db: &Path) -> anyhow::Result<Vec<u8>> {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    Ok(std::fs::read(wal)?)
}

/// Copies the log of `db` every `every` from `from_ns` to `until_ns` (wall clock, as
/// [`now_ns`]), read as they are taken so that only what they hold is kept.
pub async fn watch(
    db: PathBuf,
    from_ns: u64,
    until_ns: u64,
    every: Duration,
) -> anyhow::Result<Copies> {
    let mut copies = Copies::default();
    let mut failed = None;
    tokio::time::sleep(Duration::from_nanos(from_ns.saturating_sub(now_ns()))).await;
    while now_ns() < until_ns {
        let path = db.clone();
        // A log just started over may be empty for a moment: the next copy will do.
        match tokio::task::spawn_blocking(move || read_log(&snapshot(&path)?)).await? {
            Ok(log) => copies.add(log),
            Err(e) => failed = Some(e),
        }
        tokio::time::sleep(every).await;
    }
    match failed {
        Some(e) if copies.logs().is_empty() => Err(e),
        _ => Ok(copies),
    }
}

/// Sums up the copies of the log of `db` taken earlier, counting the rows added to
/// `table`.
pub fn explain(copies: &Copies, db: &Path, table: &str) -> anyhow::Result<Anatomy> {
    anyhow::ensure!(
        table
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_'),
        "not a table name: {table}"
    );
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let top: Option<i64> =
        conn.query_row(&format!("SELECT max(rowid) FROM \"{table}\""), [], |r| {
            r.get(0)
        })?;
    Ok(anatomy(
        copies.logs(),
        &page_owners(&conn)?,
        table,
        top.unwrap_or(0),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database in WAL mode that never checkpoints on its own, with a table and an index.
    fn db(dir: &Path) -> Connection {
        let c = Connection::open(dir.join("t.db")).unwrap();
        c.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
            .unwrap();
        c.execute_batch(
            "PRAGMA wal_autocheckpoint = 0;
             CREATE TABLE messages (id INTEGER PRIMARY KEY, k TEXT NOT NULL, body TEXT NOT NULL);
             CREATE INDEX messages_k ON messages(k);
             CREATE TABLE other (id INTEGER PRIMARY KEY, v INTEGER);
             PRAGMA wal_checkpoint(TRUNCATE);",
        )
        .unwrap();
        c
    }

    fn insert(c: &Connection, rows: std::ops::Range<i64>) {
        let tx = c.unchecked_transaction().unwrap();
        for i in rows {
            tx.execute(
                "INSERT INTO messages (id, k, body) VALUES (?1, ?2, 'hello')",
                rusqlite::params![i, format!("k{i}")],
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }

    fn copies(wals: &[Vec<u8>]) -> Copies {
        let mut c = Copies::default();
        for w in wals {
            c.add(read_log(w).unwrap());
        }
        c
    }

    #[test]
    fn commits_their_pages_and_their_rows_are_read_from_a_live_log() {
        let dir = tempfile::tempdir().unwrap();
        let c = db(dir.path());
        insert(&c, 1..4);
        insert(&c, 4..9);
        c.execute("INSERT INTO other (v) VALUES (1)", []).unwrap();
        insert(&c, 9..10);
        let path = dir.path().join("t.db");
        let a = explain(&copies(&[snapshot(&path).unwrap()]), &path, "messages").unwrap();
        assert_eq!(a.commits, 4);
        // Each message commit wrote the table's leaf and the index's; `other` wrote its own.
        let tree = |n: &str| a.by_tree.iter().find(|(k, _)| k == n).map(|(_, v)| *v);
        assert_eq!(tree("messages"), Some(0.75));
        assert_eq!(tree("messages_k"), Some(0.75));
        assert_eq!(tree("other"), Some(0.25));
        assert_eq!(a.pages_per_commit, 1.75);
        // From the first commit (ids up to 3) to the last (9): 6 rows over 3 commits.
        assert_eq!(a.rows_per_commit, Some(2.0));
        // A leaf whose row ids lie above the table's highest is another table's page
        // reused since: the last commit (id 9) is left out when the highest is 8.
        let conn = Connection::open(&path).unwrap();
        let log = read_log(&snapshot(&path).unwrap()).unwrap();
        let owners = page_owners(&conn).unwrap();
        let cut = anatomy(std::slice::from_ref(&log), &owners, "messages", 8);
        assert_eq!(cut.rows_per_commit, Some(5.0));
        // Counting another table's rows: `other` was written once, so no span to count.
        let b = explain(&copies(&[snapshot(&path).unwrap()]), &path, "other").unwrap();
        assert_eq!(b.rows_per_commit, None);
        assert_eq!(read_log(&snapshot(&path).unwrap()).unwrap().page_size, 4096);
    }

    #[test]
    fn copies_of_one_log_count_once_and_a_restarted_log_counts_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let c = db(dir.path());
        insert(&c, 1..3);
        let first = snapshot(&path).unwrap();
        insert(&c, 3..7);
        let second = snapshot(&path).unwrap();
        c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
        insert(&c, 7..8);
        insert(&c, 8..9);
        let third = snapshot(&path).unwrap();
        let all = copies(&[first.clone(), second.clone(), third.clone()]);
        assert_eq!(all.logs().len(), 2);
        assert_eq!(all.logs()[0].commits.len(), 2);
        let a = explain(&all, &path, "messages").unwrap();
        assert_eq!(a.commits, 4);
        // 4 rows over 1 commit in the first log, 1 over 1 in the second.
        assert_eq!(a.rows_per_commit, Some(2.5));
        // The shorter copy of a log added after the longer one changes nothing.
        let again = copies(&[second, first, third]);
        assert_eq!(again.logs(), all.logs());
    }

    #[test]
    fn a_log_cut_short_or_altered_ends_at_its_last_whole_commit() {
        let dir = tempfile::tempdir().unwrap();
        let c = db(dir.path());
        insert(&c, 1..3);
        insert(&c, 3..5);
        let wal = snapshot(&dir.path().join("t.db")).unwrap();
        let all = read_log(&wal).unwrap().commits;
        assert_eq!(all.len(), 2);
        assert!(all[1].pages.iter().any(|&(_, r)| r == Some(4)));
        // Cut in the last frame's page: the last commit is not whole.
        let cut = read_log(&wal[..wal.len() - 100]).unwrap();
        assert_eq!(cut.commits, all[..1]);
        // One byte of the last page changed: its checksum fails.
        let mut bad = wal.clone();
        let n = bad.len();
        bad[n - 1] ^= 0xff;
        assert_eq!(read_log(&bad).unwrap().commits, all[..1]);
        // Frames of an earlier log (other salts) are not this log's.
        let mut old = wal.clone();
        old[HEADER + 8] ^= 1;
        assert!(read_log(&old).unwrap().commits.is_empty());
        assert!(read_log(b"not a log, but 32 bytes or more..").is_err());
        assert!(read_log(&wal[..10]).is_err());
    }

    #[test]
    fn varints_of_every_length() {
        for v in [
            0u64,
            127,
            128,
            16_383,
            16_384,
            1 << 35,
            (1 << 56) - 1,
            1 << 56,
            u64::MAX,
        ] {
            let mut b = Vec::new();
            if v >= 1 << 56 {
                for k in (0..8).rev() {
                    b.push(0x80 | ((v >> (8 + 7 * k)) & 0x7f) as u8);
                }
                b.push(v as u8);
            } else {
                let n = (64 - v.leading_zeros() as usize).div_ceil(7).max(1);
                for k in (0..n).rev() {
                    let more = if k > 0 { 0x80 } else { 0 };
                    b.push(more | ((v >> (7 * k)) & 0x7f) as u8);
                }
            }
            assert_eq!(varint(&b, 0), Some((v, b.len())), "{v}");
        }
        assert_eq!(varint(&[0x80], 0), None);
    }
}
