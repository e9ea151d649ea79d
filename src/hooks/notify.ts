// Offline notifications (pure): who should hear about a new message through the app's push
// provider, as `notification` webhook events. A member with no open socket in the room (at the
// primary or any replica) and unread messages is notified once per burst: after a notification
// at seq N, the next one waits until their read cursor reaches N (they came back and read). A
// mention (`@userId` in the text, or the send's `mentions`) notifies a mentioned member who has
// no socket in the room every time, whatever the burst: being named is worth a push.
//
// Decisions are taken once per seq and shared by every endpoint (`Notifier.eventsFor` caches
// them), from the room's state when the webhook job is built, which is right after the commit.
// The burst memory is in memory only: after a restart a member may get one more notification.

import { EntryKind, type Entry } from "../protocol/frames.js";
import { type Notification, notificationEvent, type WebhookEvent } from "./events.js";

export interface NotifyDeps {
  /** The room's current members (user ids). */
  members(): Promise<string[]>;
  /** Users with an open socket in this room now. */
  online(): ReadonlySet<string>;
  /** A member's read cursor. */
  readSeq(userId: string): Promise<number>;
}

/** Mentions in a text: `@userId` at the start or after whitespace; trailing sentence punctuation is not part of it. */
export const mentionsIn = (text: string): string[] => {
  const out = new Set<string>();
  for (const match of text.matchAll(/(?:^|\s)@([A-Za-z0-9_.@:-]{1,64})/g)) {
    const id = (match[1] ?? "").replace(/[.:@-]+$/, "");
    if (id) out.add(id);
  }
  return [...out];
};

/** At most this many members are considered per message (larger rooms: the first ones by join order). */
export const NOTIFY_MEMBERS_MAX = 500;
const CACHE_SEQS = 2000;

export class Notifier {
  /** user → seq of their last `unread` notification (the burst they are in). */
  private readonly burst = new Map<string, number>();
  private readonly decided = new Map<number, WebhookEvent[]>();

  constructor(
    private readonly tenant: string,
    private readonly deps: NotifyDeps,
  ) {}

  /** The notification events these entries cause, in seq order (each seq decided once). */
  async eventsFor(entries: readonly Entry[]): Promise<WebhookEvent[]> {
    const out: WebhookEvent[] = [];
    let members: string[] | undefined;
    for (const entry of entries) {
      let events = this.decided.get(entry.seq);
      if (!events) {
        if (entry.kind !== EntryKind.Message || entry.deleted) {
          events = [];
        } else {
          members ??= (await this.deps.members()).slice(0, NOTIFY_MEMBERS_MAX);
          events = (await this.decide(entry, members)).map((n) => notificationEvent(this.tenant, n));
        }
        this.decided.set(entry.seq, events);
        if (this.decided.size > CACHE_SEQS) {
          const oldest = this.decided.keys().next().value;
          if (oldest !== undefined) this.decided.delete(oldest);
        }
      }
      out.push(...events);
    }
    return out;
  }

  private async decide(entry: Entry & { kind: "message" }, members: string[]): Promise<Notification[]> {
    const online = this.deps.online();
    const mentioned = new Set([...(entry.mentions ?? []), ...mentionsIn(entry.text)]);
    const out: Notification[] = [];
    for (const userId of members) {
      if (userId === entry.userId || online.has(userId)) continue;
      if (mentioned.has(userId)) {
        out.push({ userId, reason: "mention", entry });
        continue;
      }
      const last = this.burst.get(userId);
      const readSeq = await this.deps.readSeq(userId);
      // Still in the burst they were notified about: one notification is enough.
      if (last !== undefined && readSeq < last) continue;
      if (readSeq >= entry.seq) continue;
      this.burst.set(userId, entry.seq);
      out.push({ userId, reason: "unread", entry });
    }
    return out;
  }
}
