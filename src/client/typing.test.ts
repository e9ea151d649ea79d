// Typing indicators (typing.ts) through the public API, against the FakeServer.

import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { SendFrame } from "../protocol/frames.js";
import { TYPING_REFRESH_MS } from "./typing.js";
import { dropAndReconnect, flush, type Harness, harness, joinRoom, reconnect } from "./testing/harness.js";

beforeEach(() => {
  vi.useFakeTimers();
  vi.setSystemTime(new Date("2026-03-01T00:00:00Z"));
});
afterEach(() => {
  vi.useRealTimers();
});

const typingFrames = (h: Harness) => h.server.sockets.flatMap((s) => s.sentOfType("typing"));

describe("typing", () => {
  it("typing() on every keystroke sends one frame per 2 s while the user keeps typing", async () => {
    const h = harness();
    const room = await joinRoom(h);
    // 7 s of keystrokes, one every 100 ms.
    for (let t = 0; t < 7_000; t += 100) {
      room.typing();
      await vi.advanceTimersByTimeAsync(100);
    }
    expect(typingFrames(h)).toEqual([{ type: "typing" }, { type: "typing" }, { type: "typing" }, { type: "typing" }]);
    expect(TYPING_REFRESH_MS).toBe(2_000);
  });

  it("stopTyping() sends the stop frame once, and only after a start; the next keystroke starts again at once", async () => {
    const h = harness();
    const room = await joinRoom(h);
    room.stopTyping();
    expect(typingFrames(h)).toEqual([]);
    room.typing();
    room.stopTyping();
    room.stopTyping();
    room.typing();
    expect(typingFrames(h)).toEqual([{ type: "typing" }, { type: "typing", stop: true }, { type: "typing" }]);
  });

  it("sending a message ends typing: no stop frame (the server clears it with the message), and the next keystroke starts a new indicator at once", async () => {
    const h = harness();
    const room = await joinRoom(h);
    room.typing();
    const sending = room.send("hello");
    await flush();
    h.server.latest.commitAndAck(h.server.latest.sends[0] as SendFrame);
    await sending;
    room.stopTyping(); // nothing to stop any more
    room.typing(); // well inside 2 s of the first frame, yet sent
    expect(typingFrames(h)).toEqual([{ type: "typing" }, { type: "typing" }]);
  });

  it("nothing is sent or queued while offline; the first keystroke on the new socket is sent", async () => {
    const h = harness();
    const room = await joinRoom(h);
    room.typing();
    await dropAndReconnect(h);
    room.typing();
    room.stopTyping();
    expect(h.server.latest.sent).toEqual([]);
    h.server.latest.ready();
    await flush();
    room.typing();
    expect(h.server.latest.sentOfType("typing")).toEqual([{ type: "typing" }]);
  });

  it("room.typists follows the server's typing frames, never includes yourself, fires `typing` only on change, and is cleared with the socket", async () => {
    const h = harness();
    const room = await joinRoom(h);
    const events: string[][] = [];
    room.on("typing", (typists) => events.push([...typists]));
    h.server.latest.deliver({ type: "typing", userIds: ["bob"] });
    h.server.latest.deliver({ type: "typing", userIds: ["bob"] });
    h.server.latest.deliver({ type: "typing", userIds: ["bob", "alice", "carol"] });
    expect(room.typists).toEqual(["bob", "carol"]);
    h.server.latest.deliver({ type: "typing", userIds: ["carol"] });
    await reconnect(h); // the set may have changed unseen: forgotten until the next frame
    expect(room.typists).toEqual([]);
    expect(events).toEqual([["bob"], ["bob", "carol"], ["carol"], []]);
  });
});
