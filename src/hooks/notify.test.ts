// Who is notified about a message: offline members once per burst, mentions always (if offline here).
import { describe, expect, it } from "vitest";
import type { Entry } from "../protocol/frames.js";
import { mentionsIn, Notifier } from "./notify.js";

const msg = (seq: number, text: string, extra: Partial<Entry> = {}): Entry =>
  ({ roomId: "r", seq, id: `id${seq}`, kind: "message", userId: "alice", text, clientMsgId: `c${seq}`, createdAt: "2026-01-01T00:00:00.000Z", ...extra }) as Entry;

describe("notifications", () => {
  it("finds @userId mentions, not e-mail addresses, without trailing punctuation", () => {
    expect(mentionsIn("hi @bob, ask @carol.smith: and mail x@y.com @dave.")).toEqual(["bob", "carol.smith", "dave"]);
  });

  it("an offline member is notified once per burst, again after reading; online members and the sender never; mentions always", async () => {
    const cursors = new Map<string, number>();
    const online = new Set(["carol"]);
    const n = new Notifier("t", { members: async () => ["alice", "bob", "carol", "dan"], online: () => online, readSeq: async (u) => cursors.get(u) ?? 0 });
    const who = async (e: Entry) => (await n.eventsFor([e])).map((x) => `${x.data.userId}:${x.data.reason}`);
    expect(await who(msg(1, "one"))).toEqual(["bob:unread", "dan:unread"]);
    expect(await who(msg(2, "two"))).toEqual([]);
    expect(await who(msg(3, "hey @bob @carol"))).toEqual(["bob:mention"]);
    expect(await who(msg(4, "x", { mentions: ["dan"] } as Partial<Entry>))).toEqual(["dan:mention"]);
    cursors.set("bob", 4);
    expect(await who(msg(5, "five"))).toEqual(["bob:unread"]);
    // Decided once per seq: a second endpoint reading seq 5 gets the same events, and none are added.
    expect((await n.eventsFor([msg(5, "five")])).map((x) => x.id)).toEqual(["t:r:5:notification:bob"]);
    // Only new messages notify.
    expect(await n.eventsFor([{ ...msg(6, ""), kind: "reaction", target: 5, emoji: "x", count: 1 } as Entry])).toEqual([]);
  });
});
