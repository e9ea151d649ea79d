// Integration tests of the SDK (src/client) against the real Worker and room objects under
// `wrangler dev`, with real Postgres and Redis behind it (e2e/global-setup.ts). Each test names
// the guarantee from src/client/README.md that it checks, and breaks something real to check it:
// the server process, a client's TCP connection, Postgres in the middle of a commit, the token.

import { afterAll, afterEach, describe, expect, inject, it } from "vitest";
import type { ChatClientError, Message, PendingSend } from "../src/client/index.js";
import type { ReadyFrame } from "../src/protocol/frames.js";
import { neonPool } from "../tools/local/neon.js";
import {
  allMessages,
  eventually,
  expOf,
  type FrameVerdict,
  faultStats,
  inParallel,
  isContiguous,
  mintToken,
  postPatiently,
  restartServer,
  type Room,
  seqsOf,
  setFault,
  sleep,
  startServer,
  testUser,
  type TestUser,
  uniqueRoom,
} from "./helpers.js";

const db = neonPool(inject("databaseUrl"), inject("neonWsProxy") || undefined, 1);
/** How many rows Postgres holds for one send: the ground truth of "exactly once". */
const committedRows = async (roomId: string, clientMsgId: string): Promise<number> => {
  const { rows } = await db.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM messages WHERE room_id = $1 AND client_msg_id = $2",
    [roomId, clientMsgId],
  );
  return rows[0]?.n ?? -1;
};

const joined: TestUser[] = [];
const join = async (user: TestUser, roomId: string, options: { last?: number; since?: number } = {}): Promise<Room> => {
  joined.push(user);
  return user.client.join(roomId, { ...options, signal: AbortSignal.timeout(20_000) });
};

afterEach(async () => {
  // A test that failed while the server was down or Postgres was broken must not fail the next ones.
  await startServer();
  await setFault({ mode: "none" });
  for (const user of joined.splice(0)) user.client.close();
});
afterAll(() => db.end());

/** Records what the app sees of a room: message events, states, errors. */
const watch = (room: Room) => {
  const seen = { events: [] as number[], states: [] as string[], errors: [] as ChatClientError[] };
  room.on("message", (m) => seen.events.push(m.seq));
  room.on("state", (s) => seen.states.push(s));
  room.on("error", (e) => seen.errors.push(e));
  return seen;
};

describe("resume", () => {
  it("across a server crash and restart with writers active, every client ends with the same gap-free, duplicate-free history, and each send is committed exactly once", async () => {
    const roomId = uniqueRoom("restart");
    const reader = await join(testUser("reader"), roomId, { last: 50 });
    const seen = watch(reader);
    const writers = await Promise.all(["w1", "w2", "w3"].map(async (u) => ({ user: u, room: await join(testUser(u), roomId) })));

    // Each writer sends one message after another for as long as the test lets it: a send is
    // always on the wire or queued when the server dies.
    const committed = new Map<string, Message>();
    let stop = false;
    const loops = writers.map(async ({ user, room }) => {
      for (let i = 0; !stop && i < 500; i++) {
        const message = await room.send(`${user} #${i}`);
        expect(committed.has(message.clientMsgId)).toBe(false);
        committed.set(message.clientMsgId, message);
        await sleep(10);
      }
    });
    const perWriter = (user: string) => [...committed.values()].filter((m) => m.userId === user).length;
    await eventually("10 commits per writer", () => writers.every((w) => perWriter(w.user) >= 10));

    const before = new Map(writers.map((w) => [w.user, perWriter(w.user)]));
    const restart = await restartServer(500); // SIGKILL: room objects die with sends in flight; down ≥ 0.5 s
    await eventually(
      "every writer committing again after the restart",
      () => writers.every((w) => perWriter(w.user) >= (before.get(w.user) ?? 0) + 10),
      60_000,
    );
    stop = true;
    await Promise.all(loops);

    const latest = Math.max(...[...committed.values()].map((m) => m.seq));
    await eventually("the reader at the latest seq", () => (reader.messages.at(-1)?.seq ?? 0) >= latest);
    for (const w of writers) await eventually(`${w.user} at the latest seq`, () => (w.room.messages.at(-1)?.seq ?? 0) >= latest);

    // The reader went through reconnecting and came back live.
    expect(seen.states).toContain("reconnecting");
    expect(reader.state).toBe("live");
    // No gap, no duplicate, in the list and in the events, from seq 1.
    const seqs = seqsOf(reader.messages);
    expect(seqs[0]).toBe(1);
    expect(isContiguous(seqs)).toBe(true);
    expect(seen.events).toEqual(seqs.slice(seqs.length - seen.events.length));
    // Every committed send is in the list once, at the seq its send() resolved with, and nothing else is.
    const byClientMsgId = new Map(reader.messages.map((m) => [m.clientMsgId, m]));
    expect(byClientMsgId.size).toBe(reader.messages.length);
    for (const m of committed.values()) expect(byClientMsgId.get(m.clientMsgId)).toEqual(m);
    expect(reader.messages.length).toBe(committed.size);
    // What the reader shows is what the server has, and every writer shows the same.
    const server = await allMessages(testUser("auditor").client, roomId, { through: latest });
    expect(server).toEqual(reader.messages);
    for (const w of writers) expect(w.room.messages).toEqual(reader.messages);
    console.log(
      `[e2e] restart: server down for ${restart.ms} ms; ${committed.size} sends (${[...before.values()].join("+")} before the crash), all exactly once`,
    );
  });

  it("a hole of more than 1,000 messages since the cursor is filled over REST: the list stays contiguous and each missed message is shown once", async () => {
    const roomId = uniqueRoom("hole");
    const poster = testUser("poster");
    joined.push(poster);
    for (let i = 0; i < 5; i++) await poster.client.postMessage(roomId, `seed ${i}`);

    const user = testUser("sleeper");
    const readies: ReadyFrame[] = [];
    user.control.inspect = (frame) => {
      if (frame.type === "ready") readies.push(frame);
      return "deliver";
    };
    const room = await join(user, roomId, { last: 50 });
    const seen = watch(room);
    expect(seqsOf(room.messages)).toEqual([1, 2, 3, 4, 5]);

    // The client loses its connection and cannot get back while 1,500 messages are committed.
    user.control.blocked = true;
    user.control.killAll();
    await eventually("reconnecting", () => room.state === "reconnecting");
    // Many posters, as in a busy room (one user may only send so fast).
    const missed = 1500;
    const posters = Array.from({ length: 50 }, (_, i) => testUser(`poster${i}`));
    await inParallel(
      Array.from({ length: missed }, (_, i) => i),
      8,
      (i) => postPatiently((posters[i % posters.length] as TestUser).client, roomId, `while away ${i}`),
    );
    user.control.blocked = false;

    await eventually("the hole filled", () => room.messages.length === 5 + missed, 30_000);
    // The server could only put the newest 1,000 in `ready`: it said so, and the SDK fetched the
    // rest after the cursor over REST before showing any of it.
    const resume = readies.at(-1);
    expect(resume?.truncated).toBe(true);
    expect(resume?.messages).toHaveLength(1000);
    expect(resume?.messages[0]?.seq).toBe(5 + missed - 999);
    const fills = user.http.filter((c) => c.method === "GET" && c.url.searchParams.get("after") === "5");
    expect(fills.length).toBeGreaterThanOrEqual(1);
    expect(fills.every((c) => c.status === 200)).toBe(true);

    expect(seqsOf(room.messages)).toEqual(Array.from({ length: 5 + missed }, (_, i) => i + 1));
    expect(seen.events).toEqual(Array.from({ length: missed }, (_, i) => i + 6));
    expect(room.messages).toEqual(await allMessages(poster.client, roomId, { through: 5 + missed }));
  });
});

describe("exactly-once send", () => {
  it("a send whose commit outcome the server could not know (Postgres cut after the INSERT) is retried with the same clientMsgId and committed exactly once", async () => {
    const roomId = uniqueRoom("ambiguous");
    const user = testUser("amb");
    const room = await join(user, roomId);
    await room.send("warm-up"); // the room has its writer role and a Postgres connection

    const clientMsgId = `amb-${Date.now().toString(36)}`;
    const pending: PendingSend[] = [];
    room.on("pending", (p) => pending.push(...p.filter((s) => s.clientMsgId === clientMsgId)));
    // Checked between the server's answer and the SDK's reaction to it: the failed attempt did commit.
    let rowsWhenRefused = -1;
    user.control.inspect = async (frame): Promise<FrameVerdict> => {
      if (frame.type === "error" && frame.clientMsgId === clientMsgId && rowsWhenRefused < 0) {
        rowsWhenRefused = await committedRows(roomId, clientMsgId);
      }
      return "deliver";
    };
    const { cuts } = await faultStats();
    // The proxy forwards the commit to Postgres, then drops the connection before the answer.
    await setFault({ mode: "cut-after", pattern: clientMsgId, once: true });
    const message = await room.send("ambiguous", { clientMsgId });

    expect((await faultStats()).cuts).toBe(cuts + 1);
    expect(rowsWhenRefused).toBe(1); // committed, though the server had to answer `unavailable`
    expect(pending.some((p) => p.lastError?.code === "unavailable")).toBe(true);
    expect(Math.max(...pending.map((p) => p.attempts))).toBeGreaterThanOrEqual(2); // it was sent again
    expect(await committedRows(roomId, clientMsgId)).toBe(1);
    expect(message).toMatchObject({ seq: 2, clientMsgId, text: "ambiguous" });
    expect(room.messages.filter((m) => m.clientMsgId === clientMsgId)).toEqual([message]);
    expect((await room.send("after")).seq).toBe(3);
    expect(seqsOf(await allMessages(user.client, roomId, { through: 3 }))).toEqual([1, 2, 3]);
  });

  it("a send whose ack (and message frame) is lost with the connection is resent on the next socket and committed exactly once", async () => {
    const roomId = uniqueRoom("lost-ack");
    const user = testUser("lost");
    const room = await join(user, roomId);
    await room.send("first");
    const clientMsgId = `lost-${Date.now().toString(36)}`;
    let dropped = 0;
    // The server commits and answers; the connection dies before the client reads a word of it.
    user.control.inspect = (frame) => {
      const mine =
        (frame.type === "ack" && frame.clientMsgId === clientMsgId) ||
        (frame.type === "message" && frame.message.clientMsgId === clientMsgId);
      if (!mine || dropped > 0) return "deliver";
      dropped++;
      return "drop-and-kill";
    };
    const sockets = user.control.sockets.length;
    const pending: PendingSend[] = [];
    room.on("pending", (p) => pending.push(...p.filter((s) => s.clientMsgId === clientMsgId)));
    const message = await room.send("lost ack", { clientMsgId });

    expect(dropped).toBe(1);
    expect(user.control.sockets.length).toBeGreaterThan(sockets); // it reconnected
    expect(Math.max(...pending.map((p) => p.attempts))).toBe(2);
    expect(await committedRows(roomId, clientMsgId)).toBe(1);
    expect(message).toMatchObject({ seq: 2, clientMsgId });
    expect(seqsOf(room.messages)).toEqual([1, 2]);
    expect(room.messages[1]).toEqual(message);
    expect(seqsOf(await allMessages(user.client, roomId, { through: 2 }))).toEqual([1, 2]);
  });
});

describe("message lifecycle", () => {
  /** Rows in Postgres for one entry (any kind) of a user: the ground truth of "exactly once". */
  const rowsOf = async (roomId: string, clientMsgIds: readonly string[]): Promise<Map<string, number>> => {
    const { rows } = await db.query<{ id: string; n: number }>(
      "SELECT client_msg_id AS id, count(*)::int AS n FROM messages WHERE room_id = $1 AND client_msg_id = ANY($2) GROUP BY client_msg_id",
      [roomId, clientMsgIds],
    );
    return new Map(rows.map((r) => [r.id, r.n]));
  };

  it("edits, reactions and deletes made across a server crash and restart are each committed exactly once, and every client converges on the server's current forms", async () => {
    const roomId = uniqueRoom("lifecycle-restart");
    const editorUser = testUser("editor");
    const watcherUser = testUser("watcher");
    const editor = await join(editorUser, roomId);
    const watcher = await join(watcherUser, roomId, { last: 200 });
    const errors: ChatClientError[] = [];
    watcher.on("error", (e) => errors.push(e));
    let watcherAt = 0;
    watcher.on("entry", (e) => (watcherAt = e.seq));
    const targets: number[] = [];
    for (let i = 0; i < 12; i++) targets.push((await editor.send(`message ${i}`)).seq);

    // One change after another (edits, reactions on and off, a few deletes, replies) for as long as
    // the test lets it: a change is always on the wire or queued when the server dies.
    const changes: { clientMsgId: string; seq: number | undefined; kind: string; target: number }[] = [];
    let stop = false;
    const loop = (async () => {
      for (let i = 0; !stop && i < 400; i++) {
        const target = targets[i % targets.length] ?? 0;
        const clientMsgId = `change-${i}-${Date.now().toString(36)}`;
        const form = editor.messages.find((m) => m.seq === target);
        if (form?.deleted) continue;
        const step = i % 7;
        if (step === 6 && i % 5 === 0) {
          const r = await editor.delete(target, { clientMsgId });
          changes.push({ clientMsgId, seq: r.seq, kind: "delete", target });
        } else if (step === 5) {
          const reply = await editor.reply(target, `reply ${i}`, { clientMsgId });
          changes.push({ clientMsgId, seq: reply.seq, kind: "reply", target });
        } else if (step % 2 === 0) {
          const r = await editor.edit(target, `message ${target}, edit ${i}`, { clientMsgId });
          changes.push({ clientMsgId, seq: r.seq, kind: "edit", target });
        } else {
          const mine = form?.reactions?.some((x) => x.emoji === "👍" && x.me) === true;
          const r = mine ? await editor.unreact(target, "👍", { clientMsgId }) : await editor.react(target, "👍", { clientMsgId });
          changes.push({ clientMsgId, seq: r.seq, kind: "reaction", target });
        }
        await sleep(10);
      }
    })();
    await eventually("20 changes", () => changes.length >= 20);
    const before = changes.length;
    const restart = await restartServer(500);
    await eventually("20 more changes after the restart", () => changes.length >= before + 20, 60_000);
    stop = true;
    await loop;

    // Exactly once: one row per committed change, none for a change that was not needed.
    const committed = changes.filter((c) => c.seq !== undefined);
    const rows = await rowsOf(roomId, committed.map((c) => c.clientMsgId));
    expect([...rows.values()].every((n) => n === 1)).toBe(true);
    expect(rows.size).toBe(committed.length);
    // Each change resolved at its own seq.
    expect(new Set(committed.map((c) => c.seq)).size).toBe(committed.length);

    // Everyone converges on the server's current forms (each with their own `me` flags).
    const latest = Math.max(...committed.map((c) => c.seq ?? 0));
    await eventually("the watcher at the latest change", () => watcherAt >= latest);
    expect(watcher.messages).toEqual(await allMessages(watcherUser.client, roomId, { through: latest }));
    expect(editor.messages).toEqual(await allMessages(editorUser.client, roomId, { through: latest }));
    // The edits per message are the versions the server reports.
    for (const target of targets) {
      const edits = committed.filter((c) => c.kind === "edit" && c.target === target).length;
      const form = watcher.messages.find((m) => m.seq === target);
      if (form?.deleted) continue;
      expect(form?.version ?? 0).toBe(edits);
    }
    expect(errors.filter((e) => e.code !== "unavailable" && e.code !== "network")).toEqual([]);
    console.log(
      `[e2e] lifecycle restart: server down for ${restart.ms} ms; ${committed.length} changes (${before} before the crash), all exactly once`,
    );
  });

  it("an edit and a delete whose ack and entry are lost with the connection are resent on the next socket and committed exactly once", async () => {
    const roomId = uniqueRoom("lifecycle-lost-ack");
    const user = testUser("lost-change");
    const room = await join(user, roomId);
    const { seq } = await room.send("typo hre");
    const lost = new Set([`edit-${Date.now().toString(36)}`, `delete-${Date.now().toString(36)}`]);
    const dropped = new Set<string>();
    // The server commits and answers; the connection dies before the client reads a word of it.
    user.control.inspect = (frame) => {
      const id =
        frame.type === "ack" ? frame.clientMsgId : frame.type === "message" ? frame.message.clientMsgId : undefined;
      if (id === undefined || !lost.has(id) || dropped.has(id)) return "deliver";
      dropped.add(id);
      return "drop-and-kill";
    };
    const [editId, deleteId] = [...lost] as [string, string];
    const edited = await room.edit(seq, "typo here", { clientMsgId: editId });
    expect(edited).toMatchObject({ message: { seq, text: "typo here", version: 1 } });
    const deleted = await room.delete(seq, { clientMsgId: deleteId });
    expect(deleted.message).toMatchObject({ seq, deleted: true, text: "" });
    expect([...dropped].sort()).toEqual([...lost].sort());
    const rows = await rowsOf(roomId, [...lost]);
    expect(rows.get(editId)).toBe(1);
    expect(rows.get(deleteId)).toBe(1);
    expect(room.messages.find((m) => m.seq === seq)).toMatchObject({ deleted: true, text: "" });
    expect(await allMessages(user.client, roomId, { through: deleted.seq ?? 0 })).toEqual(room.messages);
  });

  it("against the real room: a reaction already there resolves, refusals are typed errors, and a viewer-independent thread page lists the replies", async () => {
    const roomId = uniqueRoom("lifecycle-errors");
    const author = await join(testUser("author"), roomId);
    const other = await join(testUser("other"), roomId);
    const { seq } = await author.send("react to me");
    expect((await other.react(seq, "🎉")).seq).toBeGreaterThan(seq);
    expect(await other.react(seq, "🎉")).toMatchObject({ seq: undefined });
    await expect(other.edit(seq, "not mine")).rejects.toMatchObject({ code: "forbidden" });
    await expect(other.delete(seq)).rejects.toMatchObject({ code: "forbidden" });
    await expect(author.edit(999_999, "nothing there")).rejects.toMatchObject({ code: "not_found" });
    await expect(author.react(seq, "not an emoji")).rejects.toMatchObject({ code: "bad_request" });
    const reply = await other.reply(seq, "in the thread");
    await eventually("the reply count at the author", () => author.messages.find((m) => m.seq === seq)?.replyCount === 1);
    const page = await author.thread(seq);
    expect(page.messages.map((m) => m.seq)).toEqual([reply.seq]);
    await author.delete(seq);
    await expect(other.react(seq, "👍")).rejects.toMatchObject({ code: "conflict" });
    await expect(other.reply(seq, "to a tombstone")).rejects.toMatchObject({ code: "conflict" });
    await eventually("the tombstone at the other", () => other.messages.find((m) => m.seq === seq)?.deleted === true);
    expect(other.messages.find((m) => m.seq === seq)?.reactions).toBeUndefined();
  });
});

describe("tokens", () => {
  it("with 5-second tokens the SDK keeps sending, reconnecting and reading past many expiries, and never presents an expired token", async () => {
    const roomId = uniqueRoom("tokens");
    const minted: string[] = [];
    const user = testUser("shortlived", {
      tokenProvider: async () => {
        const token = await mintToken("shortlived", 5);
        minted.push(token);
        return token;
      },
    });
    const room = await join(user, roomId);
    const started = Date.now();
    let sent = 0;
    for (let round = 0; Date.now() - started < 13_000 && round < 100; round++) {
      await room.send(`tick ${round}`);
      sent++;
      await user.client.fetchMessages(roomId, { limit: 5 });
      // Every few rounds the connection drops, so a socket has to be opened with a current token.
      if (round % 6 === 5) {
        user.control.killAll();
        await eventually("live again", () => room.state === "live");
      }
      await sleep(400);
    }
    expect(Date.now() - started).toBeGreaterThan(10_000); // two lifetimes past the first token
    expect(minted.length).toBeGreaterThanOrEqual(3);
    const sockets = user.control.presented;
    expect(sockets.filter((p) => p.at > expOf(minted[0] ?? "") * 1000).length).toBeGreaterThanOrEqual(2);
    // Presented before its `exp`. The SDK counts the lifetime from when it got the token, and
    // `iat`/`exp` are whole seconds, so it may run up to 1 s later than `exp` by the clock.
    const presentations = [...sockets, ...user.http];
    for (const { token, at } of presentations) expect(at).toBeLessThan(expOf(token) * 1000 + 1000);
    expect(user.http.every((c) => c.status === 200)).toBe(true);
    expect(seqsOf(room.messages)).toEqual(Array.from({ length: sent }, (_, i) => i + 1));
    // And an expired token is refused: the check above is not vacuous (30 s of clock tolerance).
    const stale = await fetch(`${inject("e2eUrl")}/v1/rooms/${roomId}/messages`, {
      headers: { authorization: `Bearer ${await mintToken("shortlived", -60)}` },
    });
    expect(stale.status).toBe(401);
  });
});

describe("joins the server refuses", () => {
  it("while Postgres is down a join is refused with an error frame and close 4503, retried with backoff, and resolves once storage is back", async () => {
    const roomId = uniqueRoom("refused");
    await setFault({ mode: "refuse" }); // a new room object cannot claim the room in Postgres
    const user = testUser("patient");
    joined.push(user);
    const refusals: string[] = [];
    user.control.inspect = (frame) => {
      if (frame.type === "error") refusals.push(frame.code);
      return "deliver";
    };
    const joining = user.client.join(roomId, { signal: AbortSignal.timeout(30_000) });
    await eventually("three refused joins", () => user.control.closes.length >= 3, 15_000);
    await setFault({ mode: "none" });
    const room = await joining;
    expect(room.state).toBe("live");
    expect(refusals.slice(0, 3)).toEqual(["unavailable", "unavailable", "unavailable"]);
    expect(user.control.closes.slice(0, 3)).toEqual([4503, 4503, 4503]);
    expect((await room.send("storage is back")).seq).toBe(1);
  });

  it("resuming from a seq the room does not have (4400) puts the room offline with an error event", async () => {
    const roomId = uniqueRoom("ahead");
    const user = testUser("ahead");
    joined.push(user);
    await user.client.postMessage(roomId, "one");
    const joining = user.client.join(roomId, { since: 999 });
    await expect(joining).rejects.toMatchObject({ code: "bad_request" });
    await expect(joining).rejects.toThrow(/since=999 is ahead of the room's latest seq 1/);
    await sleep(1500);
    expect(user.control.sockets).toHaveLength(1); // not retried
  });
});

describe("people: read cursors, typing, presence (against the real room)", () => {
  it("unread and readSeq come from ready and follow the stream; markRead reaches the other client as a receipt, survives a reconnect, and the rooms list agrees", async () => {
    const roomId = uniqueRoom("people-sdk");
    const aliceId = uniqueRoom("alice");
    const bobId = uniqueRoom("bob");
    const aliceUser = testUser(aliceId);
    const bobUser = testUser(bobId);
    const alice = await join(aliceUser, roomId, { last: 50 });
    for (const text of ["one", "two", "three"]) await alice.send(text);
    expect({ readSeq: alice.readSeq, unread: alice.unread }).toEqual({ readSeq: 3, unread: 0 });

    const bob = await join(bobUser, roomId, { last: 50 });
    expect({ readSeq: bob.readSeq, unread: bob.unread }).toEqual({ readSeq: 0, unread: 3 });
    // Presence: the snapshot has both; alice hears bob come online.
    expect([...bob.presence.keys()].sort()).toEqual([aliceId, bobId].sort());
    await eventually("alice sees bob online", () => alice.presence.has(bobId));

    bob.markRead(2);
    expect(bob.unread).toBe(1);
    await eventually("alice gets bob's receipt", () => alice.receipts.get(bobId) === 2);
    // Typing and presence data, both ways.
    alice.typing();
    await eventually("bob sees alice typing", () => bob.typists.includes(aliceId));
    alice.stopTyping();
    await eventually("alice stopped", () => bob.typists.length === 0);
    bob.setPresence({ status: "away" });
    await eventually("alice sees bob away", () => alice.presence.get(bobId)?.status === "away");

    // Bob loses his connection while alice writes twice: his next ready recounts, from his cursor.
    await sleep(400); // past the room's 250 ms cursor flush
    bobUser.control.blocked = true;
    bobUser.control.killAll();
    await eventually("bob reconnecting", () => bob.state === "reconnecting");
    await alice.send("four");
    await alice.send("five");
    bobUser.control.blocked = false;
    await eventually("bob back", () => bob.state === "live" && bob.messages.length === 5, 20_000);
    expect({ readSeq: bob.readSeq, unread: bob.unread }).toEqual({ readSeq: 2, unread: 3 });
    // His presence data went with the old socket; the SDK set it again on the new one.
    await sleep(300);
    expect(alice.presence.get(bobId)).toEqual({ status: "away" });

    bob.markRead();
    expect(bob.unread).toBe(0);
    await eventually("alice sees bob read everything", () => alice.receipts.get(bobId) === 5);
    await sleep(400);
    // Bob only read here (an open room): joining makes it one of his rooms.
    await bobUser.client.becomeMember(roomId);
    const listed = (await bobUser.client.rooms()).find((r) => r.roomId === roomId);
    expect(listed).toMatchObject({ readSeq: 5, unread: 0 });
    // Profiles: one request for both names.
    await aliceUser.client.setProfile({ name: "Alice" });
    const [a, b] = await bobUser.client.profiles.getMany([aliceId, bobId]);
    expect([a?.name, b?.name]).toEqual(["Alice", null]);
    expect(bobUser.http.filter((c) => c.url.pathname === "/v1/users")).toHaveLength(1);
  });

  it("flow control: a client that keeps up reads more than 4 MiB live on one socket and is never closed as too far behind", async () => {
    const roomId = uniqueRoom("flow");
    const reader = testUser(uniqueRoom("reader"));
    const room = await join(reader, roomId, { last: 1 });
    const text = "x".repeat(3900);
    const count = 1200; // about 4.9 MB of frames, past the server's 4 MiB without a `received`
    const posters = Array.from({ length: 40 }, (_, i) => testUser(`flow-poster${i}`));
    await inParallel(
      Array.from({ length: count }, (_, i) => i),
      8,
      (i) => postPatiently((posters[i % posters.length] as TestUser).client, roomId, `${i} ${text}`),
    );
    await eventually("every message read", () => room.messages.at(-1)?.seq === count, 30_000);
    expect(reader.control.closes).toEqual([]);
    expect(reader.control.sockets).toHaveLength(1);
    expect(room.state).toBe("live");
  });
});
