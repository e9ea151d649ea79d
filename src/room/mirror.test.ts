// MirrorPump.hold: a delete's redaction and the pump never interleave (plain Node).
import { describe, expect, it } from "vitest";
import type { Entry } from "../protocol/frames.js";
import { Mirror, MirrorPump } from "./mirror.js";

const entry = (seq: number): Entry => ({ roomId: "r", seq, id: `i${seq}`, kind: "message", userId: "u", text: `t${seq}`, clientMsgId: `c${seq}`, createdAt: "" });

describe("MirrorPump.hold", () => {
  it("waits for the pass in flight, and no pass writes while held; a catch-up asked meanwhile runs after the release", async () => {
    const log: string[] = [];
    let finishWrite: () => void = () => {};
    let top = 2;
    const pump = new MirrorPump(
      {
        read: async (after, upto) => Array.from({ length: upto - after }, (_, i) => entry(after + i + 1)),
        write: (batch) => {
          log.push(`write ${batch.map((e) => e.seq).join(",")}`);
          return new Promise<void>((resolve) => {
            finishWrite = resolve;
          });
        },
        save: async () => {},
      },
      0,
      100,
    );
    const first = pump.catchUp(() => top);
    await Promise.resolve();
    let held = false;
    const holding = pump.hold().then((release) => {
      held = true;
      log.push("held");
      return release;
    });
    await new Promise((r) => setTimeout(r, 5));
    expect(held).toBe(false); // the write in flight is not done
    finishWrite();
    await first;
    const release = await holding;
    top = 4;
    const later = pump.catchUp(() => top);
    await new Promise((r) => setTimeout(r, 5));
    expect(log).toEqual(["write 1,2", "held"]); // nothing written while held
    log.push("released");
    release();
    await new Promise((r) => setTimeout(r, 5));
    finishWrite();
    await later;
    expect(log).toEqual(["write 1,2", "held", "released", "write 3,4"]);
    expect(pump.mirroredSeq).toBe(4);
  });
});

describe("Mirror linger", () => {
  it("commits within the linger share one pass; with no linger every commit starts one at once", async () => {
    const writes: number[][] = [];
    let top = 0;
    const timers: Array<() => void> = [];
    const make = (lingerMs: number) =>
      new Mirror(
        {
          lastSeq: () => top,
          read: async (after, upto) => Array.from({ length: upto - after }, (_, i) => entry(after + i + 1)),
          write: async (batch) => {
            writes.push(batch.map((e) => e.seq));
          },
          save: async () => {},
          retryIn: async () => {},
          warn: () => {},
        },
        1000,
        lingerMs,
        (run) => timers.push(run),
      );
    const lingering = make(10);
    lingering.boot(0, 0);
    for (let i = 1; i <= 3; i++) {
      top = i;
      lingering.committed();
    }
    expect(timers.length).toBe(1); // one timer for the three commits
    expect(writes).toEqual([]);
    timers.shift()?.();
    await new Promise((r) => setTimeout(r, 5));
    expect(writes).toEqual([[1, 2, 3]]);
    const direct = make(0);
    direct.boot(3, 3);
    top = 4;
    direct.committed();
    await new Promise((r) => setTimeout(r, 5));
    expect(timers.length).toBe(0);
    expect(writes).toEqual([[1, 2, 3], [4]]);
  });
});
