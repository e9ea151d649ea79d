// Read cursors, unread counts and receipts (cursors.ts) through the public API, against the
// FakeServer, which keeps cursors and counts unread the way the real room does.

import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { READ_THROTTLE_MS } from "./cursors.js";
import {
  deliverFrom,
  dropAndReconnect,
  flush,
  type Harness,
  harness,
  joinRoom,
  MAX_BACKOFF_MS,
  reconnect,
} from "./testing/harness.js";
import { seededRandom } from "./testing/messages.js";

beforeEach(() => {
  vi.useFakeTimers();
  vi.setSystemTime(new Date("2026-03-01T00:00:00Z"));
});
afterEach(() => {
  vi.useRealTimers();
});

const readFrames = (h: Harness) => h.server.sockets.flatMap((s) => s.sentOfType("read").map((f) => f.seq));

describe("unread", () => {
  it("starts from ready, adds each message of someone else, and never counts your own messages or other kinds", async () => {
    const h = harness();
    h.server.commit("a", "bob");
    h.server.commit("b", "carol");
    h.server.commit("mine", "alice"); // moves alice's cursor to 3
    h.server.commit("c", "bob");
    const room = await joinRoom(h);
    expect({ readSeq: room.readSeq, unread: room.unread }).toEqual({ readSeq: 3, unread: 1 });
    const events: Array<[number, number]> = [];
    room.on("unread", (unread, readSeq) => events.push([unread, readSeq]));
    deliverFrom(h, "bob");
    deliverFrom(h, "dave");
    h.server.latest.deliver({ type: "message", message: h.server.commitEntry("poll", "a poll", "bob") });
    expect(room.unread).toBe(3);
    // A message of yours (from any device) reads everything before it.
    const sending = room.send("reply");
    await flush();
    h.server.latest.commitAndAck(h.server.latest.sends[0] as never);
    await sending;
    expect({ readSeq: room.readSeq, unread: room.unread }).toEqual({ readSeq: 8, unread: 0 });
    expect(room.unread).toBe(h.server.unreadFor("alice"));
    expect(events).toEqual([
      [2, 3],
      [3, 3],
      [0, 8],
    ]);
  });

  it("a message listener already reads the count that includes its message", async () => {
    const h = harness();
    const room = await joinRoom(h);
    const seen: number[] = [];
    room.on("message", () => seen.push(room.unread));
    deliverFrom(h, "bob");
    deliverFrom(h, "bob");
    expect(seen).toEqual([1, 2]);
  });

  it("is recounted from the new ready after a reconnect, messages missed while away included, none counted twice", async () => {
    const h = harness();
    h.server.commitMany(4);
    const room = await joinRoom(h);
    expect(room.unread).toBe(4);
    deliverFrom(h, "bob"); // 5, live
    await dropAndReconnect(h);
    h.server.commit("missed 1", "bob"); // 6 and 7, in the next ready
    h.server.commit("missed 2", "carol");
    h.server.latest.ready();
    await flush();
    expect(h.server.latest.url.searchParams.get("since")).toBe("5");
    expect(room.unread).toBe(7);
    expect(room.unread).toBe(h.server.unreadFor("alice"));
    deliverFrom(h, "bob");
    expect(room.unread).toBe(8);
  });

  it("with several devices: your receipt from another device moves readSeq and recounts; your message from another device clears it", async () => {
    const h = harness();
    h.server.commitMany(6);
    const room = await joinRoom(h);
    expect(room.unread).toBe(6);
    // Your phone read up to 4.
    h.server.moveCursor("alice", 4);
    h.server.latest.deliver({ type: "receipt", userId: "alice", seq: 4 });
    expect({ readSeq: room.readSeq, unread: room.unread }).toEqual({ readSeq: 4, unread: 2 });
    // An older receipt (out of order) never moves it back.
    h.server.latest.deliver({ type: "receipt", userId: "alice", seq: 2 });
    expect(room.readSeq).toBe(4);
    deliverFrom(h, "bob"); // 7
    expect(room.unread).toBe(3);
    // Your laptop sends: everything up to it is read.
    deliverFrom(h, "alice");
    expect({ readSeq: room.readSeq, unread: room.unread }).toEqual({ readSeq: 8, unread: 0 });
    deliverFrom(h, "bob");
    expect(room.unread).toBe(1);
    expect(room.unread).toBe(h.server.unreadFor("alice"));
    // And the next socket agrees with the server.
    await reconnect(h);
    expect({ readSeq: room.readSeq, unread: room.unread }).toEqual({ readSeq: 8, unread: 1 });
  });

  it("stays exact, step after step, over a random run of messages, reads, receipts from other devices and reconnects", async () => {
    for (const seed of [1, 2, 3]) {
      const random = seededRandom(seed);
      const h = harness();
      h.server.commitMany(20);
      const room = await joinRoom(h, { last: 10 });
      for (let step = 0; step < 150; step++) {
        const r = random();
        if (r < 0.45) deliverFrom(h, random() < 0.5 ? "bob" : "carol");
        else if (r < 0.55)
          deliverFrom(h, "alice"); // another device of alice's
        else if (r < 0.65) h.server.latest.deliver({ type: "message", message: h.server.commitEntry("poll") });
        else if (r < 0.8) {
          const top = room.messages.at(-1)?.seq ?? 0;
          room.markRead(Math.max(room.messages[0]?.seq ?? 0, Math.floor(random() * (top + 1))));
        } else if (r < 0.9) {
          // Another device read up to somewhere this one holds (see the next test for older seqs).
          const first = room.messages[0]?.seq ?? 1;
          const seq = first + Math.floor(random() * (h.server.store.length - first + 1));
          h.server.moveCursor("alice", seq);
          h.server.latest.deliver({ type: "receipt", userId: "alice", seq: h.server.cursors.get("alice") ?? seq });
        } else {
          await dropAndReconnect(h);
          if (random() < 0.5) h.server.commit("while away", "bob");
          h.server.latest.ready();
          await flush();
        }
        await vi.advanceTimersByTimeAsync(READ_THROTTLE_MS); // let coalesced read frames reach the server
        expect({ seed, step, unread: room.unread }).toEqual({ seed, step, unread: h.server.unreadFor("alice") });
        expect({ seed, step, readSeq: room.readSeq }).toEqual({ seed, step, readSeq: h.server.cursors.get("alice") ?? 0 });
      }
      h.client.close();
    }
  });

  it("a cursor moved to before the list's start (not held here) gives the best bound, and the next ready makes it exact", async () => {
    const h = harness();
    // Messages, and every third seq a poll (not counted): 20 seqs, 14 messages.
    for (let i = 1; i <= 20; i++) {
      if (i % 3 === 0) h.server.commitEntry("poll");
      else h.server.commit(`m${i}`, "bob");
    }
    const room = await joinRoom(h, { last: 5 }); // holds 16..20
    expect(room.unread).toBe(14);
    // Another device read up to 3: of 4..15 (not held here) some are polls, but which is unknown.
    h.server.moveCursor("alice", 3);
    h.server.latest.deliver({ type: "receipt", userId: "alice", seq: 3 });
    expect(h.server.unreadFor("alice")).toBe(12);
    expect(room.unread).toBe(14); // at most 4 held + 12 not held, and never more than before
    expect(room.readSeq).toBe(3);
    await reconnect(h);
    expect(room.unread).toBe(h.server.unreadFor("alice"));
  });
});

describe("markRead", () => {
  it("updates readSeq and unread at once, defaulting to the newest entry held", async () => {
    const h = harness();
    h.server.commitMany(5);
    const room = await joinRoom(h);
    room.markRead(3);
    expect({ readSeq: room.readSeq, unread: room.unread }).toEqual({ readSeq: 3, unread: 2 });
    room.markRead();
    expect({ readSeq: room.readSeq, unread: room.unread }).toEqual({ readSeq: 5, unread: 0 });
  });

  it("sends at most one read frame per 250 ms: the first at once, the calls in between coalesced into one with the newest seq", async () => {
    const h = harness();
    h.server.commitMany(10);
    const room = await joinRoom(h);
    room.markRead(2);
    expect(readFrames(h)).toEqual([2]);
    room.markRead(4);
    room.markRead(6);
    await vi.advanceTimersByTimeAsync(100);
    room.markRead(7);
    expect(readFrames(h)).toEqual([2]);
    await vi.advanceTimersByTimeAsync(READ_THROTTLE_MS - 100);
    expect(readFrames(h)).toEqual([2, 7]);
    // Quiet for longer than the interval: the next call goes out at once again.
    await vi.advanceTimersByTimeAsync(READ_THROTTLE_MS);
    room.markRead(9);
    expect(readFrames(h)).toEqual([2, 7, 9]);
  });

  it("never sends a seq lower than one already sent, and sends nothing for a cursor already there", async () => {
    const h = harness();
    h.server.commitMany(10);
    const room = await joinRoom(h);
    room.markRead(8);
    room.markRead(3);
    await vi.advanceTimersByTimeAsync(READ_THROTTLE_MS * 2);
    room.markRead(8);
    room.markRead(5);
    await vi.advanceTimersByTimeAsync(READ_THROTTLE_MS * 2);
    expect(readFrames(h)).toEqual([8]);
    expect(room.readSeq).toBe(8);
    // A receipt of yours from another device: nothing to send for seqs below it.
    h.server.latest.deliver({ type: "receipt", userId: "alice", seq: 10 });
    room.markRead(9);
    await vi.advanceTimersByTimeAsync(READ_THROTTLE_MS * 2);
    expect(readFrames(h)).toEqual([8]);
  });

  it("refuses a seq beyond the newest known, or one that is not a non-negative integer", async () => {
    const h = harness();
    h.server.commitMany(3);
    const room = await joinRoom(h);
    expect(() => room.markRead(4)).toThrow(expect.objectContaining({ code: "bad_request" }));
    expect(() => room.markRead(-1)).toThrow(expect.objectContaining({ code: "bad_request" }));
    expect(() => room.markRead(1.5)).toThrow(expect.objectContaining({ code: "bad_request" }));
    expect(readFrames(h)).toEqual([]);
  });

  it("offline, the frame waits for the next socket and goes out right after its ready", async () => {
    const h = harness();
    h.server.commitMany(5);
    const room = await joinRoom(h);
    h.server.latest.serverClose(1006);
    room.markRead(4);
    expect(room.unread).toBe(1);
    await vi.advanceTimersByTimeAsync(MAX_BACKOFF_MS);
    expect(h.server.latest.sent).toEqual([]);
    h.server.latest.ready();
    await flush();
    expect(h.server.latest.sentOfType("read")).toEqual([{ type: "read", seq: 4 }]);
    expect({ readSeq: room.readSeq, unread: room.unread }).toEqual({ readSeq: 4, unread: 1 });
  });

  it("a cursor the server lost (its room evicted before writing it) is sent again after the reconnect, and unread stays counted from it", async () => {
    const h = harness();
    h.server.commitMany(6);
    const room = await joinRoom(h);
    h.server.loseReads = true;
    room.markRead(5);
    expect(readFrames(h)).toEqual([5]);
    expect(h.server.cursors.get("alice")).toBeUndefined(); // lost
    h.server.loseReads = false;
    await dropAndReconnect(h);
    deliverFrom(h, "bob"); // committed while away: 7
    h.server.latest.ready(); // readSeq 0, unread 7: the server's view
    await flush();
    expect(h.server.latest.sentOfType("read")).toEqual([{ type: "read", seq: 5 }]);
    expect(h.server.cursors.get("alice")).toBe(5);
    expect({ readSeq: room.readSeq, unread: room.unread }).toEqual({ readSeq: 5, unread: 2 });
    expect(room.unread).toBe(h.server.unreadFor("alice"));
    // When the server has it, nothing is sent again.
    await reconnect(h);
    expect(h.server.latest.sentOfType("read")).toEqual([]);
  });
});

describe("receipts", () => {
  it("come from receipt frames and from each user's own messages, only ever forward, with a receipt event", async () => {
    const h = harness();
    h.server.commit("hi", "bob");
    h.server.commit("hey", "carol");
    const room = await joinRoom(h);
    const events: string[] = [];
    room.on("receipt", (userId, seq) => events.push(`${userId}@${seq}`));
    expect(Object.fromEntries(room.receipts)).toEqual({ bob: 1, carol: 2 });
    h.server.latest.deliver({ type: "receipt", userId: "bob", seq: 2 });
    h.server.latest.deliver({ type: "receipt", userId: "bob", seq: 1 }); // older: ignored
    deliverFrom(h, "carol"); // 3
    h.server.latest.deliver({ type: "receipt", userId: "alice", seq: 3 });
    expect(Object.fromEntries(room.receipts)).toEqual({ bob: 2, carol: 3, alice: 3 });
    expect(events).toEqual(["bob@2", "carol@3", "alice@3"]);
    // They survive a reconnect (cursors never move back).
    await reconnect(h);
    expect(room.receipts.get("bob")).toBe(2);
  });
});
