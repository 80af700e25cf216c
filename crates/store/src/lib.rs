//! The storage trait every backend implements, its error type, and the conformance cases
//! every backend must pass ([`conformance`]).
//!
//! **Invariant:** a method returns only after its writes are committed and durable; the
//! messages it returns carry their final sequence numbers. Only store crates hold SQL.

pub mod conformance;
mod entry;
mod types;

pub use entry::Entry;
pub use types::*;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use confab_domain::*;

/// What can go wrong in a store. Backends map their driver errors onto these.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A unique value is taken (an email, a site key).
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// A client message id was reused with different content.
    #[error("client_id was already used for a different message")]
    IdempotencyConflict,
    /// A domain rule refused the change, decided inside the transaction on fresh state.
    #[error(transparent)]
    Refused(#[from] confab_domain::rules::Refusal),
    /// The backend is overloaded or unreachable for now; retrying may help.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error("storage error: {0}")]
    Internal(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Everything Confab keeps. One implementation per database; all pass [`conformance`].
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Whether the backend answers; used by `/healthz`.
    async fn ping(&self) -> Result<()>;

    // --- Agents and sign-in --------------------------------------------------------------
    async fn count_agents(&self) -> Result<i64>;
    /// Fails with `Conflict("agent")` when the email is taken.
    async fn create_agent(&self, new: NewAgent) -> Result<Agent>;
    async fn agent(&self, id: AgentId) -> Result<Agent>;
    /// The agent with this (lower-case) email and their password hash.
    async fn agent_credentials(&self, email: &str) -> Result<Option<(Agent, String)>>;
    async fn list_agents(&self) -> Result<Vec<Agent>>;
    async fn update_agent(&self, id: AgentId, patch: AgentPatch) -> Result<Agent>;
    async fn set_password(&self, id: AgentId, password_hash: &str) -> Result<()>;

    async fn create_session(&self, session: NewSession) -> Result<()>;
    /// The live session with this token hash, if any.
    async fn session(&self, token_hash: &str, now: DateTime<Utc>) -> Result<Option<AgentSession>>;
    async fn delete_session(&self, token_hash: &str) -> Result<()>;
    async fn delete_agent_sessions(&self, agent: AgentId) -> Result<()>;
    async fn create_api_token(
        &self,
        agent: AgentId,
        name: &str,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<ApiToken>;
    async fn agent_by_api_token(&self, token_hash: &str) -> Result<Option<AgentId>>;

    // --- Teams and sites -----------------------------------------------------------------
    async fn create_team(&self, name: &str, members: &[AgentId]) -> Result<Team>;
    async fn list_teams(&self) -> Result<Vec<Team>>;
    async fn team(&self, id: TeamId) -> Result<Team>;
    async fn update_team(
        &self,
        id: TeamId,
        name: Option<&str>,
        members: Option<&[AgentId]>,
    ) -> Result<Team>;
    async fn delete_team(&self, id: TeamId) -> Result<()>;

    async fn create_site(&self, new: NewSite) -> Result<Site>;
    async fn site(&self, id: SiteId) -> Result<Site>;
    async fn site_by_key(&self, public_key: &str) -> Result<Option<Site>>;
    async fn list_sites(&self) -> Result<Vec<Site>>;
    async fn update_site(
        &self,
        id: SiteId,
        name: Option<&str>,
        settings: Option<&SiteSettings>,
    ) -> Result<Site>;

    // --- Contacts and visitor sessions ---------------------------------------------------
    async fn create_contact(&self, new: NewContact) -> Result<Contact>;
    async fn contact(&self, id: ContactId) -> Result<Contact>;
    async fn update_contact(&self, id: ContactId, patch: ContactPatch) -> Result<Contact>;
    async fn contact_by_external_id(
        &self,
        site: SiteId,
        external_id: &str,
    ) -> Result<Option<Contact>>;
    async fn contact_by_email(&self, site: SiteId, email: &str) -> Result<Option<Contact>>;
    /// C1: moves `from`'s conversations, sessions, page views and notes onto `into`, then
    /// deletes `from`. Returns `into` as it is afterwards.
    async fn merge_contacts(&self, from: ContactId, into: ContactId) -> Result<Contact>;
    async fn add_contact_note(
        &self,
        contact: ContactId,
        agent: AgentId,
        body: &str,
        now: DateTime<Utc>,
    ) -> Result<ContactNote>;
    async fn contact_notes(&self, contact: ContactId) -> Result<Vec<ContactNote>>;
    async fn add_page_view(&self, contact: ContactId, view: PageView) -> Result<()>;
    async fn page_views(&self, contact: ContactId, limit: i64) -> Result<Vec<PageView>>;
    async fn contact_conversations(&self, contact: ContactId) -> Result<Vec<Conversation>>;

    async fn create_visitor_session(
        &self,
        token_hash: &str,
        site: SiteId,
        contact: ContactId,
        now: DateTime<Utc>,
    ) -> Result<()>;
    async fn visitor_session(&self, token_hash: &str) -> Result<Option<VisitorSession>>;
    async fn repoint_visitor_session(&self, token_hash: &str, contact: ContactId) -> Result<()>;

    // --- Conversations -------------------------------------------------------------------
    /// Returns the contact's open or snoozed conversation on this site and channel when
    /// there is one (two tabs starting at once get one conversation), else creates one,
    /// writing the handoff event (W4) and scheduling the wait-time check.
    async fn start_conversation(&self, new: NewConversation) -> Result<Started>;
    async fn conversation(&self, id: ConversationId) -> Result<Conversation>;
    async fn list_conversations(
        &self,
        query: &ConversationQuery,
    ) -> Result<Vec<ConversationSummary>>;
    /// How many conversations there are per status and assignee: every agent's folder
    /// counts at once (see [`ConversationCounts::for_agent`]).
    async fn conversation_counts(&self) -> Result<ConversationCounts>;
    /// I2: counts of every folder the agent may see.
    async fn folder_counts(&self, agent: &Agent) -> Result<FolderCounts> {
        Ok(self.conversation_counts().await?.for_agent(agent))
    }
    /// The visitor's conversations on a site, newest first.
    async fn visitor_conversations(&self, contact: ContactId) -> Result<Vec<Conversation>>;

    /// Posts a message under the rules (I3 reply-assigns, I4 wake/reopen/start-new), once
    /// per client id: a retry with the same id and content returns the first message with
    /// `created: false`; different content is `IdempotencyConflict`.
    async fn post_message(&self, new: NewMessage) -> Result<Posted>;
    /// I3. The rule check is made inside the transaction on fresh state.
    async fn assign(
        &self,
        id: ConversationId,
        by: Option<&Agent>,
        target: Option<&Agent>,
        now: DateTime<Utc>,
    ) -> Result<Changed>;
    /// I4. Agent changes are checked inside the transaction; `by: None` is the system.
    async fn change_status(
        &self,
        id: ConversationId,
        change: StatusChange,
        now: DateTime<Utc>,
    ) -> Result<Changed>;
    /// W8.
    async fn rate(
        &self,
        id: ConversationId,
        rating: Rating,
        comment: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Changed>;
    /// W4: nobody took the chat in time; posts the offline message once.
    async fn mark_offline(
        &self,
        id: ConversationId,
        message: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Changed>>;
    /// I5: deletes the conversation with its messages, index entries and attachment rows;
    /// returns the attachment files for the caller to remove.
    async fn delete_conversation(&self, id: ConversationId) -> Result<Vec<String>>;
    /// Messages after `after_seq` in order; `visitor_view` returns only what the visitor
    /// sees and pages by `visible_seq` instead.
    async fn messages(
        &self,
        id: ConversationId,
        after_seq: Seq,
        limit: i64,
        visitor_view: bool,
    ) -> Result<Vec<Message>>;
    /// Read receipts; the stored values only ever grow. An agent reads up to a `seq`; the
    /// conversation's `agent_read_seq` (what the visitor is shown) becomes the matching
    /// `visible_seq`, which is returned. The visitor reads up to a `visible_seq`.
    async fn mark_read_by_agent(&self, id: ConversationId, agent: AgentId, seq: Seq)
        -> Result<Seq>;
    /// The last `seq` this agent has read in the conversation (0 if none).
    async fn agent_read_seq(&self, id: ConversationId, agent: AgentId) -> Result<Seq>;
    async fn mark_read_by_visitor(&self, id: ConversationId, visible_seq: Seq) -> Result<Seq>;
    async fn set_tags(&self, id: ConversationId, tags: &[String]) -> Result<Conversation>;

    // --- Attachments ---------------------------------------------------------------------
    async fn create_attachment(&self, new: NewAttachment) -> Result<Attachment>;
    async fn attachment(&self, id: AttachmentId) -> Result<Attachment>;

    // --- Notifications (E3, in-app) ------------------------------------------------------
    async fn add_notifications(&self, items: Vec<NewNotification>) -> Result<Vec<Notification>>;
    async fn notifications(&self, agent: AgentId, limit: i64) -> Result<Vec<Notification>>;
    async fn mark_notifications_read(
        &self,
        agent: AgentId,
        ids: &[NotificationId],
        now: DateTime<Utc>,
    ) -> Result<()>;

    // --- Timers (W4 wait time, I4 snooze and inactivity) ---------------------------------
    async fn schedule_job(
        &self,
        kind: JobKind,
        conversation: ConversationId,
        run_at: DateTime<Utc>,
    ) -> Result<()>;
    /// Claims up to `limit` due jobs for `lease`; a job whose lease ran out (its node died)
    /// is claimed again. Each claimed job must be completed.
    async fn claim_due_jobs(
        &self,
        now: DateTime<Utc>,
        lease: chrono::Duration,
        limit: i64,
    ) -> Result<Vec<Job>>;
    async fn complete_job(&self, id: i64) -> Result<()>;
}
