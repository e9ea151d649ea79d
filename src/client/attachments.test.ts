// The SDK's side of multipart messages (issue #17): a parts send goes on the wire as a parts
// frame (text ""), is checked before it leaves, and parts from the server decode (unknown part
// types skipped); uploads go through fetch with the token and report progress.

import { describe, expect, it } from "vitest";
import type { ClientFrame, SendFrame } from "../protocol/frames.js";
import { uploadAttachment } from "./attachments.js";
import { decodeMessage } from "./decode.js";
import { Sender } from "./sender.js";
import { TokenSource } from "./token.js";

const sender = () => {
  const written: ClientFrame[] = [];
  const s = new Sender(
    { roomId: "r1", reconnect: { baseMs: 100, maxMs: 1000 }, random: () => 0.5, ackTimeoutMs: 5_000, userId: () => "alice" },
    {
      ready: true,
      write: (f) => {
        written.push(f);
        return true;
      },
      drop: () => undefined,
    },
    { get: () => undefined, firstSeq: 1, noteLatest: () => undefined },
    { pendingChanged: () => undefined, changed: () => undefined, report: () => undefined },
  );
  return { s, sends: () => written.filter((f): f is SendFrame => f.type === "send") };
};

const ID = "0b6f3c1e-8a7d-4c2b-9e1f-1234567890ab";

describe("multipart sends", () => {
  it("go on the wire as parts with text \"\"; the pending entry shows the local summary", () => {
    const { s, sends } = sender();
    s.send({ parts: [{ type: "text", text: "hi" }, { type: "attachment", id: ID }] }).catch(() => undefined);
    expect(sends()).toEqual([{ type: "send", clientMsgId: expect.any(String), text: "", parts: [{ type: "text", text: "hi" }, { type: "attachment", id: ID }] }]);
    expect(s.pending[0]?.text).toBe("hi");
    s.close("left", "done");
  });

  it("are refused before the wire when the server would refuse them (a javascript: link, no parts)", async () => {
    const { s, sends } = sender();
    await expect(s.send({ parts: [{ type: "link", url: "javascript:alert(1)" }] })).rejects.toMatchObject({ code: "bad_request" });
    await expect(s.send({ parts: [] })).rejects.toMatchObject({ code: "bad_request" });
    expect(sends()).toEqual([]);
  });
});

describe("decoding parts", () => {
  it("keeps text, link and attachment parts and skips a part type this SDK does not know", () => {
    const message = decodeMessage({
      roomId: "r",
      seq: 1,
      id: "m",
      kind: "message",
      userId: "u",
      text: "hi",
      clientMsgId: "c",
      createdAt: "2026-12-03T00:00:00.000Z",
      parts: [
        { type: "text", text: "hi" },
        { type: "poll", question: "?" },
        { type: "attachment", id: ID, name: "a.png", size: 3, contentType: "image/png", width: 2, height: 1 },
      ],
    });
    expect(message?.parts).toEqual([
      { type: "text", text: "hi" },
      { type: "attachment", id: ID, name: "a.png", size: 3, contentType: "image/png", width: 2, height: 1 },
    ]);
    expect(decodeMessage({ roomId: "r", seq: 1, id: "m", kind: "message", userId: "u", text: "", clientMsgId: "c", createdAt: "x", parts: [{ type: "attachment", id: 1 }] })).toBeUndefined();
  });
});

describe("uploadAttachment", () => {
  it("posts the bytes with the token, the name and the type, and reports progress (fetch: 0 then all)", async () => {
    const seen: Array<{ url: string; headers: Record<string, string> }> = [];
    const progress: number[] = [];
    const fetchFn = (async (url: string, init: { headers: Record<string, string> }) => {
      seen.push({ url, headers: init.headers });
      return new Response(JSON.stringify({ attachment: { id: ID, name: "n.txt", size: 2, type: "text/plain", sha256: "ab", createdAt: "t", url: "https://x/y", urlExpiresAt: "t" } }), { status: 201 });
    }) as unknown as typeof fetch;
    const tokens = new TokenSource(async () => "tok");
    const a = await uploadAttachment({ baseUrl: "https://chat.example/", roomId: "r 1", tokens, fetch: fetchFn }, new Blob(["hi"], { type: "text/plain" }), {
      name: "n.txt",
      onProgress: ({ loaded }) => progress.push(loaded),
    });
    expect(a.id).toBe(ID);
    expect(seen[0]?.url).toBe("https://chat.example/v1/rooms/r%201/attachments?name=n.txt");
    expect(seen[0]?.headers).toEqual({ authorization: "Bearer tok", "content-type": "text/plain" });
    expect(progress).toEqual([0, 2]);
  });

  it("a refusal keeps the server's code", async () => {
    const fetchFn = (async () => new Response(JSON.stringify({ error: { code: "too_large", message: "unable to upload; the file is over 10 bytes" } }), { status: 413 })) as unknown as typeof fetch;
    const tokens = new TokenSource(async () => "tok");
    await expect(uploadAttachment({ baseUrl: "https://c/", roomId: "r", tokens, fetch: fetchFn }, new Blob(["x".repeat(20)]))).rejects.toMatchObject({ code: "too_large", status: 413 });
  });
});
