// The message lifecycle in the SDK: change entries applied to room.messages (from ready, live
// frames and REST fills) so that every client converges whatever cursor it resumes from, and the
// change calls (edit, delete, react, unreact, reply, thread) through the outbox: acks, errors,
// exactly once across reconnects. The FakeServer is the model: it computes current forms with the
// protocol's applyChange, like the room.

import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { type EntryFrame, type Message, SystemEvent } from "../protocol/frames.js";
import { type AnyEntry, isMessage } from "./decode.js";
import { ChatClientError } from "./errors.js";
import type { Room } from "./room.js";
import { FakeServer } from "./testing/fake-server.js";
import { dropAndReconnect, flush, type Harness, harness, joinRoom, MAX_BACKOFF_MS } from "./testing/harness.js";
import { seededRandom, seqs } from "./testing/messages.js";

beforeEach(() => {
  vi.useFakeTimers();
});

afterEach(() => {
  vi.useRealTimers();
});

/** Longer than any fill retry and the ack grace period. */
const settleLong = () => vi.advanceTimersByTimeAsync(30_000);

const USERS = ["alice", "bob", "carol"] as const;
const EMOJI = ["👍", "🎉", ":tada:"] as const;

/**
 * A run of mixed entries (sends, replies, edits, deletes, reactions and their removals, system
 * entries), each as it was committed, made by a model server from a seeded PRNG: only changes the
 * room would accept. Carol is an admin (deletes anyone's messages).
 */
const script = (seed: number, length: number): AnyEntry[] => {
  const random = seededRandom(seed);
  const pick = <T>(items: readonly T[]): T | undefined => items[Math.floor(random() * items.length)];
  const gen = new FakeServer("r1");
  gen.admins.add("carol");
  const out: AnyEntry[] = [];
  for (let n = 0; out.length < length; n++) {
    const user = pick(USERS) ?? "alice";
    const r = random();
    if (r < 0.05) {
      out.push(gen.commitSystem(pick([SystemEvent.MemberJoined, SystemEvent.RoleChanged]) ?? SystemEvent.MemberJoined, "carol", user));
      continue;
    }
    const live = gen.store.filter(isMessage).filter((m) => !gen.currentForm(m.seq, user)?.deleted);
    const clientMsgId = `c-${n}`;
    let frame: EntryFrame | undefined;
    if (r < 0.3 || live.length === 0) frame = { type: "send", clientMsgId, text: `text ${n}` };
    else if (r < 0.4) {
      const parent = pick(live.filter((m) => m.replyTo === undefined));
      if (parent) frame = { type: "send", clientMsgId, text: `reply ${n}`, replyTo: parent.seq };
    } else if (r < 0.55) {
      const own = pick(live.filter((m) => m.userId === user));
      if (own) frame = { type: "edit", clientMsgId, target: own.seq, text: `edit ${n}` };
    } else if (r < 0.62) {
      const target = pick(live.filter((m) => m.userId === user || user === "carol"));
      if (target) frame = { type: "delete", clientMsgId, target: target.seq };
    } else {
      const target = pick(live);
      const emoji = pick(EMOJI) ?? "👍";
      if (target) {
        const mine = gen.currentForm(target.seq, user)?.reactions?.find((x) => x.emoji === emoji)?.me === true;
        frame = mine
          ? { type: "react", clientMsgId, target: target.seq, emoji, remove: true }
          : { type: "react", clientMsgId, target: target.seq, emoji };
      }
    }
    if (!frame) continue;
    const result = gen.commitFrame(user, frame);
    if ("error" in result) throw new Error(`the script made a change the room refuses: ${result.error.message}`);
    out.push(result.entry);
  }
  return out;
};

/** Commits an entry of the script on the harness's server and delivers it live. */
const live = (h: Harness, entry: AnyEntry) => {
  h.server.append(entry);
  h.server.latest.deliver({ type: "message", message: entry });
};

/** The messages as the model serves them to alice: every message in its current form. */
const modelMessages = (entries: readonly AnyEntry[]): Message[] => {
  const model = new FakeServer("r1");
  for (const entry of entries) model.append(entry);
  return model.store.filter(isMessage).map((m) => model.currentForm(m.seq, "alice") as Message);
};

/** A client that stayed connected from the start: every entry arrived as a live frame. */
const stayedConnected = async (entries: readonly AnyEntry[]): Promise<{ room: Room; updates: number }> => {
  const h = harness();
  const room = await joinRoom(h);
  let updates = 0;
  room.on("update", () => updates++);
  for (const entry of entries) live(h, entry);
  await settleLong();
  return { room, updates };
};

describe("replay convergence", () => {
  for (const seed of [1, 7, 42]) {
    it(`a client that resumes from every cursor ends with the same room.messages as one that stayed connected (seed ${seed})`, async () => {
      const entries = script(seed, 60);
      const reference = await stayedConnected(entries);
      // The reference is the model: every message in its current form, with alice's `me` flags.
      expect(reference.room.messages).toEqual(modelMessages(entries));
      expect(reference.updates).toBeGreaterThan(10);
      const random = seededRandom(seed * 1000);
      for (let cursor = 0; cursor <= entries.length; cursor++) {
        // Live up to the cursor; offline while more is committed (up to `resumeAt`); a ready from
        // the cursor in current form (truncated at times: the rest comes over REST, in current form
        // as of the fill, which may include changes not yet delivered live); then live to the end.
        const resumeAt = cursor + Math.floor(random() * (entries.length - cursor + 1));
        const maxMessages = random() < 0.3 ? 1 + Math.floor(random() * 5) : undefined;
        const committedBeforeFill = resumeAt + Math.floor(random() * (entries.length - resumeAt + 1));
        const h = harness();
        const room = await joinRoom(h);
        const errors: ChatClientError[] = [];
        room.on("error", (e) => errors.push(e));
        for (const entry of entries.slice(0, cursor)) live(h, entry);
        await dropAndReconnect(h);
        for (const entry of entries.slice(cursor, resumeAt)) h.server.append(entry);
        expect(h.server.latest.url.searchParams.get("since")).toBe(String(cursor));
        h.server.latest.ready(maxMessages === undefined ? {} : { maxMessages });
        for (const entry of entries.slice(resumeAt, committedBeforeFill)) h.server.append(entry);
        await flush();
        for (const entry of entries.slice(resumeAt, committedBeforeFill)) h.server.latest.deliver({ type: "message", message: entry });
        for (const entry of entries.slice(committedBeforeFill)) live(h, entry);
        await settleLong();
        const context = `seed ${seed}, cursor ${cursor}, resumed at ${resumeAt}, maxMessages ${maxMessages}`;
        expect(room.messages, context).toEqual(reference.room.messages);
        expect(errors, context).toEqual([]);
        room.leave();
      }
    });

    it(`a client that joins late (last=) holds the newest messages exactly as the connected one does; changes to older ones are ignored without an error (seed ${seed})`, async () => {
      const entries = script(seed, 60);
      const reference = await stayedConnected(entries);
      for (let at = 0; at <= entries.length; at += 5) {
        const h = harness();
        for (const entry of entries.slice(0, at)) h.server.append(entry);
        const joining = h.client.join("r1", { last: 8 });
        await flush();
        h.server.latest.ready();
        await flush();
        const room = await joining;
        const errors: ChatClientError[] = [];
        room.on("error", (e) => errors.push(e));
        for (const entry of entries.slice(at)) live(h, entry);
        await settleLong();
        const first = room.timeline[0]?.seq ?? Math.max(1, at - 7);
        expect(room.messages, `joined at ${at}`).toEqual(reference.room.messages.filter((m) => m.seq >= first));
        expect(errors).toEqual([]);
        room.leave();
      }
    });
  }
});

describe("the timeline applies changes", () => {
  it("edits, tombstones, reactions (with `me` for the own user) and reply counts are in room.messages; change entries are not, but their seqs count", async () => {
    const h = harness();
    const room = await joinRoom(h);
    const updates: [number, string, Message][] = [];
    room.on("update", (message, change) => updates.push([message.seq, change.kind, message]));
    const commit = (user: string, frame: EntryFrame) => {
      const result = h.server.commitFrame(user, frame);
      if ("error" in result) throw new Error(result.error.message);
      h.server.latest.deliver({ type: "message", message: result.entry });
    };
    commit("bob", { type: "send", clientMsgId: "b1", text: "helo" }); // 1
    commit("bob", { type: "edit", clientMsgId: "b2", target: 1, text: "hello" }); // 2
    commit("alice", { type: "react", clientMsgId: "a1", target: 1, emoji: "👍" }); // 3
    commit("bob", { type: "react", clientMsgId: "b3", target: 1, emoji: "👍" }); // 4
    commit("carol", { type: "send", clientMsgId: "c1", text: "yes", replyTo: 1 }); // 5
    commit("bob", { type: "send", clientMsgId: "b4", text: "oops" }); // 6
    commit("bob", { type: "delete", clientMsgId: "b5", target: 6 }); // 7
    await flush();
    expect(seqs(room.messages)).toEqual([1, 5, 6]);
    expect(room.messages[0]).toMatchObject({
      text: "hello",
      version: 1,
      reactions: [{ emoji: "👍", count: 2, me: true }],
      replyCount: 1,
      lastReplySeq: 5,
      updatedSeq: 5,
    });
    expect(room.messages[1]).toMatchObject({ seq: 5, replyTo: 1, text: "yes" });
    expect(room.messages[2]).toMatchObject({ seq: 6, deleted: true, text: "" });
    expect(updates.map(([seq, kind]) => [seq, kind])).toEqual([
      [1, "edit"],
      [1, "reaction"],
      [1, "reaction"],
      [1, "message"],
      [6, "delete"],
    ]);
    // Alice takes hers back: the count drops and `me` goes.
    commit("alice", { type: "react", clientMsgId: "a2", target: 1, emoji: "👍", remove: true }); // 8
    await flush();
    expect(room.messages[0]?.reactions).toEqual([{ emoji: "👍", count: 1 }]);
    // The cursor counted every seq: a reconnect resumes after the last change.
    await dropAndReconnect(h);
    expect(h.server.latest.url.searchParams.get("since")).toBe("8");
  });

  it("a delete blanks the text of the edits it redacts in room's entries too", async () => {
    const h = harness();
    const room = await joinRoom(h);
    const entries: AnyEntry[] = [];
    room.on("entry", (e) => entries.push(e));
    for (const frame of [
      { type: "send", clientMsgId: "1", text: "secret" },
      { type: "edit", clientMsgId: "2", target: 1, text: "still secret" },
      { type: "delete", clientMsgId: "3", target: 1 },
    ] as EntryFrame[]) {
      const result = h.server.commitFrame("bob", frame);
      if ("entry" in result) h.server.latest.deliver({ type: "message", message: result.entry });
    }
    await flush();
    expect(room.messages).toEqual([expect.objectContaining({ seq: 1, deleted: true, text: "" })]);
    expect(JSON.stringify(room.messages)).not.toContain("secret");
    // The entry event fired with the edit as it came; the list's own copy is redacted.
    expect(entries.map((e) => e.kind)).toEqual(["message", "edit", "delete"]);
  });

  it("a change to a message older than the list is ignored: no error, no update, no fill", async () => {
    const h = harness();
    h.server.commitMany(5);
    const room = await joinRoom(h, { last: 2 });
    const errors: ChatClientError[] = [];
    const updates: Message[] = [];
    room.on("error", (e) => errors.push(e));
    room.on("update", (m) => updates.push(m));
    const before = room.messages;
    const result = h.server.commitFrame("bob", { type: "edit", clientMsgId: "e", target: 1, text: "edited" });
    if ("entry" in result) h.server.latest.deliver({ type: "message", message: result.entry });
    await settleLong();
    expect(room.messages).toBe(before);
    expect(updates).toEqual([]);
    expect(errors).toEqual([]);
    expect(h.server.historyRequests).toEqual([]);
    // loadOlder brings it in its current form.
    await room.loadOlder(3);
    expect(room.messages[0]).toMatchObject({ seq: 1, text: "edited", version: 1 });
  });

  it("system entries are lines of room.timeline in their place, not in room.messages, and never count as unread", async () => {
    const h = harness();
    const room = await joinRoom(h);
    const systems: string[] = [];
    room.on("system", (e) => systems.push(e.event));
    h.server.latest.deliver({ type: "message", message: h.server.commit("hi", "bob").message });
    h.server.latest.deliver({ type: "message", message: h.server.commitSystem(SystemEvent.MemberJoined, "carol", "carol") });
    h.server.latest.deliver({ type: "message", message: h.server.commit("hello", "carol").message });
    await flush();
    expect(room.timeline.map((l) => [l.seq, l.kind])).toEqual([
      [1, "message"],
      [2, "system"],
      [3, "message"],
    ]);
    expect(seqs(room.messages)).toEqual([1, 3]);
    expect(systems).toEqual(["member_joined"]);
    expect(room.unread).toBe(2);
  });
});

/** The last entry frame the client put on the wire, answered by the server. */
const answerLast = (h: Harness, options: { messageFrame?: boolean; ack?: boolean } = {}) => {
  const frame = h.server.latest.entryFrames.at(-1);
  if (!frame) throw new Error("no entry frame was sent");
  return h.server.latest.answer(frame, options);
};

describe("edit, delete, react, unreact, reply, thread", () => {
  const setup = async () => {
    const h = harness();
    h.server.admins.clear();
    h.server.commit("mine", "alice", "m1"); // 1
    h.server.commit("bobs", "bob", "b1"); // 2
    const room = await joinRoom(h);
    return { h, room };
  };

  it("edit resolves once committed and applied, with the edited message; the frame names the target", async () => {
    const { h, room } = await setup();
    const editing = room.edit(1, "mine, fixed");
    await flush();
    expect(h.server.latest.entryFrames).toEqual([{ type: "edit", clientMsgId: expect.any(String), target: 1, text: "mine, fixed" }]);
    expect(room.pending).toEqual([expect.objectContaining({ type: "edit", text: "mine, fixed", status: "sending" })]);
    answerLast(h);
    const result = await editing;
    expect(result).toMatchObject({ seq: 3, message: { seq: 1, text: "mine, fixed", version: 1 } });
    expect(room.messages[0]?.editedAt).toBeDefined();
    expect(room.pending).toEqual([]);
  });

  it("an ack that overtakes its entry resolves only once the change is in room.messages", async () => {
    const { h, room } = await setup();
    let resolved = false;
    const deleting = room.delete(1).then((r) => {
      resolved = true;
      return r;
    });
    await flush();
    const entry = answerLast(h, { messageFrame: false });
    await flush();
    expect(resolved).toBe(false);
    h.server.latest.deliver({ type: "message", message: entry as AnyEntry });
    expect(await deleting).toMatchObject({ seq: 3, message: { seq: 1, deleted: true, text: "" } });
  });

  it("maps refusals to typed errors: forbidden (not the author), not_found, conflict (deleted), bad_request before sending", async () => {
    const { h, room } = await setup();
    const forbidden = room.edit(2, "not mine");
    await flush();
    answerLast(h);
    await expect(forbidden).rejects.toMatchObject({ name: "ChatClientError", code: "forbidden", message: expect.stringMatching(/^unable to edit the message; /) });
    const missing = room.delete(99);
    await flush();
    answerLast(h);
    await expect(missing).rejects.toMatchObject({ code: "not_found" });
    const del = room.delete(1);
    await flush();
    answerLast(h);
    await del;
    const reply = room.reply(1, "to a tombstone");
    await flush();
    answerLast(h);
    await expect(reply).rejects.toMatchObject({ code: "conflict", message: expect.stringMatching(/^unable to reply; /) });
    const react = room.react(1, "👍");
    await flush();
    answerLast(h);
    await expect(react).rejects.toMatchObject({ code: "conflict" });
    const before = h.server.latest.entryFrames.length;
    await expect(room.react(2, "not an emoji")).rejects.toBeInstanceOf(ChatClientError);
    await expect(room.edit(0, "x")).rejects.toMatchObject({ code: "bad_request" });
    await expect(room.edit(2, "")).rejects.toMatchObject({ code: "bad_request" });
    await flush();
    expect(h.server.latest.entryFrames.length).toBe(before);
    expect(room.pending).toEqual([]);
  });

  it("react when already reacted, and unreact when not reacted, resolve (seq undefined): the state is what was asked", async () => {
    const { h, room } = await setup();
    const first = room.react(2, "🎉");
    await flush();
    answerLast(h);
    expect(await first).toMatchObject({ seq: 3, message: { reactions: [{ emoji: "🎉", count: 1, me: true }] } });
    const again = room.react(2, "🎉");
    await flush();
    answerLast(h); // conflict: you reacted already
    expect(await again).toMatchObject({ seq: undefined, message: { seq: 2 } });
    const off = room.unreact(2, "🎉");
    await flush();
    expect(h.server.latest.entryFrames.at(-1)).toMatchObject({ type: "react", target: 2, emoji: "🎉", remove: true });
    answerLast(h);
    expect(await off).toMatchObject({ seq: 4 });
    expect(room.messages[1]?.reactions).toBeUndefined();
    const offAgain = room.unreact(2, "🎉");
    await flush();
    answerLast(h);
    expect(await offAgain).toMatchObject({ seq: undefined });
  });

  it("reply sends with replyTo and resolves with the reply; the parent's reply count follows; thread() pages the replies over REST", async () => {
    const { h, room } = await setup();
    const replying = room.reply(2, "agreed");
    await flush();
    expect(h.server.latest.entryFrames.at(-1)).toMatchObject({ type: "send", text: "agreed", replyTo: 2 });
    answerLast(h);
    expect(await replying).toMatchObject({ seq: 3, replyTo: 2, text: "agreed" });
    expect(room.messages[1]).toMatchObject({ seq: 2, replyCount: 1, lastReplySeq: 3 });
    h.server.commit("unrelated", "bob");
    const page = await room.thread(2, { limit: 10 });
    expect(page.messages.map((m) => [m.seq, m.text])).toEqual([[3, "agreed"]]);
    const call = h.server.httpCalls.at(-1);
    expect(call?.url.searchParams.get("thread")).toBe("2");
    expect(call?.url.searchParams.get("limit")).toBe("10");
    await expect(room.thread(0)).rejects.toMatchObject({ code: "bad_request" });
  });

  it("changes share the outbox with sends: one on the wire at a time, in the order the calls were made", async () => {
    const { h, room } = await setup();
    const sending = room.send("new");
    const editing = room.edit(1, "edited");
    const reacting = room.react(2, "👍");
    await flush();
    expect(h.server.latest.entryFrames.map((f) => f.type)).toEqual(["send"]);
    answerLast(h);
    await flush();
    expect(h.server.latest.entryFrames.map((f) => f.type)).toEqual(["send", "edit"]);
    answerLast(h);
    await flush();
    answerLast(h);
    expect((await sending).seq).toBe(3);
    expect((await editing).seq).toBe(4);
    expect((await reacting).seq).toBe(5);
  });

  it("an edit and a delete whose acks were lost in a dropped socket are resent with the same clientMsgId and committed exactly once", async () => {
    const { h, room } = await setup();
    const editing = room.edit(1, "once");
    await flush();
    const [edit] = h.server.latest.entryFrames;
    // Committed, but the socket dies before the entry and the ack reach the client.
    answerLast(h, { messageFrame: false, ack: false });
    await dropAndReconnect(h);
    h.server.latest.ready();
    await flush();
    // The resend is deduplicated by the server: the original seq, no second entry.
    expect(h.server.latest.entryFrames).toEqual([edit]);
    answerLast(h);
    const result = await editing;
    expect(result.seq).toBe(3);
    expect(h.server.store.filter((e) => e.kind === "edit")).toHaveLength(1);
    expect(room.messages[0]).toMatchObject({ text: "once", version: 1, updatedSeq: 3 });

    const deleting = room.delete(1);
    await flush();
    // This time the socket dies before the server got the frame at all.
    await dropAndReconnect(h);
    h.server.latest.ready();
    await flush();
    answerLast(h, { ack: false }); // committed and delivered, but the ack is lost with the socket
    await dropAndReconnect(h);
    h.server.latest.ready();
    await flush();
    expect(h.server.latest.entryFrames).toHaveLength(1);
    answerLast(h); // a resend: the original seq, no second entry
    expect((await deleting).seq).toBe(4);
    expect(h.server.store.filter((e) => e.kind === "delete")).toHaveLength(1);
    expect(room.messages[0]).toMatchObject({ seq: 1, deleted: true, text: "" });
  });

  it("leave rejects queued changes with `left`", async () => {
    const { room } = await setup();
    const editing = room.edit(1, "never");
    await flush();
    room.leave();
    await expect(editing).rejects.toMatchObject({ code: "left", message: expect.stringMatching(/^unable to edit the message; /) });
    await vi.advanceTimersByTimeAsync(MAX_BACKOFF_MS);
  });
});
