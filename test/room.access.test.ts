// Authorization under races (issue 12): permission changes are serialised in the room object and
// decided against the state at the moment of the effect (src/room/admin.ts has the argument).
// Each race runs many times; each test failed on the code before the fix.

import { describe, expect, it } from "vitest";
import type { ErrorBody } from "../src/protocol/errors.js";
import {
  acmeToken,
  api,
  eventually,
  hasRedis,
  mirroredStream,
  sendAndWait,
  sleep,
  sql,
  TestSocket,
  testEnv,
  uniqueRoom,
  untilWindowHas,
} from "./helpers.js";

const codeOf = (res: { body: unknown }) => (res.body as ErrorBody).error?.code;

const acme = async (user: string) => ({ token: await acmeToken(user) });

const createAcmeRoom = async (admin: string, visibility: "public" | "private"): Promise<string> => {
  const roomId = uniqueRoom("acc");
  const res = await api("/v1/rooms", { ...(await acme(admin)), body: { roomId, visibility } });
  expect(res.status).toBe(201);
  return roomId;
};

const redisAccess = async (tenant: string, roomId: string): Promise<unknown> => {
  const { Redis } = await import("@upstash/redis/cloudflare");
  const redis = new Redis({ url: testEnv.UPSTASH_REDIS_REST_URL, token: testEnv.UPSTASH_REDIS_REST_TOKEN, enableTelemetry: false });
  return redis.get(`chat:{${tenant}:${roomId}}:access`);
};

const visibilityInPostgres = async (tenant: string, roomId: string): Promise<string | undefined> =>
  (await sql<{ visibility: string }>("SELECT visibility FROM rooms WHERE tenant = $1 AND room_id = $2", [tenant, roomId]))[0]
    ?.visibility;

describe("visibility changes cannot race", () => {
  it.runIf(hasRedis())(
    "concurrent 'make private' and 'make public' PATCHes always leave Redis' access mark agreeing with Postgres, and a non-member's edge read follows Postgres (30 trials)",
    async () => {
      const roomId = await createAcmeRoom("racer", "public");
      const owner = await acme("racer");
      for (let i = 0; i < 3; i++) {
        expect((await api(`/v1/rooms/${roomId}/messages`, { ...owner, body: { clientMsgId: `m${i}`, text: "x" } })).status).toBe(201);
      }
      const outsider = await acme("outsider");
      for (let trial = 0; trial < 30; trial++) {
        const [a, b] = trial % 2 === 0 ? (["private", "public"] as const) : (["public", "private"] as const);
        const results = await Promise.all([
          api(`/v1/rooms/${roomId}`, { ...owner, method: "PATCH", body: { visibility: a } }),
          api(`/v1/rooms/${roomId}`, { ...owner, method: "PATCH", body: { visibility: b } }),
        ]);
        for (const r of results) expect(r.status).toBe(200);
        const pg = await visibilityInPostgres("acme", roomId);
        const mark = await redisAccess("acme", roomId);
        expect({ trial, mark: mark === "public" ? "public" : "private" }).toEqual({ trial, mark: pg });
        const edge = await api(`/v1/rooms/${roomId}/messages?after=0`, outsider);
        expect({ trial, status: edge.status }).toEqual({ trial, status: pg === "public" ? 200 : 403 });
      }
    },
  );

  it("while a room is made private, non-members who connect at the same moment never receive an entry committed after the change (20 trials)", async () => {
    for (let trial = 0; trial < 20; trial++) {
      // A new admin each trial: room creations are rate-limited per user.
      const roomId = await createAcmeRoom(`owner${trial}`, "public");
      const owner = await acme(`owner${trial}`);
      const member = await TestSocket.open(roomId, { user: `owner${trial}`, token: owner.token, since: 0 });
      await member.ready();
      const joining = Array.from({ length: 8 }, async (_, i) => {
        const token = await acmeToken(`outsider${i}`);
        try {
          return await TestSocket.open(roomId, { user: `outsider${i}`, token, since: 0 });
        } catch {
          return undefined; // refused at the upgrade: fine
        }
      });
      const patch = api(`/v1/rooms/${roomId}`, { ...owner, method: "PATCH", body: { visibility: "private" } });
      const outsiders = (await Promise.all(joining)).filter((s): s is TestSocket => s !== undefined);
      expect((await patch).status).toBe(200);
      // Committed after the room became private: no outsider may see it.
      expect((await sendAndWait(member, `after-${trial}`, "members only")).type).toBe("ack");
      await sleep(30);
      for (const s of outsiders) {
        expect({ trial, leaked: s.messages().some((m) => m.clientMsgId === `after-${trial}`) }).toEqual({ trial, leaked: false });
        s.close();
      }
      member.close();
    }
  });
});

describe("roles that stick, rooms that cannot be squatted", () => {
  it("a viewer who leaves a public room and re-joins is still a viewer (and cannot send)", async () => {
    const roomId = await createAcmeRoom("sticky-owner", "public");
    const owner = await acme("sticky-owner");
    const viewer = await acme("vic");
    expect((await api(`/v1/rooms/${roomId}/members/vic`, { ...owner, method: "PUT", body: { role: "viewer" } })).status).toBe(200);
    expect((await api(`/v1/rooms/${roomId}/leave`, { ...viewer, method: "POST" })).body).toEqual({ removed: true });
    const rejoined = await api(`/v1/rooms/${roomId}/join`, { ...viewer, method: "POST" });
    expect((rejoined.body as { member: { role: string } }).member.role).toBe("viewer");
    expect(codeOf(await api(`/v1/rooms/${roomId}/messages`, { ...viewer, body: { clientMsgId: "v1", text: "hi" } }))).toBe("forbidden");
    // An ordinary member who leaves comes back as a member; a former admin comes back as a member too.
    expect((await api(`/v1/rooms/${roomId}/members/adam`, { ...owner, method: "PUT", body: { role: "admin" } })).status).toBe(200);
    const adam = await acme("adam");
    expect((await api(`/v1/rooms/${roomId}/leave`, { ...adam, method: "POST" })).status).toBe(200);
    const back = await api(`/v1/rooms/${roomId}/join`, { ...adam, method: "POST" });
    expect((back.body as { member: { role: string } }).member.role).toBe("member");
  });

  it("in an open room, nobody created by first use is its admin, and a viewer who left is not made a member by their first send", async () => {
    const squatted = uniqueRoom("open-first");
    const first = await TestSocket.open(squatted, { user: "starter", since: 0 }); // first use creates it
    await first.ready();
    expect((await sendAndWait(first, "s1", "hello")).type).toBe("ack");
    expect(codeOf(await api(`/v1/rooms/${squatted}`, { user: "starter", method: "PATCH", body: { visibility: "private" } }))).toBe(
      "forbidden",
    );
    first.close();
    // An explicitly created public room of the open tenant: others join by sending.
    const roomId = uniqueRoom("open-viewer");
    expect((await api("/v1/rooms", { user: "open-owner", body: { roomId } })).status).toBe(201);
    expect((await api(`/v1/rooms/${roomId}/members/vic`, { user: "open-owner", method: "PUT", body: { role: "viewer" } })).status).toBe(200);
    expect((await api(`/v1/rooms/${roomId}/leave`, { user: "vic", method: "POST" })).body).toEqual({ removed: true });
    const sent = await api(`/v1/rooms/${roomId}/messages`, { user: "vic", body: { clientMsgId: "v1", text: "hi" } });
    expect(codeOf(sent)).toBe("forbidden");
    const members = (await api(`/v1/rooms/${roomId}/members`, { user: "open-owner" })).body as { members: Array<{ userId: string; role: string }> };
    expect(members.members.find((m) => m.userId === "vic")?.role).toBe("viewer");
    // Someone with no history in the room does join by sending.
    expect((await api(`/v1/rooms/${roomId}/messages`, { user: "newbie", body: { clientMsgId: "n1", text: "hi" } })).status).toBe(201);
  });

  it("the last admin can neither leave, nor be removed, nor be demoted; with a second admin they can", async () => {
    const roomId = await createAcmeRoom("solo", "private");
    const solo = await acme("solo");
    expect(codeOf(await api(`/v1/rooms/${roomId}/leave`, { ...solo, method: "POST" }))).toBe("conflict");
    expect(codeOf(await api(`/v1/rooms/${roomId}/members/solo`, { ...solo, method: "DELETE" }))).toBe("conflict");
    expect(codeOf(await api(`/v1/rooms/${roomId}/members/solo`, { ...solo, method: "PUT", body: { role: "member" } }))).toBe("conflict");
    expect((await api(`/v1/rooms/${roomId}`, solo)).status).toBe(200); // still the admin
    expect((await api(`/v1/rooms/${roomId}/members/duo`, { ...solo, method: "PUT", body: { role: "admin" } })).status).toBe(200);
    expect((await api(`/v1/rooms/${roomId}/members/solo`, { ...solo, method: "PUT", body: { role: "member" } })).status).toBe(200);
    expect(codeOf(await api(`/v1/rooms/${roomId}/members/duo`, { ...(await acme("duo")), method: "PUT", body: { role: "viewer" } }))).toBe(
      "conflict",
    );
  });

  it("reads of an unused room id never create it, in open rooms too", async () => {
    for (const path of ["messages", "status", "members", ""]) {
      const roomId = uniqueRoom("read-only");
      const res = await api(`/v1/rooms/${roomId}${path ? `/${path}` : ""}`, { user: "reader" });
      expect({ path, code: codeOf(res) }).toEqual({ path, code: "not_found" });
      expect(await sql("SELECT 1 FROM rooms WHERE tenant = 'default' AND room_id = $1", [roomId])).toEqual([]);
    }
  });
});

describe("delete and the mirror", () => {
  it.runIf(hasRedis())("a room deleted while its mirror is busy has no stream afterwards; purged and re-created, it starts a clean stream", async () => {
    for (let trial = 0; trial < 5; trial++) {
      const roomId = await createAcmeRoom(`deleter${trial}`, "public");
      const owner = await acme(`deleter${trial}`);
      const sends = Array.from({ length: 30 }, (_, i) =>
        api(`/v1/rooms/${roomId}/messages`, { ...owner, body: { clientMsgId: `d${i}`, text: `old ${i}` } }),
      );
      await Promise.all(sends.slice(0, 10));
      const del = api(`/v1/rooms/${roomId}?purge=true`, { ...owner, method: "DELETE" });
      await Promise.allSettled(sends);
      expect((await del).status).toBe(200);
      await sleep(300); // a mirror pass still running would land by now
      expect({ trial, stream: (await mirroredStream(roomId, "acme")).length }).toEqual({ trial, stream: 0 });
      expect(await redisAccess("acme", roomId)).toBeNull();
      // Re-created: the stream holds only the new room's entries.
      expect((await api("/v1/rooms", { ...owner, body: { roomId, visibility: "public" } })).status).toBe(201);
      expect((await api(`/v1/rooms/${roomId}/messages`, { ...owner, body: { clientMsgId: "new", text: "new room" } })).status).toBe(201);
      const stream = await (async () => {
        for (let i = 0; i < 100; i++) {
          const s = await mirroredStream(roomId, "acme");
          if (s.length > 0) return s;
          await sleep(20);
        }
        return [];
      })();
      expect(stream.map((m) => m.text)).toEqual(["new room"]);
    }
  });
});

describe("bounded memory per socket", () => {
  it("a socket that never says what it received is closed (4503) once it falls 4 MiB behind; it resumes with since and loses nothing; a socket that reports stays open", async () => {
    const roomId = uniqueRoom("slow");
    const silent = await TestSocket.open(roomId, { user: "silent", since: 0 });
    const polite = await TestSocket.open(roomId, { user: "polite", since: 0 });
    await Promise.all([silent.ready(), polite.ready()]);
    const text = "x".repeat(4000);
    const writers = await Promise.all(Array.from({ length: 6 }, (_, w) => TestSocket.open(roomId, { user: `w${w}`, since: 0 })));
    await Promise.all(writers.map((s) => s.ready()));
    // The polite ones report what they processed, like the SDK does.
    const reported = new Map<TestSocket, number>();
    const report = setInterval(() => {
      for (const s of [polite, ...writers]) {
        const last = s.seqs().at(-1) ?? 0;
        if (last > (reported.get(s) ?? 0)) {
          reported.set(s, last);
          s.send({ type: "received", seq: last });
        }
      }
    }, 5);
    for (let i = 0; i < 190; i++) {
      for (const [w, s] of writers.entries()) s.send({ type: "send", clientMsgId: `w${w}-${i}`, text });
    }
    await eventually("silent socket closed", () => silent.closed, 20_000);
    expect(silent.closed?.code).toBe(4503);
    expect(silent.frames.at(-1)).toMatchObject({ type: "error", code: "unavailable", message: expect.stringMatching(/behind/) });
    await polite.untilSeq(6 * 190, 20_000);
    clearInterval(report);
    expect(polite.closed).toBeUndefined();
    // Resuming from the last seq it holds, the silent client gets exactly the rest.
    const held = silent.seqs();
    const last = held[held.length - 1] ?? 0;
    const back = await TestSocket.open(roomId, { user: "silent", since: last });
    await back.ready();
    expect([...held, ...back.seqs()]).toEqual(Array.from({ length: 6 * 190 }, (_, i) => i + 1));
    for (const s of [back, polite, ...writers]) s.close();
  });

  it("the 4 MiB bound counts UTF-8 bytes: a socket that never reports, sent messages of 3-byte characters, is closed (4503) after about 4 MiB, not after 4 Mi UTF-16 units (~11.5 MiB)", async () => {
    const roomId = uniqueRoom("slow-utf8");
    const silent = await TestSocket.open(roomId, { user: "silent", since: 0 });
    await silent.ready();
    const text = "€".repeat(4000); // 4,000 characters, 12,000 bytes of UTF-8
    const writers = await Promise.all(Array.from({ length: 4 }, (_, w) => TestSocket.open(roomId, { user: `w${w}`, since: 0 })));
    await Promise.all(writers.map((s) => s.ready()));
    const reported = new Map<TestSocket, number>();
    const report = setInterval(() => {
      for (const s of writers) {
        const last = s.seqs().at(-1) ?? 0;
        if (last > (reported.get(s) ?? 0)) {
          reported.set(s, last);
          s.send({ type: "received", seq: last });
        }
      }
    }, 5);
    // 700 messages ≈ 8.4 MB of UTF-8 but only ≈ 2.9 Mi UTF-16 units: counted in units, the
    // silent socket would never reach the bound.
    const perWriter = 175;
    for (let i = 0; i < perWriter; i++) {
      for (const [w, s] of writers.entries()) s.send({ type: "send", clientMsgId: `w${w}-${i}`, text });
    }
    try {
      await eventually("silent socket closed", () => silent.closed, 20_000);
    } finally {
      clearInterval(report);
    }
    expect(silent.closed?.code).toBe(4503);
    // Each message frame is over 12,000 bytes, so at most 4 MiB / 12,000 ≈ 350 of them fit.
    expect(silent.seqs().length).toBeLessThanOrEqual(Math.ceil((4 * 1024 * 1024) / 12_000));
    expect(silent.seqs().length).toBeGreaterThan(300);
    for (const s of writers) s.close();
  });

  it("a socket that keeps sending invalid frames is closed (4400) after a burst of typed errors; another socket is unaffected", async () => {
    const roomId = uniqueRoom("garbage");
    const bad = await TestSocket.open(roomId, { user: "bad", since: 0 });
    const good = await TestSocket.open(roomId, { user: "good", since: 0 });
    await Promise.all([bad.ready(), good.ready()]);
    for (let i = 0; i < 200; i++) bad.sendRaw("{not json");
    await eventually("closed", () => bad.closed);
    expect(bad.closed?.code).toBe(4400);
    const errors = bad.ofType("error");
    expect(errors.length).toBeGreaterThan(5);
    expect(errors.length).toBeLessThanOrEqual(22);
    expect((await sendAndWait(good, "g1", "still here")).type).toBe("ack");
    good.close();
  });
});

describe("limits across rooms", () => {
  it("one user's sends are limited across all rooms of the tenant, not only per room: 25 in each of 20 rooms are not all accepted, and each refusal carries retryAfterMs", async () => {
    const user = `spread-${Date.now().toString(36)}`;
    const rooms = Array.from({ length: 20 }, () => uniqueRoom("spread"));
    // The limiter's window is fixed to the clock (10 s): start where the whole burst fits in one.
    await untilWindowHas(10, 6000);
    const results = await Promise.all(
      rooms.map(async (roomId) => {
        const out: Array<{ status: number; body: unknown; headers: Headers }> = [];
        for (let i = 0; i < 25; i++) out.push(await api(`/v1/rooms/${roomId}/messages`, { user, body: { clientMsgId: `c${i}`, text: "x" } }));
        return out;
      }),
    );
    const all = results.flat();
    const accepted = all.filter((r) => r.status === 201).length;
    const limited = all.filter((r) => r.status === 429);
    expect(accepted).toBeLessThan(500);
    expect(accepted).toBeGreaterThanOrEqual(400);
    expect(limited.length).toBe(500 - accepted);
    for (const r of limited) {
      expect(codeOf(r)).toBe("rate_limited");
      expect(Number(r.headers.get("retry-after"))).toBeGreaterThan(0);
    }
    // Nothing refused was committed.
    const stored = await sql<{ n: string }>("SELECT count(*) AS n FROM messages WHERE tenant = 'default' AND user_id = $1", [user]);
    expect(Number(stored[0]?.n)).toBe(accepted);
  });
});
