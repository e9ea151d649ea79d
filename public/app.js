// The demo page's logic: join a room with the SDK, show its messages, the sends still pending and
// the connection state, send, and page back through history. No framework: the SDK keeps the list
// contiguous and duplicate-free (room.messages), so the page only appends, prepends and redraws
// the small pending list. Every string that came from a user or the server is put on the page
// with textContent; nothing is ever parsed as HTML.

import { ChatClient } from "/sdk/chat-client.js";

/** @param {string} id */
const byId = (id) => {
  const node = document.getElementById(id);
  if (!node) throw new Error(`the page has no #${id}`);
  return node;
};

const ui = {
  joinForm: /** @type {HTMLFormElement} */ (byId("join-form")),
  user: /** @type {HTMLInputElement} */ (byId("user")),
  room: /** @type {HTMLInputElement} */ (byId("room")),
  chat: byId("chat"),
  scroller: byId("scroller"),
  older: /** @type {HTMLButtonElement} */ (byId("older")),
  beginning: byId("beginning"),
  messages: byId("messages"),
  pending: byId("pending"),
  banner: byId("banner"),
  bannerText: byId("banner-text"),
  rejoin: /** @type {HTMLButtonElement} */ (byId("rejoin")),
  composer: /** @type {HTMLFormElement} */ (byId("composer")),
  text: /** @type {HTMLTextAreaElement} */ (byId("text")),
  send: /** @type {HTMLButtonElement} */ (byId("send")),
  connection: byId("connection"),
  roomLabel: byId("room-label"),
  leave: /** @type {HTMLButtonElement} */ (byId("leave")),
};

const STATE_LABEL = {
  idle: "not joined",
  connecting: "connecting…",
  live: "live",
  reconnecting: "reconnecting…",
  offline: "offline",
};
const PENDING_LABEL = { queued: "waiting…", sending: "sending…", retrying: "retrying…" };
const USER_KEY = "edge-chat.user";
const HISTORY_PAGE = 50;

/**
 * The current session: one client in one room, replaced by every join. Callbacks of an older
 * session check `session === s` first, so a late event cannot draw into the new room.
 * @type {{ client: ChatClient, userId: string, roomId: string, room?: import("/sdk/chat-client.js").Room,
 *          first?: number, last?: number, renderQueued: boolean } | undefined}
 */
let session;

// ---------------------------------------------------------------------------------------------
// Small DOM helpers (text only)

/**
 * @param {string} tag
 * @param {string} [className]
 * @param {string} [text]
 */
const make = (tag, className, text) => {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
};

/** @param {string} iso */
const timeOf = (iso) => {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "" : date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
};

const nearBottom = () => ui.scroller.scrollHeight - ui.scroller.scrollTop - ui.scroller.clientHeight < 80;
const scrollToBottom = () => {
  ui.scroller.scrollTop = ui.scroller.scrollHeight;
};

/** @param {keyof typeof STATE_LABEL} state */
const setConnection = (state) => {
  ui.connection.dataset.state = state;
  ui.connection.textContent = STATE_LABEL[state] ?? state;
};

let bannerTimer = 0;
/**
 * @param {string} text
 * @param {{ sticky?: boolean, rejoin?: boolean }} [options]
 */
const showBanner = (text, options = {}) => {
  clearTimeout(bannerTimer);
  ui.bannerText.textContent = text;
  ui.rejoin.hidden = !options.rejoin;
  ui.banner.hidden = false;
  if (!options.sticky) bannerTimer = window.setTimeout(hideBanner, 6000);
};
const hideBanner = () => {
  clearTimeout(bannerTimer);
  ui.banner.hidden = true;
};

// ---------------------------------------------------------------------------------------------
// Rendering

/**
 * One committed message. Your own are marked as acknowledged: the server committed them.
 * @param {import("/sdk/chat-client.js").Message} message
 * @param {string} me
 */
const messageItem = (message, me) => {
  const mine = message.userId === me;
  const li = make("li", mine ? "message mine" : "message");
  li.dataset.seq = String(message.seq);
  li.dataset.clientMsgId = message.clientMsgId;
  li.dataset.user = message.userId;
  const meta = make("div", "meta");
  const time = make("time", "time", timeOf(message.createdAt));
  time.setAttribute("datetime", message.createdAt);
  meta.append(make("span", "user", message.userId), time, make("span", "seq", `#${message.seq}`));
  if (mine) {
    const status = make("span", "status", "✓ sent");
    status.dataset.status = "acked";
    meta.append(status);
  }
  li.append(meta, make("div", "text", message.text));
  return li;
};

/**
 * Brings the list up to date with room.messages, which only grows: newer messages at the end,
 * older ones (loadOlder) at the front. Contiguous, so positions are arithmetic.
 * @param {NonNullable<typeof session>} s
 */
const renderMessages = (s) => {
  const room = s.room;
  if (!room) return;
  const list = room.messages;
  const head = list[0];
  const tail = list[list.length - 1];
  ui.older.hidden = !room.hasOlder;
  ui.beginning.hidden = room.hasOlder;
  if (!head || !tail) return;
  const stick = nearBottom();
  if (s.first === undefined || s.last === undefined) {
    ui.messages.replaceChildren(...list.map((m) => messageItem(m, s.userId)));
  } else {
    if (tail.seq > s.last) {
      const fragment = document.createDocumentFragment();
      for (let i = s.last + 1 - head.seq; i < list.length; i++) fragment.append(messageItem(list[i], s.userId));
      ui.messages.append(fragment);
    }
    if (head.seq < s.first) {
      // Keep what the reader is looking at in place while older messages appear above it.
      const before = ui.scroller.scrollHeight;
      const fragment = document.createDocumentFragment();
      for (let i = 0; i < s.first - head.seq; i++) fragment.append(messageItem(list[i], s.userId));
      ui.messages.prepend(fragment);
      if (!stick) ui.scroller.scrollTop += ui.scroller.scrollHeight - before;
    }
  }
  s.first = head.seq;
  s.last = tail.seq;
  if (stick) scrollToBottom();
};

/** Messages arrive in bursts (a resume, a filled hole): draw once per burst. */
const queueRender = (s) => {
  if (s.renderQueued) return;
  s.renderQueued = true;
  queueMicrotask(() => {
    s.renderQueued = false;
    if (session === s) renderMessages(s);
  });
};

/**
 * Sends the server has not acknowledged yet, below the list.
 * @param {NonNullable<typeof session>} s
 * @param {readonly import("/sdk/chat-client.js").PendingSend[]} pending
 */
const renderPending = (s, pending) => {
  const stick = nearBottom();
  ui.pending.replaceChildren(
    ...pending.map((p) => {
      const li = make("li", "message mine");
      li.dataset.clientMsgId = p.clientMsgId;
      li.dataset.status = p.status;
      const label = PENDING_LABEL[p.status] ?? p.status;
      const status = make("span", "status", p.lastError && p.status === "retrying" ? `${label} (${p.lastError.code})` : label);
      status.dataset.status = p.status;
      const meta = make("div", "meta");
      meta.append(make("span", "user", s.userId), status);
      li.append(meta, make("div", "text", p.text));
      return li;
    }),
  );
  if (stick) scrollToBottom();
};

// ---------------------------------------------------------------------------------------------
// Joining and leaving

/**
 * The dev server mints a token for any name (DEV_TOKENS=true). A real app asks its own backend.
 * @param {string} userId
 */
const devToken = async (userId) => {
  const response = await fetch("/v1/dev/token", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ userId }),
  });
  const body = await response.json().catch(() => undefined);
  if (!response.ok || typeof body?.token !== "string") {
    const hint = response.status === 404 ? " (dev tokens are off: run the server with `npm run dev`)" : "";
    throw new Error(`${body?.error?.message ?? `POST /v1/dev/token answered ${response.status}`}${hint}`);
  }
  return body.token;
};

/**
 * @param {string} userId
 * @param {string} roomId
 */
const join = async (userId, roomId) => {
  leave({ keepUrl: true });
  try {
    localStorage.setItem(USER_KEY, userId);
  } catch {
    // private mode: the URL still remembers it
  }
  const url = new URL(location.href);
  url.searchParams.set("room", roomId);
  url.searchParams.set("user", userId);
  history.replaceState(null, "", url);

  const client = new ChatClient({ baseUrl: location.origin, tokenProvider: () => devToken(userId) });
  const s = { client, userId, roomId, room: undefined, first: undefined, last: undefined, renderQueued: false };
  session = s;
  ui.joinForm.hidden = true;
  ui.chat.hidden = false;
  ui.leave.hidden = false;
  ui.roomLabel.textContent = `# ${roomId} · ${userId}`;
  document.title = `${roomId} · edge-chat`;
  ui.messages.replaceChildren();
  ui.pending.replaceChildren();
  ui.older.hidden = ui.beginning.hidden = true;
  ui.send.disabled = true;
  hideBanner();
  setConnection("connecting");

  let room;
  try {
    room = await client.join(roomId, { last: HISTORY_PAGE });
  } catch (error) {
    if (session !== s) return;
    setConnection("offline");
    showBanner(`Could not join: ${error instanceof Error ? error.message : String(error)}`, { sticky: true, rejoin: true });
    return;
  }
  if (session !== s) return room.leave();
  s.room = room;
  room.on("message", () => queueRender(s));
  room.on("pending", (pending) => session === s && renderPending(s, pending));
  room.on("state", (state) => {
    if (session !== s) return;
    setConnection(state);
    if (state === "live") hideBanner();
    if (state === "offline") showBanner("Disconnected from the room.", { sticky: true, rejoin: true });
  });
  room.on("error", (error) => {
    if (session !== s) return;
    // Offline is final: say so and keep it on screen. Anything else the SDK is already retrying.
    const offline = room.state === "offline";
    showBanner(offline ? `Offline: ${error.message}` : error.message, { sticky: offline, rejoin: offline });
  });
  renderMessages(s);
  renderPending(s, room.pending);
  setConnection(room.state);
  ui.send.disabled = false;
  scrollToBottom();
  ui.text.focus();
};

/** @param {{ keepUrl?: boolean }} [options] */
const leave = (options = {}) => {
  const s = session;
  session = undefined;
  s?.client.close();
  if (options.keepUrl) return;
  ui.chat.hidden = true;
  ui.leave.hidden = true;
  ui.joinForm.hidden = false;
  ui.roomLabel.textContent = "";
  document.title = "edge-chat";
  setConnection("idle");
  const url = new URL(location.href);
  url.searchParams.delete("room");
  url.searchParams.delete("user");
  history.replaceState(null, "", url);
};

// ---------------------------------------------------------------------------------------------
// Wiring

ui.joinForm.addEventListener("submit", (event) => {
  event.preventDefault();
  if (!ui.joinForm.reportValidity()) return;
  void join(ui.user.value.trim(), ui.room.value.trim());
});

ui.composer.addEventListener("submit", (event) => {
  event.preventDefault();
  const s = session;
  const text = ui.text.value.trimEnd();
  if (!s?.room || text.trim() === "") return;
  ui.text.value = "";
  ui.text.style.height = "";
  // The send shows up at once under "sending…" (the pending event), then as a committed message.
  s.room.send(text).catch((error) => {
    if (session === s && error?.code !== "left") showBanner(`Not sent: ${error.message}`);
  });
});

ui.text.addEventListener("keydown", (event) => {
  // Enter sends; Shift+Enter is a new line; never in the middle of an IME composition.
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    ui.composer.requestSubmit();
  }
});

ui.text.addEventListener("input", () => {
  ui.text.style.height = "auto";
  ui.text.style.height = `${ui.text.scrollHeight}px`;
});

ui.older.addEventListener("click", async () => {
  const s = session;
  if (!s?.room) return;
  ui.older.disabled = true;
  try {
    await s.room.loadOlder(HISTORY_PAGE);
    if (session === s) renderMessages(s);
  } catch (error) {
    if (session === s) showBanner(`Could not load older messages: ${error.message}`);
  } finally {
    ui.older.disabled = false;
  }
});

ui.rejoin.addEventListener("click", () => {
  const s = session;
  if (s) void join(s.userId, s.roomId);
});

ui.leave.addEventListener("click", () => leave());

// Closing the tab or navigating away closes the socket cleanly instead of leaving it to time out.
window.addEventListener("pagehide", () => session?.client.close());

// A link or a reload with ?room=…&user=… joins straight away.
const params = new URLSearchParams(location.search);
let rememberedUser = "";
try {
  rememberedUser = localStorage.getItem(USER_KEY) ?? "";
} catch {
  // storage may be off
}
ui.user.value = params.get("user") ?? rememberedUser;
ui.room.value = params.get("room") ?? "lobby";
if (params.get("user") && params.get("room") && ui.joinForm.checkValidity()) void join(ui.user.value, ui.room.value);
else (ui.user.value ? ui.room : ui.user).focus();
