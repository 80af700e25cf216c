//! The embedded SQLite backend of [`confab_store::Store`].
//!
//! One file in WAL mode; every commit is on disk before its caller hears back. One write
//! happens at a time (SQLite has one writer anyway, and this way no statement ever waits
//! on `SQLITE_BUSY`); reads use connections of their own. The full-text index, derived
//! from the messages, is a second file kept by a thread of its own (`search.rs`).
//!
//! Every write to a conversation's timeline — message posts, starts, assignments, status
//! changes, ratings, the offline message — is **group-committed** (`writer.rs`): a thread
//! with its own connection takes the writes that arrived while the previous commit was in
//! flight and writes them in one transaction. A refused write writes nothing (every
//! refusal is decided before the first write), so it does not undo the others. One fsync
//! then covers many writes, and every caller still hears back only after its write is
//! durable. So do the visitors' own one-row writes — new contacts, visitor sessions, page
//! views — which are as frequent as messages on a busy site. The store's other writes
//! (agents' sessions, contact edits, settings, …) use the sqlx connection with
//! `synchronous = FULL`, never at the same time as a batch.

mod conns;
mod inline;
mod rows;
mod search;
mod times;
mod writer;

pub use times::WriterTimes;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use confab_domain::rules::AssigneeFilter;
use confab_domain::*;
use confab_store::*;
use conns::{Conn, Conns};
use rows::*;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteSynchronous};
use sqlx::{Acquire, QueryBuilder, Row, Sqlite};
use tokio::sync::{mpsc, oneshot};
use writer::{Done, Op};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A merged contact's messages get the contact they were merged into as their sender (the
/// idempotency scope). A visitor writes only in its own conversations, which are the new
/// contact's by then: found through them, since the idempotency index leads with the client
/// id (migrations/0005).
const REKEY_MESSAGES: &str = "UPDATE messages SET author_key = ?1 WHERE author_key = ?2 \
     AND conversation_id IN (SELECT id FROM conversations WHERE contact_id = ?3)";

/// How many posts one group commit takes at most.
const MAX_BATCH: usize = 512;

/// Read connections: reads run on their own threads beside the writer.
const READERS: usize = 4;

/// Page cache per connection, as SQLite's `cache_size` pragma (negative: KiB). Message
/// posts have a connection of their own (`writer.rs`); the other writes share one.
const POSTS_CACHE_KIB: &str = "-8192";
const WRITER_CACHE_KIB: &str = "-2048";
const READER_CACHE_KIB: &str = "-2048";

// Statements both drivers run: sqlx here, rusqlite on the group commit's thread.
/// A conversation's list row, up to the viewer whose read position it shows (bound next),
/// then [`SUMMARY_FROM`] and the conditions after `WHERE 1 = 1`; mapped by `summary`.
static SUMMARY_SELECT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {CONVERSATION_COLUMNS}, ct.name AS contact_name, ct.email AS contact_email, \
         lm.author_kind AS lm_author_kind, lm.author_name AS lm_author_name, lm.kind AS lm_kind, \
         lm.body AS lm_body, lm.created_at AS lm_created_at, \
         COALESCE((SELECT r.seq FROM agent_reads r WHERE r.agent_id = "
    )
});
const SUMMARY_FROM: &str = " AND r.conversation_id = c.id), 0) AS my_read_seq \
     FROM conversations c JOIN contacts ct ON ct.id = c.contact_id \
     LEFT JOIN messages lm ON lm.id = (SELECT m.id FROM messages m WHERE m.conversation_id = c.id \
     AND m.kind <> 'event' ORDER BY m.seq DESC LIMIT 1) WHERE 1 = 1";
const INSERT_MESSAGE: &str = "INSERT INTO messages (conversation_id, seq, visible_seq, kind, author_kind, \
    agent_id, author_name, author_key, body, event, attachment_id, client_id, mentions, created_at) \
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
const SELECT_ATTACHMENT: &str = "SELECT * FROM attachments WHERE id = ?";
const SAVE_CONVERSATION: &str =
    "UPDATE conversations SET status = ?, assignee_id = ?, team_id = ?, \
    snoozed_until = ?, closed_at = ?, last_seq = ?, last_visible_seq = ?, last_visitor_seq = ?, \
    handoff_at = ?, agent_took_part = ?, offline = ?, rating = ?, rating_comment = ?, \
    visitor_read_seq = ?, agent_read_seq = ?, last_message_at = ? WHERE id = ?";
const INSERT_JOB: &str = "INSERT INTO jobs (kind, conversation_id, run_at) VALUES (?, ?, ?)";
const INSERT_CONVERSATION: &str =
    "INSERT INTO conversations (site_id, contact_id, channel, status, \
    handoff_at, offline, start_url, created_at, last_message_at) \
    VALUES (?, ?, ?, 'open', ?, ?, ?, ?, ?) RETURNING id";
/// The head of a notification INSERT, for one row ([`INSERT_NOTIFICATION`]) or many
/// ([`insert_notifications`]).
macro_rules! insert_notifications_into {
    () => {
        "INSERT INTO notifications (agent_id, kind, conversation_id, message_id, preview, created_at) "
    };
}
const INSERT_NOTIFICATION: &str =
    concat!(insert_notifications_into!(), "VALUES (?, ?, ?, ?, ?, ?)");

/// Confab's store on one SQLite file (and its full-text index beside it).
#[derive(Clone)]
pub struct SqliteStore {
    read: Arc<Conns>,
    /// Lookups by key, on the calling thread (see `inline.rs`).
    point: Arc<inline::Inline>,
    write: Arc<Conns>,
    /// The writer thread's queue: every write to a conversation's timeline.
    writes: mpsc::Sender<(writer::Op, writer::Reply)>,
    /// Group commits that failed and were written again post by post (see
    /// [`commit_batch`]); only the database's own errors should ever cause one.
    batches_rewritten: Arc<AtomicU64>,
    /// The full-text index, in a file and on a thread of its own (`search.rs`).
    search: Arc<search::Search>,
    /// Where the writer's time goes (`times.rs`).
    times: Arc<times::Times>,
}

/// The file SQLite (or this store) keeps beside `path`: `confab.db` → `confab.db-wal`.
fn sibling(path: &Path, suffix: &str) -> std::path::PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    p.into()
}

fn db_err(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::RowNotFound => StoreError::NotFound("row"),
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => {
            StoreError::Unavailable(e.to_string())
        }
        sqlx::Error::Database(ref d) if d.is_unique_violation() => StoreError::Conflict("value"),
        other => StoreError::Internal(other.to_string()),
    }
}

trait Ctx<T> {
    fn not_found(self, what: &'static str) -> Result<T>;
    fn conflict(self, what: &'static str) -> Result<T>;
}

impl<T> Ctx<T> for std::result::Result<T, sqlx::Error> {
    fn not_found(self, what: &'static str) -> Result<T> {
        self.map_err(|e| match e {
            sqlx::Error::RowNotFound => StoreError::NotFound(what),
            e => db_err(e),
        })
    }
    fn conflict(self, what: &'static str) -> Result<T> {
        self.map_err(|e| match db_err(e) {
            StoreError::Conflict(_) => StoreError::Conflict(what),
            e => e,
        })
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and runs the migrations.
    pub async fn open(path: &Path) -> Result<Self> {
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            .pragma("temp_store", "memory");
        // Each connection keeps its own page cache; nine of SQLite's default size were most
        // of the server's memory on a busy day. The OS caches the file for all of them.
        let write = Arc::new(
            Conns::open(
                &opts.clone().pragma("cache_size", WRITER_CACHE_KIB),
                1,
                Duration::from_secs(30),
            )
            .await?,
        );
        MIGRATOR
            .run(&mut *write.get().await?)
            .await
            .map_err(|e| StoreError::Internal(format!("migration failed: {e}")))?;
        // Before the readers, which attach its file.
        let search = Arc::new(search::Search::start(path)?);
        let read = Arc::new(
            Conns::open(
                &opts.read_only(true).pragma("cache_size", READER_CACHE_KIB),
                READERS,
                Duration::from_secs(10),
            )
            .await?,
        );
        read.attach(&search::path_of(path), "search").await?;
        let (tx, rx) = mpsc::channel(4096);
        let batches_rewritten = Arc::new(AtomicU64::new(0));
        let times = Arc::new(times::Times::default());
        writer::start(
            writer::open(path, POSTS_CACHE_KIB)?,
            sibling(path, "-wal"),
            write.clone(),
            rx,
            batches_rewritten.clone(),
            times.clone(),
        )?;
        Ok(Self {
            read,
            point: Arc::new(inline::Inline::new(path, READER_CACHE_KIB)),
            write,
            writes: tx,
            batches_rewritten,
            search,
            times,
        })
    }

    /// Runs the migrations only (`confab migrate`).
    pub async fn migrate(path: &Path) -> Result<()> {
        Self::open(path).await.map(|_| ())
    }

    /// How many group commits failed and were written again post by post.
    pub fn batches_rewritten(&self) -> u64 {
        self.batches_rewritten.load(Ordering::Relaxed)
    }

    /// Where the writer's time went, batch by batch, since the last call (which this
    /// starts again); see [`WriterTimes`].
    pub fn take_writer_times(&self) -> WriterTimes {
        self.times.take()
    }

    /// A read connection (the file in WAL mode: reads never wait for the writer).
    async fn reader(&self) -> Result<Conn<'_>> {
        self.read.get().await
    }

    /// The first row of `sql` for `key`, read on this thread (`inline.rs`): for lookups
    /// of one row by a unique key only. `NotFound(what)` when there is none.
    fn point<T>(
        &self,
        sql: &str,
        key: impl rusqlite::Params,
        what: &'static str,
        map: impl FnOnce(&Named<'_, '_>) -> Result<T>,
    ) -> Result<T> {
        self.point
            .read(|conn| writer::one(conn, sql, key, what, map))
    }

    /// The rows of `sql` for `params`, read on this thread (`inline.rs`): for reads whose
    /// `LIMIT` holds them to about [`inline::MAX_ROWS`].
    fn few<T>(
        &self,
        sql: &str,
        params: &[&dyn rusqlite::ToSql],
        map: impl Fn(&Named<'_, '_>) -> Result<T>,
    ) -> Result<Vec<T>> {
        self.point.read(|conn| {
            let mut st = conn.prepare_cached(sql).map_err(writer::db_err)?;
            let mut rows = st.query(params).map_err(writer::db_err)?;
            let mut out = Vec::new();
            while let Some(row) = rows.next().map_err(writer::db_err)? {
                out.push(map(&Named::new(row))?);
            }
            Ok(out)
        })
    }

    /// The one write connection (for everything but the timeline's writes).
    async fn writer(&self) -> Result<Conn<'_>> {
        self.write.get().await
    }

    /// Hands a write to the writer thread and waits until it is on disk (`writer.rs`).
    async fn write(&self, op: Op) -> Result<Done> {
        let (tx, rx) = oneshot::channel();
        let gone = || StoreError::Unavailable("store is shutting down".into());
        self.writes.send((op, tx)).await.map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    /// [`Self::write`] for the ops that answer with nothing but success.
    async fn stored(&self, op: Op) -> Result<()> {
        match self.write(op).await? {
            Done::Stored => Ok(()),
            other => Err(mismatch(&other)),
        }
    }

    /// [`Self::write`] for the ops that change a conversation.
    async fn change(&self, op: Op) -> Result<Option<Changed>> {
        match self.write(op).await? {
            Done::Changed(c) => Ok(c),
            other => Err(mismatch(&other)),
        }
    }

    /// Closes every connection, checkpointing the WAL.
    pub async fn close(&self) {
        let search = self.search.clone();
        let _ = tokio::task::spawn_blocking(move || search.stop()).await;
        self.point.close();
        self.read.close().await;
        self.write.close().await;
    }

    async fn conversation_row(
        conn: &mut SqliteConnection,
        id: ConversationId,
    ) -> Result<ConversationRow> {
        let row = sqlx::query(&format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations c WHERE c.id = ?"
        ))
        .bind(id.0)
        .fetch_one(&mut *conn)
        .await
        .not_found("conversation")?;
        conversation(&row)
    }
}

/// A lookup's `NotFound` as `None`.
fn absent_as_none<T>(found: Result<T>) -> Result<Option<T>> {
    match found {
        Err(StoreError::NotFound(_)) => Ok(None),
        other => other.map(Some),
    }
}

/// The writer answered an op with another op's result: a bug in `writer::apply`.
fn mismatch(done: &Done) -> StoreError {
    StoreError::Internal(format!(
        "the writer answered with the wrong result: {done:?}"
    ))
}

fn counts(rows: Vec<(String, Option<i64>, i64)>) -> Result<ConversationCounts> {
    let mut groups = Vec::with_capacity(rows.len());
    for (status, assignee, n) in rows {
        groups.push((parse::<Status>(&status)?, assignee.map(AgentId), n));
    }
    Ok(ConversationCounts { groups })
}

async fn schedule(
    conn: &mut SqliteConnection,
    kind: JobKind,
    conv: ConversationId,
    at: DateTime<Utc>,
) -> Result<()> {
    sqlx::query(INSERT_JOB)
        .bind(kind.as_str())
        .bind(conv.0)
        .bind(us(at))
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    Ok(())
}

fn author_key(author: &Author) -> Option<String> {
    match author {
        Author::Visitor { contact_id, .. } => Some(format!("v{}", contact_id.0)),
        Author::Agent(a) => Some(format!("a{}", a.id.0)),
        Author::Bot { .. } | Author::System => None,
    }
}

/// Inserts notifications in as few statements as possible: a new conversation notifies
/// every available agent, and one statement per agent was a thread round trip each on
/// sqlx's connection thread (docs/performance.md, round 4).
async fn insert_notifications(
    conn: &mut SqliteConnection,
    items: &[NewNotification],
) -> Result<Vec<Notification>> {
    // 6 parameters a row, well under SQLite's limit of 32,766 per statement.
    const ROWS: usize = 500;
    let mut out = Vec::with_capacity(items.len());
    for chunk in items.chunks(ROWS) {
        let mut q = sqlx::QueryBuilder::new(insert_notifications_into!());
        q.push_values(chunk, |mut b, n| {
            b.push_bind(n.agent_id.0)
                .push_bind(n.kind.as_str())
                .push_bind(n.conversation_id.0)
                .push_bind(n.message_id.map(|m| m.0))
                .push_bind(&n.preview)
                .push_bind(us(n.now));
        });
        let done = q.build().execute(&mut *conn).await.map_err(db_err)?;
        if done.rows_affected() != chunk.len() as u64 {
            return Err(StoreError::Internal(format!(
                "{} of {} notifications inserted",
                done.rows_affected(),
                chunk.len()
            )));
        }
        // One INSERT under the write lock numbers its rows one after another, in order.
        let first = done.last_insert_rowid() - chunk.len() as i64 + 1;
        out.extend(
            chunk
                .iter()
                .zip(first..)
                .map(|(n, id)| inserted_notification(n, id)),
        );
    }
    Ok(out)
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&mut *self.reader().await?)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn count_agents(&self) -> Result<i64> {
        sqlx::query_scalar("SELECT COUNT(*) FROM agents")
            .fetch_one(&mut *self.reader().await?)
            .await
            .map_err(db_err)
    }

    async fn create_agent(&self, n: NewAgent) -> Result<Agent> {
        let row = sqlx::query(&format!(
            "INSERT INTO agents (email, name, display_name, password_hash, role, access, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING {AGENT_COLUMNS}"
        ))
        .bind(&n.email)
        .bind(&n.name)
        .bind(&n.display_name)
        .bind(&n.password_hash)
        .bind(n.role.as_str())
        .bind(n.access.as_str())
        .bind(us(n.now))
        .fetch_one(&mut *self.writer().await?)
        .await
        .conflict("agent")?;
        agent(&row)
    }

    async fn agent(&self, id: AgentId) -> Result<Agent> {
        static SQL: LazyLock<String> =
            LazyLock::new(|| format!("SELECT {AGENT_COLUMNS} FROM agents WHERE id = ?"));
        self.point(&SQL, [id.0], "agent", |r| agent(r))
    }

    async fn agent_credentials(&self, email: &str) -> Result<Option<(Agent, String)>> {
        let row = sqlx::query(&format!(
            "SELECT {AGENT_COLUMNS}, password_hash FROM agents WHERE email = ?"
        ))
        .bind(email)
        .fetch_optional(&mut *self.reader().await?)
        .await
        .map_err(db_err)?;
        row.map(|r| Ok((agent(&r)?, r.get("password_hash"))))
            .transpose()
    }

    async fn list_agents(&self) -> Result<Vec<Agent>> {
        let rows = sqlx::query(&format!("SELECT {AGENT_COLUMNS} FROM agents ORDER BY id"))
            .fetch_all(&mut *self.reader().await?)
            .await
            .map_err(db_err)?;
        rows.iter().map(agent).collect()
    }

    async fn update_agent(&self, id: AgentId, p: AgentPatch) -> Result<Agent> {
        let row = sqlx::query(&format!(
            "UPDATE agents SET name = COALESCE(?, name), display_name = COALESCE(?, display_name), \
             avatar_url = CASE WHEN ? THEN ? ELSE avatar_url END, role = COALESCE(?, role), \
             access = COALESCE(?, access), available = COALESCE(?, available), \
             notify_desktop = COALESCE(?, notify_desktop), notify_sound = COALESCE(?, notify_sound), \
             notify_all_messages = COALESCE(?, notify_all_messages), deactivated = COALESCE(?, deactivated) \
             WHERE id = ? RETURNING {AGENT_COLUMNS}"
        ))
        .bind(&p.name)
        .bind(&p.display_name)
        .bind(p.avatar_url.is_some())
        .bind(p.avatar_url.clone().flatten())
        .bind(p.role.map(Role::as_str))
        .bind(p.access.map(Access::as_str))
        .bind(p.available)
        .bind(p.notify_desktop)
        .bind(p.notify_sound)
        .bind(p.notify_all_messages)
        .bind(p.deactivated)
        .bind(id.0)
        .fetch_one(&mut *self.writer().await?)
        .await
        .not_found("agent")?;
        agent(&row)
    }

    async fn set_password(&self, id: AgentId, hash: &str) -> Result<()> {
        let r = sqlx::query("UPDATE agents SET password_hash = ? WHERE id = ?")
            .bind(hash)
            .bind(id.0)
            .execute(&mut *self.writer().await?)
            .await
            .map_err(db_err)?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound("agent"));
        }
        Ok(())
    }

    async fn create_session(&self, s: NewSession) -> Result<()> {
        sqlx::query("INSERT INTO sessions (token_hash, agent_id, csrf_token, created_at, expires_at) VALUES (?, ?, ?, ?, ?)")
            .bind(&s.token_hash)
            .bind(s.agent_id.0)
            .bind(&s.csrf_token)
            .bind(us(s.created_at))
            .bind(us(s.expires_at))
            .execute(&mut *self.writer().await?)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn session(&self, token_hash: &str, now: DateTime<Utc>) -> Result<Option<AgentSession>> {
        // The session and its agent in one statement: this runs for every agent request.
        // The session's columns come from a subquery, so the agent's are unambiguous.
        static SQL: LazyLock<String> = LazyLock::new(|| {
            format!(
                "SELECT {AGENT_COLUMNS}, s.csrf_token, s.expires_at FROM agents JOIN \
                 (SELECT agent_id, csrf_token, expires_at FROM sessions \
                 WHERE token_hash = ? AND expires_at > ?) s ON s.agent_id = agents.id"
            )
        });
        let found = self.point(
            &SQL,
            rusqlite::params![token_hash, us(now)],
            "session",
            |r| {
                Ok(AgentSession {
                    agent: agent(r)?,
                    csrf_token: r.text("csrf_token")?,
                    expires_at: from_us(r.int("expires_at")?),
                })
            },
        );
        absent_as_none(found)
    }

    async fn delete_session(&self, token_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = ?")
            .bind(token_hash)
            .execute(&mut *self.writer().await?)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn delete_agent_sessions(&self, agent: AgentId) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE agent_id = ?")
            .bind(agent.0)
            .execute(&mut *self.writer().await?)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn create_api_token(
        &self,
        agent: AgentId,
        name: &str,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<ApiToken> {
        let id: i64 = sqlx::query_scalar("INSERT INTO api_tokens (agent_id, name, token_hash, created_at) VALUES (?, ?, ?, ?) RETURNING id")
            .bind(agent.0)
            .bind(name)
            .bind(token_hash)
            .bind(us(now))
            .fetch_one(&mut *self.writer().await?)
            .await
            .conflict("api token")?;
        Ok(ApiToken {
            id,
            agent_id: agent,
            name: name.to_owned(),
            created_at: now,
        })
    }

    async fn agent_by_api_token(&self, token_hash: &str) -> Result<Option<AgentId>> {
        let id: Option<i64> =
            sqlx::query_scalar("SELECT agent_id FROM api_tokens WHERE token_hash = ?")
                .bind(token_hash)
                .fetch_optional(&mut *self.reader().await?)
                .await
                .map_err(db_err)?;
        Ok(id.map(AgentId))
    }

    async fn create_team(&self, name: &str, members: &[AgentId]) -> Result<Team> {
        let mut w = self.writer().await?;
        let mut tx = w.begin().await.map_err(db_err)?;
        let id: i64 = sqlx::query_scalar("INSERT INTO teams (name) VALUES (?) RETURNING id")
            .bind(name)
            .fetch_one(&mut *tx)
            .await
            .conflict("team")?;
        set_members(&mut tx, id, members).await?;
        tx.commit().await.map_err(db_err)?;
        self.team(TeamId(id)).await
    }

    async fn list_teams(&self) -> Result<Vec<Team>> {
        let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM teams ORDER BY name")
            .fetch_all(&mut *self.reader().await?)
            .await
            .map_err(db_err)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(self.team(TeamId(id)).await?);
        }
        Ok(out)
    }

    async fn team(&self, id: TeamId) -> Result<Team> {
        let name: String = sqlx::query_scalar("SELECT name FROM teams WHERE id = ?")
            .bind(id.0)
            .fetch_one(&mut *self.reader().await?)
            .await
            .not_found("team")?;
        let members: Vec<i64> = sqlx::query_scalar(
            "SELECT agent_id FROM team_members WHERE team_id = ? ORDER BY agent_id",
        )
        .bind(id.0)
        .fetch_all(&mut *self.reader().await?)
        .await
        .map_err(db_err)?;
        Ok(Team {
            id,
            name,
            members: members.into_iter().map(AgentId).collect(),
        })
    }

    async fn update_team(
        &self,
        id: TeamId,
        name: Option<&str>,
        members: Option<&[AgentId]>,
    ) -> Result<Team> {
        let mut w = self.writer().await?;
        let mut tx = w.begin().await.map_err(db_err)?;
        let r = sqlx::query("UPDATE teams SET name = COALESCE(?, name) WHERE id = ?")
            .bind(name)
            .bind(id.0)
            .execute(&mut *tx)
            .await
            .conflict("team")?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound("team"));
        }
        if let Some(m) = members {
            set_members(&mut tx, id.0, m).await?;
        }
        tx.commit().await.map_err(db_err)?;
        self.team(id).await
    }

    async fn delete_team(&self, id: TeamId) -> Result<()> {
        let r = sqlx::query("DELETE FROM teams WHERE id = ?")
            .bind(id.0)
            .execute(&mut *self.writer().await?)
            .await
            .map_err(db_err)?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound("team"));
        }
        Ok(())
    }

    async fn create_site(&self, n: NewSite) -> Result<Site> {
        let row = sqlx::query(
            "INSERT INTO sites (name, public_key, identity_secret, settings, created_at) VALUES (?, ?, ?, ?, ?) RETURNING *",
        )
        .bind(&n.name)
        .bind(&n.public_key)
        .bind(&n.identity_secret)
        .bind(serde_json::to_string(&n.settings).map_err(|e| StoreError::Internal(e.to_string()))?)
        .bind(us(n.now))
        .fetch_one(&mut *self.writer().await?)
        .await
        .conflict("site")?;
        site(&row)
    }

    async fn site(&self, id: SiteId) -> Result<Site> {
        let row = sqlx::query("SELECT * FROM sites WHERE id = ?")
            .bind(id.0)
            .fetch_one(&mut *self.reader().await?)
            .await
            .not_found("site")?;
        site(&row)
    }

    async fn site_by_key(&self, key: &str) -> Result<Option<Site>> {
        let row = sqlx::query("SELECT * FROM sites WHERE public_key = ?")
            .bind(key)
            .fetch_optional(&mut *self.reader().await?)
            .await
            .map_err(db_err)?;
        row.as_ref().map(site).transpose()
    }

    async fn list_sites(&self) -> Result<Vec<Site>> {
        let rows = sqlx::query("SELECT * FROM sites ORDER BY id")
            .fetch_all(&mut *self.reader().await?)
            .await
            .map_err(db_err)?;
        rows.iter().map(site).collect()
    }

    async fn update_site(
        &self,
        id: SiteId,
        name: Option<&str>,
        settings: Option<&SiteSettings>,
    ) -> Result<Site> {
        let settings = settings
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        let row = sqlx::query(
            "UPDATE sites SET name = COALESCE(?, name), settings = COALESCE(?, settings) WHERE id = ? RETURNING *",
        )
        .bind(name)
        .bind(settings)
        .bind(id.0)
        .fetch_one(&mut *self.writer().await?)
        .await
        .not_found("site")?;
        site(&row)
    }

    async fn create_contact(&self, n: NewContact) -> Result<Contact> {
        match self.write(Op::Contact(n)).await? {
            Done::Contact(c) => Ok(c),
            other => Err(mismatch(&other)),
        }
    }

    async fn contact(&self, id: ContactId) -> Result<Contact> {
        static SQL: LazyLock<String> =
            LazyLock::new(|| format!("SELECT {CONTACT_COLUMNS} FROM contacts WHERE id = ?"));
        self.point(&SQL, [id.0], "contact", |r| contact(r))
    }

    async fn update_contact(&self, id: ContactId, p: ContactPatch) -> Result<Contact> {
        let tags = p
            .tags
            .as_ref()
            .map(|t| serde_json::to_string(t).unwrap_or_else(|_| "[]".into()));
        let row = sqlx::query(&format!(
            "UPDATE contacts SET \
             name = CASE WHEN ? THEN ? ELSE name END, \
             email = CASE WHEN ? THEN ? ELSE email END, \
             phone = CASE WHEN ? THEN ? ELSE phone END, \
             external_id = CASE WHEN ? THEN ? ELSE external_id END, \
             verified = COALESCE(?, verified), \
             consent_text = COALESCE(?, consent_text), consent_at = COALESCE(?, consent_at), \
             tags = COALESCE(?, tags) \
             WHERE id = ? RETURNING {CONTACT_COLUMNS}"
        ))
        .bind(p.name.is_some())
        .bind(p.name.clone().flatten())
        .bind(p.email.is_some())
        .bind(p.email.clone().flatten())
        .bind(p.phone.is_some())
        .bind(p.phone.clone().flatten())
        .bind(p.external_id.is_some())
        .bind(p.external_id.clone().flatten())
        .bind(p.verified)
        .bind(p.consent.as_ref().map(|c| c.0.clone()))
        .bind(p.consent.as_ref().map(|c| us(c.1)))
        .bind(tags)
        .bind(id.0)
        .fetch_one(&mut *self.writer().await?)
        .await
        .not_found("contact")
        .map_err(|e| match e {
            StoreError::Conflict(_) => StoreError::Conflict("contact"),
            e => e,
        })?;
        contact(&row)
    }

    async fn contact_by_external_id(
        &self,
        site: SiteId,
        external_id: &str,
    ) -> Result<Option<Contact>> {
        let row = sqlx::query(&format!(
            "SELECT {CONTACT_COLUMNS} FROM contacts WHERE site_id = ? AND external_id = ?"
        ))
        .bind(site.0)
        .bind(external_id)
        .fetch_optional(&mut *self.reader().await?)
        .await
        .map_err(db_err)?;
        row.as_ref().map(contact).transpose()
    }

    async fn contact_by_email(&self, site: SiteId, email: &str) -> Result<Option<Contact>> {
        let row = sqlx::query(&format!(
            "SELECT {CONTACT_COLUMNS} FROM contacts WHERE site_id = ? AND email = ? ORDER BY verified DESC, id LIMIT 1"
        ))
        .bind(site.0)
        .bind(email)
        .fetch_optional(&mut *self.reader().await?)
        .await
        .map_err(db_err)?;
        row.as_ref().map(contact).transpose()
    }

    async fn merge_contacts(&self, from: ContactId, into: ContactId) -> Result<Contact> {
        if from == into {
            return self.contact(into).await;
        }
        let mut w = self.writer().await?;
        let mut tx = w.begin().await.map_err(db_err)?;
        for table in [
            "conversations",
            "visitor_sessions",
            "page_views",
            "contact_notes",
        ] {
            // Table names come from the fixed list above, never from input.
            sqlx::query(&format!(
                "UPDATE {table} SET contact_id = ? WHERE contact_id = ?"
            ))
            .bind(into.0)
            .bind(from.0)
            .execute(&mut *tx)
            .await
            .conflict("live conversation")?;
        }
        sqlx::query(REKEY_MESSAGES)
            .bind(format!("v{}", into.0))
            .bind(format!("v{}", from.0))
            .bind(into.0)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        sqlx::query("DELETE FROM contacts WHERE id = ?")
            .bind(from.0)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        self.contact(into).await
    }

    async fn add_contact_note(
        &self,
        contact: ContactId,
        agent: AgentId,
        body: &str,
        now: DateTime<Utc>,
    ) -> Result<ContactNote> {
        let id: i64 = sqlx::query_scalar("INSERT INTO contact_notes (contact_id, agent_id, body, created_at) VALUES (?, ?, ?, ?) RETURNING id")
            .bind(contact.0)
            .bind(agent.0)
            .bind(body)
            .bind(us(now))
            .fetch_one(&mut *self.writer().await?)
            .await
            .map_err(|e| match db_err(e) {
                StoreError::Internal(m) if m.contains("FOREIGN KEY") => StoreError::NotFound("contact"),
                e => e,
            })?;
        Ok(ContactNote {
            id,
            contact_id: contact,
            agent_id: agent,
            body: body.to_owned(),
            created_at: now,
        })
    }

    async fn contact_notes(&self, contact: ContactId) -> Result<Vec<ContactNote>> {
        let rows: Vec<(i64, i64, String, i64)> =
            sqlx::query_as("SELECT id, agent_id, body, created_at FROM contact_notes WHERE contact_id = ? ORDER BY id")
                .bind(contact.0)
                .fetch_all(&mut *self.reader().await?)
                .await
                .map_err(db_err)?;
        Ok(rows
            .into_iter()
            .map(|(id, a, body, t)| ContactNote {
                id,
                contact_id: contact,
                agent_id: AgentId(a),
                body,
                created_at: from_us(t),
            })
            .collect())
    }

    async fn add_page_view(&self, contact: ContactId, view: PageView) -> Result<()> {
        self.stored(Op::PageView { contact, view }).await
    }

    async fn page_views(&self, contact: ContactId, limit: i64) -> Result<Vec<PageView>> {
        let rows: Vec<(String, Option<String>, Option<String>, i64)> = sqlx::query_as(
            "SELECT url, title, referrer, created_at FROM page_views WHERE contact_id = ? ORDER BY id DESC LIMIT ?",
        )
        .bind(contact.0)
        .bind(limit)
        .fetch_all(&mut *self.reader().await?)
        .await
        .map_err(db_err)?;
        Ok(rows
            .into_iter()
            .map(|(url, title, referrer, t)| PageView {
                url,
                title,
                referrer,
                created_at: from_us(t),
            })
            .collect())
    }

    async fn contact_conversations(&self, contact: ContactId) -> Result<Vec<Conversation>> {
        self.visitor_conversations(contact).await
    }

    async fn create_visitor_session(
        &self,
        token_hash: &str,
        site: SiteId,
        contact: ContactId,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.stored(Op::VisitorSession {
            token_hash: token_hash.to_owned(),
            site,
            contact,
            now,
        })
        .await
    }

    async fn visitor_session(&self, token_hash: &str) -> Result<Option<VisitorSession>> {
        absent_as_none(self.point(
            "SELECT site_id, contact_id FROM visitor_sessions WHERE token_hash = ?",
            [token_hash],
            "visitor session",
            |r| {
                Ok(VisitorSession {
                    site_id: SiteId(r.int("site_id")?),
                    contact_id: ContactId(r.int("contact_id")?),
                })
            },
        ))
    }

    async fn repoint_visitor_session(&self, token_hash: &str, contact: ContactId) -> Result<()> {
        sqlx::query("UPDATE visitor_sessions SET contact_id = ? WHERE token_hash = ?")
            .bind(contact.0)
            .bind(token_hash)
            .execute(&mut *self.writer().await?)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn start_conversation(&self, n: NewConversation) -> Result<Started> {
        match self.write(Op::Start(n)).await? {
            Done::Started(s) => Ok(s),
            other => Err(mismatch(&other)),
        }
    }

    async fn conversation(&self, id: ConversationId) -> Result<Conversation> {
        self.point
            .read(|conn| writer::conversation_row(conn, id))
            .map(|row| row.conversation)
    }

    async fn list_conversations(&self, q: &ConversationQuery) -> Result<Vec<ConversationSummary>> {
        if q.text.is_some() {
            // I9: a search finds every message stored before it.
            self.search.catch_up().await?;
        }
        let mut b: QueryBuilder<Sqlite> = QueryBuilder::new(SUMMARY_SELECT.as_str());
        b.push_bind(q.viewer.0);
        b.push(SUMMARY_FROM);
        if let Some(id) = q.id {
            b.push(" AND c.id = ").push_bind(id.0);
        }
        let mut visible_to = q.visible_to;
        if let Some(f) = &q.filter {
            b.push(" AND c.status = ").push_bind(f.status.as_str());
            match f.assignee {
                AssigneeFilter::Any => {}
                AssigneeFilter::Nobody => {
                    b.push(" AND c.assignee_id IS NULL");
                }
                AssigneeFilter::Is(a) => {
                    b.push(" AND c.assignee_id = ").push_bind(a.0);
                }
                AssigneeFilter::SomeoneBut(a) => {
                    b.push(" AND c.assignee_id IS NOT NULL AND c.assignee_id <> ")
                        .push_bind(a.0);
                }
            }
            visible_to = visible_to.or(f.visible_to);
        }
        if let Some(a) = visible_to {
            b.push(" AND (c.assignee_id IS NULL OR c.status = 'closed' OR c.assignee_id = ")
                .push_bind(a.0)
                .push(")");
        }
        if let Some(s) = q.status {
            b.push(" AND c.status = ").push_bind(s.as_str());
        }
        if let Some(a) = q.assignee {
            b.push(" AND c.assignee_id = ").push_bind(a.0);
        }
        if let Some(s) = q.site {
            b.push(" AND c.site_id = ").push_bind(s.0);
        }
        if let Some(ch) = q.channel {
            b.push(" AND c.channel = ").push_bind(ch.as_str());
        }
        if let Some(r) = q.rating {
            b.push(" AND c.rating = ").push_bind(r.as_str());
        }
        if let Some(t) = q.team {
            b.push(" AND c.team_id = ").push_bind(t.0);
        }
        if let Some(t) = &q.tag {
            b.push(" AND EXISTS (SELECT 1 FROM conversation_tags t WHERE t.conversation_id = c.id AND t.tag = ")
                .push_bind(t.clone())
                .push(")");
        }
        if let Some(since) = q.since {
            b.push(" AND c.last_message_at >= ").push_bind(us(since));
        }
        if let Some(until) = q.until {
            b.push(" AND c.created_at < ").push_bind(us(until));
        }
        if let Some(text) = &q.text {
            // Quoted as one FTS5 phrase, so the user's text is never FTS syntax.
            let phrase = format!("\"{}\"", text.replace('"', "\"\""));
            b.push(
                " AND c.id IN (SELECT m.conversation_id FROM messages m WHERE m.id IN \
                 (SELECT rowid FROM search.messages_fts WHERE messages_fts MATCH ",
            )
            .push_bind(phrase)
            .push("))");
        }
        if let Some((t, id)) = q.before {
            b.push(" AND (c.last_message_at < ")
                .push_bind(us(t))
                .push(" OR (c.last_message_at = ")
                .push_bind(us(t))
                .push(" AND c.id < ")
                .push_bind(id.0)
                .push("))");
        }
        b.push(" ORDER BY c.last_message_at DESC, c.id DESC LIMIT ")
            .push_bind(q.limit.clamp(1, 200));
        let rows = b
            .build()
            .fetch_all(&mut *self.reader().await?)
            .await
            .map_err(db_err)?;
        rows.iter().map(summary).collect()
    }

    async fn conversation_counts(&self) -> Result<ConversationCounts> {
        // Answered from the `conversations_inbox` index alone.
        let rows: Vec<(String, Option<i64>, i64)> = sqlx::query_as(
            "SELECT status, assignee_id, COUNT(*) FROM conversations GROUP BY status, assignee_id",
        )
        .fetch_all(&mut *self.reader().await?)
        .await
        .map_err(db_err)?;
        counts(rows)
    }

    async fn visitor_conversations(&self, contact: ContactId) -> Result<Vec<Conversation>> {
        static SQL: LazyLock<[String; 2]> = LazyLock::new(|| {
            let all = format!(
                "SELECT {CONVERSATION_COLUMNS} FROM conversations c WHERE c.contact_id = ? ORDER BY c.id DESC"
            );
            [format!("{all} LIMIT ?"), all]
        });
        // Most visitors have a handful: those are read here, and only a longer history on
        // sqlx's threads.
        let first = self.few(&SQL[0], &[&contact.0, &(inline::MAX_ROWS + 1)], |r| {
            conversation(r).map(|c| c.conversation)
        })?;
        if first.len() <= inline::MAX_ROWS as usize {
            return Ok(first);
        }
        let rows = sqlx::query(&SQL[1])
            .bind(contact.0)
            .fetch_all(&mut *self.reader().await?)
            .await
            .map_err(db_err)?;
        rows.iter()
            .map(|r| conversation(r).map(|c| c.conversation))
            .collect()
    }

    async fn post_message(&self, new: NewMessage) -> Result<Posted> {
        match self.write(Op::Post(new)).await? {
            Done::Posted(p) => Ok(p),
            other => Err(mismatch(&other)),
        }
    }

    async fn assign(
        &self,
        id: ConversationId,
        by: Option<&Agent>,
        target: Option<&Agent>,
        now: DateTime<Utc>,
    ) -> Result<Changed> {
        self.change(Op::Assign {
            id,
            by: by.cloned(),
            target: target.cloned(),
            now,
        })
        .await?
        .ok_or_else(|| StoreError::Internal("an assignment gave no answer".into()))
    }

    async fn change_status(
        &self,
        id: ConversationId,
        change: StatusChange,
        now: DateTime<Utc>,
    ) -> Result<Changed> {
        self.change(Op::Status { id, change, now })
            .await?
            .ok_or_else(|| StoreError::Internal("a status change gave no answer".into()))
    }

    async fn rate(
        &self,
        id: ConversationId,
        rating: Rating,
        comment: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Changed> {
        self.change(Op::Rate {
            id,
            rating,
            comment: comment.map(str::to_owned),
            now,
        })
        .await?
        .ok_or_else(|| StoreError::Internal("a rating gave no answer".into()))
    }

    async fn mark_offline(
        &self,
        id: ConversationId,
        message: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Changed>> {
        self.change(Op::Offline {
            id,
            message: message.to_owned(),
            now,
        })
        .await
    }

    async fn delete_conversation(&self, id: ConversationId) -> Result<Vec<String>> {
        let mut w = self.writer().await?;
        let mut tx = w.begin().await.map_err(db_err)?;
        let paths: Vec<String> =
            sqlx::query_scalar("SELECT path FROM attachments WHERE conversation_id = ?")
                .bind(id.0)
                .fetch_all(&mut *tx)
                .await
                .map_err(db_err)?;
        // Messages first, so the index triggers remove their entries.
        sqlx::query("DELETE FROM messages WHERE conversation_id = ?")
            .bind(id.0)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let r = sqlx::query("DELETE FROM conversations WHERE id = ?")
            .bind(id.0)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound("conversation"));
        }
        tx.commit().await.map_err(db_err)?;
        Ok(paths)
    }

    async fn messages(
        &self,
        id: ConversationId,
        after: Seq,
        limit: i64,
        visitor_view: bool,
    ) -> Result<Vec<Message>> {
        let sql = timeline_sql(visitor_view);
        let limit = limit.clamp(1, 1000);
        if limit <= inline::MAX_ROWS {
            return self.few(sql, &[&id.0, &after, &limit], |r| message(r));
        }
        let rows = sqlx::query(sql)
            .bind(id.0)
            .bind(after)
            .bind(limit)
            .fetch_all(&mut *self.reader().await?)
            .await
            .map_err(db_err)?;
        rows.iter().map(message).collect()
    }

    async fn mark_read_by_agent(
        &self,
        id: ConversationId,
        agent: AgentId,
        seq: Seq,
    ) -> Result<Seq> {
        let mut w = self.writer().await?;
        let mut tx = w.begin().await.map_err(db_err)?;
        let last: i64 = sqlx::query_scalar("SELECT last_seq FROM conversations WHERE id = ?")
            .bind(id.0)
            .fetch_one(&mut *tx)
            .await
            .not_found("conversation")?;
        let seq = seq.clamp(0, last);
        sqlx::query(
            "INSERT INTO agent_reads (agent_id, conversation_id, seq) VALUES (?, ?, ?) \
             ON CONFLICT (agent_id, conversation_id) DO UPDATE SET seq = MAX(seq, excluded.seq)",
        )
        .bind(agent.0)
        .bind(id.0)
        .bind(seq)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        // The visitor's "seen" marker is in visible_seq terms.
        let v: i64 = sqlx::query_scalar(
            "UPDATE conversations SET agent_read_seq = MAX(agent_read_seq, COALESCE((SELECT visible_seq \
             FROM messages WHERE conversation_id = ?1 AND seq <= ?2 AND visible_seq IS NOT NULL \
             ORDER BY seq DESC LIMIT 1), 0)) WHERE id = ?1 RETURNING agent_read_seq",
        )
        .bind(id.0)
        .bind(seq)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(v)
    }

    async fn agent_read_seq(&self, id: ConversationId, agent: AgentId) -> Result<Seq> {
        let seq = self.point(
            "SELECT seq FROM agent_reads WHERE agent_id = ? AND conversation_id = ?",
            [agent.0, id.0],
            "read position",
            |r| r.int("seq"),
        );
        Ok(absent_as_none(seq)?.unwrap_or(0))
    }

    async fn mark_read_by_visitor(&self, id: ConversationId, visible_seq: Seq) -> Result<Seq> {
        let v: i64 = sqlx::query_scalar(
            "UPDATE conversations SET visitor_read_seq = MAX(visitor_read_seq, MIN(?, last_visible_seq)) \
             WHERE id = ? RETURNING visitor_read_seq",
        )
        .bind(visible_seq.max(0))
        .bind(id.0)
        .fetch_one(&mut *self.writer().await?)
        .await
        .not_found("conversation")?;
        Ok(v)
    }

    async fn set_tags(&self, id: ConversationId, tags: &[String]) -> Result<Conversation> {
        let mut tags = tags.to_vec();
        tags.sort();
        tags.dedup();
        let mut w = self.writer().await?;
        let mut tx = w.begin().await.map_err(db_err)?;
        let r = sqlx::query("UPDATE conversations SET tags = ? WHERE id = ?")
            .bind(serde_json::to_string(&tags).unwrap_or_else(|_| "[]".into()))
            .bind(id.0)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound("conversation"));
        }
        sqlx::query("DELETE FROM conversation_tags WHERE conversation_id = ?")
            .bind(id.0)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        for t in &tags {
            sqlx::query("INSERT INTO conversation_tags (conversation_id, tag) VALUES (?, ?)")
                .bind(id.0)
                .bind(t)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        let row = Self::conversation_row(&mut tx, id).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(row.conversation)
    }

    async fn create_attachment(&self, n: NewAttachment) -> Result<Attachment> {
        let row = sqlx::query(
            "INSERT INTO attachments (conversation_id, filename, content_type, size, path, created_at) \
             VALUES (?, ?, ?, ?, ?, ?) RETURNING *",
        )
        .bind(n.conversation_id.0)
        .bind(&n.filename)
        .bind(&n.content_type)
        .bind(n.size)
        .bind(&n.path)
        .bind(us(n.now))
        .fetch_one(&mut *self.writer().await?)
        .await
        .map_err(db_err)?;
        attachment(&row)
    }

    async fn attachment(&self, id: AttachmentId) -> Result<Attachment> {
        let row = sqlx::query("SELECT * FROM attachments WHERE id = ?")
            .bind(id.0)
            .fetch_one(&mut *self.reader().await?)
            .await
            .not_found("attachment")?;
        attachment(&row)
    }

    async fn add_notifications(&self, items: Vec<NewNotification>) -> Result<Vec<Notification>> {
        if items.is_empty() {
            return Ok(vec![]);
        }
        let mut w = self.writer().await?;
        let mut tx = w.begin().await.map_err(db_err)?;
        let out = insert_notifications(&mut tx, &items).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(out)
    }

    async fn notifications(&self, agent: AgentId, limit: i64) -> Result<Vec<Notification>> {
        let rows =
            sqlx::query("SELECT * FROM notifications WHERE agent_id = ? ORDER BY id DESC LIMIT ?")
                .bind(agent.0)
                .bind(limit.clamp(1, 500))
                .fetch_all(&mut *self.reader().await?)
                .await
                .map_err(db_err)?;
        rows.iter().map(notification).collect()
    }

    async fn mark_notifications_read(
        &self,
        agent: AgentId,
        ids: &[NotificationId],
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut w = self.writer().await?;
        let mut tx = w.begin().await.map_err(db_err)?;
        for id in ids {
            sqlx::query("UPDATE notifications SET read_at = COALESCE(read_at, ?) WHERE id = ? AND agent_id = ?")
                .bind(us(now))
                .bind(id.0)
                .bind(agent.0)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(())
    }

    async fn schedule_job(
        &self,
        kind: JobKind,
        conversation: ConversationId,
        run_at: DateTime<Utc>,
    ) -> Result<()> {
        let mut conn = self.writer().await?;
        schedule(&mut conn, kind, conversation, run_at).await
    }

    async fn claim_due_jobs(
        &self,
        now: DateTime<Utc>,
        lease: chrono::Duration,
        limit: i64,
    ) -> Result<Vec<Job>> {
        let rows = sqlx::query(
            "UPDATE jobs SET locked_until = ? WHERE id IN (SELECT id FROM jobs WHERE run_at <= ? \
             AND (locked_until IS NULL OR locked_until < ?) ORDER BY run_at LIMIT ?) \
             RETURNING id, kind, conversation_id, run_at",
        )
        .bind(us(now + lease))
        .bind(us(now))
        .bind(us(now))
        .bind(limit)
        .fetch_all(&mut *self.writer().await?)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                Ok(Job {
                    id: r.get("id"),
                    kind: JobKind::parse(r.get("kind")).ok_or_else(|| corrupt("job kind"))?,
                    conversation_id: ConversationId(r.get("conversation_id")),
                    run_at: from_us(r.get("run_at")),
                })
            })
            .collect()
    }

    async fn complete_job(&self, id: i64) -> Result<()> {
        sqlx::query("DELETE FROM jobs WHERE id = ?")
            .bind(id)
            .execute(&mut *self.writer().await?)
            .await
            .map_err(db_err)?;
        Ok(())
    }
}

async fn set_members(conn: &mut SqliteConnection, team: i64, members: &[AgentId]) -> Result<()> {
    sqlx::query("DELETE FROM team_members WHERE team_id = ?")
        .bind(team)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    for m in members {
        sqlx::query("INSERT OR IGNORE INTO team_members (team_id, agent_id) VALUES (?, ?)")
            .bind(team)
            .bind(m.0)
            .execute(&mut *conn)
            .await
            .map_err(|e| match db_err(e) {
                StoreError::Internal(m) if m.contains("FOREIGN KEY") => {
                    StoreError::NotFound("agent")
                }
                e => e,
            })?;
    }
    Ok(())
}

fn summary(r: &impl Cols) -> Result<ConversationSummary> {
    let last_message = match r.opt_text("lm_kind")? {
        Some(kind) => Some(Preview {
            author_kind: parse(&r.text("lm_author_kind")?)?,
            author_name: r.opt_text("lm_author_name")?,
            kind: parse(&kind)?,
            body: r.text("lm_body")?.chars().take(140).collect(),
            created_at: from_us(r.int("lm_created_at")?),
        }),
        None => None,
    };
    let conversation = conversation(r)?.conversation;
    let my_read_seq = r.int("my_read_seq")?;
    Ok(ConversationSummary {
        unread: conversation.last_visitor_seq > my_read_seq,
        my_read_seq,
        conversation,
        contact_name: r.opt_text("contact_name")?,
        contact_email: r.opt_text("contact_email")?,
        last_message,
    })
}

/// A page of a timeline after a position: the agent's view by `seq`, the visitor's by
/// `visible_seq`. Both read the `(conversation_id, seq)` index: every entry has
/// `visible_seq <= seq`, so `seq > ?2` bounds the visitor's range without skipping
/// anything it may see, and `visible_seq` grows with `seq` (migration 0004 says why it
/// has no index of its own). Parameters: conversation, position, limit.
fn timeline_sql(visitor_view: bool) -> &'static str {
    static SQL: LazyLock<[String; 2]> = LazyLock::new(|| {
        ["", "AND m.visible_seq > ?2 "].map(|visible| {
            format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages m \
                 LEFT JOIN attachments a ON a.id = m.attachment_id \
                 WHERE m.conversation_id = ?1 AND m.seq > ?2 {visible}\
                 ORDER BY m.seq LIMIT ?3"
            )
        })
    });
    &SQL[usize::from(visitor_view)]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A freshly migrated database, opened with rusqlite.
    async fn migrated() -> (tempfile::TempDir, rusqlite::Connection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("confab.db");
        SqliteStore::open(&path).await.unwrap().close().await;
        let db = rusqlite::Connection::open(&path).unwrap();
        (dir, db)
    }

    /// The lines of `EXPLAIN QUERY PLAN` for `sql` (its parameters bound to 0, 1, …).
    fn query_plan(db: &rusqlite::Connection, sql: &str) -> Vec<String> {
        let mut st = db.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let args: Vec<i64> = (0..st.parameter_count() as i64).collect();
        st.query_map(rusqlite::params_from_iter(args), |r| r.get(3))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    /// Both views of a timeline find their first entry through the `(conversation_id,
    /// seq)` index and read on in its order: no scan of the table, no sort.
    #[tokio::test]
    async fn timeline_pages_search_the_sequence_index() {
        let (_dir, db) = migrated().await;
        for visitor_view in [false, true] {
            let plan = query_plan(&db, timeline_sql(visitor_view));
            let search =
                "SEARCH m USING INDEX sqlite_autoindex_messages_1 (conversation_id=? AND seq>?)";
            assert!(plan.iter().any(|p| p == search), "{plan:?}");
            assert!(
                !plan
                    .iter()
                    .any(|p| p.starts_with("SCAN") || p.contains("TEMP B-TREE")),
                "{plan:?}"
            );
        }
    }

    /// A post's retry check finds its message through the idempotency index by both its
    /// columns, and re-keying a merged contact's messages goes through the contact's
    /// conversations: neither scans the messages (migrations/0005).
    #[tokio::test]
    async fn idempotency_lookups_and_merges_search_their_indexes() {
        let (_dir, db) = migrated().await;
        let retry = query_plan(&db, writer::RETRY_OF);
        assert_eq!(
            retry,
            ["SEARCH m USING COVERING INDEX messages_idempotency (client_id=? AND author_key=?)"],
        );
        let rekey = query_plan(&db, REKEY_MESSAGES);
        assert!(
            rekey.iter().any(|p| p.starts_with(
                "SEARCH messages USING INDEX sqlite_autoindex_messages_1 (conversation_id=?)"
            )),
            "{rekey:?}"
        );
        assert!(!rekey.iter().any(|p| p.starts_with("SCAN")), "{rekey:?}");
    }

    /// The writer's times count every batch it committed, every op in them and the syncs
    /// that made them durable, and a take starts them again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_writer_times_count_its_batches_ops_and_syncs() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("confab.db"))
            .await
            .unwrap();
        use confab_store::conformance::{contact, site, start, visitor_msg};
        let site = site(&store, "s").await;
        let conv = start(&store, site.id, contact(&store, site.id).await.id).await;
        let _ = store.take_writer_times();
        let posts = futures::future::join_all((0..20).map(|i| {
            let body = format!("hello {i}");
            store.post_message(visitor_msg(&conv, &body, &body))
        }))
        .await;
        assert!(posts.iter().all(Result::is_ok));
        let t = store.take_writer_times();
        let batches = t.ops.len();
        assert!((1..=20).contains(&batches), "{batches} batches");
        // Ops per batch add up to the 20 posts.
        assert_eq!(t.ops_total(), 20);
        for h in [&t.wait, &t.apply, &t.commit] {
            assert_eq!(h.len(), batches);
        }
        // Every post was answered after a sync; one sync may cover several batches.
        assert!(
            (1..=batches).contains(&(t.sync.len() as u64)),
            "{} syncs",
            t.sync.len()
        );
        assert!(t.commit.max() > 0 && t.sync.max() > 0);
        let again = store.take_writer_times();
        assert_eq!((again.ops.len(), again.sync.len()), (0, 0));
        store.close().await;
    }

    /// I9, with the index in its own file (`search.rs`): a search finds what was posted
    /// just before it, and after a conversation is deleted its messages' entries are gone
    /// from the index file too (not just hidden by the join), and so are the ids that
    /// said which to remove.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn deleted_messages_leave_the_search_index() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("confab.db");
        let store = SqliteStore::open(&path).await.unwrap();
        use confab_store::conformance::{agent, contact, site, start, visitor_msg};
        let site = site(&store, "s").await;
        let a = agent(&store, "a@example.com", Role::Owner, Access::Full, true).await;
        let kept = start(&store, site.id, contact(&store, site.id).await.id).await;
        let gone = start(&store, site.id, contact(&store, site.id).await.id).await;
        let mut ids = Vec::new();
        for (conv, body) in [
            (&kept, "parcel kept"),
            (&gone, "parcel gone"),
            (&gone, "parcel also gone"),
        ] {
            let posted = store
                .post_message(visitor_msg(conv, body, body))
                .await
                .unwrap();
            ids.push(posted.message.id.0);
        }
        let mut q = ConversationQuery::new(a.id);
        q.text = Some("parcel".into());
        assert_eq!(store.list_conversations(&q).await.unwrap().len(), 2);
        let index = rusqlite::Connection::open(search::path_of(&path)).unwrap();
        let entry = |id: i64| -> bool {
            index
                .query_row(
                    "SELECT count(*) FROM messages_fts_docsize WHERE id = ?1",
                    [id],
                    |r| r.get::<_, i64>(0),
                )
                .unwrap()
                == 1
        };
        assert!(
            ids.iter().all(|id| entry(*id)),
            "indexed before the search ran"
        );

        store.delete_conversation(gone.id).await.unwrap();
        let found = store.list_conversations(&q).await.unwrap();
        assert_eq!(
            found.iter().map(|c| c.conversation.id).collect::<Vec<_>>(),
            [kept.id]
        );
        assert!(entry(ids[0]));
        assert!(
            !entry(ids[1]) && !entry(ids[2]),
            "entries of deleted messages left"
        );
        let db = rusqlite::Connection::open(&path).unwrap();
        let left: i64 = db
            .query_row("SELECT count(*) FROM search_erasures", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 0);
        store.close().await;
        index
            .execute(
                "INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')",
                [],
            )
            .unwrap();
    }
}
