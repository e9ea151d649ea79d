// @vitest-environment happy-dom
// The React bindings (react.ts) in a real React render (react-dom into happy-dom's DOM), against
// the FakeServer, with fake timers. No JSX: createElement keeps the SDK's tsconfig free of a JSX
// setting it does not otherwise need.

import { act, createElement, StrictMode } from "react";
import { createRoot, type Root } from "react-dom/client";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { ChatClient } from "./client.js";
import { useMessages, usePresence, useRoom, useTimeline, useTyping, useUnread } from "./react.js";
import { deliverFrom, flush, type Harness, harness } from "./testing/harness.js";

// Tells React this is a test environment, so act() flushes effects and updates.
(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

function Chat({ client, roomId }: { client: ChatClient; roomId: string | undefined }) {
  const { room, state, error } = useRoom(client, roomId, { last: 50 });
  const messages = useMessages(room);
  const { unread } = useUnread(room);
  const typists = useTyping(room);
  const online = usePresence(room);
  const lines = useTimeline(room);
  return createElement(
    "main",
    null,
    createElement("p", { id: "state" }, state),
    createElement("p", { id: "error" }, error?.code ?? ""),
    createElement("p", { id: "unread" }, String(unread)),
    createElement("p", { id: "typing" }, typists.join(",")),
    createElement("p", { id: "online" }, [...online.keys()].join(",")),
    createElement("ul", null, ...messages.map((m) => createElement("li", { key: m.seq }, `${m.userId}: ${m.text}${m.deleted ? " (deleted)" : ""}`))),
    createElement("button", { id: "older", type: "button", onClick: () => void room?.loadOlder(20) }, "older"),
    createElement("ol", null, ...lines.map((l) => createElement("li", { key: l.seq, className: "line" }, l.kind === "system" ? `* ${l.text}` : l.text))),
  );
}

let container: HTMLElement;
let root: Root;
const text = (id: string) => container.querySelector(`#${id}`)?.textContent;
const lines = () => Array.from(container.querySelectorAll("ul li"), (li) => li.textContent);
const timeline = () => Array.from(container.querySelectorAll("ol li"), (li) => li.textContent);

const render = async (h: Harness, roomId: string | undefined, strict = false) => {
  const chat = createElement(Chat, { client: h.client, roomId });
  await act(async () => root.render(strict ? createElement(StrictMode, null, chat) : chat));
};
/** Lets the newest socket answer with its ready, as the server would. */
const answerReady = async (h: Harness) =>
  act(async () => {
    await flush();
    h.server.latest.ready();
    await flush();
  });

beforeEach(() => {
  vi.useFakeTimers();
  vi.setSystemTime(new Date("2026-03-01T00:00:00Z"));
  container = document.createElement("div");
  document.body.append(container);
  root = createRoot(container);
});
afterEach(async () => {
  await act(async () => root.unmount());
  container.remove();
  vi.useRealTimers();
});

describe("React bindings", () => {
  it("useRoom joins on mount and shows the history; useMessages, useUnread, useTyping and usePresence re-render on each change", async () => {
    const h = harness();
    h.server.commit("before you came", "bob");
    h.server.presence = [{ userId: "alice" }, { userId: "bob" }];
    await render(h, "r1");
    expect(text("state")).toBe("joining");
    await answerReady(h);
    expect(text("state")).toBe("live");
    expect(lines()).toEqual(["bob: before you came"]);
    expect(text("unread")).toBe("1");
    expect(text("online")).toBe("alice,bob");

    await act(async () => {
      deliverFrom(h, "carol", "hello");
      h.server.latest.deliver({ type: "typing", userIds: ["carol"] });
      h.server.latest.deliver({ type: "presence", userId: "carol", online: true });
    });
    expect(lines()).toEqual(["bob: before you came", "carol: hello"]);
    expect(text("unread")).toBe("2");
    expect(text("typing")).toBe("carol");
    expect(text("online")).toBe("alice,bob,carol");

    await act(async () => {
      h.server.latest.deliver({ type: "typing", userIds: [] });
      h.server.latest.deliver({ type: "presence", userId: "bob", online: false });
    });
    expect(text("typing")).toBe("");
    expect(text("online")).toBe("alice,carol");
  });

  it("the room's state follows reconnects; unmounting leaves the room (its socket is closed by the client)", async () => {
    const h = harness();
    await render(h, "r1");
    await answerReady(h);
    await act(async () => {
      h.server.latest.serverClose(1006);
    });
    expect(text("state")).toBe("reconnecting");
    await act(async () => {
      await vi.advanceTimersByTimeAsync(10_000);
      h.server.latest.ready();
      await flush();
    });
    expect(text("state")).toBe("live");
    const socket = h.server.latest;
    await act(async () => root.unmount());
    expect(socket.closedByClient).toBeDefined();
    root = createRoot(container); // afterEach unmounts again
  });

  it("under StrictMode (effects run twice) exactly one socket stays open, and switching rooms leaves the first", async () => {
    const h = harness();
    await render(h, "r1", true);
    await answerReady(h);
    const open = () => h.server.sockets.filter((s) => s.readyState === 1 && !s.closedByClient);
    expect(open()).toHaveLength(1);
    expect(text("state")).toBe("live");
    await render(h, undefined, true);
    expect(text("state")).toBe("idle");
    expect(open()).toHaveLength(0);
  });

  it("useMessages re-renders on an edit and a delete of a message it holds; useTimeline shows system entries in their place", async () => {
    const h = harness();
    h.server.commitMany(40);
    await render(h, "r1");
    await act(async () => {
      await flush();
      h.server.latest.ready({ maxMessages: 20 });
      await flush();
    });
    await act(async () => flush()); // a `last` join fills to its 50 over REST if ready was cut short
    const held = lines().length;
    expect(held).toBeGreaterThan(0);
    const newest = h.server.store.at(-1)?.seq ?? 0;
    const change = (frame: Parameters<typeof h.server.commitFrame>[1], userId: string) => {
      const result = h.server.commitFrame(userId, frame);
      if ("error" in result) throw new Error(result.error.message);
      h.server.latest.deliver({ type: "message", message: result.entry });
    };
    const author = h.server.store.at(-1)?.userId ?? "bob";
    await act(async () => change({ type: "edit", clientMsgId: "e-1", target: newest, text: "edited!" }, author));
    expect(lines().at(-1)).toBe(`${author}: edited!`);
    await act(async () => change({ type: "delete", clientMsgId: "d-1", target: newest }, author));
    expect(lines().at(-1)).toBe(`${author}:  (deleted)`);
    await act(async () => {
      h.server.latest.deliver({ type: "message", message: h.server.commitSystem("member_joined", "carol") });
    });
    expect(timeline().at(-1)).toBe("* carol member_joined");
    expect(lines()).toHaveLength(held); // a system entry is a line of the timeline, not a message
  });

  it("useMessages re-renders when loadOlder puts older messages in front (the `older` event)", async () => {
    const h = harness();
    h.server.commitMany(80);
    await render(h, "r1");
    await answerReady(h);
    expect(lines()).toHaveLength(50);
    await act(async () => {
      (container.querySelector("#older") as HTMLButtonElement).click();
      await flush();
    });
    expect(lines()).toHaveLength(70);
    expect(lines()[0]).toBe(`${h.server.store[10]?.userId}: ${h.server.store[10]?.text}`);
  });

  it("a join that fails shows its error code and no room", async () => {
    const h = harness();
    await render(h, "not a room id!");
    await act(async () => flush());
    expect(text("state")).toBe("offline");
    expect(text("error")).toBe("bad_request");
    expect(lines()).toEqual([]);
  });
});
