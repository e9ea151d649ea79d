// The browser SDK for edge-chat: `new ChatClient({ baseUrl, tokenProvider })`, then `client.join(roomId)`.
// No runtime dependencies; runs in browsers and Node 20+ (with a global or injected WebSocket).

export { ChatClient, type ChatClientOptions, type JoinOptions } from "./client.js";
export { ChatClientError, ClientErrorCode, type ChatClientErrorCode } from "./errors.js";
export type { ListMessagesOptions, Member, PostResult, ProfileUpdate } from "./http.js";
export type { AnyEntry, MessagesPage, Profile, RoomSummary, UnknownEntry } from "./decode.js";
export type { Profiles } from "./profiles.js";
export type { PresenceChange, PresenceData } from "./presence.js";
export type { PendingAction, PendingSend, PendingStatus } from "./outbox.js";
export type { ChangeOptions, ChangeResult, ThreadOptions } from "./changes.js";
export type { TimelineLine } from "./timeline.js";
export type { ConnectionState, Room, RoomEvents } from "./room.js";
export type { FetchLike, ResponseLike, WebSocketConstructor, WebSocketLike } from "./transport.js";
export type { BackoffPolicy } from "./backoff.js";
export { ErrorCode } from "../protocol/errors.js";
export {
  EntryKind,
  PROTOCOL_VERSION,
  SystemEvent,
  type DeleteEntry,
  type EditEntry,
  type Entry,
  type Message,
  type ReactionEntry,
  type ReactionSummary,
  type SystemEntry,
} from "../protocol/frames.js";
export { MAX_HISTORY_LIMIT, MAX_TEXT_CHARS } from "../protocol/limits.js";
export type { PresenceEntry } from "../protocol/frames.js";
export type { Attachment, UploadOptions, UploadProgress } from "./attachments.js";
export { PartType, MAX_PARTS, type AttachmentPart, type LinkPart, type Part, type SendPart, type TextPart } from "../protocol/parts.js";
