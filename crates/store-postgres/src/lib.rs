//! The PostgreSQL backend of [`confab_store::Store`], for running several Confab nodes on
//! one database.
//!
//! It keeps the SQLite backend's schema and semantics (same columns, microsecond BIGINT
//! times, JSON as text, the same rules called inside the same transactions) and passes the
//! same conformance cases. What differs is concurrency: SQLite has one writer, so every
//! read-modify-write there is serial by construction; here many connections on many nodes
//! write at once, so each one says how it stays correct:
//!
//! - **A conversation's changes** (posts, assignment, status, rating, offline, tags, read
//!   receipts, delete) lock its row with `SELECT ... FOR UPDATE` first and decide the rule
//!   on what they read under the lock. That also makes `seq`/`visible_seq` gap-free and
//!   unique: they are taken from the locked row and saved with it in the same transaction,
//!   so an aborted transaction gives its numbers back (`UNIQUE (conversation_id, seq)`
//!   guards it anyway).
//! - **Starting a conversation** inserts with `ON CONFLICT DO NOTHING` against the partial
//!   unique index of live conversations; the loser waits for the winner's commit and then
//!   reads its conversation.
//! - **Idempotent posts** are checked again after the conversation lock is taken, and the
//!   unique `(author_key, client_id)` index catches what is left (a retry aimed at another
//!   conversation): the post is retried once and then finds the stored message.
//! - **Jobs** are claimed with `FOR UPDATE SKIP LOCKED` and a lease, so a due job goes to
//!   exactly one node and comes back when its node dies.
//! - **Read receipts** only grow (`GREATEST`).
//!
//! A message post is one transaction of its own (no group commit: PostgreSQL commits
//! concurrent transactions together itself).
//!
//! Connection trouble (refused, reset, pool timeout, the server shutting down, deadlock or
//! serialization failure) is [`StoreError::Unavailable`], which the server answers with 503.
//! The pool tests each connection before handing it out and opens new ones as needed, so
//! after a PostgreSQL restart the next calls succeed without a Confab restart.

mod rows;

use std::str::FromStr;
use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use confab_domain::rules::{self, AssigneeFilter, Refusal, VisitorMessageEffect};
use confab_domain::*;
use confab_store::*;
use rows::*;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions, PgRow};
use sqlx::{PgPool, Postgres, QueryBuilder};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// How often a transaction that lost a race (see the module documentation) is tried again.
const RACE_ATTEMPTS: usize = 4;

/// How the pool behaves. The defaults suit one node of a small cluster.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// Connections this node keeps open at most.
    pub max_connections: u32,
    /// Connections kept open while idle.
    pub min_connections: u32,
    /// How long a call waits for a connection (also while PostgreSQL is down) before it is
    /// `Unavailable`.
    pub acquire_timeout: Duration,
    /// PostgreSQL's `statement_timeout`: a statement (or a lock wait) running longer is
    /// cancelled and the call is `Unavailable`.
    pub statement_timeout: Duration,
    /// Idle connections above `min_connections` are closed after this long.
    pub idle_timeout: Duration,
    /// Connections are replaced after this long (spreads load after a failover).
    pub max_lifetime: Duration,
}

impl Default for PgOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            min_connections: 1,
            acquire_timeout: Duration::from_secs(10),
            statement_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(600),
            max_lifetime: Duration::from_secs(1800),
        }
    }
}

/// Confab's store on a PostgreSQL database.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
}

/// SQLSTATE classes and codes that mean "the database is not there right now", not "your
/// request is wrong": connection exceptions (08), insufficient resources (53), operator
/// intervention such as a shutdown or a cancelled statement (57), and transaction
/// rollbacks from deadlocks or serialization failures (40). Retrying later may succeed.
fn transient(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("53")
        || code.starts_with("57")
        || code.starts_with("40")
        || code == "55P03" // lock_not_available
}

fn db_err(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::RowNotFound => StoreError::NotFound("row"),
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e.to_string()),
        sqlx::Error::Database(ref d) if d.is_unique_violation() => StoreError::Conflict("value"),
        sqlx::Error::Database(ref d) if d.code().is_some_and(|c| transient(&c)) => {
            StoreError::Unavailable(e.to_string())
        }
        // The server went away in the middle of a message.
        sqlx::Error::Protocol(_) => StoreError::Unavailable(e.to_string()),
        other => StoreError::Internal(other.to_string()),
    }
}

/// The constraint a database error names, if any.
fn constraint(e: &sqlx::Error) -> Option<&str> {
    match e {
        sqlx::Error::Database(d) => d.constraint(),
        _ => None,
    }
}

fn is_fk_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_foreign_key_violation())
}

trait Ctx<T> {
    fn not_found(self, what: &'static str) -> Result<T>;
    fn conflict(self, what: &'static str) -> Result<T>;
    /// A foreign key pointing nowhere is `NotFound(what)`.
    fn missing_ref(self, what: &'static str) -> Result<T>;
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
    fn missing_ref(self, what: &'static str) -> Result<T> {
        self.map_err(|e| {
            if is_fk_violation(&e) {
                StoreError::NotFound(what)
            } else {
                db_err(e)
            }
        })
    }
}

/// The error `append` reports when the `(author_key, client_id)` index refused a message:
/// a concurrent post with the same client id won. [`Store::post_message`] retries.
const LOST_IDEMPOTENCY_RACE: StoreError = StoreError::Conflict("message client id");

fn lost_idempotency_race(e: &StoreError) -> bool {
    matches!(e, StoreError::Conflict("message client id"))
}

impl PgStore {
    /// Connects to `url` with the default [`PgOptions`] and runs the migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, PgOptions::default()).await
    }

    /// Connects to `url` and runs the migrations (safe from several nodes at once: sqlx
    /// holds an advisory lock while migrating).
    pub async fn connect_with(url: &str, o: PgOptions) -> Result<Self> {
        let connect = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Internal(format!("bad PostgreSQL URL: {e}")))?
            .application_name("confab")
            .options([(
                "statement_timeout",
                format!("{}ms", o.statement_timeout.as_millis()),
            )]);
        let pool = PgPoolOptions::new()
            .max_connections(o.max_connections.max(1))
            .min_connections(o.min_connections.min(o.max_connections))
            .acquire_timeout(o.acquire_timeout)
            .idle_timeout(o.idle_timeout)
            .max_lifetime(o.max_lifetime)
            // A connection that died with the server is found out here and replaced,
            // instead of failing the caller's first statement.
            .test_before_acquire(true)
            .connect_with(connect)
            .await
            .map_err(db_err)?;
        MIGRATOR.run(&pool).await.map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(e) => db_err(e),
            e => StoreError::Internal(format!("migration failed: {e}")),
        })?;
        Ok(Self { pool })
    }

    /// Runs the migrations only (`confab migrate`).
    pub async fn migrate(url: &str) -> Result<()> {
        let store = Self::connect(url).await?;
        store.close().await;
        Ok(())
    }

    /// Closes the pool, waiting for connections in use to come back.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn begin(&self) -> Result<sqlx::Transaction<'static, Postgres>> {
        self.pool.begin().await.map_err(db_err)
    }

    /// One attempt at a post, in its own transaction.
    async fn try_post(&self, new: &NewMessage) -> Result<Posted> {
        let mut tx = self.begin().await?;
        let posted = post_in_tx(&mut tx, new).await?;
        if posted.created {
            tx.commit().await.map_err(db_err)?;
        }
        Ok(posted)
    }

    /// One attempt at starting a conversation: `None` when a concurrent start won the
    /// insert but its conversation was gone again by the time it was read.
    async fn try_start(&self, n: &NewConversation) -> Result<Option<Started>> {
        let mut tx = self.begin().await?;
        if let Some(c) = live_conversation(&mut tx, n.contact_id, n.site_id, n.channel).await? {
            return Ok(Some(Started {
                conversation: c,
                created: false,
                messages: vec![],
                notifications: vec![],
            }));
        }
        let Some((conversation, messages)) = create_conversation(
            &mut tx,
            n.site_id,
            n.contact_id,
            n.channel,
            n.start_url.as_deref(),
            n.handoff.as_ref(),
            n.now,
            true,
        )
        .await?
        else {
            // A concurrent start won the insert: ON CONFLICT waited for its commit, and
            // under READ COMMITTED this next statement sees its conversation.
            return Ok(
                live_conversation(&mut tx, n.contact_id, n.site_id, n.channel)
                    .await?
                    .map(|c| Started {
                        conversation: c,
                        created: false,
                        messages: vec![],
                        notifications: vec![],
                    }),
            );
        };
        let mut notifications = Vec::new();
        for item in NewNotification::for_new_conversation(
            &conversation,
            &n.notify,
            &n.notify_preview,
            n.now,
        ) {
            notifications.push(insert_notification(&mut tx, &item).await?);
        }
        tx.commit().await.map_err(db_err)?;
        Ok(Some(Started {
            conversation,
            created: true,
            messages,
            notifications,
        }))
    }
}

/// The conversation, read for a change: its row stays locked until the transaction ends.
async fn lock_conversation(conn: &mut PgConnection, id: ConversationId) -> Result<Conversation> {
    let row = sqlx::query(&format!(
        "SELECT {CONVERSATION_COLUMNS} FROM conversations c WHERE c.id = $1 FOR UPDATE"
    ))
    .bind(id.0)
    .fetch_one(&mut *conn)
    .await
    .not_found("conversation")?;
    conversation(&row)
}

async fn read_conversation(conn: &mut PgConnection, id: ConversationId) -> Result<Conversation> {
    let row = sqlx::query(&format!(
        "SELECT {CONVERSATION_COLUMNS} FROM conversations c WHERE c.id = $1"
    ))
    .bind(id.0)
    .fetch_one(&mut *conn)
    .await
    .not_found("conversation")?;
    conversation(&row)
}

async fn live_conversation(
    conn: &mut PgConnection,
    contact: ContactId,
    site: SiteId,
    channel: Channel,
) -> Result<Option<Conversation>> {
    let row = sqlx::query(&format!(
        "SELECT {CONVERSATION_COLUMNS} FROM conversations c \
         WHERE c.contact_id = $1 AND c.site_id = $2 AND c.channel = $3 AND c.status <> 'closed'"
    ))
    .bind(contact.0)
    .bind(site.0)
    .bind(channel.as_str())
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_err)?;
    row.as_ref().map(conversation).transpose()
}

/// SQLite reads a negative LIMIT as "no limit"; PostgreSQL refuses it, and reads NULL so.
fn no_limit_if_negative(limit: i64) -> Option<i64> {
    (limit >= 0).then_some(limit)
}

fn to_json<T: serde::Serialize + ?Sized>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Internal(e.to_string()))
}

/// Appends one entry to a conversation's timeline, advancing its sequence numbers in `c`
/// (locked by the caller, who saves it once at the end of the transaction).
async fn append(conn: &mut PgConnection, c: &mut Conversation, e: Entry<'_>) -> Result<Message> {
    let visible_seq = e.advance(c);
    let event_json = e.event_json()?;
    let mentions_json = e.mentions_json()?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO messages (conversation_id, seq, visible_seq, kind, author_kind, agent_id, author_name, \
         author_key, body, event, attachment_id, client_id, mentions, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id",
    )
    .bind(c.id.0)
    .bind(c.last_seq)
    .bind(visible_seq)
    .bind(e.kind.as_str())
    .bind(e.author_kind.as_str())
    .bind(e.agent_id.map(|a| a.0))
    .bind(&e.author_name)
    .bind(&e.author_key)
    .bind(e.body)
    .bind(&event_json)
    .bind(e.attachment_id.map(|a| a.0))
    .bind(e.client_id)
    .bind(&mentions_json)
    .bind(us(e.now))
    .fetch_one(&mut *conn)
    .await
    .map_err(|err| {
        if constraint(&err) == Some("messages_idempotency") {
            LOST_IDEMPOTENCY_RACE
        } else if is_fk_violation(&err) && constraint(&err) == Some("messages_attachment_id_fkey") {
            StoreError::NotFound("attachment")
        } else {
            db_err(err)
        }
    })?;
    let attachment = match e.attachment_id {
        Some(aid) => Some(attachment(
            &sqlx::query(&format!(
                "SELECT {ATTACHMENT_COLUMNS} FROM attachments WHERE id = $1"
            ))
            .bind(aid.0)
            .fetch_one(&mut *conn)
            .await
            .not_found("attachment")?,
        )?),
        None => None,
    };
    Ok(e.into_message(MessageId(id), c, visible_seq, attachment))
}

async fn save(conn: &mut PgConnection, c: &Conversation) -> Result<()> {
    sqlx::query(
        "UPDATE conversations SET status = $1, assignee_id = $2, team_id = $3, snoozed_until = $4, \
         closed_at = $5, last_seq = $6, last_visible_seq = $7, last_visitor_seq = $8, handoff_at = $9, \
         agent_took_part = $10, offline = $11, rating = $12, rating_comment = $13, visitor_read_seq = $14, \
         agent_read_seq = $15, last_message_at = $16 WHERE id = $17",
    )
    .bind(c.status.as_str())
    .bind(c.assignee_id.map(|a| a.0))
    .bind(c.team_id.map(|t| t.0))
    .bind(c.snoozed_until.map(us))
    .bind(c.closed_at.map(us))
    .bind(c.last_seq)
    .bind(c.last_visible_seq)
    .bind(c.last_visitor_seq)
    .bind(c.handoff_at.map(us))
    .bind(c.agent_took_part)
    .bind(c.offline)
    .bind(c.rating.map(Rating::as_str))
    .bind(&c.rating_comment)
    .bind(c.visitor_read_seq)
    .bind(c.agent_read_seq)
    .bind(us(c.last_message_at))
    .bind(c.id.0)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

async fn schedule(
    conn: &mut PgConnection,
    kind: JobKind,
    conv: ConversationId,
    at: DateTime<Utc>,
) -> Result<()> {
    sqlx::query("INSERT INTO jobs (kind, conversation_id, run_at) VALUES ($1, $2, $3)")
        .bind(kind.as_str())
        .bind(conv.0)
        .bind(us(at))
        .execute(&mut *conn)
        .await
        .missing_ref("conversation")?;
    Ok(())
}

/// Inserts a conversation and its handoff entry (W4). With `if_none_live`, a live
/// conversation of the same contact, site and channel (committed, or committing
/// concurrently) makes this return `None` instead of failing with a conflict.
#[allow(clippy::too_many_arguments)]
async fn create_conversation(
    conn: &mut PgConnection,
    site: SiteId,
    contact: ContactId,
    channel: Channel,
    start_url: Option<&str>,
    handoff: Option<&rules::Handoff>,
    now: DateTime<Utc>,
    if_none_live: bool,
) -> Result<Option<(Conversation, Vec<Message>)>> {
    let on_conflict = if if_none_live {
        " ON CONFLICT (contact_id, site_id, channel) WHERE status <> 'closed' DO NOTHING"
    } else {
        ""
    };
    let id: Option<i64> = sqlx::query_scalar(&format!(
        "INSERT INTO conversations (site_id, contact_id, channel, status, handoff_at, offline, start_url, \
         created_at, last_message_at) VALUES ($1, $2, $3, 'open', $4, $5, $6, $7, $8){on_conflict} RETURNING id"
    ))
    .bind(site.0)
    .bind(contact.0)
    .bind(channel.as_str())
    .bind(handoff.map(|_| us(now)))
    .bind(handoff.is_some_and(|h| h.offline))
    .bind(start_url)
    .bind(us(now))
    .bind(us(now))
    .fetch_optional(&mut *conn)
    .await
    .map_err(|e| match constraint(&e) {
        Some("conversations_site_id_fkey") => StoreError::NotFound("site"),
        Some("conversations_contact_id_fkey") => StoreError::NotFound("contact"),
        _ => match db_err(e) {
            StoreError::Conflict(_) => StoreError::Conflict("live conversation"),
            e => e,
        },
    })?;
    let Some(id) = id else {
        return Ok(None);
    };
    let mut c = read_conversation(conn, ConversationId(id)).await?;
    let mut written = Vec::new();
    if let Some(h) = handoff {
        written.push(append(conn, &mut c, Entry::event(&h.event, None, now)).await?);
        if let Some(at) = h.wait_until {
            schedule(conn, JobKind::WaitExpiry, c.id, at).await?;
        }
        save(conn, &c).await?;
    }
    Ok(Some((c, written)))
}

fn author_key(author: &Author) -> Option<String> {
    match author {
        Author::Visitor { contact_id, .. } => Some(format!("v{}", contact_id.0)),
        Author::Agent(a) => Some(format!("a{}", a.id.0)),
        Author::Bot { .. } | Author::System => None,
    }
}

async fn fetch_message(conn: &mut PgConnection, id: i64) -> Result<Message> {
    let row = sqlx::query(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages m LEFT JOIN attachments a ON a.id = m.attachment_id WHERE m.id = $1"
    ))
    .bind(id)
    .fetch_one(&mut *conn)
    .await
    .not_found("message")?;
    message(&row)
}

/// A retry of an already-stored post: the first message when the content matches,
/// `IdempotencyConflict` when it does not, `None` when the client id is new.
async fn stored_post(conn: &mut PgConnection, new: &NewMessage) -> Result<Option<Posted>> {
    let (Some(key), Some(cid)) = (author_key(&new.author), &new.client_id) else {
        return Ok(None);
    };
    let existing: Option<(i64, String, String, Option<i64>)> = sqlx::query_as(
        "SELECT id, body, kind, attachment_id FROM messages WHERE author_key = $1 AND client_id = $2",
    )
    .bind(&key)
    .bind(cid)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_err)?;
    let Some((id, body, kind, attachment)) = existing else {
        return Ok(None);
    };
    // Who may see the conversation comes first, as for a new post.
    let before = read_conversation(conn, new.conversation_id).await?;
    new.author.check_sees(&before)?;
    if body != new.body.as_str()
        || kind != new.kind.as_str()
        || attachment != new.attachment_id.map(|a| a.0)
    {
        return Err(StoreError::IdempotencyConflict);
    }
    let message = fetch_message(conn, id).await?;
    // Under the `final` policy the first attempt may have started a new conversation.
    let conversation = if message.conversation_id == before.id {
        before.clone()
    } else {
        read_conversation(conn, message.conversation_id).await?
    };
    let contact = contact_card(conn, before.contact_id).await?;
    Ok(Some(Posted {
        message,
        created: false,
        written: vec![],
        conversation,
        started_new: false,
        assigned: false,
        notifications: vec![],
        before,
        contact,
    }))
}

/// A contact's name and email for list rows.
async fn contact_card(conn: &mut PgConnection, id: ContactId) -> Result<ContactCard> {
    let (name, email): (Option<String>, Option<String>) =
        sqlx::query_as("SELECT name, email FROM contacts WHERE id = $1")
            .bind(id.0)
            .fetch_one(&mut *conn)
            .await
            .not_found("contact")?;
    Ok(ContactCard { name, email })
}

/// One post inside its transaction (see [`Store::post_message`]). The caller commits only
/// when `created`.
async fn post_in_tx(conn: &mut PgConnection, new: &NewMessage) -> Result<Posted> {
    // The common retry needs no lock.
    if let Some(p) = stored_post(conn, new).await? {
        return Ok(p);
    }
    let mut conv = lock_conversation(conn, new.conversation_id).await?;
    // A concurrent post with the same client id into this conversation held the lock
    // before us: under READ COMMITTED this statement sees its commit.
    if let Some(p) = stored_post(conn, new).await? {
        return Ok(p);
    }
    new.author.check_sees(&conv)?;
    let before = conv.clone();
    let contact = contact_card(conn, conv.contact_id).await?;
    let key = author_key(&new.author);
    let mut written = Vec::new();
    let mut started_new = false;
    let mut assigned = false;
    let (author_kind, agent_id, author_name) = match &new.author {
        Author::Visitor { .. } => {
            if new.kind != MessageKind::Text {
                return Err(Refusal::Forbidden.into());
            }
            match rules::visitor_message_effect(&conv, new.reopen_policy) {
                VisitorMessageEffect::Post => {}
                VisitorMessageEffect::Wake => {
                    conv.status = Status::Open;
                    conv.snoozed_until = None;
                    written.push(
                        append(conn, &mut conv, Entry::event(&Event::Woke, None, new.now)).await?,
                    );
                }
                VisitorMessageEffect::Reopen => {
                    conv.status = Status::Open;
                    conv.closed_at = None;
                    written.push(
                        append(
                            conn,
                            &mut conv,
                            Entry::event(&Event::Reopened { by: None }, None, new.now),
                        )
                        .await?,
                    );
                }
                VisitorMessageEffect::StartNew => {
                    let (fresh, events) = create_conversation(
                        conn,
                        conv.site_id,
                        conv.contact_id,
                        conv.channel,
                        conv.start_url.as_deref(),
                        new.handoff_if_new.as_ref(),
                        new.now,
                        false,
                    )
                    .await?
                    .ok_or(StoreError::Conflict("live conversation"))?;
                    conv = fresh;
                    written.extend(events);
                    started_new = true;
                }
            }
            (AuthorKind::Visitor, None, contact.name.clone())
        }
        Author::Agent(agent) => {
            rules::check_agent_post(agent, &conv, new.kind)?;
            if let Some(to) = rules::reply_assigns(agent, &conv, new.kind) {
                conv.assignee_id = Some(to);
                let ev = rules::assignment_event(Some(agent), Some(agent));
                written
                    .push(append(conn, &mut conv, Entry::event(&ev, Some(agent), new.now)).await?);
                assigned = true;
            }
            if new.kind == MessageKind::Text {
                conv.agent_took_part = true;
            }
            (
                AuthorKind::Agent,
                Some(agent.id),
                Some(agent.display_name.clone()),
            )
        }
        Author::Bot { name } => (AuthorKind::Bot, None, Some(name.clone())),
        Author::System => (AuthorKind::System, None, None),
    };
    if let Some(aid) = new.attachment_id {
        // FOR SHARE: the attachment cannot be deleted under us before we commit.
        let owner: Option<i64> =
            sqlx::query_scalar("SELECT conversation_id FROM attachments WHERE id = $1 FOR SHARE")
                .bind(aid.0)
                .fetch_optional(&mut *conn)
                .await
                .map_err(db_err)?;
        if owner != Some(new.conversation_id.0) {
            return Err(StoreError::NotFound("attachment"));
        }
    }
    let message = append(
        conn,
        &mut conv,
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
    )
    .await?;
    save(conn, &conv).await?;
    let mut notifications = Vec::new();
    for n in NewNotification::for_message(&conv, &message, started_new, &new.notify, new.now) {
        notifications.push(insert_notification(conn, &n).await?);
    }
    written.push(message.clone());
    Ok(Posted {
        message,
        created: true,
        written,
        conversation: conv,
        started_new,
        assigned,
        notifications,
        before,
        contact,
    })
}

async fn insert_notification(conn: &mut PgConnection, n: &NewNotification) -> Result<Notification> {
    let row = sqlx::query(&format!(
        "INSERT INTO notifications (agent_id, kind, conversation_id, message_id, preview, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {NOTIFICATION_COLUMNS}"
    ))
    .bind(n.agent_id.0)
    .bind(n.kind.as_str())
    .bind(n.conversation_id.0)
    .bind(n.message_id.map(|m| m.0))
    .bind(&n.preview)
    .bind(us(n.now))
    .fetch_one(&mut *conn)
    .await
    .map_err(db_err)?;
    notification(&row)
}

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn count_agents(&self) -> Result<i64> {
        sqlx::query_scalar("SELECT COUNT(*) FROM agents")
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)
    }

    async fn create_agent(&self, n: NewAgent) -> Result<Agent> {
        let row = sqlx::query(&format!(
            "INSERT INTO agents (email, name, display_name, password_hash, role, access, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {AGENT_COLUMNS}"
        ))
        .bind(&n.email)
        .bind(&n.name)
        .bind(&n.display_name)
        .bind(&n.password_hash)
        .bind(n.role.as_str())
        .bind(n.access.as_str())
        .bind(us(n.now))
        .fetch_one(&self.pool)
        .await
        .conflict("agent")?;
        agent(&row)
    }

    async fn agent(&self, id: AgentId) -> Result<Agent> {
        let row = sqlx::query(&format!("SELECT {AGENT_COLUMNS} FROM agents WHERE id = $1"))
            .bind(id.0)
            .fetch_one(&self.pool)
            .await
            .not_found("agent")?;
        agent(&row)
    }

    async fn agent_credentials(&self, email: &str) -> Result<Option<(Agent, String)>> {
        let row = sqlx::query(&format!(
            "SELECT {AGENT_COLUMNS}, password_hash FROM agents WHERE email = $1"
        ))
        .bind(email)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.map(|r| Ok((agent(&r)?, col(&r, "password_hash")?)))
            .transpose()
    }

    async fn list_agents(&self) -> Result<Vec<Agent>> {
        let rows = sqlx::query(&format!("SELECT {AGENT_COLUMNS} FROM agents ORDER BY id"))
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(agent).collect()
    }

    async fn update_agent(&self, id: AgentId, p: AgentPatch) -> Result<Agent> {
        let row = sqlx::query(&format!(
            "UPDATE agents SET name = COALESCE($1, name), display_name = COALESCE($2, display_name), \
             avatar_url = CASE WHEN $3 THEN $4 ELSE avatar_url END, role = COALESCE($5, role), \
             access = COALESCE($6, access), available = COALESCE($7, available), \
             notify_desktop = COALESCE($8, notify_desktop), notify_sound = COALESCE($9, notify_sound), \
             notify_all_messages = COALESCE($10, notify_all_messages), deactivated = COALESCE($11, deactivated) \
             WHERE id = $12 RETURNING {AGENT_COLUMNS}"
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
        .fetch_one(&self.pool)
        .await
        .not_found("agent")?;
        agent(&row)
    }

    async fn set_password(&self, id: AgentId, hash: &str) -> Result<()> {
        let r = sqlx::query("UPDATE agents SET password_hash = $1 WHERE id = $2")
            .bind(hash)
            .bind(id.0)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound("agent"));
        }
        Ok(())
    }

    async fn create_session(&self, s: NewSession) -> Result<()> {
        sqlx::query(
            "INSERT INTO sessions (token_hash, agent_id, csrf_token, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&s.token_hash)
        .bind(s.agent_id.0)
        .bind(&s.csrf_token)
        .bind(us(s.created_at))
        .bind(us(s.expires_at))
        .execute(&self.pool)
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
                 WHERE token_hash = $1 AND expires_at > $2) s ON s.agent_id = agents.id"
            )
        });
        let row = sqlx::query(&SQL)
            .bind(token_hash)
            .bind(us(now))
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.map(|r| {
            Ok(AgentSession {
                agent: agent(&r)?,
                csrf_token: col(&r, "csrf_token")?,
                expires_at: time(&r, "expires_at")?,
            })
        })
        .transpose()
    }

    async fn delete_session(&self, token_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn delete_agent_sessions(&self, agent: AgentId) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE agent_id = $1")
            .bind(agent.0)
            .execute(&self.pool)
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
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO api_tokens (agent_id, name, token_hash, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(agent.0)
        .bind(name)
        .bind(token_hash)
        .bind(us(now))
        .fetch_one(&self.pool)
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
            sqlx::query_scalar("SELECT agent_id FROM api_tokens WHERE token_hash = $1")
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?;
        Ok(id.map(AgentId))
    }

    async fn create_team(&self, name: &str, members: &[AgentId]) -> Result<Team> {
        let mut tx = self.begin().await?;
        let id: i64 = sqlx::query_scalar("INSERT INTO teams (name) VALUES ($1) RETURNING id")
            .bind(name)
            .fetch_one(&mut *tx)
            .await
            .conflict("team")?;
        set_members(&mut tx, id, members).await?;
        tx.commit().await.map_err(db_err)?;
        self.team(TeamId(id)).await
    }

    async fn list_teams(&self) -> Result<Vec<Team>> {
        let rows: Vec<(i64, String, Vec<i64>)> = sqlx::query_as(
            "SELECT t.id, t.name, COALESCE(ARRAY_AGG(m.agent_id ORDER BY m.agent_id) \
             FILTER (WHERE m.agent_id IS NOT NULL), '{}') \
             FROM teams t LEFT JOIN team_members m ON m.team_id = t.id GROUP BY t.id, t.name ORDER BY t.name",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(rows
            .into_iter()
            .map(|(id, name, members)| Team {
                id: TeamId(id),
                name,
                members: members.into_iter().map(AgentId).collect(),
            })
            .collect())
    }

    async fn team(&self, id: TeamId) -> Result<Team> {
        let (name, members): (String, Vec<i64>) = sqlx::query_as(
            "SELECT t.name, COALESCE(ARRAY_AGG(m.agent_id ORDER BY m.agent_id) \
             FILTER (WHERE m.agent_id IS NOT NULL), '{}') \
             FROM teams t LEFT JOIN team_members m ON m.team_id = t.id WHERE t.id = $1 GROUP BY t.name",
        )
        .bind(id.0)
        .fetch_one(&self.pool)
        .await
        .not_found("team")?;
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
        let mut tx = self.begin().await?;
        let r = sqlx::query("UPDATE teams SET name = COALESCE($1, name) WHERE id = $2")
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
        let r = sqlx::query("DELETE FROM teams WHERE id = $1")
            .bind(id.0)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound("team"));
        }
        Ok(())
    }

    async fn create_site(&self, n: NewSite) -> Result<Site> {
        let row = sqlx::query(&format!(
            "INSERT INTO sites (name, public_key, identity_secret, settings, created_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING {SITE_COLUMNS}"
        ))
        .bind(&n.name)
        .bind(&n.public_key)
        .bind(&n.identity_secret)
        .bind(to_json(&n.settings)?)
        .bind(us(n.now))
        .fetch_one(&self.pool)
        .await
        .conflict("site")?;
        site(&row)
    }

    async fn site(&self, id: SiteId) -> Result<Site> {
        let row = sqlx::query(&format!("SELECT {SITE_COLUMNS} FROM sites WHERE id = $1"))
            .bind(id.0)
            .fetch_one(&self.pool)
            .await
            .not_found("site")?;
        site(&row)
    }

    async fn site_by_key(&self, key: &str) -> Result<Option<Site>> {
        let row = sqlx::query(&format!(
            "SELECT {SITE_COLUMNS} FROM sites WHERE public_key = $1"
        ))
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.as_ref().map(site).transpose()
    }

    async fn list_sites(&self) -> Result<Vec<Site>> {
        let rows = sqlx::query(&format!("SELECT {SITE_COLUMNS} FROM sites ORDER BY id"))
            .fetch_all(&self.pool)
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
        let settings = settings.map(to_json).transpose()?;
        let row = sqlx::query(&format!(
            "UPDATE sites SET name = COALESCE($1, name), settings = COALESCE($2, settings) \
             WHERE id = $3 RETURNING {SITE_COLUMNS}"
        ))
        .bind(name)
        .bind(settings)
        .bind(id.0)
        .fetch_one(&self.pool)
        .await
        .not_found("site")?;
        site(&row)
    }

    async fn create_contact(&self, n: NewContact) -> Result<Contact> {
        let site_id = n
            .site_id
            .ok_or(StoreError::Internal("contact without site".into()))?;
        let row = sqlx::query(&format!(
            "INSERT INTO contacts (site_id, name, email, external_id, verified, user_agent, ip, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {CONTACT_COLUMNS}"
        ))
        .bind(site_id.0)
        .bind(&n.name)
        .bind(&n.email)
        .bind(&n.external_id)
        .bind(n.verified)
        .bind(&n.user_agent)
        .bind(&n.ip)
        .bind(us(n.now.unwrap_or_else(Utc::now)))
        .fetch_one(&self.pool)
        .await
        .missing_ref("site")
        .map_err(|e| match e {
            StoreError::Conflict(_) => StoreError::Conflict("contact"),
            e => e,
        })?;
        contact(&row)
    }

    async fn contact(&self, id: ContactId) -> Result<Contact> {
        let row = sqlx::query(&format!(
            "SELECT {CONTACT_COLUMNS} FROM contacts WHERE id = $1"
        ))
        .bind(id.0)
        .fetch_one(&self.pool)
        .await
        .not_found("contact")?;
        contact(&row)
    }

    async fn update_contact(&self, id: ContactId, p: ContactPatch) -> Result<Contact> {
        let tags = p.tags.as_ref().map(to_json).transpose()?;
        let row = sqlx::query(&format!(
            "UPDATE contacts SET \
             name = CASE WHEN $1 THEN $2 ELSE name END, \
             email = CASE WHEN $3 THEN $4 ELSE email END, \
             phone = CASE WHEN $5 THEN $6 ELSE phone END, \
             external_id = CASE WHEN $7 THEN $8 ELSE external_id END, \
             verified = COALESCE($9, verified), \
             consent_text = COALESCE($10, consent_text), consent_at = COALESCE($11, consent_at), \
             tags = COALESCE($12, tags) \
             WHERE id = $13 RETURNING {CONTACT_COLUMNS}"
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
        .fetch_one(&self.pool)
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
            "SELECT {CONTACT_COLUMNS} FROM contacts WHERE site_id = $1 AND external_id = $2"
        ))
        .bind(site.0)
        .bind(external_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.as_ref().map(contact).transpose()
    }

    async fn contact_by_email(&self, site: SiteId, email: &str) -> Result<Option<Contact>> {
        let row = sqlx::query(&format!(
            "SELECT {CONTACT_COLUMNS} FROM contacts WHERE site_id = $1 AND email = $2 \
             ORDER BY verified DESC, id LIMIT 1"
        ))
        .bind(site.0)
        .bind(email)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.as_ref().map(contact).transpose()
    }

    async fn merge_contacts(&self, from: ContactId, into: ContactId) -> Result<Contact> {
        if from == into {
            return self.contact(into).await;
        }
        let mut tx = self.begin().await?;
        // Locks in the order posts take them (conversation, then contact), so a merge and
        // a post cannot deadlock: first `from`'s conversations, then both contacts (in id
        // order), so that no conversation of `from` can be started while its rows move and
        // then be lost with the contact.
        sqlx::query("SELECT id FROM conversations WHERE contact_id = $1 ORDER BY id FOR UPDATE")
            .bind(from.0)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let locked: Vec<i64> =
            sqlx::query_scalar("SELECT id FROM contacts WHERE id = ANY($1) ORDER BY id FOR UPDATE")
                .bind(vec![from.0, into.0])
                .fetch_all(&mut *tx)
                .await
                .map_err(db_err)?;
        if !locked.contains(&into.0) {
            return Err(StoreError::NotFound("contact"));
        }
        for table in [
            "conversations",
            "visitor_sessions",
            "page_views",
            "contact_notes",
        ] {
            // Table names come from the fixed list above, never from input.
            sqlx::query(&format!(
                "UPDATE {table} SET contact_id = $1 WHERE contact_id = $2"
            ))
            .bind(into.0)
            .bind(from.0)
            .execute(&mut *tx)
            .await
            .conflict("live conversation")?;
        }
        // A visitor writes only in its own conversations, which are `into`'s by now: found
        // through them, since the idempotency index leads with the client id (migration 0002).
        sqlx::query(
            "UPDATE messages SET author_key = $1 WHERE author_key = $2 \
             AND conversation_id IN (SELECT id FROM conversations WHERE contact_id = $3)",
        )
        .bind(format!("v{}", into.0))
        .bind(format!("v{}", from.0))
        .bind(into.0)
        .execute(&mut *tx)
        .await
        .conflict("client id")?;
        sqlx::query("DELETE FROM contacts WHERE id = $1")
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
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO contact_notes (contact_id, agent_id, body, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(contact.0)
        .bind(agent.0)
        .bind(body)
        .bind(us(now))
        .fetch_one(&self.pool)
        .await
        .map_err(|e| match constraint(&e) {
            Some("contact_notes_agent_id_fkey") => StoreError::NotFound("agent"),
            Some("contact_notes_contact_id_fkey") => StoreError::NotFound("contact"),
            _ => db_err(e),
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
        let rows: Vec<(i64, i64, String, i64)> = sqlx::query_as(
            "SELECT id, agent_id, body, created_at FROM contact_notes WHERE contact_id = $1 ORDER BY id",
        )
        .bind(contact.0)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.into_iter()
            .map(|(id, a, body, t)| {
                Ok(ContactNote {
                    id,
                    contact_id: contact,
                    agent_id: AgentId(a),
                    body,
                    created_at: from_us(t)?,
                })
            })
            .collect()
    }

    async fn add_page_view(&self, contact: ContactId, v: PageView) -> Result<()> {
        sqlx::query(
            "INSERT INTO page_views (contact_id, url, title, referrer, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(contact.0)
        .bind(&v.url)
        .bind(&v.title)
        .bind(&v.referrer)
        .bind(us(v.created_at))
        .execute(&self.pool)
        .await
        .missing_ref("contact")?;
        Ok(())
    }

    async fn page_views(&self, contact: ContactId, limit: i64) -> Result<Vec<PageView>> {
        let rows: Vec<(String, Option<String>, Option<String>, i64)> = sqlx::query_as(
            "SELECT url, title, referrer, created_at FROM page_views WHERE contact_id = $1 \
             ORDER BY id DESC LIMIT $2",
        )
        .bind(contact.0)
        .bind(no_limit_if_negative(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.into_iter()
            .map(|(url, title, referrer, t)| {
                Ok(PageView {
                    url,
                    title,
                    referrer,
                    created_at: from_us(t)?,
                })
            })
            .collect()
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
        sqlx::query(
            "INSERT INTO visitor_sessions (token_hash, site_id, contact_id, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(token_hash)
        .bind(site.0)
        .bind(contact.0)
        .bind(us(now))
        .execute(&self.pool)
        .await
        .map_err(|e| {
            if is_fk_violation(&e) {
                StoreError::NotFound("contact")
            } else {
                match db_err(e) {
                    StoreError::Conflict(_) => StoreError::Conflict("visitor session"),
                    e => e,
                }
            }
        })?;
        Ok(())
    }

    async fn visitor_session(&self, token_hash: &str) -> Result<Option<VisitorSession>> {
        let row: Option<(i64, i64)> = sqlx::query_as(
            "SELECT site_id, contact_id FROM visitor_sessions WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(row.map(|(s, c)| VisitorSession {
            site_id: SiteId(s),
            contact_id: ContactId(c),
        }))
    }

    async fn repoint_visitor_session(&self, token_hash: &str, contact: ContactId) -> Result<()> {
        sqlx::query("UPDATE visitor_sessions SET contact_id = $1 WHERE token_hash = $2")
            .bind(contact.0)
            .bind(token_hash)
            .execute(&self.pool)
            .await
            .missing_ref("contact")?;
        Ok(())
    }

    async fn start_conversation(&self, n: NewConversation) -> Result<Started> {
        for _ in 0..RACE_ATTEMPTS {
            if let Some(started) = self.try_start(&n).await? {
                return Ok(started);
            }
        }
        Err(StoreError::Unavailable(
            "conversation start kept racing with closes; try again".into(),
        ))
    }

    async fn conversation(&self, id: ConversationId) -> Result<Conversation> {
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        read_conversation(&mut conn, id).await
    }

    async fn list_conversations(&self, q: &ConversationQuery) -> Result<Vec<ConversationSummary>> {
        let mut b: QueryBuilder<Postgres> = QueryBuilder::new(format!(
            "SELECT {CONVERSATION_COLUMNS}, ct.name AS contact_name, ct.email AS contact_email, \
             lm.author_kind AS lm_author_kind, lm.author_name AS lm_author_name, lm.kind AS lm_kind, \
             lm.body AS lm_body, lm.created_at AS lm_created_at, \
             COALESCE((SELECT r.seq FROM agent_reads r WHERE r.agent_id = "
        ));
        b.push_bind(q.viewer.0);
        b.push(
            " AND r.conversation_id = c.id), 0) AS my_read_seq \
             FROM conversations c JOIN contacts ct ON ct.id = c.contact_id \
             LEFT JOIN messages lm ON lm.id = (SELECT m.id FROM messages m WHERE m.conversation_id = c.id \
             AND m.kind <> 'event' ORDER BY m.seq DESC LIMIT 1) WHERE TRUE",
        );
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
            b.push(
                " AND EXISTS (SELECT 1 FROM conversation_tags t WHERE t.conversation_id = c.id AND t.tag = ",
            )
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
            // The whole text is one phrase (like the SQLite backend's quoted FTS5 phrase):
            // phraseto_tsquery reads no operators, and the text is a bound parameter.
            b.push(
                " AND c.id IN (SELECT m.conversation_id FROM messages m \
                 WHERE m.body_tsv @@ phraseto_tsquery('simple', ",
            )
            .push_bind(text.clone())
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
        let rows = b.build().fetch_all(&self.pool).await.map_err(db_err)?;
        rows.iter().map(summary).collect()
    }

    async fn conversation_counts(&self) -> Result<ConversationCounts> {
        let rows: Vec<(String, Option<i64>, i64)> = sqlx::query_as(
            "SELECT status, assignee_id, COUNT(*) FROM conversations GROUP BY status, assignee_id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        let mut groups = Vec::with_capacity(rows.len());
        for (status, assignee, n) in rows {
            groups.push((parse::<Status>(&status)?, assignee.map(AgentId), n));
        }
        Ok(ConversationCounts { groups })
    }

    async fn visitor_conversations(&self, contact: ContactId) -> Result<Vec<Conversation>> {
        let rows = sqlx::query(&format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations c WHERE c.contact_id = $1 ORDER BY c.id DESC"
        ))
        .bind(contact.0)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(conversation).collect()
    }

    async fn post_message(&self, new: NewMessage) -> Result<Posted> {
        for _ in 0..RACE_ATTEMPTS {
            match self.try_post(&new).await {
                // A concurrent post with the same client id committed first; the next
                // attempt finds it.
                Err(e) if lost_idempotency_race(&e) => continue,
                r => return r,
            }
        }
        Err(StoreError::Unavailable(
            "the post kept racing with a retry of itself; try again".into(),
        ))
    }

    async fn assign(
        &self,
        id: ConversationId,
        by: Option<&Agent>,
        target: Option<&Agent>,
        now: DateTime<Utc>,
    ) -> Result<Changed> {
        let mut tx = self.begin().await?;
        let mut conv = lock_conversation(&mut tx, id).await?;
        let before = conv.clone();
        if let Some(actor) = by {
            rules::check_assign(actor, &conv, target)?;
        } else if target.is_some_and(|t| !rules::can_be_assigned(t)) {
            return Err(Refusal::AssigneeUnavailable.into());
        }
        let new_assignee = target.map(|t| t.id);
        if conv.assignee_id == new_assignee {
            return Ok(Changed {
                before,
                conversation: conv,
                written: vec![],
                summary: None,
            });
        }
        conv.assignee_id = new_assignee;
        let ev = rules::assignment_event(by, target);
        let written = vec![append(&mut tx, &mut conv, Entry::event(&ev, by, now)).await?];
        save(&mut tx, &conv).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(Changed {
            before,
            conversation: conv,
            written,
            summary: None,
        })
    }

    async fn change_status(
        &self,
        id: ConversationId,
        change: StatusChange,
        now: DateTime<Utc>,
    ) -> Result<Changed> {
        let mut tx = self.begin().await?;
        let mut conv = lock_conversation(&mut tx, id).await?;
        let before = conv.clone();
        let mut written = Vec::new();
        match &change {
            StatusChange::Close { by, by_visitor } => {
                if let Some(a) = by {
                    rules::check_close(a, &conv)?;
                } else if conv.status == Status::Closed {
                    return Err(Refusal::Closed.into());
                }
                conv.status = Status::Closed;
                conv.closed_at = Some(now);
                conv.snoozed_until = None;
                if *by_visitor {
                    written.push(
                        append(
                            &mut tx,
                            &mut conv,
                            Entry::event(&Event::EndedByVisitor, None, now),
                        )
                        .await?,
                    );
                }
                let ev = Event::Closed {
                    by: by.as_ref().map(|a| a.id),
                };
                written
                    .push(append(&mut tx, &mut conv, Entry::event(&ev, by.as_ref(), now)).await?);
            }
            StatusChange::Reopen { by, policy } => {
                rules::check_reopen(by, &conv, *policy)?;
                conv.status = Status::Open;
                conv.closed_at = None;
                let ev = Event::Reopened { by: Some(by.id) };
                written.push(append(&mut tx, &mut conv, Entry::event(&ev, Some(by), now)).await?);
            }
            StatusChange::Snooze { by, until } => {
                rules::check_snooze(by, &conv, *until, now)?;
                conv.status = Status::Snoozed;
                conv.snoozed_until = Some(*until);
                let ev = Event::Snoozed {
                    by: by.id,
                    until: *until,
                };
                written.push(append(&mut tx, &mut conv, Entry::event(&ev, Some(by), now)).await?);
                schedule(&mut tx, JobKind::SnoozeWake, id, *until).await?;
            }
            StatusChange::Wake => {
                if !rules::snooze_due(&conv, now) {
                    return Ok(Changed {
                        before,
                        conversation: conv,
                        written,
                        summary: None,
                    });
                }
                conv.status = Status::Open;
                conv.snoozed_until = None;
                written
                    .push(append(&mut tx, &mut conv, Entry::event(&Event::Woke, None, now)).await?);
            }
        }
        save(&mut tx, &conv).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(Changed {
            before,
            conversation: conv,
            written,
            summary: None,
        })
    }

    async fn rate(
        &self,
        id: ConversationId,
        rating: Rating,
        comment: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Changed> {
        let mut tx = self.begin().await?;
        let mut conv = lock_conversation(&mut tx, id).await?;
        let before = conv.clone();
        conv.rating = Some(rating);
        conv.rating_comment = comment.map(str::to_owned);
        let ev = Event::Rated {
            rating,
            comment: comment.map(str::to_owned),
        };
        let written = vec![append(&mut tx, &mut conv, Entry::event(&ev, None, now)).await?];
        save(&mut tx, &conv).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(Changed {
            before,
            conversation: conv,
            written,
            summary: None,
        })
    }

    async fn mark_offline(
        &self,
        id: ConversationId,
        message: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Changed>> {
        let mut tx = self.begin().await?;
        let mut conv = lock_conversation(&mut tx, id).await?;
        let before = conv.clone();
        if !rules::wait_expired(&conv) {
            return Ok(None);
        }
        conv.offline = true;
        let ev = Event::Offline {
            message: message.to_owned(),
        };
        let written = vec![append(&mut tx, &mut conv, Entry::event(&ev, None, now)).await?];
        save(&mut tx, &conv).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(Some(Changed {
            before,
            conversation: conv,
            written,
            summary: None,
        }))
    }

    async fn delete_conversation(&self, id: ConversationId) -> Result<Vec<String>> {
        let mut tx = self.begin().await?;
        // Locked first, so a post in flight finishes before (and one arriving later finds
        // nothing).
        lock_conversation(&mut tx, id).await?;
        let paths: Vec<String> = sqlx::query_scalar(
            "SELECT path FROM attachments WHERE conversation_id = $1 ORDER BY id",
        )
        .bind(id.0)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        // Messages go with their full-text entries (a generated column of their row).
        sqlx::query("DELETE FROM messages WHERE conversation_id = $1")
            .bind(id.0)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        sqlx::query("DELETE FROM conversations WHERE id = $1")
            .bind(id.0)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
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
        // One of two fixed column names, never input.
        let col = if visitor_view {
            "m.visible_seq"
        } else {
            "m.seq"
        };
        let rows = sqlx::query(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages m LEFT JOIN attachments a ON a.id = m.attachment_id \
             WHERE m.conversation_id = $1 AND {col} > $2 ORDER BY {col} LIMIT $3"
        ))
        .bind(id.0)
        .bind(after)
        .bind(limit.clamp(1, 1000))
        .fetch_all(&self.pool)
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
        let mut tx = self.begin().await?;
        let last: i64 =
            sqlx::query_scalar("SELECT last_seq FROM conversations WHERE id = $1 FOR UPDATE")
                .bind(id.0)
                .fetch_one(&mut *tx)
                .await
                .not_found("conversation")?;
        let seq = seq.clamp(0, last);
        sqlx::query(
            "INSERT INTO agent_reads (agent_id, conversation_id, seq) VALUES ($1, $2, $3) \
             ON CONFLICT (agent_id, conversation_id) DO UPDATE SET seq = GREATEST(agent_reads.seq, EXCLUDED.seq)",
        )
        .bind(agent.0)
        .bind(id.0)
        .bind(seq)
        .execute(&mut *tx)
        .await
        .missing_ref("agent")?;
        // The visitor's "seen" marker is in visible_seq terms.
        let v: i64 = sqlx::query_scalar(
            "UPDATE conversations SET agent_read_seq = GREATEST(agent_read_seq, (SELECT COALESCE(MAX(visible_seq), 0) \
             FROM messages WHERE conversation_id = $1 AND seq <= $2)) WHERE id = $1 RETURNING agent_read_seq",
        )
        .bind(id.0)
        .bind(seq)
        .fetch_one(&mut *tx)
        .await
        .not_found("conversation")?;
        tx.commit().await.map_err(db_err)?;
        Ok(v)
    }

    async fn agent_read_seq(&self, id: ConversationId, agent: AgentId) -> Result<Seq> {
        let v: Option<i64> = sqlx::query_scalar(
            "SELECT seq FROM agent_reads WHERE agent_id = $1 AND conversation_id = $2",
        )
        .bind(agent.0)
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(v.unwrap_or(0))
    }

    async fn mark_read_by_visitor(&self, id: ConversationId, visible_seq: Seq) -> Result<Seq> {
        // One statement: the UPDATE locks the row and re-reads it, so it only ever grows.
        let v: i64 = sqlx::query_scalar(
            "UPDATE conversations SET visitor_read_seq = GREATEST(visitor_read_seq, LEAST($1, last_visible_seq)) \
             WHERE id = $2 RETURNING visitor_read_seq",
        )
        .bind(visible_seq.max(0))
        .bind(id.0)
        .fetch_one(&self.pool)
        .await
        .not_found("conversation")?;
        Ok(v)
    }

    async fn set_tags(&self, id: ConversationId, tags: &[String]) -> Result<Conversation> {
        let mut tags = tags.to_vec();
        tags.sort();
        tags.dedup();
        let mut tx = self.begin().await?;
        lock_conversation(&mut tx, id).await?;
        sqlx::query("UPDATE conversations SET tags = $1 WHERE id = $2")
            .bind(to_json(&tags)?)
            .bind(id.0)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        sqlx::query("DELETE FROM conversation_tags WHERE conversation_id = $1")
            .bind(id.0)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        sqlx::query(
            "INSERT INTO conversation_tags (conversation_id, tag) SELECT $1, UNNEST($2::TEXT[])",
        )
        .bind(id.0)
        .bind(&tags)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let conv = read_conversation(&mut tx, id).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(conv)
    }

    async fn create_attachment(&self, n: NewAttachment) -> Result<Attachment> {
        let row = sqlx::query(&format!(
            "INSERT INTO attachments (conversation_id, filename, content_type, size, path, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {ATTACHMENT_COLUMNS}"
        ))
        .bind(n.conversation_id.0)
        .bind(&n.filename)
        .bind(&n.content_type)
        .bind(n.size)
        .bind(&n.path)
        .bind(us(n.now))
        .fetch_one(&self.pool)
        .await
        .missing_ref("conversation")?;
        attachment(&row)
    }

    async fn attachment(&self, id: AttachmentId) -> Result<Attachment> {
        let row = sqlx::query(&format!(
            "SELECT {ATTACHMENT_COLUMNS} FROM attachments WHERE id = $1"
        ))
        .bind(id.0)
        .fetch_one(&self.pool)
        .await
        .not_found("attachment")?;
        attachment(&row)
    }

    async fn add_notifications(&self, items: Vec<NewNotification>) -> Result<Vec<Notification>> {
        if items.is_empty() {
            return Ok(vec![]);
        }
        let mut tx = self.begin().await?;
        let mut out = Vec::with_capacity(items.len());
        for n in &items {
            out.push(insert_notification(&mut tx, n).await?);
        }
        tx.commit().await.map_err(db_err)?;
        Ok(out)
    }

    async fn notifications(&self, agent: AgentId, limit: i64) -> Result<Vec<Notification>> {
        let rows = sqlx::query(&format!(
            "SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE agent_id = $1 ORDER BY id DESC LIMIT $2"
        ))
        .bind(agent.0)
        .bind(limit.clamp(1, 500))
        .fetch_all(&self.pool)
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
        let ids: Vec<i64> = ids.iter().map(|n| n.0).collect();
        sqlx::query(
            "UPDATE notifications SET read_at = COALESCE(read_at, $1) WHERE id = ANY($2) AND agent_id = $3",
        )
        .bind(us(now))
        .bind(&ids)
        .bind(agent.0)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn schedule_job(
        &self,
        kind: JobKind,
        conversation: ConversationId,
        run_at: DateTime<Utc>,
    ) -> Result<()> {
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        schedule(&mut conn, kind, conversation, run_at).await
    }

    async fn claim_due_jobs(
        &self,
        now: DateTime<Utc>,
        lease: chrono::Duration,
        limit: i64,
    ) -> Result<Vec<Job>> {
        // SKIP LOCKED: a job another node is claiming right now is left to it. A job whose
        // claim committed since our snapshot is re-checked by the UPDATE on its newest
        // version, where the lease excludes it.
        let rows: Vec<(i64, String, i64, i64)> = sqlx::query_as(
            "WITH due AS MATERIALIZED (SELECT id FROM jobs WHERE run_at <= $2 \
             AND (locked_until IS NULL OR locked_until < $2) ORDER BY run_at, id LIMIT $3 \
             FOR UPDATE SKIP LOCKED) \
             UPDATE jobs j SET locked_until = $1 FROM due WHERE j.id = due.id \
             RETURNING j.id, j.kind, j.conversation_id, j.run_at",
        )
        .bind(us(now + lease))
        .bind(us(now))
        .bind(no_limit_if_negative(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        let mut jobs = rows
            .into_iter()
            .map(|(id, kind, conversation_id, run_at)| {
                Ok(Job {
                    id,
                    kind: JobKind::parse(&kind).ok_or_else(|| corrupt("job kind"))?,
                    conversation_id: ConversationId(conversation_id),
                    run_at: from_us(run_at)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        jobs.sort_by_key(|j| (j.run_at, j.id));
        Ok(jobs)
    }

    async fn complete_job(&self, id: i64) -> Result<()> {
        sqlx::query("DELETE FROM jobs WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }
}

async fn set_members(conn: &mut PgConnection, team: i64, members: &[AgentId]) -> Result<()> {
    sqlx::query("DELETE FROM team_members WHERE team_id = $1")
        .bind(team)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    let ids: Vec<i64> = members.iter().map(|m| m.0).collect();
    sqlx::query(
        "INSERT INTO team_members (team_id, agent_id) SELECT $1, UNNEST($2::BIGINT[]) \
         ON CONFLICT DO NOTHING",
    )
    .bind(team)
    .bind(&ids)
    .execute(&mut *conn)
    .await
    .missing_ref("agent")?;
    Ok(())
}

fn summary(r: &PgRow) -> Result<ConversationSummary> {
    let last_message = match col::<Option<&str>>(r, "lm_kind")? {
        Some(kind) => Some(Preview {
            author_kind: AuthorKind::from_str(col(r, "lm_author_kind")?).map_err(corrupt)?,
            author_name: col(r, "lm_author_name")?,
            kind: parse(kind)?,
            body: col::<String>(r, "lm_body")?.chars().take(140).collect(),
            created_at: time(r, "lm_created_at")?,
        }),
        None => None,
    };
    let conversation = conversation(r)?;
    let my_read_seq: i64 = col(r, "my_read_seq")?;
    Ok(ConversationSummary {
        unread: conversation.last_visitor_seq > my_read_seq,
        my_read_seq,
        conversation,
        contact_name: col(r, "contact_name")?,
        contact_email: col(r, "contact_email")?,
        last_message,
    })
}
