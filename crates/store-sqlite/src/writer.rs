//! The group commit, on a thread of its own.
//!
//! sqlx runs each SQLite connection on its own thread and every statement is a round trip
//! to it and back: a futex wake each way. A message post is a handful of statements, and
//! on a busy server those wake-ups cost more CPU than SQLite's own work
//! (docs/performance.md). Here one thread owns a rusqlite connection to the same file and
//! writes a whole batch of writes — every statement, the commit and its fsync — in one go:
//! one hand-off per batch instead of two per statement. Each writer is answered from this
//! thread as soon as the batch is on disk.
//!
//! Every write to a conversation's timeline comes here ([`Op`]): posts, starts,
//! assignments, status changes, ratings and the offline message. They all append entries
//! and advance the conversation's sequence numbers, so one code path (one driver) writes
//! them all. So do the visitors' one-row writes (new contacts, visitor sessions, page
//! views): on a busy site they are as frequent as messages, and each used to take the
//! write connection, and an fsync, for itself.
//!
//! The thread takes the writes that arrived while the previous batch was being written
//! straight from the channel, and holds the store's sqlx write connection while it works,
//! so the store's other writes (sessions, contacts, …) never run beside it: SQLite still
//! sees one writer at a time and no statement waits on `SQLITE_BUSY`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, LazyLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use confab_domain::rules::{self, Refusal, VisitorMessageEffect};
use confab_domain::*;
use confab_store::*;
use rusqlite::{params, Connection, OpenFlags, Params, TransactionBehavior};
use tokio::sync::{mpsc, oneshot, watch};

use crate::conns::Conns;
use crate::rows::*;
use crate::times::Times;
use crate::{
    author_key, INSERT_CONVERSATION, INSERT_JOB, INSERT_MESSAGE, INSERT_NOTIFICATION, MAX_BATCH,
    SAVE_CONVERSATION, SELECT_ATTACHMENT, SUMMARY_FROM, SUMMARY_SELECT,
};

/// A write to a conversation's timeline, done on the writer thread.
#[derive(Debug)]
pub(crate) enum Op {
    Post(NewMessage),
    Start(NewConversation),
    Assign {
        id: ConversationId,
        by: Option<Agent>,
        target: Option<Agent>,
        now: DateTime<Utc>,
    },
    Status {
        id: ConversationId,
        change: StatusChange,
        now: DateTime<Utc>,
    },
    Rate {
        id: ConversationId,
        rating: Rating,
        comment: Option<String>,
        now: DateTime<Utc>,
    },
    Offline {
        id: ConversationId,
        message: String,
        now: DateTime<Utc>,
    },
    /// W10: one row each, and the most frequent writes of a site's visitors; they ride
    /// along in the batch rather than take the write connection (and an fsync) each.
    Contact(NewContact),
    VisitorSession {
        token_hash: String,
        site: SiteId,
        contact: ContactId,
        now: DateTime<Utc>,
    },
    PageView {
        contact: ContactId,
        view: PageView,
    },
}

/// What an [`Op`] did; each op has its own variant (see `SqliteStore::write`).
///
/// Not boxed: the value is moved once, into its answer's oneshot cell, which is on the
/// heap already; a box would be a second allocation per post.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub(crate) enum Done {
    Posted(Posted),
    Started(Started),
    Changed(Option<Changed>),
    Contact(Contact),
    Stored,
}

/// Where an op's answer goes.
pub(crate) type Reply = oneshot::Sender<Result<Done>>;

type Batch = Vec<(Op, Reply)>;

/// Opens the writer's own connection to the (migrated) database file: WAL, and
/// `synchronous = NORMAL`, because this thread's commits are made durable by the sync
/// thread (see [`sync_loop`]) before anyone is answered — the same guarantee as the other
/// connections' `FULL`, without the writer waiting for the disk.
pub(crate) fn open(path: &Path, cache_kib: &str) -> Result<Connection> {
    let conn = open_wal(path, OpenFlags::empty(), "the database")?;
    for (pragma, value) in [
        ("synchronous", "NORMAL"),
        ("foreign_keys", "ON"),
        ("temp_store", "MEMORY"),
        ("cache_size", cache_kib),
    ] {
        conn.pragma_update(None, pragma, value).map_err(db_err)?;
    }
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

/// Opens `path` read-write (with `flags` besides) in WAL mode, waiting up to 10 s for a
/// lock; `what` names the file in the error when SQLite keeps another journal mode.
pub(crate) fn open_wal(path: &Path, flags: OpenFlags, what: &str) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | flags,
    )
    .map_err(|e| StoreError::Unavailable(e.to_string()))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(db_err)?;
    // `journal_mode` answers with a row: query it rather than update it.
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(db_err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Internal(format!(
            "{what} would not use WAL (journal_mode = {mode})"
        )));
    }
    Ok(conn)
}

/// Starts the writer thread on `conn`, taking posts from `rx`, and the thread that syncs
/// its commits to disk (`wal`: the database's write-ahead log).
pub(crate) fn start(
    conn: Connection,
    wal: PathBuf,
    write: Arc<Conns>,
    rx: mpsc::Receiver<(Op, Reply)>,
    rewritten: Arc<AtomicU64>,
    times: Arc<Times>,
) -> Result<()> {
    let rt = tokio::runtime::Handle::current();
    let sync_times = times.clone();
    let (to_sync, synced) = std_mpsc::channel::<Answers>();
    let failed = Arc::new(AtomicBool::new(false));
    let sync_failed = failed.clone();
    let gate = Arc::new(SyncGate::default());
    let sync_gate = gate.clone();
    std::thread::Builder::new()
        .name("confab-sync".into())
        .spawn(move || sync_loop(&wal, &synced, &sync_failed, &sync_gate, &sync_times))
        .map_err(|e| StoreError::Internal(format!("could not start the sync thread: {e}")))?;
    std::thread::Builder::new()
        .name("confab-writer".into())
        .spawn(move || {
            let to_sync = ToSync {
                queue: to_sync,
                gate,
            };
            run(conn, rx, &write, &rt, &to_sync, &failed, &rewritten, &times)
        })
        .map_err(|e| StoreError::Internal(format!("could not start the writer thread: {e}")))?;
    Ok(())
}

/// A committed batch's answers, held until the log is on disk.
type Answers = Vec<(Reply, Result<Done>)>;

/// Whether a committed batch is waiting for its sync. The writer commits no more often
/// than the log is synced: what comes while a sync runs is written at once, in one
/// transaction ([`gather`]), and goes in one commit when the sync is done, which writes
/// each page the batch shares (the messages' last leaf, the inbox index's head, …) to the
/// log once instead of once per op.
struct SyncGate(watch::Sender<bool>);

impl Default for SyncGate {
    fn default() -> Self {
        Self(watch::Sender::new(false))
    }
}

impl SyncGate {
    fn set(&self, busy: bool) {
        self.0.send_replace(busy);
    }

    /// The writer's view of the gate, to wait on beside its channel.
    fn watch(&self) -> watch::Receiver<bool> {
        self.0.subscribe()
    }
}

/// The writer's end of the hand-over to the sync thread.
struct ToSync {
    queue: std_mpsc::Sender<Answers>,
    gate: Arc<SyncGate>,
}

impl ToSync {
    /// Hands a committed batch's answers to the sync thread; until it has synced them, the
    /// writer's next commit waits ([`gather`]).
    fn send(&self, answers: Answers) -> std::result::Result<(), std_mpsc::SendError<Answers>> {
        self.gate.set(true);
        self.queue
            .send(answers)
            .inspect_err(|_| self.gate.set(false))
    }
}

/// Opens the gate when the sync thread stops, however it stops, so the writer never waits
/// for a sync that will not come.
struct OpenOnExit<'a>(&'a SyncGate);

impl Drop for OpenOnExit<'_> {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

fn answer_all(batch: &mut Batch, e: &StoreError) {
    for (_, reply) in batch.drain(..) {
        let _ = reply.send(Err(StoreError::Unavailable(format!("commit failed: {e}"))));
    }
}

/// The sync thread: for every committed batch (and all others that are waiting by then),
/// one `fdatasync` of the write-ahead log, then the answers.
///
/// The writer commits with `synchronous = NORMAL`: SQLite writes the batch's frames to the
/// log and makes them visible, but does not wait for the disk. Syncing the log file from
/// here makes every frame written before the sync durable (on Linux `fdatasync` flushes
/// the file, whichever descriptor asks), so a post is still answered only once it is on
/// disk — while the writer writes the next batch, which it commits once this sync is
/// done ([`SyncGate`]). Before, the writer waited for every sync itself: at 5,000 msg/s
/// the commit was 104 of the 145 µs the writer spent per post, and with the sync here 56
/// of 110 (docs/performance.md, round 4). Checkpoints sync the log themselves before they
/// copy it into the database.
///
/// What changes: another connection can read a committed post for the length of one sync
/// (typically 0.2 ms, at worst a few) before it is durable — the same window InnoDB's
/// group commit has. Its sender is not answered, and nothing is broadcast, until the sync.
/// Only a power cut or kernel crash inside that window shows it: the post is gone after
/// recovery, its sender (never told it was stored) sends it again, and a reader that
/// fetched it in that window may have seen a sequence number that is then given to
/// another message.
///
/// A failed sync answers its posts with an error and stops the store taking posts: after
/// a failed `fsync` Linux may have dropped the unsynced pages, and a later sync that
/// succeeds would not bring them back (the store needs a restart, which recovers from the
/// log).
fn sync_loop(
    wal: &Path,
    queue: &std_mpsc::Receiver<Answers>,
    failed: &AtomicBool,
    gate: &SyncGate,
    times: &Times,
) {
    let _open = OpenOnExit(gate);
    let mut log: Option<File> = None;
    while let Ok(first) = queue.recv() {
        let mut pending = vec![first];
        pending.extend(queue.try_iter());
        let synced = if failed.load(Ordering::Acquire) {
            Err("an earlier sync of the log failed".to_string())
        } else {
            let start = Instant::now();
            let synced = sync_log(wal, &mut log).map_err(|e| e.to_string());
            times.sync(start.elapsed());
            synced
        };
        if let Err(e) = &synced {
            if !failed.swap(true, Ordering::AcqRel) {
                tracing::error!(error = %e, "could not sync the write-ahead log; no more posts are taken until a restart");
            }
        }
        // The writer may commit its next batch while these are answered; it sees a failure
        // first, and does not commit a batch built on a log that is not on disk.
        gate.set(false);
        for (reply, result) in pending.into_iter().flatten() {
            let _ = reply.send(match &synced {
                Ok(()) => result,
                Err(e) => Err(StoreError::Unavailable(format!(
                    "could not make the post durable: {e}"
                ))),
            });
        }
    }
}

/// `fdatasync` of the log, opened on first use (it exists once anything was committed).
fn sync_log(wal: &Path, log: &mut Option<File>) -> std::io::Result<()> {
    if log.is_none() {
        *log = Some(File::open(wal)?);
    }
    match log {
        Some(f) => f.sync_data(),
        None => Ok(()),
    }
}

/// The thread: waits for an op, then writes it and every op that comes before the last
/// batch is synced (up to [`MAX_BATCH`]) in one transaction, hands the batch to the sync
/// thread, which answers each op, and waits for the next, until the store is gone.
///
/// The thread takes its posts from the channel itself. An async task in between (as
/// before) had to be scheduled between every two batches, and on a server whose tokio
/// threads are busy with sockets that wait was a quarter of the writer's time while posts
/// queued (docs/performance.md, round 4).
#[allow(clippy::too_many_arguments)]
fn run(
    mut conn: Connection,
    mut rx: mpsc::Receiver<(Op, Reply)>,
    write: &Conns,
    rt: &tokio::runtime::Handle,
    to_sync: &ToSync,
    failed: &AtomicBool,
    rewritten: &AtomicU64,
    times: &Times,
) {
    let mut syncing = to_sync.gate.watch();
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        if failed.load(Ordering::Acquire) {
            answer_all(&mut batch, &sync_failed());
            continue;
        }
        // The store's other writes go through sqlx's write connection: hold it off while
        // this batch is written, so SQLite sees one writer at a time and nobody waits on
        // SQLITE_BUSY.
        let permit = match write.hold(rt) {
            Ok(permit) => permit,
            Err(e) => {
                answer_all(&mut batch, &e);
                continue;
            }
        };
        let mut next = Next {
            rx: &mut rx,
            syncing: &mut syncing,
            rt,
        };
        match commit_batch(&mut conn, &mut next, &mut batch, failed, rewritten) {
            Ok(Written {
                results,
                wait,
                apply,
                commit,
            }) => {
                times.batch(wait, apply, commit, batch.len());
                let answers = batch
                    .drain(..)
                    .zip(results)
                    .map(|((_, reply), result)| (reply, result))
                    .collect();
                if let Err(std_mpsc::SendError(answers)) = to_sync.send(answers) {
                    for (reply, _) in answers {
                        let _ = reply.send(Err(StoreError::Unavailable(
                            "the sync thread has stopped".into(),
                        )));
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, size = batch.len(), "group commit failed");
                answer_all(&mut batch, &e);
            }
        }
        drop(permit);
    }
}

fn sync_failed() -> StoreError {
    StoreError::Unavailable("the write-ahead log could not be synced".into())
}

/// Where a batch's further ops come from, and when it may be committed.
struct Next<'a, T> {
    rx: &'a mut mpsc::Receiver<T>,
    /// Whether the last committed batch still waits for its sync.
    syncing: &'a mut watch::Receiver<bool>,
    rt: &'a tokio::runtime::Handle,
}

/// Takes ops into `batch` and runs `apply` on each as soon as it is taken, until the batch
/// may be committed: no batch waits for its sync any more, or the batch is full, or the
/// channel is closed. Returns how long it waited for ops or for the sync, or the first
/// error of `apply`.
///
/// While a sync runs, the writer does the statements of the ops that come meanwhile rather
/// than wait for the sync and then do them, so a batch's statements and the last batch's
/// sync overlap. Until round 24 the writer waited first: its statements then added to the
/// wait of every op in the batch, and the writer sat idle through every sync, which made
/// it the first wall at high rates (docs/performance.md).
fn gather<T>(
    next: &mut Next<'_, T>,
    batch: &mut Vec<T>,
    mut apply: impl FnMut(&T) -> Result<()>,
) -> Result<Duration> {
    let mut applied = 0;
    let mut waited = Duration::ZERO;
    loop {
        for op in &batch[applied..] {
            apply(op)?;
        }
        applied = batch.len();
        if batch.len() >= MAX_BATCH {
            return Ok(waited);
        }
        if let Ok(op) = next.rx.try_recv() {
            batch.push(op);
            continue;
        }
        if !*next.syncing.borrow_and_update() {
            return Ok(waited);
        }
        let start = Instant::now();
        let (rx, syncing) = (&mut *next.rx, &mut *next.syncing);
        let more = next.rt.block_on(async {
            tokio::select! {
                biased;
                op = rx.recv() => op,
                _ = syncing.wait_for(|busy| !busy) => None,
            }
        });
        waited += start.elapsed();
        match more {
            Some(op) => batch.push(op),
            // Synced, or nobody can send any more: commit what there is.
            None => return Ok(waited),
        }
    }
}

/// A committed batch's answers, one per op, and how long the batch waited for the sync
/// before it, its statements and its commit took.
struct Written {
    results: Vec<Result<Done>>,
    wait: Duration,
    apply: Duration,
    commit: Duration,
}

/// Writes a batch of ops in one transaction, taking more into it while the last batch is
/// synced ([`gather`]). A refused op wrote nothing (see [`apply`]) and just gets its
/// refusal. Any other error may have left part of an op written: the whole batch is
/// rolled back and its ops are written again, one transaction each, so that only the
/// failing op fails.
fn commit_batch(
    conn: &mut Connection,
    next: &mut Next<'_, (Op, Reply)>,
    batch: &mut Batch,
    failed: &AtomicBool,
    rewritten: &AtomicU64,
) -> Result<Written> {
    match write_gathered(conn, next, batch, failed) {
        Ok(written) => Ok(written),
        Err(e) if batch.len() > 1 && !failed.load(Ordering::Acquire) => {
            tracing::warn!(error = %e, size = batch.len(), "group commit failed; writing its posts one by one");
            rewritten.fetch_add(1, Ordering::Relaxed);
            let mut all = Written {
                results: Vec::with_capacity(batch.len()),
                wait: Duration::ZERO,
                apply: Duration::ZERO,
                commit: Duration::ZERO,
            };
            for (op, _) in batch.iter() {
                let (result, apply, commit) = write_one(conn, op);
                all.results.push(result);
                all.apply += apply;
                all.commit += commit;
            }
            Ok(all)
        }
        Err(e) => Err(e),
    }
}

/// One transaction of the ops in `batch` and those [`gather`] adds to it, committed once
/// the last batch is synced. Nothing is committed if that sync failed: this batch's
/// statements saw the last batch's writes, which the disk may not have.
fn write_gathered(
    conn: &mut Connection,
    next: &mut Next<'_, (Op, Reply)>,
    batch: &mut Batch,
    failed: &AtomicBool,
) -> Result<Written> {
    let start = Instant::now();
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_err)?;
    let mut results = Vec::with_capacity(batch.len());
    // Dropping `tx` on an error rolls the batch back.
    let wait = gather(next, batch, |(op, _)| match apply(&tx, op) {
        Err(e) if !is_refusal(&e) => Err(e),
        r => {
            results.push(r);
            Ok(())
        }
    })?;
    if failed.load(Ordering::Acquire) {
        return Err(sync_failed());
    }
    let applied = Instant::now();
    tx.commit().map_err(db_err)?;
    Ok(Written {
        results,
        wait,
        apply: (applied - start).saturating_sub(wait),
        commit: applied.elapsed(),
    })
}

/// Whether a post's error is one of its refusals, decided before it wrote anything.
fn is_refusal(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::NotFound(_)
            | StoreError::Conflict(_)
            | StoreError::IdempotencyConflict
            | StoreError::Refused(_)
    )
}

/// One op in a transaction of its own, as a failed batch is written again: its result,
/// and how long its statements and its commit took.
fn write_one(conn: &mut Connection, op: &Op) -> (Result<Done>, Duration, Duration) {
    let start = Instant::now();
    let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => return (Err(db_err(e)), Duration::ZERO, Duration::ZERO),
    };
    let result = apply(&tx, op);
    if matches!(&result, Err(e) if !is_refusal(e)) {
        // Dropping `tx` rolls the op back.
        return (result, start.elapsed(), Duration::ZERO);
    }
    let applied = Instant::now();
    let result = tx.commit().map_err(db_err).and(result);
    (result, applied - start, applied.elapsed())
}

pub(crate) fn db_err(e: rusqlite::Error) -> StoreError {
    use rusqlite::ffi;
    match e {
        rusqlite::Error::QueryReturnedNoRows => StoreError::NotFound("row"),
        rusqlite::Error::SqliteFailure(ref f, _)
            if f.extended_code == ffi::SQLITE_CONSTRAINT_UNIQUE
                || f.extended_code == ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
        {
            StoreError::Conflict("value")
        }
        rusqlite::Error::SqliteFailure(ref f, _)
            if matches!(
                f.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ) =>
        {
            StoreError::Unavailable(e.to_string())
        }
        other => StoreError::Internal(other.to_string()),
    }
}

/// The first row of a query, mapped; `NotFound(what)` when there is none.
pub(crate) fn one<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    what: &'static str,
    map: impl FnOnce(&Named<'_, '_>) -> Result<T>,
) -> Result<T> {
    let mut st = conn.prepare_cached(sql).map_err(db_err)?;
    let mut rows = st.query(params).map_err(db_err)?;
    match rows.next().map_err(db_err)? {
        Some(row) => map(&Named::new(row)),
        None => Err(StoreError::NotFound(what)),
    }
}

pub(crate) fn conversation_row(conn: &Connection, id: ConversationId) -> Result<ConversationRow> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!("SELECT {CONVERSATION_COLUMNS} FROM conversations c WHERE c.id = ?")
    });
    one(conn, &SQL, [id.0], "conversation", |r| conversation(r))
}

fn fetch_message(conn: &Connection, id: i64) -> Result<Message> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages m \
             LEFT JOIN attachments a ON a.id = m.attachment_id WHERE m.id = ?"
        )
    });
    one(conn, &SQL, [id], "message", |r| message(r))
}

/// What a post reads before it writes, in one statement: the conversation, its contact's
/// name and email, and the id of the message this author already sent with this client id
/// (a retry), if any.
struct PostContext {
    row: ConversationRow,
    contact: ContactCard,
    retry_of: Option<i64>,
}

/// The message this author already sent with this client id (`?1`, `?2`): a retry.
pub(crate) const RETRY_OF: &str =
    "SELECT m.id FROM messages m WHERE m.author_key = ?1 AND m.client_id = ?2";

fn post_context(
    conn: &Connection,
    id: ConversationId,
    retry_key: Option<(&str, &str)>,
) -> Result<PostContext> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "SELECT {CONVERSATION_COLUMNS}, ct.name AS contact_name, ct.email AS contact_email, \
             ({RETRY_OF}) AS retry_of \
             FROM conversations c LEFT JOIN contacts ct ON ct.id = c.contact_id WHERE c.id = ?3"
        )
    });
    let (key, cid) = retry_key.unzip();
    one(conn, &SQL, params![key, cid, id.0], "conversation", |r| {
        Ok(PostContext {
            row: conversation(r)?,
            contact: ContactCard {
                name: r.opt_text("contact_name")?,
                email: r.opt_text("contact_email")?,
            },
            retry_of: r.opt_int("retry_of")?,
        })
    })
}

/// A post's attachment must belong to its conversation.
fn check_attachment(conn: &Connection, new: &NewMessage) -> Result<()> {
    let Some(aid) = new.attachment_id else {
        return Ok(());
    };
    let owner = one(
        conn,
        "SELECT conversation_id FROM attachments WHERE id = ?",
        [aid.0],
        "attachment",
        |r| r.int("conversation_id"),
    );
    match owner {
        Ok(owner) if owner == new.conversation_id.0 => Ok(()),
        Ok(_) | Err(StoreError::NotFound(_)) => Err(StoreError::NotFound("attachment")),
        Err(e) => Err(e),
    }
}

/// A retried post: the stored message, if it is the same one (else a conflict).
fn retried(
    conn: &Connection,
    new: &NewMessage,
    id: i64,
    before: Conversation,
    contact: ContactCard,
) -> Result<Posted> {
    let message = fetch_message(conn, id)?;
    if message.body != new.body.as_str()
        || message.kind != new.kind
        || message.attachment.as_ref().map(|a| a.id) != new.attachment_id
    {
        return Err(StoreError::IdempotencyConflict);
    }
    // Under the `final` policy the first attempt may have started a new conversation.
    let conversation = if message.conversation_id == before.id {
        before.clone()
    } else {
        conversation_row(conn, message.conversation_id)?.conversation
    };
    Ok(Posted {
        message,
        created: false,
        written: vec![],
        conversation,
        started_new: false,
        assigned: false,
        notifications: vec![],
        before,
        contact,
    })
}

/// Appends one entry to a conversation's timeline, advancing its sequence numbers in `row`
/// (the caller saves the row once at the end of the transaction).
fn append(conn: &Connection, row: &mut ConversationRow, e: Entry<'_>) -> Result<Message> {
    let visible_seq = e.advance(&mut row.conversation);
    let c = &row.conversation;
    let (event, mentions) = (e.event_json()?, e.mentions_json()?);
    conn.prepare_cached(INSERT_MESSAGE)
        .and_then(|mut st| {
            st.execute(params![
                c.id.0,
                c.last_seq,
                visible_seq,
                e.kind.as_str(),
                e.author_kind.as_str(),
                e.agent_id.map(|a| a.0),
                e.author_name,
                e.author_key,
                e.body,
                event,
                e.attachment_id.map(|a| a.0),
                e.client_id,
                mentions,
                us(e.now),
            ])
        })
        .map_err(db_err)?;
    // Its full-text entry comes later, from the index thread (`search.rs`).
    let id = conn.last_insert_rowid();
    let attachment = match e.attachment_id {
        Some(aid) => Some(one(conn, SELECT_ATTACHMENT, [aid.0], "attachment", |r| {
            attachment(r)
        })?),
        None => None,
    };
    Ok(e.into_message(MessageId(id), c, visible_seq, attachment))
}

fn save(conn: &Connection, row: &ConversationRow) -> Result<()> {
    let c = &row.conversation;
    conn.prepare_cached(SAVE_CONVERSATION)
        .and_then(|mut st| {
            st.execute(params![
                c.status.as_str(),
                c.assignee_id.map(|a| a.0),
                c.team_id.map(|t| t.0),
                c.snoozed_until.map(us),
                c.closed_at.map(us),
                c.last_seq,
                c.last_visible_seq,
                c.last_visitor_seq,
                c.handoff_at.map(us),
                c.agent_took_part,
                c.offline,
                c.rating.map(Rating::as_str),
                c.rating_comment,
                c.visitor_read_seq,
                c.agent_read_seq,
                us(c.last_message_at),
                c.id.0,
            ])
        })
        .map_err(db_err)?;
    Ok(())
}

/// Saves the conversation after a post. Most posts change only its sequence numbers and
/// times: those get an UPDATE of just these columns. A full one names the foreign keys
/// and the columns of the unique index, and SQLite then opens a statement journal, which
/// makes the full-text index write out what it has gathered in the transaction so far —
/// once per message instead of once per batch.
fn save_post(conn: &Connection, row: &ConversationRow, before: &Conversation) -> Result<()> {
    let c = &row.conversation;
    let mut unchanged = c.clone();
    unchanged.last_seq = before.last_seq;
    unchanged.last_visible_seq = before.last_visible_seq;
    unchanged.last_visitor_seq = before.last_visitor_seq;
    unchanged.agent_took_part = before.agent_took_part;
    unchanged.last_message_at = before.last_message_at;
    if unchanged != *before {
        return save(conn, row);
    }
    conn.prepare_cached(SAVE_SEQUENCE)
        .and_then(|mut st| {
            st.execute(params![
                c.last_seq,
                c.last_visible_seq,
                c.last_visitor_seq,
                c.agent_took_part,
                us(c.last_message_at),
                c.id.0,
            ])
        })
        .map_err(db_err)?;
    Ok(())
}

const SAVE_SEQUENCE: &str = "UPDATE conversations SET last_seq = ?, last_visible_seq = ?, \
    last_visitor_seq = ?, agent_took_part = ?, last_message_at = ? WHERE id = ?";

/// Where a new conversation is, and what handing it to people does (W4).
struct Opening<'a> {
    site: SiteId,
    contact: ContactId,
    channel: Channel,
    start_url: Option<&'a str>,
    handoff: Option<&'a rules::Handoff>,
}

/// Inserts a conversation and its handoff entry (W4): a visitor's new chat, or a visitor
/// writing to a closed conversation under the `final` policy.
fn create_conversation(
    conn: &Connection,
    o: &Opening<'_>,
    now: DateTime<Utc>,
) -> Result<(ConversationRow, Vec<Message>)> {
    let id = one(
        conn,
        INSERT_CONVERSATION,
        params![
            o.site.0,
            o.contact.0,
            o.channel.as_str(),
            o.handoff.map(|_| us(now)),
            o.handoff.is_some_and(|h| h.offline),
            o.start_url,
            us(now),
            us(now),
        ],
        "conversation",
        |r| r.int("id"),
    )
    .map_err(|e| match e {
        StoreError::Conflict(_) => StoreError::Conflict("live conversation"),
        e => e,
    })?;
    let mut row = conversation_row(conn, ConversationId(id))?;
    let mut written = Vec::new();
    if let Some(h) = o.handoff {
        written.push(append(conn, &mut row, Entry::event(&h.event, None, now))?);
        if let Some(at) = h.wait_until {
            schedule(conn, JobKind::WaitExpiry, row.conversation.id, at)?;
        }
        save(conn, &row)?;
    }
    Ok((row, written))
}

fn schedule(conn: &Connection, kind: JobKind, id: ConversationId, at: DateTime<Utc>) -> Result<()> {
    conn.prepare_cached(INSERT_JOB)
        .and_then(|mut st| st.execute(params![kind.as_str(), id.0, us(at)]))
        .map_err(db_err)?;
    Ok(())
}

fn insert_notification(conn: &Connection, n: &NewNotification) -> Result<Notification> {
    conn.prepare_cached(INSERT_NOTIFICATION)
        .and_then(|mut st| {
            st.execute(params![
                n.agent_id.0,
                n.kind.as_str(),
                n.conversation_id.0,
                n.message_id.map(|m| m.0),
                n.preview,
                us(n.now),
            ])
        })
        .map_err(db_err)?;
    Ok(inserted_notification(n, conn.last_insert_rowid()))
}

/// One op inside the group commit's transaction.
///
/// **Invariant:** every refusal (not found, conflict, a rule) is decided before the op
/// writes anything, so a refused op leaves nothing behind and the batch needs no
/// savepoint per op. Only the database's own errors can come after a write; the batch is
/// then rolled back and written again op by op (see [`commit_batch`]).
fn apply(conn: &Connection, op: &Op) -> Result<Done> {
    match op {
        Op::Post(new) => post_in_tx(conn, new).map(Done::Posted),
        Op::Start(new) => start_in_tx(conn, new).map(Done::Started),
        Op::Assign {
            id,
            by,
            target,
            now,
        } => assign_in_tx(conn, *id, by.as_ref(), target.as_ref(), *now)
            .map(|c| Done::Changed(Some(c))),
        Op::Status { id, change, now } => {
            status_in_tx(conn, *id, change, *now).map(|c| Done::Changed(Some(c)))
        }
        Op::Rate {
            id,
            rating,
            comment,
            now,
        } => {
            let mut row = conversation_row(conn, *id)?;
            let before = row.conversation.clone();
            row.conversation.rating = Some(*rating);
            row.conversation.rating_comment = comment.clone();
            let ev = Event::Rated {
                rating: *rating,
                comment: comment.clone(),
            };
            let written = vec![append(conn, &mut row, Entry::event(&ev, None, *now))?];
            save(conn, &row)?;
            Ok(Done::Changed(Some(changed(conn, before, row, written)?)))
        }
        Op::Contact(n) => insert_contact(conn, n).map(Done::Contact),
        Op::VisitorSession {
            token_hash,
            site,
            contact,
            now,
        } => conn
            .prepare_cached(
                "INSERT INTO visitor_sessions (token_hash, site_id, contact_id, created_at) \
                 VALUES (?, ?, ?, ?)",
            )
            .and_then(|mut st| st.execute(params![token_hash, site.0, contact.0, us(*now)]))
            .map_err(|e| refused(e, "visitor session", "contact"))
            .map(|_| Done::Stored),
        Op::PageView { contact, view } => conn
            .prepare_cached(
                "INSERT INTO page_views (contact_id, url, title, referrer, created_at) \
                 VALUES (?, ?, ?, ?, ?)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    contact.0,
                    view.url,
                    view.title,
                    view.referrer,
                    us(view.created_at)
                ])
            })
            .map_err(|e| refused(e, "page view", "contact"))
            .map(|_| Done::Stored),
        Op::Offline { id, message, now } => {
            let mut row = conversation_row(conn, *id)?;
            if !rules::wait_expired(&row.conversation) {
                return Ok(Done::Changed(None));
            }
            let before = row.conversation.clone();
            row.conversation.offline = true;
            let ev = Event::Offline {
                message: message.clone(),
            };
            let written = vec![append(conn, &mut row, Entry::event(&ev, None, *now))?];
            save(conn, &row)?;
            Ok(Done::Changed(Some(changed(conn, before, row, written)?)))
        }
    }
}

/// A one-statement op's constraint errors, named: a duplicate is `Conflict(what)`, a
/// missing parent row (`parent`) `NotFound`. SQLite undid the failed statement, so these
/// are refusals that leave the batch intact.
fn refused(e: rusqlite::Error, what: &'static str, parent: &'static str) -> StoreError {
    if let rusqlite::Error::SqliteFailure(f, _) = &e {
        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY {
            return StoreError::NotFound(parent);
        }
    }
    match db_err(e) {
        StoreError::Conflict(_) => StoreError::Conflict(what),
        e => e,
    }
}

fn insert_contact(conn: &Connection, n: &NewContact) -> Result<Contact> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "INSERT INTO contacts (site_id, name, email, external_id, verified, user_agent, ip, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING {CONTACT_COLUMNS}"
        )
    });
    let site = n
        .site_id
        .ok_or(StoreError::Internal("contact without site".into()))?;
    let mut st = conn.prepare_cached(&SQL).map_err(db_err)?;
    let mut rows = st
        .query(params![
            site.0,
            n.name,
            n.email,
            n.external_id,
            n.verified,
            n.user_agent,
            n.ip,
            us(n.now.unwrap_or_else(Utc::now)),
        ])
        .map_err(|e| refused(e, "contact", "site"))?;
    match rows.next() {
        Ok(Some(row)) => contact(&Named::new(row)),
        Ok(None) => Err(StoreError::Internal(
            "INSERT … RETURNING gave no row".into(),
        )),
        Err(e) => Err(refused(e, "contact", "site")),
    }
}

/// A change's result, with the conversation's list row read in its transaction: a lookup
/// here costs a few microseconds, and saves the service a read through sqlx's threads
/// after every assignment and close (docs/performance.md, round 12).
fn changed(
    conn: &Connection,
    before: Conversation,
    row: ConversationRow,
    written: Vec<Message>,
) -> Result<Changed> {
    static SQL: LazyLock<String> =
        LazyLock::new(|| format!("{}?{SUMMARY_FROM} AND c.id = ?", *SUMMARY_SELECT));
    let id = row.conversation.id;
    // As a viewer who has read nothing: each socket puts in its own read position.
    let summary = one(conn, &SQL, [0, id.0], "conversation", |r| crate::summary(r))?;
    Ok(Changed {
        before,
        conversation: row.conversation,
        written,
        summary: Some(summary),
    })
}

/// W2–W4: the contact's live conversation on this site and channel, or a new one with its
/// handoff entry and its notifications (E3).
fn start_in_tx(conn: &Connection, n: &NewConversation) -> Result<Started> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations c \
             WHERE c.contact_id = ? AND c.site_id = ? AND c.channel = ? AND c.status <> 'closed'"
        )
    });
    let live = one(
        conn,
        &SQL,
        params![n.contact_id.0, n.site_id.0, n.channel.as_str()],
        "conversation",
        |r| conversation(r),
    );
    match live {
        Ok(row) => {
            return Ok(Started {
                conversation: row.conversation,
                created: false,
                messages: vec![],
                notifications: vec![],
            })
        }
        Err(StoreError::NotFound(_)) => {}
        Err(e) => return Err(e),
    }
    let opening = Opening {
        site: n.site_id,
        contact: n.contact_id,
        channel: n.channel,
        start_url: n.start_url.as_deref(),
        handoff: n.handoff.as_ref(),
    };
    let (row, messages) = create_conversation(conn, &opening, n.now)?;
    let notifications = NewNotification::for_new_conversation(
        &row.conversation,
        &n.notify,
        &n.notify_preview,
        n.now,
    )
    .iter()
    .map(|x| insert_notification(conn, x))
    .collect::<Result<Vec<_>>>()?;
    Ok(Started {
        conversation: row.conversation,
        created: true,
        messages,
        notifications,
    })
}

/// I3: assigns, reassigns or unassigns; `by: None` is the system.
fn assign_in_tx(
    conn: &Connection,
    id: ConversationId,
    by: Option<&Agent>,
    target: Option<&Agent>,
    now: DateTime<Utc>,
) -> Result<Changed> {
    let mut row = conversation_row(conn, id)?;
    if let Some(actor) = by {
        rules::check_assign(actor, &row.conversation, target)?;
    } else if target.is_some_and(|t| !rules::can_be_assigned(t)) {
        return Err(Refusal::AssigneeUnavailable.into());
    }
    let before = row.conversation.clone();
    let new_assignee = target.map(|t| t.id);
    if row.conversation.assignee_id == new_assignee {
        return changed(conn, before, row, vec![]);
    }
    row.conversation.assignee_id = new_assignee;
    let ev = rules::assignment_event(by, target);
    let written = vec![append(conn, &mut row, Entry::event(&ev, by, now))?];
    save(conn, &row)?;
    changed(conn, before, row, written)
}

/// I4: close, reopen, snooze, and the snooze's end.
fn status_in_tx(
    conn: &Connection,
    id: ConversationId,
    change: &StatusChange,
    now: DateTime<Utc>,
) -> Result<Changed> {
    let mut row = conversation_row(conn, id)?;
    let before = row.conversation.clone();
    let c = &before;
    let mut written = Vec::new();
    match change {
        StatusChange::Close { by, by_visitor } => {
            if let Some(a) = by {
                rules::check_close(a, c)?;
            } else if c.status == Status::Closed {
                return Err(Refusal::Closed.into());
            }
            row.conversation.status = Status::Closed;
            row.conversation.closed_at = Some(now);
            row.conversation.snoozed_until = None;
            if *by_visitor {
                written.push(append(
                    conn,
                    &mut row,
                    Entry::event(&Event::EndedByVisitor, None, now),
                )?);
            }
            let ev = Event::Closed {
                by: by.as_ref().map(|a| a.id),
            };
            written.push(append(conn, &mut row, Entry::event(&ev, by.as_ref(), now))?);
        }
        StatusChange::Reopen { by, policy } => {
            rules::check_reopen(by, c, *policy)?;
            row.conversation.status = Status::Open;
            row.conversation.closed_at = None;
            let ev = Event::Reopened { by: Some(by.id) };
            written.push(append(conn, &mut row, Entry::event(&ev, Some(by), now))?);
        }
        StatusChange::Snooze { by, until } => {
            rules::check_snooze(by, c, *until, now)?;
            row.conversation.status = Status::Snoozed;
            row.conversation.snoozed_until = Some(*until);
            let ev = Event::Snoozed {
                by: by.id,
                until: *until,
            };
            written.push(append(conn, &mut row, Entry::event(&ev, Some(by), now))?);
            schedule(conn, JobKind::SnoozeWake, id, *until)?;
        }
        StatusChange::Wake => {
            if !rules::snooze_due(c, now) {
                return changed(conn, before, row, written);
            }
            row.conversation.status = Status::Open;
            row.conversation.snoozed_until = None;
            written.push(append(
                conn,
                &mut row,
                Entry::event(&Event::Woke, None, now),
            )?);
        }
    }
    save(conn, &row)?;
    changed(conn, before, row, written)
}

/// One post, inside the group commit's transaction (see [`Store::post_message`] and
/// [`apply`]'s invariant).
fn post_in_tx(conn: &Connection, new: &NewMessage) -> Result<Posted> {
    let key = author_key(&new.author);
    let PostContext {
        mut row,
        contact,
        retry_of,
    } = post_context(
        conn,
        new.conversation_id,
        key.as_deref().zip(new.client_id.as_deref()),
    )?;
    new.author.check_sees(&row.conversation)?;
    let before = row.conversation.clone();
    if let Some(id) = retry_of {
        return retried(conn, new, id, before, contact);
    }
    let mut written = Vec::new();
    let mut started_new = false;
    let mut assigned = false;
    let (author_kind, agent_id, author_name) = match &new.author {
        Author::Visitor { .. } => {
            if new.kind != MessageKind::Text {
                return Err(Refusal::Forbidden.into());
            }
            check_attachment(conn, new)?;
            match rules::visitor_message_effect(&row.conversation, new.reopen_policy) {
                VisitorMessageEffect::Post => {}
                VisitorMessageEffect::Wake => {
                    row.conversation.status = Status::Open;
                    row.conversation.snoozed_until = None;
                    written.push(append(
                        conn,
                        &mut row,
                        Entry::event(&Event::Woke, None, new.now),
                    )?);
                }
                VisitorMessageEffect::Reopen => {
                    row.conversation.status = Status::Open;
                    row.conversation.closed_at = None;
                    written.push(append(
                        conn,
                        &mut row,
                        Entry::event(&Event::Reopened { by: None }, None, new.now),
                    )?);
                }
                VisitorMessageEffect::StartNew => {
                    let old = &row.conversation;
                    let opening = Opening {
                        site: old.site_id,
                        contact: old.contact_id,
                        channel: old.channel,
                        start_url: old.start_url.as_deref(),
                        handoff: new.handoff_if_new.as_ref(),
                    };
                    let (fresh, events) = create_conversation(conn, &opening, new.now)?;
                    row = fresh;
                    written.extend(events);
                    started_new = true;
                }
            }
            (AuthorKind::Visitor, None, contact.name.clone())
        }
        Author::Agent(agent) => {
            rules::check_agent_post(agent, &row.conversation, new.kind)?;
            check_attachment(conn, new)?;
            if let Some(to) = rules::reply_assigns(agent, &row.conversation, new.kind) {
                row.conversation.assignee_id = Some(to);
                let ev = rules::assignment_event(Some(agent), Some(agent));
                written.push(append(
                    conn,
                    &mut row,
                    Entry::event(&ev, Some(agent), new.now),
                )?);
                assigned = true;
            }
            if new.kind == MessageKind::Text {
                row.conversation.agent_took_part = true;
            }
            (
                AuthorKind::Agent,
                Some(agent.id),
                Some(agent.display_name.clone()),
            )
        }
        Author::Bot { name } => {
            check_attachment(conn, new)?;
            (AuthorKind::Bot, None, Some(name.clone()))
        }
        Author::System => {
            check_attachment(conn, new)?;
            (AuthorKind::System, None, None)
        }
    };
    let message = append(
        conn,
        &mut row,
        Entry {
            kind: new.kind,
            author_kind,
            agent_id,
            author_name,
            author_key: key,
            body: new.body.as_str(),
            event: None,
            attachment_id: new.attachment_id,
            client_id: new.client_id.as_deref(),
            mentions: &new.mentions,
            now: new.now,
        },
    )?;
    save_post(conn, &row, &before)?;
    let notifications = NewNotification::for_message(
        &row.conversation,
        &message,
        started_new,
        &new.notify,
        new.now,
    )
    .iter()
    .map(|n| insert_notification(conn, n))
    .collect::<Result<Vec<_>>>()?;
    written.push(message.clone());
    Ok(Posted {
        message,
        created: true,
        written,
        conversation: row.conversation,
        started_new,
        assigned,
        notifications,
        before,
        contact,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::oneshot;

    fn answers(n: usize) -> (Answers, Vec<oneshot::Receiver<Result<Done>>>) {
        (0..n)
            .map(|_| {
                let (reply, answer) = oneshot::channel();
                (
                    (reply, Err(StoreError::Conflict("the post's own answer"))),
                    answer,
                )
            })
            .unzip()
    }

    /// A runtime for [`gather`]'s waits, as the store's is, and a channel of ops.
    fn setup() -> (
        tokio::runtime::Runtime,
        mpsc::Sender<u32>,
        mpsc::Receiver<u32>,
        SyncGate,
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        let (tx, rx) = mpsc::channel(MAX_BATCH * 2);
        (rt, tx, rx, SyncGate::default())
    }

    #[test]
    fn ops_that_come_during_a_sync_are_written_at_once_and_committed_after_it() {
        let (rt, tx, mut rx, gate) = setup();
        let mut syncing = gate.watch();
        gate.set(true);
        let synced = Arc::new(AtomicBool::new(false));
        let mut batch = vec![1];
        let (log, gate) = (Arc::new(std::sync::Mutex::new(Vec::new())), Arc::new(gate));
        // Ops 2–4 come while the sync runs, each once the one before was written (or
        // after 5 s); the sync ends after the last.
        let sync = std::thread::spawn({
            let (gate, synced, log) = (gate.clone(), synced.clone(), log.clone());
            move || {
                let mut written_during_sync = true;
                for op in 2..=4 {
                    tx.blocking_send(op).unwrap();
                    let since = Instant::now();
                    while !log.lock().unwrap().contains(&op) {
                        if since.elapsed() > Duration::from_secs(5) {
                            written_during_sync = false;
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
                synced.store(true, Ordering::Release);
                gate.set(false);
                (tx, written_during_sync)
            }
        });
        let mut next = Next {
            rx: &mut rx,
            syncing: &mut syncing,
            rt: rt.handle(),
        };
        let waited = gather(&mut next, &mut batch, |op| {
            log.lock().unwrap().push(*op);
            Ok(())
        })
        .unwrap();
        assert!(synced.load(Ordering::Acquire), "returned before the sync");
        assert_eq!(batch, [1, 2, 3, 4], "one batch, in order");
        assert_eq!(*log.lock().unwrap(), [1, 2, 3, 4], "each written once");
        assert!(waited > Duration::ZERO);
        let (tx, written_during_sync) = sync.join().unwrap();
        assert!(written_during_sync, "the ops waited for the sync");
        // No sync in flight: what is queued is taken, and the batch goes at once.
        tx.blocking_send(5).unwrap();
        tx.blocking_send(6).unwrap();
        let mut batch = vec![4];
        let mut written = 0;
        gather(&mut next, &mut batch, |_| {
            written += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!((batch, written), (vec![4, 5, 6], 3));
    }

    #[test]
    fn a_full_batch_or_a_closed_channel_goes_without_the_sync() {
        let (rt, tx, mut rx, gate) = setup();
        let mut syncing = gate.watch();
        // A sync that never ends.
        gate.set(true);
        for op in 0..MAX_BATCH as u32 + 5 {
            tx.blocking_send(op).unwrap();
        }
        let mut next = Next {
            rx: &mut rx,
            syncing: &mut syncing,
            rt: rt.handle(),
        };
        let mut batch = Vec::new();
        gather(&mut next, &mut batch, |_| Ok(())).unwrap();
        assert_eq!(batch.len(), MAX_BATCH, "full");
        drop(tx);
        let mut batch = Vec::new();
        gather(&mut next, &mut batch, |_| Ok(())).unwrap();
        assert_eq!(batch.len(), 5, "the rest, once nobody can send more");
    }

    #[test]
    fn an_error_stops_the_batch_where_it_is() {
        let (rt, tx, mut rx, gate) = setup();
        let mut syncing = gate.watch();
        gate.set(true);
        tx.blocking_send(2).unwrap();
        tx.blocking_send(3).unwrap();
        let mut next = Next {
            rx: &mut rx,
            syncing: &mut syncing,
            rt: rt.handle(),
        };
        let mut batch = vec![1];
        let mut written = Vec::new();
        let e = gather(&mut next, &mut batch, |op| {
            if *op == 2 {
                return Err(StoreError::Internal("disk full".into()));
            }
            written.push(*op);
            Ok(())
        });
        assert!(matches!(e, Err(StoreError::Internal(_))));
        // The caller rolls back and writes the batch it was given again, op by op.
        assert_eq!(written, [1]);
        assert_eq!(batch, [1, 2]);
    }

    #[test]
    fn posts_are_answered_after_the_log_is_synced() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join("db-wal");
        std::fs::write(&wal, b"frames").unwrap();
        let (to_sync, queue) = std_mpsc::channel();
        let (first, mut waiting) = answers(2);
        let (second, more) = answers(1);
        waiting.extend(more);
        to_sync.send(first).unwrap();
        to_sync.send(second).unwrap();
        drop(to_sync);
        let failed = AtomicBool::new(false);
        let gate = SyncGate::default();
        gate.set(true);
        let times = Times::default();
        sync_loop(&wal, &queue, &failed, &gate, &times);
        assert!(!failed.load(Ordering::Acquire));
        // Both batches were waiting: one sync made them durable.
        assert_eq!(times.take().sync.len(), 1);
        assert!(!*gate.0.borrow(), "the writer may commit again");
        for answer in waiting {
            // Each post gets its own answer, unchanged.
            assert!(matches!(
                answer.blocking_recv(),
                Ok(Err(StoreError::Conflict("the post's own answer")))
            ));
        }
    }

    /// The sync thread's loop with no writer waiting on it and its times thrown away.
    fn sync_unwatched(wal: &Path, queue: &std_mpsc::Receiver<Answers>, failed: &AtomicBool) {
        sync_loop(wal, queue, failed, &SyncGate::default(), &Times::default());
    }

    #[test]
    fn a_failed_sync_fails_its_posts_and_every_later_one() {
        let dir = tempfile::tempdir().unwrap();
        // No log file: opening it for the sync fails, as a failing disk would.
        let wal = dir.path().join("missing-wal");
        let (to_sync, queue) = std_mpsc::channel();
        let (batch, waiting) = answers(3);
        to_sync.send(batch).unwrap();
        drop(to_sync);
        let failed = AtomicBool::new(false);
        sync_unwatched(&wal, &queue, &failed);
        assert!(
            failed.load(Ordering::Acquire),
            "the store stops taking posts"
        );
        for answer in waiting {
            match answer.blocking_recv() {
                Ok(Err(StoreError::Unavailable(m))) => {
                    assert!(m.contains("durable"), "{m}")
                }
                other => panic!("a post whose sync failed was answered {other:?}"),
            }
        }
        // Once failed, a later sync that would succeed does not answer success either.
        std::fs::write(&wal, b"frames").unwrap();
        let (to_sync, queue) = std_mpsc::channel();
        let (batch, waiting) = answers(1);
        to_sync.send(batch).unwrap();
        drop(to_sync);
        sync_unwatched(&wal, &queue, &failed);
        for answer in waiting {
            assert!(matches!(
                answer.blocking_recv(),
                Ok(Err(StoreError::Unavailable(_)))
            ));
        }
    }
}
