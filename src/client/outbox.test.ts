import { describe, expect, it } from "vitest";
import { MAX_INTERNAL_RETRIES, newClientMsgId, Outbox } from "./outbox.js";

const ids = (outbox: Outbox) => outbox.pending.map((p) => p.clientMsgId);

describe("Outbox", () => {
  it("holds changes (edit, delete, react) in the same order as sends, each with its type, target and shown text", () => {
    const outbox = new Outbox();
    outbox.enqueue("a", "hello");
    outbox.enqueue("b", { type: "edit", target: 1, text: "hello!" });
    outbox.enqueue("c", { type: "react", target: 1, emoji: "👍", remove: true });
    outbox.enqueue("d", { type: "delete", target: 1 });
    outbox.enqueue("e", { type: "send", text: "in the thread", replyTo: 1 });
    expect(outbox.pending.map((p) => [p.clientMsgId, p.type, p.text])).toEqual([
      ["a", "send", "hello"],
      ["b", "edit", "hello!"],
      ["c", "react", "👍"],
      ["d", "delete", ""],
      ["e", "send", "in the thread"],
    ]);
    expect(outbox.pending[2]?.action).toEqual({ type: "react", target: 1, emoji: "👍", remove: true });
    expect(outbox.pending[4]?.action).toEqual({ type: "send", text: "in the thread", replyTo: 1 });
    expect(outbox.next(0)?.clientMsgId).toBe("a");
    expect(outbox.next(0)).toBeUndefined();
  });

  it("conflict (a deleted target, a reaction already so) is terminal: rejected at once, never retried", () => {
    const outbox = new Outbox();
    outbox.enqueue("a", { type: "edit", target: 1, text: "x" });
    outbox.next(0);
    expect(outbox.fail("a", { code: "conflict", message: "message 1 was deleted" }, 0)).toMatchObject({ kind: "rejected" });
    expect(outbox.size).toBe(0);
  });

  it("keeps the user's order: only the head is on the wire, the next waits for its ack", () => {
    const outbox = new Outbox();
    outbox.enqueue("a", "first");
    outbox.enqueue("b", "second");
    expect(outbox.next(0)?.clientMsgId).toBe("a");
    expect(outbox.next(0)).toBeUndefined(); // b must not overtake a
    expect(outbox.ack("a")?.text).toBe("first");
    expect(outbox.next(0)?.clientMsgId).toBe("b");
  });

  it("settles a send once even if its ack arrives twice", () => {
    const outbox = new Outbox();
    outbox.enqueue("a", "x");
    outbox.next(0);
    expect(outbox.ack("a")).toBeDefined();
    expect(outbox.ack("a")).toBeUndefined();
    expect(outbox.fail("a", { code: "unavailable", message: "late" }, 0)).toEqual({ kind: "unknown" });
  });

  it("after a lost connection the in-flight send is resent first, with the same clientMsgId", () => {
    const outbox = new Outbox();
    outbox.enqueue("a", "x");
    outbox.enqueue("b", "y");
    outbox.next(0);
    outbox.connectionLost();
    expect(outbox.pending.map((p) => p.status)).toEqual(["queued", "queued"]);
    const resent = outbox.next(0);
    expect(resent).toMatchObject({ clientMsgId: "a", attempts: 2, status: "sending" });
  });

  it("unavailable keeps the send at the head and retries it after a backoff; later sends wait behind it", () => {
    const outbox = new Outbox({ baseMs: 500, maxMs: 10_000 }, () => 0.5);
    outbox.enqueue("a", "x");
    outbox.enqueue("b", "y");
    outbox.next(1000);
    const outcome = outbox.fail("a", { code: "unavailable", message: "db down" }, 1000);
    expect(outcome).toMatchObject({ kind: "retry", at: 1250 });
    expect(outbox.wakeAt()).toBe(1250);
    expect(outbox.next(1249)).toBeUndefined(); // neither a (waiting) nor b (behind a)
    expect(outbox.next(1250)?.clientMsgId).toBe("a");
    expect(outbox.fail("a", { code: "unavailable", message: "db down" }, 2000)).toMatchObject({ at: 2500 }); // grows
    expect(ids(outbox)).toEqual(["a", "b"]);
    expect(outbox.pending[0]).toMatchObject({ status: "retrying", lastError: { code: "unavailable" } });
  });

  it("rate_limited waits exactly retryAfterMs", () => {
    const outbox = new Outbox();
    outbox.enqueue("a", "x");
    outbox.next(0);
    expect(outbox.fail("a", { code: "rate_limited", message: "slow down", retryAfterMs: 3000 }, 100)).toMatchObject({
      kind: "retry",
      at: 3100,
    });
  });

  it.each(["bad_request", "too_large", "forbidden", "not_found", "banned", "muted", "rejected"] as const)(
    "%s rejects the send, removes it, and the next one proceeds",
    (code) => {
      const outbox = new Outbox();
      outbox.enqueue("a", "x");
      outbox.enqueue("b", "y");
      outbox.next(0);
      expect(outbox.fail("a", { code, message: "no" }, 0)).toMatchObject({ kind: "rejected", entry: { clientMsgId: "a" } });
      expect(outbox.next(0)?.clientMsgId).toBe("b");
    },
  );

  it(`internal is retried ${MAX_INTERNAL_RETRIES} times, then rejected`, () => {
    const outbox = new Outbox({ baseMs: 1, maxMs: 1 }, () => 0);
    outbox.enqueue("a", "x");
    const kinds: string[] = [];
    for (let i = 0; i <= MAX_INTERNAL_RETRIES; i++) {
      outbox.next(i);
      kinds.push(outbox.fail("a", { code: "internal", message: "bug" }, i).kind);
    }
    expect(kinds).toEqual([...Array(MAX_INTERNAL_RETRIES).fill("retry"), "rejected"]);
    expect(outbox.size).toBe(0);
  });

  it("refuses a clientMsgId that is already pending (it would be deduplicated into the other send)", () => {
    const outbox = new Outbox();
    outbox.enqueue("a", "x");
    expect(() => outbox.enqueue("a", "y")).toThrow(/already pending/);
  });
});

describe("newClientMsgId", () => {
  const uuidV4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

  it("is a UUID v4, also where crypto.randomUUID is missing (browsers on plain http)", () => {
    expect(newClientMsgId()).toMatch(uuidV4);
    const insecure = { getRandomValues: crypto.getRandomValues.bind(crypto) };
    const ids = new Set(Array.from({ length: 100 }, () => newClientMsgId(insecure)));
    expect(ids.size).toBe(100);
    for (const id of ids) expect(id).toMatch(uuidV4);
  });
});
