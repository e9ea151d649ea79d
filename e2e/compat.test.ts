// Old clients against the current server. e2e/fixtures/sdk-v1 is the SDK exactly as it shipped
// before entry kinds (frozen at commit 6c56bca, protocol version 1: no `v` on its socket URL, and
// it knows nothing of `kind` or `ready.protocol`). An app that bundled it cannot be upgraded by
// us, so every change to the server must keep these tests green: it joins, sends, receives live,
// resumes with `since` after losing its connection, and sees every seq exactly once, in order.

import { afterEach, describe, expect, it } from "vitest";
import type { ServerFrame } from "../src/protocol/frames.js";
import { ServerFrameType as ServerFrameTypeV1 } from "./fixtures/protocol-v1/frames.js";
import { ChatClient as ChatClientV1, type Message as MessageV1, type Room as RoomV1 } from "./fixtures/sdk-v1/index.js";
import {
  allMessages,
  baseUrl,
  eventually,
  mintToken,
  SocketControl,
  TEST_RECONNECT,
  testUser,
  type TestUser,
  uniqueRoom,
} from "./helpers.js";

interface V1User {
  userId: string;
  client: ChatClientV1;
  control: SocketControl;
  /** Every frame the server sent this user's sockets, with the index of the socket (in control.sockets). */
  frames: { socket: number; frame: ServerFrame }[];
  /**
   * Every `error` event of this user's rooms. The old SDK reports anything it cannot read as a
   * `protocol` error, so an empty list says the server sent it nothing it could not read.
   */
  errors: string[];
}

const clients: { close(): void }[] = [];
afterEach(() => {
  for (const client of clients.splice(0)) client.close();
});

/** A user on the frozen version-1 SDK, through the same controllable sockets as the other e2e tests. */
const v1User = (userId: string): V1User => {
  const control = new SocketControl();
  const frames: V1User["frames"] = [];
  const errors: string[] = [];
  control.inspect = (frame, socket) => {
    frames.push({ socket: control.sockets.indexOf(socket), frame });
    return "deliver";
  };
  const client = new ChatClientV1({
    baseUrl: baseUrl(),
    tokenProvider: () => mintToken(userId),
    WebSocket: control.WebSocket,
    fetch: (url, init) => fetch(url, init),
    reconnect: TEST_RECONNECT,
  });
  clients.push(client);
  return { userId, client, control, frames, errors };
};

const currentUser = (userId: string): TestUser => {
  const user = testUser(userId);
  clients.push(user.client);
  return user;
};

const joinV1 = async (user: V1User, roomId: string, options: { last?: number; since?: number } = {}): Promise<RoomV1> => {
  const room = await user.client.join(roomId, { ...options, signal: AbortSignal.timeout(20_000) });
  room.on("error", (e) => user.errors.push(`${e.code}: ${e.message}`));
  return room;
};

/**
 * A send of the old SDK, bounded: if it cannot read what the server answers, its send() waits
 * forever for a message it will never hold; this fails fast instead, with what the SDK reported.
 */
const sendV1 = async (user: V1User, room: RoomV1, text: string, timeoutMs = 15_000): Promise<MessageV1> => {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new Error(`${user.userId}'s send of ${JSON.stringify(text)} timed out; its errors: ${JSON.stringify(user.errors)}`),
        ),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([room.send(text), timeout]);
  } finally {
    clearTimeout(timer);
  }
};

/** The seq of every `message` event, in order. */
const watchSeqs = (room: RoomV1): number[] => {
  const seqs: number[] = [];
  room.on("message", (m) => seqs.push(m.seq));
  return seqs;
};

/** The server's history as a version-1 client knows a message: the envelope without `kind`. */
/** The room's messages over REST, read until they reach `through` (the mirror may lag: see allMessages). */
const serverHistoryV1 = async (roomId: string, through?: number): Promise<MessageV1[]> =>
  (await allMessages(currentUser("auditor").client, roomId, through === undefined ? {} : { through })).map(
    ({ kind: _, ...rest }) => rest,
  );

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const seqsOf = (list: readonly { seq: number }[]): number[] => list.map((m) => m.seq);
/** The seqs of the `ready` frames the server sent to sockets from index `fromSocket` on, per socket. */
const readies = (user: V1User, fromSocket = 0) =>
  user.frames.flatMap(({ socket, frame }) =>
    frame.type === "ready" && socket >= fromSocket ? [{ socket, seqs: seqsOf(frame.messages) }] : [],
  );

describe("an SDK of protocol version 1 (frozen at 6c56bca) against the current server", () => {
  it("joins, sends and receives live: every seq once, in order, and what it holds is what the server has", async () => {
    const roomId = uniqueRoom("compat-live");
    const alice = v1User("alice");
    const bob = v1User("bob");
    const aliceRoom = await joinV1(alice, roomId);
    const bobRoom = await joinV1(bob, roomId);
    const events = watchSeqs(aliceRoom);
    const carol = currentUser("carol"); // a current SDK in the same room
    const carolRoom = await carol.client.join(roomId, { signal: AbortSignal.timeout(20_000) });

    const sent: MessageV1[] = [];
    for (let i = 0; i < 6; i++) {
      sent.push(await sendV1(alice, aliceRoom, `alice ${i}`));
      sent.push(await sendV1(bob, bobRoom, `bob ${i}`));
    }
    const latest = (await carolRoom.send("carol, on protocol 2")).seq;
    await eventually("alice (v1) at the latest seq", () => aliceRoom.messages.at(-1)?.seq === latest);
    await eventually("bob (v1) at the latest seq", () => bobRoom.messages.at(-1)?.seq === latest);

    // The old SDK says no version, so the server takes it for version 1.
    expect(alice.control.sockets.map((s) => s.url.searchParams.has("v"))).toEqual([false]);
    const server = await serverHistoryV1(roomId, latest);
    expect(seqsOf(server)).toEqual(range(1, latest));
    // Each send committed once, at the seq it resolved with, in the order it was made.
    for (const m of sent) expect(server.filter((s) => s.clientMsgId === m.clientMsgId)).toEqual([m]);
    expect(seqsOf(sent)).toEqual([...seqsOf(sent)].sort((a, b) => a - b));
    // Every seq exactly once, in order, as events and in the list, equal to what the server holds.
    expect(events).toEqual(range(1, latest));
    expect(aliceRoom.messages).toEqual(server);
    expect(bobRoom.messages).toEqual(server);
    // Live means live: alice's ready (the room was new) was empty, so every seq reached her as a `message` frame.
    expect(readies(alice)).toEqual([{ socket: 0, seqs: [] }]);
    const liveSeqs = alice.frames.flatMap(({ frame }) => (frame.type === "message" ? [frame.message.seq] : []));
    expect(liveSeqs).toEqual(range(1, latest));
  });

  it("resumes with since after losing its connection: what it missed comes in ready, each seq once; a fresh since=0 join gets it all", async () => {
    const roomId = uniqueRoom("compat-resume");
    const alice = v1User("alice");
    const bob = v1User("bob");
    const aliceRoom = await joinV1(alice, roomId);
    const bobRoom = await joinV1(bob, roomId);
    const events = watchSeqs(aliceRoom);
    let lastSeq = 0;
    for (let i = 0; i < 5; i++) lastSeq = (await sendV1(bob, bobRoom, `before ${i}`)).seq;
    const heldBefore = lastSeq;
    await eventually(`alice at seq ${heldBefore}`, () => aliceRoom.messages.at(-1)?.seq === heldBefore);

    // Alice loses her connection and cannot get back for a while; bob keeps writing.
    alice.control.blocked = true;
    alice.control.killAll();
    await eventually("alice reconnecting", () => aliceRoom.state === "reconnecting");
    for (let i = 0; i < 7; i++) lastSeq = (await sendV1(bob, bobRoom, `while away ${i}`)).seq;
    const missedUpTo = lastSeq;
    const socketsBefore = alice.control.sockets.length;
    alice.control.blocked = false;
    await eventually(
      `alice (v1) back live at seq ${missedUpTo}`,
      () => aliceRoom.state === "live" && aliceRoom.messages.at(-1)?.seq === missedUpTo,
    );

    // The one socket that got back in asked for everything after the last seq she had, and got it in ready.
    const [resumed, ...more] = readies(alice, socketsBefore);
    expect(more).toEqual([]);
    expect(alice.control.sockets[resumed?.socket ?? -1]?.url.searchParams.get("since")).toBe(String(heldBefore));
    expect(resumed?.seqs).toEqual(range(heldBefore + 1, missedUpTo));

    const after = (await sendV1(bob, bobRoom, "after she is back")).seq;
    await eventually(`alice at seq ${after}`, () => aliceRoom.messages.at(-1)?.seq === after);
    const server = await serverHistoryV1(roomId, after);
    expect(seqsOf(server)).toEqual(range(1, after));
    expect(events).toEqual(range(1, after));
    expect(aliceRoom.messages).toEqual(server);

    const late = v1User("late");
    const lateRoom = await joinV1(late, roomId, { since: 0 });
    expect(lateRoom.messages).toEqual(server);
    expect(readies(late)).toEqual([{ socket: 0, seqs: range(1, after) }]);
  });

  // Skipped, not deleted: it fails on the server as of 9ce3a2a, which broadcasts `presence` (and
  // typing, receipt) frames to every socket, version-1 ones included; the old SDK reports each as a
  // `protocol` error. Un-skip it once the room leaves those frames out for sockets of protocol 1,
  // or delete it if version-1 clients seeing those error events is accepted (docs/protocol.md).
  it("is sent no frame it cannot read: nothing it would report to the app as a protocol error", async () => {
    // The old SDK reports every frame type it does not know, and every frame it cannot decode, as
    // a `protocol` error event; an app that shows or logs those would do so on every such frame.
    // So the server must shape what it sends for the socket's version, or not send it at all.
    const roomId = uniqueRoom("compat-quiet");
    const alice = v1User("alice");
    const bob = v1User("bob");
    const aliceRoom = await joinV1(alice, roomId);
    const bobRoom = await joinV1(bob, roomId);
    const carol = currentUser("carol"); // a current SDK beside them, for whatever it makes the server send
    const carolRoom = await carol.client.join(roomId, { signal: AbortSignal.timeout(20_000) });
    await sendV1(alice, aliceRoom, "hi");
    await sendV1(bob, bobRoom, "hello");
    const last = (await carolRoom.send("hey")).seq;
    await eventually("alice and bob at the latest seq", () =>
      [aliceRoom, bobRoom].every((room) => room.messages.at(-1)?.seq === last),
    );
    carol.client.close(); // a user leaving, too
    const bye = (await sendV1(alice, aliceRoom, "bye")).seq;
    await eventually("bob at the last seq", () => bobRoom.messages.at(-1)?.seq === bye);
    const known = new Set<string>(Object.values(ServerFrameTypeV1));
    const unreadable = [alice, bob].flatMap((user) =>
      user.frames.flatMap(({ frame }) => (known.has(frame.type) ? [] : [`${user.userId} got ${frame.type}`])),
    );
    expect(unreadable).toEqual([]);
    expect([...alice.errors, ...bob.errors]).toEqual([]);
  });
});
