// Names for the server's wire types, taken from the generated api.gen.ts (npm run gen:api,
// from the server's OpenAPI document). Use these instead of hand-written shapes, so a server
// change that breaks a front-end breaks `tsc`. Types only: nothing here exists at run time.
import type { components } from './api.gen';

type S = components['schemas'];

// ---- shared -------------------------------------------------------------------------------
export type AuthorCard = S['AuthorCard'];
export type AuthorKind = S['AuthorKind'];
export type AgentCard = S['AgentCard'];
export type AttachmentInfo = S['AttachmentInfo'];
export type Event = S['Event'];
export type Status = S['Status'];
export type Rating = S['Rating'];
export type MessageKind = S['MessageKind'];
export type ErrorBody = S['ErrorBody'];

// ---- visitor (the widget) -----------------------------------------------------------------
export type WidgetConfig = S['WidgetConfig'];
export type VisitorContact = S['VisitorContact'];
export type Identity = S['Identity'];
export type SessionResponse = S['SessionResponse'];
export type VisitorConversation = S['VisitorConversation'];
export type VisitorMessage = S['VisitorMessage'];
export type VisitorClientFrame = S['VisitorClientFrame'];
export type VisitorServerFrame = S['VisitorServerFrame'];

// ---- agent (the inbox) --------------------------------------------------------------------
export type Agent = S['Agent'];
export type Role = S['Role'];
export type Access = S['Access'];
export type Me = S['Me'];
export type SetupStatus = S['SetupStatus'];
export type TeamMember = S['TeamMember'];
export type Team = S['Team'];
export type SiteView = S['SiteView'];
export type SiteSettings = S['SiteSettings'];
export type FolderCounts = S['FolderCounts'];
export type Conversation = S['Conversation'];
export type ConversationSummary = S['ConversationSummary'];
export type ConversationDetail = S['ConversationDetail'];
export type Preview = S['Preview'];
export type Message = S['Message'];
export type Attachment = S['Attachment'];
export type Contact = S['Contact'];
export type ContactDetail = S['ContactDetail'];
export type ContactNote = S['ContactNote'];
export type Notification = S['Notification'];
export type NotificationKind = S['NotificationKind'];
export type ReopenPolicy = S['ReopenPolicy'];
export type AgentClientFrame = S['AgentClientFrame'];
export type AgentServerFrame = S['AgentServerFrame'];
export type Reader = S['Reader'];

/** One variant of a tagged union, by its `type`. */
export type FrameOf<U extends { type: string }, T extends U['type']> = Extract<U, { type: T }>;

// ---- request bodies -----------------------------------------------------------------------
export type SessionRequest = S['SessionRequest'];
export type StartRequest = S['StartRequest'];
export type VisitorSendRequest = S['VisitorSendRequest'];
export type VisitorContactUpdate = S['VisitorContactUpdate'];
export type RatingRequest = S['RatingRequest'];
export type PageViewRequest = S['PageViewRequest'];
export type ReadRequest = S['ReadRequest'];
export type SetupRequest = S['SetupRequest'];
export type LoginRequest = S['LoginRequest'];
export type ProfilePatch = S['ProfilePatch'];
export type AvailabilityRequest = S['AvailabilityRequest'];
export type AssignRequest = S['AssignRequest'];
export type SnoozeRequest = S['SnoozeRequest'];
export type TagsRequest = S['TagsRequest'];
export type ContactPatchRequest = S['ContactPatchRequest'];
export type NoteRequest = S['NoteRequest'];
export type NotificationsReadRequest = S['NotificationsReadRequest'];
export type NewAgentRequest = S['NewAgentRequest'];
export type AgentPatchRequest = S['AgentPatchRequest'];
export type TeamRequest = S['TeamRequest'];
export type SiteRequest = S['SiteRequest'];
