import { describe, expect, it } from "vitest";
import {
  decodeEntriesPage,
  decodeEntry,
  decodeErrorBody,
  decodeMessage,
  decodeMessagesPage,
  decodeProfiles,
  decodeRoomSummaries,
  decodeServerFrame,
  readServerFrame,
} from "./decode.js";
import { msg, unknownEntry } from "./testing/messages.js";

/** An entry as a version-1 server sends it: no `kind`. */
const v1 = (seq: number) => {
  const { kind: _, ...rest } = msg(seq);
  return rest;
};

describe("decodeServerFrame", () => {
  it("accepts every server frame type of the protocol, unchanged", () => {
    const frames = [
      { type: "ready", roomId: "r1", messages: [msg(1), msg(2)], latestSeq: 2, truncated: false, protocol: 2 },
      { type: "message", message: msg(3) },
      { type: "ack", clientMsgId: "c", seq: 3, id: "m-3", createdAt: "2026-01-01T00:00:00.003Z" },
      { type: "error", code: "rate_limited", message: "slow", clientMsgId: "c", retryAfterMs: 250 },
      { type: "pong" },
    ];
    for (const frame of frames) expect(decodeServerFrame(JSON.stringify(frame))).toEqual(frame);
  });

  it("rejects frames that would corrupt the list: bad seq, missing fields, wrong types, non-JSON, binary", () => {
    const bad = [
      { type: "message", message: { ...msg(1), seq: 0 } },
      { type: "message", message: { ...msg(1), seq: 1.5 } },
      { type: "message", message: { ...msg(1), seq: "1" } },
      { type: "message", message: { ...msg(1), text: undefined } },
      { type: "ready", roomId: "r1", messages: [msg(1), { seq: 2 }], latestSeq: 2, truncated: false },
      { type: "ready", roomId: "r1", messages: [], latestSeq: -1, truncated: false },
      { type: "ack", clientMsgId: "c", seq: 3 },
      { type: "surprise" },
      [1, 2],
    ];
    for (const frame of bad) expect(decodeServerFrame(JSON.stringify(frame)), JSON.stringify(frame)).toBeUndefined();
    expect(decodeServerFrame("{")).toBeUndefined();
    expect(decodeServerFrame(new ArrayBuffer(2))).toBeUndefined();
  });

  it("maps an error code this SDK does not know to `internal` rather than dropping the frame", () => {
    expect(decodeServerFrame(JSON.stringify({ type: "error", code: "brand_new", message: "m" }))).toEqual({
      type: "error",
      code: "internal",
      message: "m",
    });
  });
});

describe("people frames (read cursors, typing, presence)", () => {
  it("reads ready's cursor, count and presence snapshot, and the receipt, typing and presence frames, unchanged", () => {
    const frames = [
      {
        type: "ready",
        roomId: "r1",
        messages: [msg(1)],
        latestSeq: 1,
        truncated: false,
        protocol: 2,
        readSeq: 0,
        unread: 1,
        presence: [{ userId: "alice" }, { userId: "bob", data: { status: "away" } }],
      },
      { type: "receipt", userId: "bob", seq: 42 },
      { type: "typing", userIds: ["alice", "bob"] },
      { type: "typing", userIds: [] },
      { type: "presence", userId: "bob", online: true },
      { type: "presence", userId: "bob", online: true, data: { status: "away" } },
      { type: "presence", userId: "bob", online: false },
    ];
    for (const frame of frames) expect(decodeServerFrame(JSON.stringify(frame)), frame.type).toEqual(frame);
  });

  it("a ready without them (an older server) still reads; malformed ones are protocol errors, not guesses", () => {
    const base = { type: "ready", roomId: "r1", messages: [], latestSeq: 0, truncated: false, protocol: 2 };
    expect(decodeServerFrame(JSON.stringify(base))).toEqual(base);
    const bad = [
      { ...base, readSeq: -1 },
      { ...base, readSeq: "3" },
      { ...base, unread: 1.5 },
      { ...base, presence: {} },
      { ...base, presence: [{ userId: 7 }] },
      { ...base, presence: [{ userId: "bob", data: "away" }] },
      { type: "receipt", userId: "bob" },
      { type: "receipt", userId: "bob", seq: -2 },
      { type: "typing" },
      { type: "typing", userIds: ["bob", 3] },
      { type: "presence", userId: "bob" },
      { type: "presence", userId: "bob", online: "yes" },
      { type: "presence", userId: "bob", online: true, data: [1] },
    ];
    for (const frame of bad)
      expect(readServerFrame(JSON.stringify(frame)), JSON.stringify(frame)).toEqual({ result: "malformed" });
  });
});

describe("entries and protocol versions", () => {
  it("an entry without `kind` (a version-1 server) is a message; a ready without `protocol` is version 1", () => {
    expect(decodeEntry(v1(1))).toEqual(msg(1));
    expect(decodeMessage(v1(1))).toEqual(msg(1));
    expect(
      decodeServerFrame(JSON.stringify({ type: "ready", roomId: "r1", messages: [v1(1)], latestSeq: 1, truncated: false })),
    ).toEqual({
      type: "ready",
      roomId: "r1",
      messages: [msg(1)],
      latestSeq: 1,
      truncated: false,
      protocol: 1,
    });
  });

  it("an entry of a kind this SDK does not know is kept by its envelope, in frames and pages, but is not a message", () => {
    const poll = { ...unknownEntry(2, "poll"), question: "lunch?" };
    expect(decodeEntry(poll)).toEqual(unknownEntry(2, "poll")); // the envelope only
    expect(decodeMessage(poll)).toBeUndefined();
    expect(decodeServerFrame(JSON.stringify({ type: "message", message: poll }))).toEqual({
      type: "message",
      message: unknownEntry(2, "poll"),
    });
    const body = { messages: [msg(1), poll, msg(3)], latestSeq: 3 };
    expect(decodeEntriesPage(body)).toEqual({ entries: [msg(1), unknownEntry(2, "poll"), msg(3)], latestSeq: 3 });
    expect(decodeMessagesPage(body)).toEqual({ messages: [msg(1), msg(3)], latestSeq: 3 });
  });

  it("an entry whose envelope is broken is refused whatever its kind, as is a kind that is not a non-empty string", () => {
    const bad = [
      { ...unknownEntry(2), seq: 0 },
      { ...unknownEntry(2), seq: "2" },
      { ...unknownEntry(2), text: undefined },
      { ...unknownEntry(2), userId: 7 },
      { ...msg(2), kind: 3 },
      { ...msg(2), kind: "" },
      { ...msg(2), kind: null },
    ];
    for (const entry of bad) {
      expect(decodeEntry(entry), JSON.stringify(entry)).toBeUndefined();
      expect(readServerFrame(JSON.stringify({ type: "message", message: entry })), JSON.stringify(entry)).toEqual({
        result: "malformed",
      });
    }
    expect(readServerFrame(JSON.stringify({ type: "ready", roomId: "r1", messages: [], latestSeq: 0, protocol: "2" }))).toEqual({
      result: "malformed",
    });
  });

  it("tells a frame type from the future (to be ignored) from a malformed frame (to be reported)", () => {
    expect(readServerFrame(JSON.stringify({ type: "from-the-future", users: ["bob"] }))).toEqual({
      result: "unknown-type",
      type: "from-the-future",
    });
    for (const raw of ["{", "[]", JSON.stringify({ type: 42 }), JSON.stringify({ type: "" }), JSON.stringify({ no: "type" })]) {
      expect(readServerFrame(raw), raw).toEqual({ result: "malformed" });
    }
    expect(readServerFrame(new ArrayBuffer(2))).toEqual({ result: "malformed" });
  });
});

describe("REST bodies", () => {
  it("reads a messages page and an error body", () => {
    expect(decodeMessagesPage({ messages: [msg(1)], latestSeq: 9 })).toEqual({ messages: [msg(1)], latestSeq: 9 });
    expect(decodeMessagesPage({ messages: [msg(1)] })).toBeUndefined();
    expect(decodeErrorBody({ error: { code: "forbidden", message: "no" } })).toEqual({ code: "forbidden", message: "no" });
    expect(decodeErrorBody("Internal Server Error")).toBeUndefined();
  });

  it("reads profiles and the rooms list; refuses bodies of the wrong shape", () => {
    const profile = { userId: "bob", name: "Bob", avatarUrl: null, data: { tz: "UTC" }, updatedAt: "2026-01-01T00:00:00.000Z" };
    expect(decodeProfiles({ profiles: [profile] })).toEqual([profile]);
    expect(decodeProfiles({ profiles: [{ ...profile, name: 3 }] })).toBeUndefined();
    expect(decodeProfiles({ profile })).toBeUndefined();
    const room = { roomId: "r1", name: "R", visibility: "public", role: "member", latestSeq: 5, readSeq: 2, unread: 3 };
    expect(decodeRoomSummaries({ rooms: [room] })).toEqual([room]);
    // A role or visibility from a newer server reads as the least it could allow.
    expect(decodeRoomSummaries({ rooms: [{ ...room, role: "owner", visibility: "secret" }] })).toEqual([
      { ...room, role: "viewer", visibility: "private" },
    ]);
    expect(decodeRoomSummaries({ rooms: [{ ...room, unread: -1 }] })).toBeUndefined();
    expect(decodeRoomSummaries({})).toBeUndefined();
  });
});
