import { describe, expect, it } from "vitest";
import { EntryKind } from "../protocol/frames.js";
import type { SendOutcome } from "../room/results.js";
import { type ForwardedSend, Forwarder } from "./forwarder.js";

const send = (n: number) => ({ kind: EntryKind.Message, clientMsgId: `c${n}`, text: `t${n}` });

describe("Forwarder", () => {
  it("one call in flight; what queues meanwhile goes in the next call, in order", async () => {
    const calls: ForwardedSend[][] = [];
    let release: (() => void) | undefined;
    const forwarder = new Forwarder(async (sends) => {
      calls.push(sends);
      if (calls.length === 1) await new Promise<void>((r) => (release = r));
      return sends.map((s): SendOutcome => ({ ok: false, code: "bad_request", message: s.request.clientMsgId }));
    });
    const outcomes = [1, 2, 3, 4].map((n) => forwarder.send(n % 2 ? "ann" : "bob", send(n)));
    await Promise.resolve();
    expect(calls.length).toBe(1);
    release?.();
    const answers = await Promise.all(outcomes);
    expect(calls.map((c) => c.map((s) => s.request.clientMsgId))).toEqual([["c1"], ["c2", "c3", "c4"]]);
    expect(answers.map((a) => (a.ok ? "" : a.message))).toEqual(["c1", "c2", "c3", "c4"]);
  });

  it("a failed call answers unavailable (resend) and the next batch still goes", async () => {
    let n = 0;
    const forwarder = new Forwarder(async (sends) => {
      if (n++ === 0) throw new Error("primary unreachable");
      return sends.map((): SendOutcome => ({ ok: false, code: "conflict", message: "x" }));
    });
    const first = await forwarder.send("ann", send(1));
    expect(first.ok ? "ok" : first.code).toBe("unavailable");
    const second = await forwarder.send("ann", send(2));
    expect(second.ok ? "ok" : second.code).toBe("conflict");
  });
});
