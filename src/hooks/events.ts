// What an endpoint hears: committed entries of a room's stream turned into webhook events (pure).
// An event takes its identity from the entry it reports, `tenant:room:seq`, so a receiver can
// deduplicate exactly and check that it has every seq it subscribed to. The few events that
// report no single entry (a notification, which rides on the message that caused it; a room
// created or deleted, which takes no seq) carry an id built the same way with a suffix.

import type { Entry } from "../protocol/frames.js";
import { EntryKind, SystemEvent } from "../protocol/frames.js";
import { WebhookEventType } from "./config.js";

export interface WebhookEvent {
  /** `tenant:room:seq` for entries; `tenant:room:seq:notification:user` for notifications; see docs/webhooks.md. */
  id: string;
  type: WebhookEventType;
  tenant: string;
  roomId: string;
  /** The room's seq this event reports (null: room.created / room.deleted, which take no seq). */
  seq: number | null;
  /** When the entry was sequenced (or the change happened). */
  createdAt: string;
  data: Record<string, unknown>;
}

export const eventId = (tenant: string, roomId: string, seq: number): string => `${tenant}:${roomId}:${seq}`;

/** The event type an entry reports (every entry reports exactly one). */
export const typeOfEntry = (entry: Entry): WebhookEventType => {
  switch (entry.kind) {
    case EntryKind.Message:
      return WebhookEventType.MessageCreated;
    case EntryKind.Edit:
      return WebhookEventType.MessageEdited;
    case EntryKind.Delete:
      return WebhookEventType.MessageDeleted;
    case EntryKind.Reaction:
      return WebhookEventType.Reaction;
    case EntryKind.System:
      switch (entry.event) {
        case SystemEvent.MemberAdded:
        case SystemEvent.MemberJoined:
          return WebhookEventType.MemberAdded;
        case SystemEvent.MemberRemoved:
        case SystemEvent.MemberLeft:
          return WebhookEventType.MemberRemoved;
        case SystemEvent.RoleChanged:
          return WebhookEventType.MemberUpdated;
        case SystemEvent.RoomUpdated:
          return WebhookEventType.RoomUpdated;
        case SystemEvent.MemberBanned:
        case SystemEvent.MemberUnbanned:
        case SystemEvent.MemberMuted:
        case SystemEvent.MemberUnmuted:
          return WebhookEventType.MemberModerated;
      }
  }
};

/** The event of one committed entry: its wire form is the event's `data` (docs/protocol.md). */
export const eventOfEntry = (tenant: string, entry: Entry): WebhookEvent => ({
  id: eventId(tenant, entry.roomId, entry.seq),
  type: typeOfEntry(entry),
  tenant,
  roomId: entry.roomId,
  seq: entry.seq,
  createdAt: entry.createdAt,
  data: { ...entry },
});

/** Why a user is notified: they were mentioned, or they are offline with unread messages. */
export type NotificationReason = "mention" | "unread";

export interface Notification {
  userId: string;
  reason: NotificationReason;
  /** The message that caused it. */
  entry: Entry;
  /** The user's unread count in the room at that message, when known. */
  unread?: number;
}

export const notificationEvent = (tenant: string, n: Notification): WebhookEvent => ({
  id: `${eventId(tenant, n.entry.roomId, n.entry.seq)}:notification:${n.userId}`,
  type: WebhookEventType.Notification,
  tenant,
  roomId: n.entry.roomId,
  seq: n.entry.seq,
  createdAt: n.entry.createdAt,
  data: {
    userId: n.userId,
    reason: n.reason,
    ...(n.unread === undefined ? {} : { unread: n.unread }),
    // Enough to render a push ("alice: see you at 5"); the app fetches more if it wants to.
    message: { seq: n.entry.seq, id: n.entry.id, userId: n.entry.userId, text: n.entry.text.slice(0, 200) },
  },
});

/** The events outside the seq order (they take no seq). */
export type RoomEventType = typeof WebhookEventType.RoomCreated | typeof WebhookEventType.RoomDeleted | typeof WebhookEventType.ReportCreated;

/** room.created / room.deleted / report.created: the id says when (a report's, which report). */
export const roomEvent = (
  tenant: string,
  roomId: string,
  type: RoomEventType,
  at: string,
  data: Record<string, unknown>,
): WebhookEvent => ({
  id:
    type === WebhookEventType.ReportCreated
      ? `${tenant}:${roomId}:report:${String(data.id)}`
      : `${tenant}:${roomId}:${type === WebhookEventType.RoomCreated ? "created" : "deleted"}:${Date.parse(at)}`,
  type,
  tenant,
  roomId,
  seq: null,
  createdAt: at,
  data,
});
