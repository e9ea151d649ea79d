// The pure parts of moderation: verdicts, the restrictions cache (its race with a slow read) and
// the writer's screen.

import { describe, expect, it } from "vitest";
import { NO_RESTRICTIONS, type ModerationState, type Restriction } from "../storage/moderation.js";
import { mayRestrict, ModerationCache, verdictOf } from "./moderation.js";

const restriction = (until: string | null): Restriction => ({ until, reason: null, createdBy: "alice", createdAt: "2026-12-03T00:00:00.000Z" });
const NOW = Date.parse("2026-12-03T12:00:00.000Z");
const later = new Date(NOW + 60_000).toISOString();
const earlier = new Date(NOW - 1).toISOString();

describe("verdictOf", () => {
  it("a ban (room or tenant) refuses reading and sending; a mute only sending; expired ones nothing", () => {
    const cases: Array<[Partial<ModerationState>, string | undefined, string | undefined]> = [
      [{}, undefined, undefined],
      [{ ban: restriction(null) }, "banned", "banned"],
      [{ ban: restriction(later) }, "banned", "banned"],
      [{ ban: restriction(earlier) }, undefined, undefined],
      [{ tenantBan: restriction(null) }, "banned", "banned"],
      [{ mute: restriction(later) }, undefined, "muted"],
      [{ mute: restriction(earlier) }, undefined, undefined],
      [{ mute: restriction(later), tenantBan: restriction(null) }, "banned", "banned"],
    ];
    for (const [patch, read, send] of cases) {
      const state = { ...NO_RESTRICTIONS, ...patch };
      expect(verdictOf(state, "read", NOW)?.code, JSON.stringify(patch)).toBe(read);
      expect(verdictOf(state, "send", NOW)?.code, JSON.stringify(patch)).toBe(send);
    }
    expect(verdictOf({ ...NO_RESTRICTIONS, tenantBan: restriction(later) }, "read", NOW)?.message).toContain(`until ${later}`);
  });
});

describe("ModerationCache", () => {
  const deferred = () => {
    let resolve!: (s: ModerationState) => void;
    const promise = new Promise<ModerationState>((r) => {
      resolve = r;
    });
    return { promise, resolve };
  };

  it("a read that started before a ban and answers after it does not bring the old state back", async () => {
    const read = deferred();
    // Postgres: the first read is slow; every later one sees what is stored by then.
    let stored: ModerationState = NO_RESTRICTIONS;
    let reads = 0;
    const cache = new ModerationCache(() => (reads++ === 0 ? read.promise : Promise.resolve(stored)), () => NOW);
    const loading = cache.stateOf("bob");
    stored = { ...NO_RESTRICTIONS, ban: restriction(null) };
    cache.apply("bob", { ban: restriction(null) });
    read.resolve(NO_RESTRICTIONS);
    // The stale read is discarded and the current state (the ban) returned; the cache keeps it.
    expect((await loading).ban).not.toBeNull();
    expect(cache.known("bob")?.ban).not.toBeNull();
  });

  it("while a change is pinned (being written) reads never replace memory, even past the TTL; undo restores what was", async () => {
    let now = NOW;
    const cache = new ModerationCache(async () => NO_RESTRICTIONS, () => now, 1000);
    await cache.stateOf("bob");
    const undo = cache.apply("bob", { ban: restriction(null) }, true);
    now += 5000;
    expect((await cache.stateOf("bob")).ban).not.toBeNull();
    undo();
    expect(cache.known("bob")?.ban).toBeNull();
    expect((await cache.stateOf("bob")).ban).toBeNull();
  });

  it("lifting a restriction of a user not loaded assumes nothing about their others (the next check reads them)", async () => {
    const cache = new ModerationCache(async () => ({ ...NO_RESTRICTIONS, ban: restriction(null) }), () => NOW);
    cache.apply("bob", { tenantBan: null });
    expect(cache.known("bob")).toBeUndefined();
    expect((await cache.stateOf("bob")).ban).not.toBeNull();
  });

  it("the screen refuses entries of users known to be banned or muted, never the server's or system entries", () => {
    const cache = new ModerationCache(async () => NO_RESTRICTIONS, () => NOW);
    cache.apply("bob", { ban: restriction(null) });
    cache.apply("carol", { mute: restriction(later) });
    expect(cache.screen({ userId: "bob", kind: "message" })?.code).toBe("banned");
    expect(cache.screen({ userId: "carol", kind: "reaction" })?.code).toBe("muted");
    expect(cache.screen({ userId: "dave", kind: "message" })).toBeUndefined();
    expect(cache.screen({ userId: "~system", kind: "delete" })).toBeUndefined();
    expect(cache.screen({ userId: "bob", kind: "system" })).toBeUndefined();
  });
});

describe("mayRestrict", () => {
  it("admins restrict members but not admins or themselves; the server actor restricts anyone but itself", () => {
    expect(mayRestrict("alice", "bob", "member")).toBeUndefined();
    expect(mayRestrict("alice", "bob", null)).toBeUndefined();
    expect(mayRestrict("alice", "carol", "admin")?.code).toBe("forbidden");
    expect(mayRestrict("alice", "alice", "admin")?.code).toBe("bad_request");
    expect(mayRestrict("~system", "carol", "admin")).toBeUndefined();
    expect(mayRestrict("alice", "~system", null)?.code).toBe("bad_request");
  });
});
