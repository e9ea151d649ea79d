import { describe, expect, it } from "vitest";
import { decodeErrorBody, decodeMessagesPage, decodeServerFrame } from "./decode.js";
import { msg } from "./testing/messages.js";

describe("decodeServerFrame", () => {
  it("accepts every server frame type of the protocol, unchanged", () => {
    const frames = [
      { type: "ready", roomId: "r1", messages: [msg(1), msg(2)], latestSeq: 2, truncated: false },
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

describe("REST bodies", () => {
  it("reads a messages page and an error body", () => {
    expect(decodeMessagesPage({ messages: [msg(1)], latestSeq: 9 })).toEqual({ messages: [msg(1)], latestSeq: 9 });
    expect(decodeMessagesPage({ messages: [msg(1)] })).toBeUndefined();
    expect(decodeErrorBody({ error: { code: "forbidden", message: "no" } })).toEqual({ code: "forbidden", message: "no" });
    expect(decodeErrorBody("Internal Server Error")).toBeUndefined();
  });
});
