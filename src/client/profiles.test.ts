// Profiles (profiles.ts) and the client's REST calls for people and rooms, against the FakeServer.

import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { PROFILE_MAX_AGE_MS } from "./profiles.js";
import { errorResponse } from "./testing/fake-server.js";
import { flush, harness } from "./testing/harness.js";

beforeEach(() => {
  vi.useFakeTimers();
  vi.setSystemTime(new Date("2026-03-01T00:00:00Z"));
});
afterEach(() => {
  vi.useRealTimers();
});

const profileCalls = (h: ReturnType<typeof harness>) =>
  h.server.httpCalls.filter((c) => c.url.pathname === "/v1/users").map((c) => c.url.searchParams.get("ids"));

const named = (userId: string, name: string) => ({
  userId,
  name,
  avatarUrl: null,
  data: {},
  updatedAt: "2026-01-01T00:00:00.000Z",
});

describe("client.profiles", () => {
  it("ids asked for in the same tick go into one request, each id once; answers are cached", async () => {
    const h = harness();
    h.server.profiles.set("bob", named("bob", "Bob"));
    const asked = [
      h.client.profiles.get("bob"),
      h.client.profiles.get("carol"),
      h.client.profiles.get("bob"),
      Promise.resolve().then(() => h.client.profiles.get("dave")), // a continuation in the same tick
    ];
    await flush();
    const [bob, carol, bobAgain, dave] = await Promise.all(asked);
    expect(profileCalls(h)).toEqual(["bob,carol,dave"]);
    expect(bob).toEqual(named("bob", "Bob"));
    expect(bobAgain).toBe(bob);
    expect(carol).toMatchObject({ userId: "carol", name: null });
    expect(dave?.userId).toBe("dave");
    expect(h.client.profiles.cached("bob")?.name).toBe("Bob");
    await h.client.profiles.getMany(["bob", "carol"]);
    expect(profileCalls(h)).toHaveLength(1);
  });

  it("more than 100 ids are asked for in requests of at most 100, answers in the order asked", async () => {
    const h = harness();
    const ids = Array.from({ length: 250 }, (_, i) => `u${i}`);
    const getting = h.client.profiles.getMany(ids);
    await flush();
    const profiles = await getting;
    expect(profiles.map((p) => p.userId)).toEqual(ids);
    expect(profileCalls(h).map((call) => call?.split(",").length)).toEqual([100, 100, 50]);
  });

  it("a failed request rejects its callers and is not cached: the next get asks again", async () => {
    const h = harness();
    h.server.httpOverrides.push(errorResponse(503, "unavailable", "storage down"));
    const failing = h.client.profiles.get("bob");
    const expectation = expect(failing).rejects.toMatchObject({ code: "unavailable" });
    await flush();
    await expectation;
    expect(h.client.profiles.cached("bob")).toBeUndefined();
    const retry = h.client.profiles.get("bob");
    await flush();
    expect((await retry).userId).toBe("bob");
    expect(profileCalls(h)).toEqual(["bob", "bob"]);
  });

  it("a bad user id is refused without a request, so it cannot fail the batch it would have joined", async () => {
    const h = harness();
    const bad = expect(h.client.profiles.get("no spaces")).rejects.toMatchObject({ code: "bad_request" });
    const good = h.client.profiles.get("bob");
    await flush();
    await bad;
    expect((await good).userId).toBe("bob");
    expect(profileCalls(h)).toEqual(["bob"]);
  });

  it("a profile older than maxAgeMs is asked for again; cached() serves the old one meanwhile", async () => {
    const h = harness();
    h.server.profiles.set("bob", named("bob", "Bob"));
    const first = h.client.profiles.get("bob");
    await flush();
    await first;
    h.server.profiles.set("bob", named("bob", "Robert"));
    await vi.advanceTimersByTimeAsync(PROFILE_MAX_AGE_MS - 1000);
    expect((await h.client.profiles.get("bob")).name).toBe("Bob");
    await vi.advanceTimersByTimeAsync(1000);
    const refreshed = h.client.profiles.get("bob");
    expect(h.client.profiles.cached("bob")?.name).toBe("Bob");
    await flush();
    expect((await refreshed).name).toBe("Robert");
    expect(h.client.profiles.cached("bob")?.name).toBe("Robert");
    expect(profileCalls(h)).toEqual(["bob", "bob"]);
  });

  it("setProfile PUTs /v1/users/me and the cache serves the stored profile without a request", async () => {
    const h = harness();
    const stored = await h.client.setProfile({ name: "Alice", data: { tz: "UTC" } });
    const put = h.server.httpCalls.find((c) => c.method === "PUT");
    expect(put?.url.pathname).toBe("/v1/users/me");
    expect(JSON.parse(put?.body ?? "")).toEqual({ name: "Alice", data: { tz: "UTC" } });
    expect(stored).toMatchObject({ userId: "alice", name: "Alice", data: { tz: "UTC" } });
    expect(await h.client.profiles.get("alice")).toEqual(stored);
    expect(profileCalls(h)).toEqual([]);
  });
});

describe("client.rooms and client.becomeMember", () => {
  it("rooms() lists the user's rooms with readSeq and unread from GET /v1/rooms", async () => {
    const h = harness();
    h.server.commitMany(3);
    h.server.moveCursor("alice", 1);
    h.server.otherRooms.push({ roomId: "r2", latestSeq: 9, readSeq: 9, unread: 0 });
    expect(await h.client.rooms()).toEqual([
      { roomId: "r1", name: "r1", visibility: "public", role: "member", latestSeq: 3, readSeq: 1, unread: 2 },
      { roomId: "r2", name: "r2", visibility: "public", role: "member", latestSeq: 9, readSeq: 9, unread: 0 },
    ]);
  });

  it("rooms() reports a body that is not a rooms list as a protocol error", async () => {
    const h = harness();
    h.server.httpOverrides.push({ status: 200, headers: { get: () => null }, text: async () => '{"rooms":[{"roomId":1}]}' });
    await expect(h.client.rooms()).rejects.toMatchObject({ code: "protocol" });
  });

  it("becomeMember POSTs /v1/rooms/{id}/join, and refuses a bad room id without a request", async () => {
    const h = harness();
    expect(await h.client.becomeMember("r2")).toMatchObject({ userId: "alice", role: "member" });
    expect(h.server.httpCalls.map((c) => `${c.method} ${c.url.pathname}`)).toEqual(["POST /v1/rooms/r2/join"]);
    await expect(h.client.becomeMember("no spaces")).rejects.toMatchObject({ code: "bad_request" });
    expect(h.server.httpCalls).toHaveLength(1);
  });
});
