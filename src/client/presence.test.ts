// Presence (presence.ts) through the public API, against the FakeServer.

import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { MAX_PRESENCE_DATA_BYTES } from "../protocol/limits.js";
import { dropAndReconnect, flush, harness, joinRoom } from "./testing/harness.js";

beforeEach(() => {
  vi.useFakeTimers();
  vi.setSystemTime(new Date("2026-03-01T00:00:00Z"));
});
afterEach(() => {
  vi.useRealTimers();
});

describe("presence", () => {
  it("starts from the ready snapshot, then follows every delta: online, data, offline", async () => {
    const h = harness();
    h.server.presence = [{ userId: "alice" }, { userId: "bob", data: { status: "away" } }];
    const room = await joinRoom(h);
    expect(Object.fromEntries(room.presence)).toEqual({ alice: undefined, bob: { status: "away" } });
    const changes: unknown[] = [];
    room.on("presence", (presence, change) => changes.push([[...presence.keys()], change]));
    h.server.latest.deliver({ type: "presence", userId: "carol", online: true });
    h.server.latest.deliver({ type: "presence", userId: "carol", online: true, data: { status: "busy" } });
    h.server.latest.deliver({ type: "presence", userId: "bob", online: false });
    h.server.latest.deliver({ type: "presence", userId: "bob", online: false }); // already gone: no event
    expect(Object.fromEntries(room.presence)).toEqual({ alice: undefined, carol: { status: "busy" } });
    expect(changes).toEqual([
      [["alice", "bob", "carol"], { kind: "online", userId: "carol", data: undefined }],
      [["alice", "bob", "carol"], { kind: "data", userId: "carol", data: { status: "busy" } }],
      [["alice", "carol"], { kind: "offline", userId: "bob", data: undefined }],
    ]);
  });

  it("a reconnect's snapshot replaces the map: who left while we were away is gone, who came is there", async () => {
    const h = harness();
    h.server.presence = [{ userId: "alice" }, { userId: "bob" }];
    const room = await joinRoom(h);
    const before = room.presence;
    await dropAndReconnect(h);
    h.server.presence = [{ userId: "alice" }, { userId: "dave" }];
    h.server.latest.ready();
    await flush();
    expect([...room.presence.keys()]).toEqual(["alice", "dave"]);
    expect(Object.fromEntries(before)).toEqual({ alice: undefined, bob: undefined }); // a new map, the old one untouched
  });

  it("setPresence sends the frame now and again on every new socket (the data lives on the socket); refuses what the server would", async () => {
    const h = harness();
    const room = await joinRoom(h);
    room.setPresence({ status: "away" });
    expect(h.server.latest.sentOfType("presence")).toEqual([{ type: "presence", data: { status: "away" } }]);
    await dropAndReconnect(h);
    room.setPresence({ status: "busy" }); // offline: remembered
    expect(h.server.latest.sent).toEqual([]);
    h.server.latest.ready();
    await flush();
    expect(h.server.latest.sentOfType("presence")).toEqual([{ type: "presence", data: { status: "busy" } }]);
    expect(() => room.setPresence({ blob: "x".repeat(MAX_PRESENCE_DATA_BYTES) })).toThrow(
      expect.objectContaining({ code: "too_large" }),
    );
    expect(() => room.setPresence([1] as unknown as Record<string, unknown>)).toThrow(
      expect.objectContaining({ code: "bad_request" }),
    );
    expect(h.server.latest.sentOfType("presence")).toHaveLength(1);
  });

  it("a server from before presence (no snapshot in ready) leaves the map to the deltas", async () => {
    const h = harness();
    h.server.presence = undefined;
    const room = await joinRoom(h);
    expect(room.presence.size).toBe(0);
    h.server.latest.deliver({ type: "presence", userId: "bob", online: true });
    expect([...room.presence.keys()]).toEqual(["bob"]);
  });
});
