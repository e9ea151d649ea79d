// MirrorPump.hold: a delete's redaction and the pump never interleave (plain Node).
import { describe, expect, it } from "vitest";
import type { Entry } from "../protocol/frames.js";
import { MirrorPump } from "./mirror.js";

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
