//! The inbox rules (I1–I5, W4, W5, S2) as pure functions over the model.
//!
//! Every access decision the API makes is one of these functions; the store turns the
//! folder filters into parameterized queries. Each rule's id from PRODUCT.md is named.

use chrono::{DateTime, Duration, Utc};

use crate::ids::*;
use crate::model::*;
use crate::office_hours::OfficeHours;

/// Why an action was refused. `code()` is the stable snake_case code the API returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The actor may not see the conversation at all: the API answers 404 so that its
    /// existence does not leak (S2, I3).
    #[error("conversation not found")]
    NotVisible,
    #[error("you may not do this")]
    Forbidden,
    /// I1: only available agents can be given new conversations.
    #[error("the agent is away or deactivated and cannot be given conversations")]
    AssigneeUnavailable,
    #[error("the conversation is closed")]
    Closed,
    #[error("the conversation is not closed")]
    NotClosed,
    /// I4: the site's reopen policy is `final`.
    #[error("this site does not allow reopening closed conversations")]
    ReopenNotAllowed,
    #[error("the snooze time must be in the future")]
    SnoozeInPast,
    /// I5.
    #[error("only the owner may delete permanently")]
    OwnerOnly,
    /// W3.
    #[error("only identified customers may start a chat on this site")]
    LoginRequired,
}

impl Refusal {
    pub fn code(self) -> &'static str {
        match self {
            Refusal::NotVisible => "not_found",
            Refusal::Forbidden => "forbidden",
            Refusal::AssigneeUnavailable => "assignee_unavailable",
            Refusal::Closed => "conversation_closed",
            Refusal::NotClosed => "conversation_not_closed",
            Refusal::ReopenNotAllowed => "reopen_not_allowed",
            Refusal::SnoozeInPast => "snooze_in_past",
            Refusal::OwnerOnly => "owner_only",
            Refusal::LoginRequired => "login_required",
        }
    }
}

/// Owners and admins always see everything; an agent's access decides otherwise.
pub fn effective_access(agent: &Agent) -> Access {
    if agent.is_admin() {
        Access::Full
    } else {
        agent.access
    }
}

/// I3 / S2: whether `agent` may see `conv`. Restricted agents see unassigned, their own
/// and closed conversations only.
pub fn can_view(agent: &Agent, conv: &Conversation) -> bool {
    if agent.deactivated {
        return false;
    }
    match effective_access(agent) {
        Access::Full => true,
        Access::Restricted => {
            conv.assignee_id.is_none()
                || conv.assignee_id == Some(agent.id)
                || conv.status == Status::Closed
        }
    }
}

/// I2: the folder `conv` is filed under for `agent`, if they can see it.
pub fn folder_of(agent: &Agent, conv: &Conversation) -> Option<Folder> {
    if !can_view(agent, conv) {
        return None;
    }
    Some(match conv.status {
        Status::Closed => Folder::Closed,
        Status::Snoozed => Folder::Snoozed,
        Status::Open => match conv.assignee_id {
            None => Folder::Unassigned,
            Some(id) if id == agent.id => Folder::Mine,
            Some(_) => Folder::Others,
        },
    })
}

/// Who a folder's conversations are assigned to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssigneeFilter {
    Any,
    Nobody,
    Is(AgentId),
    /// Assigned, but not to this agent.
    SomeoneBut(AgentId),
}

/// A folder as a filter the store turns into a parameterized query. `visible_to` restricts
/// the result to what a restricted agent may see (I3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FolderFilter {
    pub status: Status,
    pub assignee: AssigneeFilter,
    /// When set, only conversations unassigned, assigned to this agent, or closed.
    pub visible_to: Option<AgentId>,
}

/// I2: the filter of `folder` for `agent`; None when the folder is not theirs to see
/// (Others' for restricted agents).
pub fn folder_filter(agent: &Agent, folder: Folder) -> Option<FolderFilter> {
    let restricted = effective_access(agent) == Access::Restricted;
    let visible_to = restricted.then_some(agent.id);
    Some(match folder {
        Folder::Unassigned => FolderFilter {
            status: Status::Open,
            assignee: AssigneeFilter::Nobody,
            visible_to,
        },
        Folder::Mine => FolderFilter {
            status: Status::Open,
            assignee: AssigneeFilter::Is(agent.id),
            visible_to,
        },
        Folder::Others if restricted => return None,
        Folder::Others => FolderFilter {
            status: Status::Open,
            assignee: AssigneeFilter::SomeoneBut(agent.id),
            visible_to,
        },
        Folder::Snoozed => FolderFilter {
            status: Status::Snoozed,
            assignee: AssigneeFilter::Any,
            visible_to,
        },
        Folder::Closed => FolderFilter {
            status: Status::Closed,
            assignee: AssigneeFilter::Any,
            visible_to,
        },
    })
}

/// I1: whether `agent` may be given a conversation.
pub fn can_be_assigned(agent: &Agent) -> bool {
    agent.available && !agent.deactivated
}

/// I3: may `actor` give `conv` to `target` (None: back to Unassigned)? Anyone who sees the
/// conversation may, at any time it is not closed; the target must be available, even
/// when it is the actor.
pub fn check_assign(
    actor: &Agent,
    conv: &Conversation,
    target: Option<&Agent>,
) -> Result<(), Refusal> {
    if !can_view(actor, conv) {
        return Err(Refusal::NotVisible);
    }
    if conv.status == Status::Closed {
        return Err(Refusal::Closed);
    }
    if let Some(t) = target {
        if !can_be_assigned(t) {
            return Err(Refusal::AssigneeUnavailable);
        }
    }
    Ok(())
}

/// The events an assignment writes into the timeline. Joined is what the visitor sees as
/// "<name> joined" (W5).
pub fn assignment_event(actor: Option<&Agent>, target: Option<&Agent>) -> Event {
    let by = actor.map(|a| a.id);
    match target {
        Some(t) => Event::Joined {
            agent_id: t.id,
            display_name: t.display_name.clone(),
            avatar_url: t.avatar_url.clone(),
            by,
        },
        None => Event::Unassigned { by },
    }
}

/// I4: who may close (and snooze, and reopen): the assignee, or any full-access agent,
/// admin or owner.
fn may_change_status(actor: &Agent, conv: &Conversation) -> Result<(), Refusal> {
    if !can_view(actor, conv) {
        return Err(Refusal::NotVisible);
    }
    if conv.assignee_id == Some(actor.id) || effective_access(actor) == Access::Full {
        Ok(())
    } else {
        Err(Refusal::Forbidden)
    }
}

/// I4: closing.
pub fn check_close(actor: &Agent, conv: &Conversation) -> Result<(), Refusal> {
    may_change_status(actor, conv)?;
    if conv.status == Status::Closed {
        return Err(Refusal::Closed);
    }
    Ok(())
}

/// I4: reopening by an agent, under the site's policy.
pub fn check_reopen(
    actor: &Agent,
    conv: &Conversation,
    policy: ReopenPolicy,
) -> Result<(), Refusal> {
    may_change_status(actor, conv)?;
    if conv.status != Status::Closed {
        return Err(Refusal::NotClosed);
    }
    if policy == ReopenPolicy::Final {
        return Err(Refusal::ReopenNotAllowed);
    }
    Ok(())
}

/// I4: snoozing until a time in the future.
pub fn check_snooze(
    actor: &Agent,
    conv: &Conversation,
    until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), Refusal> {
    may_change_status(actor, conv)?;
    if conv.status == Status::Closed {
        return Err(Refusal::Closed);
    }
    if until <= now {
        return Err(Refusal::SnoozeInPast);
    }
    Ok(())
}

/// I5: permanent delete.
pub fn check_delete(actor: &Agent, conv: &Conversation) -> Result<(), Refusal> {
    if !can_view(actor, conv) {
        return Err(Refusal::NotVisible);
    }
    if actor.role != Role::Owner {
        return Err(Refusal::OwnerOnly);
    }
    Ok(())
}

/// I6 / I4: agents reply to conversations they see; replies need an open or snoozed
/// conversation, notes are taken even when it is closed.
pub fn check_agent_post(
    actor: &Agent,
    conv: &Conversation,
    kind: MessageKind,
) -> Result<(), Refusal> {
    if !can_view(actor, conv) {
        return Err(Refusal::NotVisible);
    }
    match kind {
        MessageKind::Note => Ok(()),
        MessageKind::Text if conv.status == Status::Closed => Err(Refusal::Closed),
        MessageKind::Text => Ok(()),
        MessageKind::Event => Err(Refusal::Forbidden),
    }
}

/// I3: a reply to an unassigned conversation assigns it to the replier, who must be
/// available (I1). Returns the agent to assign, if any.
pub fn reply_assigns(actor: &Agent, conv: &Conversation, kind: MessageKind) -> Option<AgentId> {
    (kind == MessageKind::Text && conv.assignee_id.is_none() && can_be_assigned(actor))
        .then_some(actor.id)
}

/// What a visitor's message does to its conversation (I4, W4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VisitorMessageEffect {
    /// Post it as is.
    Post,
    /// Snoozed: wake it, then post (I4).
    Wake,
    /// Closed under `reopen`: reopen it into its assignment folder, then post (I4).
    Reopen,
    /// Closed under `final`: the message starts a new conversation (I4).
    StartNew,
}

pub fn visitor_message_effect(conv: &Conversation, policy: ReopenPolicy) -> VisitorMessageEffect {
    match (conv.status, policy) {
        (Status::Open, _) => VisitorMessageEffect::Post,
        (Status::Snoozed, _) => VisitorMessageEffect::Wake,
        (Status::Closed, ReopenPolicy::Reopen) => VisitorMessageEffect::Reopen,
        (Status::Closed, ReopenPolicy::Final) => VisitorMessageEffect::StartNew,
    }
}

/// W4: whether a site is online: an available agent is connected, inside office hours.
pub fn site_online(
    any_agent_connected_and_available: bool,
    hours: &OfficeHours,
    now: DateTime<Utc>,
) -> bool {
    any_agent_connected_and_available && hours.is_open(now)
}

/// W4: what happens when a conversation is handed to people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handoff {
    /// The event posted to the visitor (online or offline message).
    pub event: Event,
    /// Online: when to check whether anyone took the chat. Offline: None.
    pub wait_until: Option<DateTime<Utc>>,
    /// Offline: the conversation is an offline message from the start.
    pub offline: bool,
}

pub fn handoff(settings: &SiteSettings, online: bool, now: DateTime<Utc>) -> Handoff {
    if online {
        Handoff {
            event: Event::Online {
                message: settings.online_message.clone(),
            },
            wait_until: Some(now + Duration::seconds(i64::from(settings.wait_time_secs))),
            offline: false,
        }
    } else {
        Handoff {
            event: Event::Offline {
                message: offline_message(settings, now),
            },
            wait_until: None,
            offline: true,
        }
    }
}

/// The offline message, with when the team is back when office hours say so (W4).
pub fn offline_message(settings: &SiteSettings, now: DateTime<Utc>) -> String {
    match settings.office_hours.next_open(now) {
        Some(back) => {
            let tz: chrono_tz::Tz = settings
                .office_hours
                .timezone
                .parse()
                .unwrap_or(chrono_tz::UTC);
            let local = back.with_timezone(&tz);
            format!(
                "{}\n\nWe're back {} ({}).",
                settings.offline_message,
                local.format("%A %H:%M"),
                settings.office_hours.timezone
            )
        }
        None => settings.offline_message.clone(),
    }
}

/// W4: the wait time is over and nobody took the chat: the offline message and flow follow,
/// and it stays in Unassigned as an offline message.
pub fn wait_expired(conv: &Conversation) -> bool {
    conv.status == Status::Open
        && conv.assignee_id.is_none()
        && !conv.offline
        && !conv.agent_took_part
}

/// I4: a snoozed conversation wakes at its time.
pub fn snooze_due(conv: &Conversation, now: DateTime<Utc>) -> bool {
    conv.status == Status::Snoozed && conv.snoozed_until.is_some_and(|t| t <= now)
}

/// I4: bot-only conversations close after the site's inactivity timeout.
pub fn inactivity_due(conv: &Conversation, settings: &SiteSettings, now: DateTime<Utc>) -> bool {
    conv.handoff_at.is_none()
        && conv.status != Status::Closed
        && now - conv.last_message_at
            >= Duration::seconds(i64::from(settings.inactivity_timeout_secs))
}

/// W3: may this visitor start a conversation?
pub fn check_may_start(who: WhoMayChat, verified: bool) -> Result<(), Refusal> {
    match who {
        WhoMayChat::Anyone => Ok(()),
        WhoMayChat::LoggedInToChat | WhoMayChat::LoggedInOnly if verified => Ok(()),
        _ => Err(Refusal::LoginRequired),
    }
}

/// W3: whether the widget is shown at all.
pub fn widget_visible(who: WhoMayChat, verified: bool) -> bool {
    who != WhoMayChat::LoggedInOnly || verified
}

/// C1: a session may merge into an existing contact by email only when that contact is
/// not verified, or the session itself is verified as the same customer.
pub fn may_merge_into(session_verified: bool, existing: &Contact) -> bool {
    !existing.verified || session_verified
}

/// E3: who is told about a new message, and why. `agents` are all active agents;
/// `conv` is the conversation as it is after the message.
pub fn message_notifications(
    conv: &Conversation,
    msg: &Message,
    agents: &[Agent],
) -> Vec<(AgentId, NotificationKind)> {
    let mut out = Vec::new();
    for a in agents
        .iter()
        .filter(|a| !a.deactivated && can_view(a, conv))
    {
        if msg.author_kind == AuthorKind::Agent && msg.agent_id == Some(a.id) {
            continue;
        }
        if msg.kind == MessageKind::Note {
            if msg.mentions.contains(&a.id) {
                out.push((a.id, NotificationKind::Mention));
            }
            continue;
        }
        if msg.author_kind != AuthorKind::Visitor || msg.kind != MessageKind::Text {
            continue;
        }
        if conv.assignee_id == Some(a.id) {
            out.push((a.id, NotificationKind::NewMessageMine));
        } else if a.notify_all_messages {
            out.push((a.id, NotificationKind::NewMessageOther));
        }
    }
    out
}

/// E3: everyone who can see it is told of a conversation new in Unassigned (or arriving as
/// an offline message).
pub fn new_conversation_notifications(
    conv: &Conversation,
    agents: &[Agent],
) -> Vec<(AgentId, NotificationKind)> {
    let kind = if conv.offline {
        NotificationKind::OfflineMessage
    } else {
        NotificationKind::NewUnassigned
    };
    agents
        .iter()
        .filter(|a| !a.deactivated && can_view(a, conv))
        .map(|a| (a.id, kind))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0).unwrap()
    }

    fn agent(id: i64, role: Role, access: Access, available: bool) -> Agent {
        Agent {
            id: AgentId(id),
            email: format!("a{id}@example.com"),
            name: format!("Agent {id}"),
            display_name: format!("A{id}"),
            avatar_url: None,
            role,
            access,
            available,
            notify_desktop: true,
            notify_sound: true,
            notify_all_messages: false,
            deactivated: false,
            created_at: now(),
        }
    }

    fn conv(status: Status, assignee: Option<i64>) -> Conversation {
        Conversation {
            id: ConversationId(1),
            site_id: SiteId(1),
            contact_id: ContactId(1),
            channel: Channel::Web,
            status,
            assignee_id: assignee.map(AgentId),
            team_id: None,
            snoozed_until: None,
            closed_at: None,
            last_seq: 0,
            last_visible_seq: 0,
            handoff_at: Some(now()),
            agent_took_part: false,
            offline: false,
            rating: None,
            rating_comment: None,
            start_url: None,
            last_visitor_seq: 0,
            visitor_read_seq: 0,
            agent_read_seq: 0,
            tags: vec![],
            created_at: now(),
            last_message_at: now(),
        }
    }

    #[test]
    fn i3_restricted_sees_unassigned_own_and_closed_only() {
        let r = agent(1, Role::Agent, Access::Restricted, true);
        assert!(can_view(&r, &conv(Status::Open, None)));
        assert!(can_view(&r, &conv(Status::Open, Some(1))));
        assert!(!can_view(&r, &conv(Status::Open, Some(2))));
        assert!(!can_view(&r, &conv(Status::Snoozed, Some(2))));
        assert!(can_view(&r, &conv(Status::Closed, Some(2))));
        let f = agent(3, Role::Agent, Access::Full, true);
        assert!(can_view(&f, &conv(Status::Open, Some(2))));
        // Admins and owners are never restricted.
        let admin = agent(4, Role::Admin, Access::Restricted, true);
        assert!(can_view(&admin, &conv(Status::Open, Some(2))));
        let mut gone = f.clone();
        gone.deactivated = true;
        assert!(!can_view(&gone, &conv(Status::Open, None)));
    }

    #[test]
    fn i2_folders() {
        let me = agent(1, Role::Agent, Access::Full, true);
        assert_eq!(
            folder_of(&me, &conv(Status::Open, None)),
            Some(Folder::Unassigned)
        );
        assert_eq!(
            folder_of(&me, &conv(Status::Open, Some(1))),
            Some(Folder::Mine)
        );
        assert_eq!(
            folder_of(&me, &conv(Status::Open, Some(2))),
            Some(Folder::Others)
        );
        assert_eq!(
            folder_of(&me, &conv(Status::Snoozed, Some(2))),
            Some(Folder::Snoozed)
        );
        assert_eq!(
            folder_of(&me, &conv(Status::Closed, None)),
            Some(Folder::Closed)
        );
        let r = agent(5, Role::Agent, Access::Restricted, true);
        assert_eq!(folder_of(&r, &conv(Status::Open, Some(2))), None);
        assert_eq!(folder_filter(&r, Folder::Others), None);
        let f = folder_filter(&r, Folder::Snoozed).unwrap();
        assert_eq!(f.visible_to, Some(AgentId(5)));
        assert_eq!(
            folder_filter(&me, Folder::Others).unwrap().assignee,
            AssigneeFilter::SomeoneBut(AgentId(1))
        );
    }

    #[test]
    fn i1_away_agents_cannot_be_assigned_not_even_by_themselves() {
        let away = agent(1, Role::Agent, Access::Full, false);
        let c = conv(Status::Open, None);
        assert_eq!(
            check_assign(&away, &c, Some(&away)),
            Err(Refusal::AssigneeUnavailable)
        );
        let boss = agent(2, Role::Owner, Access::Full, true);
        assert_eq!(
            check_assign(&boss, &c, Some(&away)),
            Err(Refusal::AssigneeUnavailable)
        );
        // Going away leaves ongoing conversations alone: unassigning still works.
        assert_eq!(
            check_assign(&away, &conv(Status::Open, Some(1)), None),
            Ok(())
        );
        let avail = agent(3, Role::Agent, Access::Full, true);
        assert_eq!(check_assign(&boss, &c, Some(&avail)), Ok(()));
        assert_eq!(
            check_assign(&boss, &conv(Status::Closed, None), Some(&avail)),
            Err(Refusal::Closed)
        );
    }

    #[test]
    fn i3_restricted_cannot_assign_what_they_cannot_see() {
        let r = agent(1, Role::Agent, Access::Restricted, true);
        assert_eq!(
            check_assign(&r, &conv(Status::Open, Some(2)), Some(&r)),
            Err(Refusal::NotVisible)
        );
        assert_eq!(
            check_assign(&r, &conv(Status::Open, None), Some(&r)),
            Ok(())
        );
    }

    #[test]
    fn i3_reply_assigns_to_available_replier() {
        let a = agent(1, Role::Agent, Access::Full, true);
        assert_eq!(
            reply_assigns(&a, &conv(Status::Open, None), MessageKind::Text),
            Some(AgentId(1))
        );
        assert_eq!(
            reply_assigns(&a, &conv(Status::Open, None), MessageKind::Note),
            None
        );
        assert_eq!(
            reply_assigns(&a, &conv(Status::Open, Some(2)), MessageKind::Text),
            None
        );
        let away = agent(2, Role::Agent, Access::Full, false);
        assert_eq!(
            reply_assigns(&away, &conv(Status::Open, None), MessageKind::Text),
            None
        );
    }

    #[test]
    fn w5_assignment_event_carries_display_name_and_avatar() {
        let mut a = agent(1, Role::Agent, Access::Full, true);
        a.avatar_url = Some("https://example.com/a.png".into());
        let e = assignment_event(None, Some(&a));
        assert_eq!(
            e,
            Event::Joined {
                agent_id: AgentId(1),
                display_name: "A1".into(),
                avatar_url: a.avatar_url.clone(),
                by: None
            }
        );
        assert!(e.visible_to_visitor());
        assert!(!assignment_event(Some(&a), None).visible_to_visitor());
    }

    #[test]
    fn i4_who_may_close() {
        let restricted = agent(1, Role::Agent, Access::Restricted, true);
        // Restricted non-assignee cannot close, even an unassigned one.
        assert_eq!(
            check_close(&restricted, &conv(Status::Open, None)),
            Err(Refusal::Forbidden)
        );
        assert_eq!(
            check_close(&restricted, &conv(Status::Open, Some(2))),
            Err(Refusal::NotVisible)
        );
        assert_eq!(
            check_close(&restricted, &conv(Status::Open, Some(1))),
            Ok(())
        );
        let full = agent(2, Role::Agent, Access::Full, true);
        assert_eq!(check_close(&full, &conv(Status::Open, Some(3))), Ok(()));
        assert_eq!(
            check_close(&full, &conv(Status::Closed, Some(3))),
            Err(Refusal::Closed)
        );
    }

    #[test]
    fn i4_reopen_policy() {
        let full = agent(2, Role::Agent, Access::Full, true);
        let closed = conv(Status::Closed, Some(2));
        assert_eq!(check_reopen(&full, &closed, ReopenPolicy::Reopen), Ok(()));
        assert_eq!(
            check_reopen(&full, &closed, ReopenPolicy::Final),
            Err(Refusal::ReopenNotAllowed)
        );
        assert_eq!(
            check_reopen(&full, &conv(Status::Open, None), ReopenPolicy::Reopen),
            Err(Refusal::NotClosed)
        );
        assert_eq!(
            visitor_message_effect(&closed, ReopenPolicy::Reopen),
            VisitorMessageEffect::Reopen
        );
        assert_eq!(
            visitor_message_effect(&closed, ReopenPolicy::Final),
            VisitorMessageEffect::StartNew
        );
        assert_eq!(
            visitor_message_effect(&conv(Status::Snoozed, None), ReopenPolicy::Final),
            VisitorMessageEffect::Wake
        );
        assert_eq!(
            visitor_message_effect(&conv(Status::Open, None), ReopenPolicy::Final),
            VisitorMessageEffect::Post
        );
    }

    #[test]
    fn i4_snooze_and_wake() {
        let full = agent(2, Role::Agent, Access::Full, true);
        let c = conv(Status::Open, Some(2));
        assert_eq!(
            check_snooze(&full, &c, now() - Duration::minutes(1), now()),
            Err(Refusal::SnoozeInPast)
        );
        assert_eq!(
            check_snooze(&full, &c, now() + Duration::hours(1), now()),
            Ok(())
        );
        let mut s = conv(Status::Snoozed, Some(2));
        s.snoozed_until = Some(now() + Duration::hours(1));
        assert!(!snooze_due(&s, now()));
        assert!(snooze_due(&s, now() + Duration::hours(1)));
    }

    #[test]
    fn i4_notes_on_closed_but_no_replies() {
        let full = agent(2, Role::Agent, Access::Full, true);
        let closed = conv(Status::Closed, None);
        assert_eq!(check_agent_post(&full, &closed, MessageKind::Note), Ok(()));
        assert_eq!(
            check_agent_post(&full, &closed, MessageKind::Text),
            Err(Refusal::Closed)
        );
        assert_eq!(
            check_agent_post(&full, &closed, MessageKind::Event),
            Err(Refusal::Forbidden)
        );
    }

    #[test]
    fn i4_inactivity_closes_bot_only_conversations() {
        let settings = SiteSettings {
            inactivity_timeout_secs: 600,
            ..SiteSettings::default()
        };
        let mut c = conv(Status::Open, None);
        c.handoff_at = None;
        assert!(!inactivity_due(
            &c,
            &settings,
            now() + Duration::seconds(599)
        ));
        assert!(inactivity_due(
            &c,
            &settings,
            now() + Duration::seconds(600)
        ));
        c.handoff_at = Some(now());
        assert!(!inactivity_due(&c, &settings, now() + Duration::hours(5)));
    }

    #[test]
    fn i5_only_owner_deletes() {
        let c = conv(Status::Open, None);
        assert_eq!(
            check_delete(&agent(1, Role::Admin, Access::Full, true), &c),
            Err(Refusal::OwnerOnly)
        );
        assert_eq!(
            check_delete(&agent(1, Role::Agent, Access::Full, true), &c),
            Err(Refusal::OwnerOnly)
        );
        assert_eq!(
            check_delete(&agent(1, Role::Owner, Access::Full, true), &c),
            Ok(())
        );
    }

    #[test]
    fn w4_online_offline_and_wait_time() {
        let settings = SiteSettings {
            wait_time_secs: 60,
            ..SiteSettings::default()
        };
        assert!(site_online(true, &settings.office_hours, now()));
        assert!(!site_online(false, &settings.office_hours, now()));
        let h = handoff(&settings, true, now());
        assert_eq!(h.wait_until, Some(now() + Duration::seconds(60)));
        assert!(!h.offline);
        assert!(matches!(h.event, Event::Online { .. }));
        let h = handoff(&settings, false, now());
        assert!(h.offline && h.wait_until.is_none());
        assert!(matches!(h.event, Event::Offline { .. }));
        let mut c = conv(Status::Open, None);
        assert!(wait_expired(&c));
        c.assignee_id = Some(AgentId(1));
        assert!(!wait_expired(&c));
    }

    #[test]
    fn w4_offline_message_says_when_back() {
        let settings = SiteSettings {
            office_hours: OfficeHours {
                timezone: "Europe/Stockholm".into(),
                intervals: vec![crate::office_hours::OpenInterval {
                    day: "mon".into(),
                    from: "09:00".into(),
                    to: "17:00".into(),
                }],
            },
            ..SiteSettings::default()
        };
        // Saturday.
        assert!(!site_online(true, &settings.office_hours, now()));
        let m = offline_message(&settings, now());
        assert!(m.starts_with(&settings.offline_message));
        assert!(m.contains("Monday 09:00"), "{m}");
    }

    #[test]
    fn w3_who_may_chat() {
        assert_eq!(check_may_start(WhoMayChat::Anyone, false), Ok(()));
        assert_eq!(
            check_may_start(WhoMayChat::LoggedInToChat, false),
            Err(Refusal::LoginRequired)
        );
        assert_eq!(check_may_start(WhoMayChat::LoggedInToChat, true), Ok(()));
        assert!(widget_visible(WhoMayChat::LoggedInToChat, false));
        assert!(!widget_visible(WhoMayChat::LoggedInOnly, false));
        assert!(widget_visible(WhoMayChat::LoggedInOnly, true));
    }

    #[test]
    fn e3_notifications() {
        let mine = agent(1, Role::Agent, Access::Full, true);
        let mut nosy = agent(2, Role::Agent, Access::Full, true);
        nosy.notify_all_messages = true;
        let restricted = agent(3, Role::Agent, Access::Restricted, true);
        let agents = vec![mine.clone(), nosy.clone(), restricted.clone()];
        let c = conv(Status::Open, Some(1));
        let msg = Message {
            id: MessageId(1),
            conversation_id: c.id,
            seq: 1,
            visible_seq: Some(1),
            kind: MessageKind::Text,
            author_kind: AuthorKind::Visitor,
            agent_id: None,
            author_name: None,
            body: "hi".into(),
            event: None,
            attachment: None,
            client_id: None,
            mentions: vec![],
            created_at: now(),
        };
        let n = message_notifications(&c, &msg, &agents);
        assert_eq!(
            n,
            vec![
                (AgentId(1), NotificationKind::NewMessageMine),
                (AgentId(2), NotificationKind::NewMessageOther)
            ]
        );
        let note = Message {
            kind: MessageKind::Note,
            author_kind: AuthorKind::Agent,
            agent_id: Some(AgentId(1)),
            mentions: vec![AgentId(2), AgentId(3)],
            ..msg
        };
        // The restricted agent cannot see the conversation, so is not told even when mentioned.
        assert_eq!(
            message_notifications(&c, &note, &agents),
            vec![(AgentId(2), NotificationKind::Mention)]
        );
        let new = conv(Status::Open, None);
        assert_eq!(new_conversation_notifications(&new, &agents).len(), 3);
    }

    #[test]
    fn c1_merge_never_from_unverified_into_verified() {
        let mut existing = Contact {
            id: ContactId(1),
            site_id: SiteId(1),
            name: None,
            email: Some("a@b.se".into()),
            phone: None,
            external_id: Some("42".into()),
            verified: true,
            consent_text: None,
            consent_at: None,
            user_agent: None,
            ip: None,
            location: None,
            tags: vec![],
            created_at: now(),
        };
        assert!(!may_merge_into(false, &existing));
        assert!(may_merge_into(true, &existing));
        existing.verified = false;
        assert!(may_merge_into(false, &existing));
    }
}
