// The demo page's logic: join a room with the SDK, show its messages (with names and times), the
// sends still pending and the connection state, who is online, who is typing, who has seen what,
// and an unread badge for each of your rooms; send, and page back through history. No framework:
// the SDK keeps the list contiguous and duplicate-free (room.messages), so the page only appends,
// prepends and redraws the small lists. Every string that came from a user or the server is put on
// the page with textContent; nothing is ever parsed as HTML.

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
  name: /** @type {HTMLInputElement} */ (byId("name")),
  room: /** @type {HTMLInputElement} */ (byId("room")),
  workspace: byId("workspace"),
  rooms: byId("rooms"),
  goto: /** @type {HTMLFormElement} */ (byId("goto")),
  gotoRoom: /** @type {HTMLInputElement} */ (byId("goto-room")),
  online: byId("online"),
  scroller: byId("scroller"),
  older: /** @type {HTMLButtonElement} */ (byId("older")),
  beginning: byId("beginning"),
  messages: byId("messages"),
  pending: byId("pending"),
  typing: byId("typing"),
  banner: byId("banner"),
  bannerText: byId("banner-text"),
  rejoin: /** @type {HTMLButtonElement} */ (byId("rejoin")),
  composer: /** @type {HTMLFormElement} */ (byId("composer")),
  text: /** @type {HTMLTextAreaElement} */ (byId("text")),
  send: /** @type {HTMLButtonElement} */ (byId("send")),
  connection: byId("connection"),
  roomLabel: byId("room-label"),
  leave: /** @type {HTMLButtonElement} */ (byId("leave")),
  debug: /** @type {HTMLInputElement} */ (byId("debug")),
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
const NAME_KEY = "edge-chat.name";
const DEBUG_KEY = "edge-chat.debug";
const HISTORY_PAGE = 50;
/** The rooms list is a snapshot from GET /v1/rooms (only the joined room is live): refreshed this often. */
const ROOMS_REFRESH_MS = 3000;

/**
 * The current session: one client in one room, replaced by every join. Callbacks of an older
 * session check `session === s` first, so a late event cannot draw into the new room.
 * @typedef {import("/sdk/chat-client.js").Room} Room
 * @typedef {{ client: ChatClient, userId: string, roomId: string, room?: Room, first?: number, last?: number,
 *             renderQueued: boolean, queued: Set<string>, rooms: import("/sdk/chat-client.js").RoomSummary[],
 *             roomsTimer: number }} Session
 * @type {Session | undefined}
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

/** @param {unknown} error */
const messageOf = (error) => (error instanceof Error ? error.message : String(error));

// ---------------------------------------------------------------------------------------------
// Names: the profile's name (which is the token's `name` claim until the user sets one), else the
// user id. Every element showing a name carries data-name-of, so a profile that arrives later
// renames it in place.

/**
 * @param {Session} s
 * @param {string} userId
 */
const nameOf = (s, userId) => s.client.profiles.cached(userId)?.name ?? userId;

/**
 * Asks for a profile once per session; when it comes, every element naming that user is updated.
 * @param {Session} s
 * @param {string} userId
 */
const resolveName = (s, userId) => {
  if (s.queued.has(userId)) return;
  s.queued.add(userId);
  s.client.profiles.get(userId).then(
    () => {
      if (session === s) renameAll(s, userId);
    },
    () => {
      // No profile service (or a network hiccup): the user id stands in; ask again later.
      s.queued.delete(userId);
    },
  );
};

/**
 * @param {Session} s
 * @param {string} userId
 */
const renameAll = (s, userId) => {
  const name = nameOf(s, userId);
  for (const node of document.querySelectorAll("[data-name-of]")) {
    if (node instanceof HTMLElement && node.dataset.nameOf === userId) node.textContent = name;
  }
  // Sentences built from names are redrawn whole.
  renderTyping(s);
  renderSeen(s);
};

/**
 * A span with a user's name, kept up to date.
 * @param {Session} s
 * @param {string} userId
 * @param {string} [className]
 */
const nameSpan = (s, userId, className = "user") => {
  const span = make("span", className, nameOf(s, userId));
  span.dataset.nameOf = userId;
  resolveName(s, userId);
  return span;
};

/**
 * "Alice", "Alice and Bob", "Alice, Bob and 2 others".
 * @param {string[]} names
 */
const listOf = (names) => {
  if (names.length <= 2) return names.join(" and ");
  if (names.length === 3) return `${names[0]}, ${names[1]} and ${names[2]}`;
  return `${names[0]}, ${names[1]} and ${names.length - 2} others`;
};

// ---------------------------------------------------------------------------------------------
// Rendering the room

/**
 * One committed message: who, when, the text; its seq only in debug mode. Your own are marked as
 * acknowledged: the server committed them.
 * @param {Session} s
 * @param {import("/sdk/chat-client.js").Message} message
 */
const messageItem = (s, message) => {
  const mine = message.userId === s.userId;
  const li = make("li", mine ? "message mine" : "message");
  li.dataset.seq = String(message.seq);
  li.dataset.clientMsgId = message.clientMsgId;
  li.dataset.user = message.userId;
  const meta = make("div", "meta");
  const time = make("time", "time", timeOf(message.createdAt));
  time.setAttribute("datetime", message.createdAt);
  time.title = new Date(message.createdAt).toLocaleString();
  meta.append(nameSpan(s, message.userId), time, make("span", "seq", `#${message.seq}`));
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
 * @param {Session} s
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
    ui.messages.replaceChildren(...list.map((m) => messageItem(s, m)));
  } else {
    if (tail.seq > s.last) {
      const fragment = document.createDocumentFragment();
      for (let i = s.last + 1 - head.seq; i < list.length; i++) fragment.append(messageItem(s, list[i]));
      ui.messages.append(fragment);
    }
    if (head.seq < s.first) {
      // Keep what the reader is looking at in place while older messages appear above it.
      const before = ui.scroller.scrollHeight;
      const fragment = document.createDocumentFragment();
      for (let i = 0; i < s.first - head.seq; i++) fragment.append(messageItem(s, list[i]));
      ui.messages.prepend(fragment);
      if (!stick) ui.scroller.scrollTop += ui.scroller.scrollHeight - before;
    }
  }
  s.first = head.seq;
  s.last = tail.seq;
  renderSeen(s);
  if (stick) scrollToBottom();
};

/**
 * Read receipts: each other user is shown once, under the newest message (not their own) that
 * they have read, as "seen by Bob". The SDK knows a user's cursor from their receipts since the
 * join and from their own messages (sending reads everything before it).
 * @param {Session} s
 */
const renderSeen = (s) => {
  const room = s.room;
  if (!room) return;
  const list = room.messages;
  /** @type {Map<number, string[]>} seq → users who have read up to it */
  const bySeq = new Map();
  for (const [userId, readSeq] of room.receipts) {
    if (userId === s.userId) continue;
    let i = list.length - 1;
    while (i >= 0 && (list[i].seq > readSeq || list[i].userId === userId)) i--;
    if (i < 0) continue;
    const seq = list[i].seq;
    bySeq.set(seq, [...(bySeq.get(seq) ?? []), userId]);
  }
  const stick = nearBottom();
  for (const old of ui.messages.querySelectorAll(".seen")) old.remove();
  for (const [seq, users] of bySeq) {
    const li = ui.messages.querySelector(`li[data-seq="${seq}"]`);
    if (!li) continue;
    const seen = make("div", "seen", `seen by ${listOf(users.map((u) => nameOf(s, u)).sort())}`);
    seen.dataset.users = users.join(",");
    for (const u of users) resolveName(s, u);
    li.append(seen);
  }
  if (stick) scrollToBottom();
};

/**
 * Messages and receipts arrive in bursts (a resume, a filled hole): draw once per burst.
 * @param {Session} s
 */
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
 * @param {Session} s
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
      meta.append(nameSpan(s, s.userId), status);
      li.append(meta, make("div", "text", p.text));
      return li;
    }),
  );
  if (stick) scrollToBottom();
};

/** "Alice is typing…", from room.typists (never yourself). @param {Session} s */
const renderTyping = (s) => {
  const typists = s.room?.typists ?? [];
  for (const u of typists) resolveName(s, u);
  const names = typists.map((u) => nameOf(s, u));
  ui.typing.dataset.users = typists.join(",");
  ui.typing.textContent = names.length === 0 ? "" : `${listOf(names)} ${names.length === 1 ? "is" : "are"} typing…`;
};

/** Who is online (room.presence), you first, then by name. @param {Session} s */
const renderOnline = (s) => {
  const presence = s.room?.presence ?? new Map();
  const users = [...presence.keys()].sort((a, b) =>
    a === s.userId ? -1 : b === s.userId ? 1 : nameOf(s, a).localeCompare(nameOf(s, b)),
  );
  ui.online.replaceChildren(
    ...users.map((userId) => {
      const li = make("li", "person");
      li.dataset.user = userId;
      li.append(make("span", "dot"), nameSpan(s, userId, "name"));
      if (userId === s.userId) li.append(make("span", "you", "(you)"));
      const status = presence.get(userId)?.status;
      if (typeof status === "string") li.append(make("span", "presence-status", status));
      return li;
    }),
  );
};

/**
 * Your rooms with their unread badges: the joined room's count is live (room.unread), the others'
 * come from the last GET /v1/rooms.
 * @param {Session} s
 */
const renderRooms = (s) => {
  const rooms = [...s.rooms];
  if (!rooms.some((r) => r.roomId === s.roomId)) rooms.unshift({ roomId: s.roomId, name: s.roomId, unread: 0 });
  ui.rooms.replaceChildren(
    ...rooms.map((r) => {
      const current = r.roomId === s.roomId;
      const unread = current ? (s.room?.unread ?? 0) : r.unread;
      const li = make("li", current ? "room current" : "room");
      li.dataset.room = r.roomId;
      const button = make("button", "room-button");
      button.type = "button";
      if (current) button.setAttribute("aria-current", "true");
      button.append(make("span", "room-name", `# ${r.name}`));
      const badge = make("span", "badge", unread > 99 ? "99+" : String(unread));
      badge.dataset.unread = String(unread);
      badge.hidden = unread === 0;
      button.append(badge);
      button.addEventListener("click", () => {
        if (!current) void join(s.userId, r.roomId);
      });
      li.append(button);
      return li;
    }),
  );
};

/** @param {Session} s */
const refreshRooms = async (s) => {
  try {
    const rooms = await s.client.rooms();
    if (session !== s) return;
    s.rooms = rooms;
    renderRooms(s);
  } catch {
    // Listing needs Postgres; without it the list just shows the current room.
  }
};

/**
 * Marks everything read while the page is in front of the reader. The SDK throttles the frames
 * (one per 250 ms at most) and sends nothing when the cursor is already there.
 * @param {Session} s
 */
const markReadIfVisible = (s) => {
  if (!s.room || document.visibilityState !== "visible") return;
  try {
    s.room.markRead();
  } catch {
    // Nothing to mark (an empty room), or the room just went offline.
  }
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

/** @param {string} key @param {string} value */
const remember = (key, value) => {
  try {
    if (value) localStorage.setItem(key, value);
    else localStorage.removeItem(key);
  } catch {
    // private mode: the URL still remembers it
  }
};

/** @param {string} key */
const recall = (key) => {
  try {
    return localStorage.getItem(key) ?? "";
  } catch {
    return "";
  }
};

/**
 * @param {string} userId
 * @param {string} roomId
 * @param {string} [displayName] saved to the user's profile when given
 */
const join = async (userId, roomId, displayName) => {
  leave({ keepUrl: true });
  remember(USER_KEY, userId);
  const url = new URL(location.href);
  url.searchParams.set("room", roomId);
  url.searchParams.set("user", userId);
  url.searchParams.delete("name");
  history.replaceState(null, "", url);

  const client = new ChatClient({ baseUrl: location.origin, tokenProvider: () => devToken(userId) });
  /** @type {Session} */
  const s = {
    client,
    userId,
    roomId,
    first: undefined,
    last: undefined,
    renderQueued: false,
    queued: new Set(),
    rooms: [],
    roomsTimer: 0,
  };
  session = s;
  ui.joinForm.hidden = true;
  ui.workspace.hidden = false;
  ui.leave.hidden = false;
  ui.roomLabel.replaceChildren(make("span", "", `# ${roomId} · `), nameSpan(s, userId, "me"));
  document.title = `${roomId} · edge-chat`;
  ui.messages.replaceChildren();
  ui.pending.replaceChildren();
  ui.online.replaceChildren();
  ui.typing.textContent = "";
  ui.older.hidden = ui.beginning.hidden = true;
  ui.send.disabled = true;
  hideBanner();
  setConnection("connecting");
  renderRooms(s);

  if (displayName) {
    client.setProfile({ name: displayName }).then(
      () => session === s && renameAll(s, userId),
      (error) => session === s && showBanner(`Could not save your name: ${messageOf(error)}`),
    );
  }

  let room;
  try {
    room = await client.join(roomId, { last: HISTORY_PAGE });
  } catch (error) {
    if (session !== s) return;
    setConnection("offline");
    showBanner(`Could not join: ${messageOf(error)}`, { sticky: true, rejoin: true });
    return;
  }
  if (session !== s) return room.leave();
  s.room = room;
  room.on("message", () => {
    queueRender(s);
    markReadIfVisible(s);
  });
  room.on("pending", (pending) => session === s && renderPending(s, pending));
  room.on("unread", () => session === s && renderRooms(s));
  room.on("receipt", () => session === s && queueRender(s));
  room.on("typing", () => session === s && renderTyping(s));
  room.on("presence", () => session === s && renderOnline(s));
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
  renderOnline(s);
  renderTyping(s);
  setConnection(room.state);
  ui.send.disabled = false;
  scrollToBottom();
  ui.text.focus();
  markReadIfVisible(s);
  // A room you open is one of "your rooms" from now on (public rooms; a private one you are in already).
  client.becomeMember(roomId).then(
    () => session === s && refreshRooms(s),
    () => session === s && refreshRooms(s),
  );
  s.roomsTimer = window.setInterval(() => {
    if (session === s && document.visibilityState === "visible") void refreshRooms(s);
  }, ROOMS_REFRESH_MS);
};

/** @param {{ keepUrl?: boolean }} [options] */
const leave = (options = {}) => {
  const s = session;
  session = undefined;
  if (s) {
    clearInterval(s.roomsTimer);
    s.room?.stopTyping();
    s.client.close();
  }
  if (options.keepUrl) return;
  ui.workspace.hidden = true;
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
  const name = ui.name.value.trim();
  remember(NAME_KEY, name);
  void join(ui.user.value.trim(), ui.room.value.trim(), name);
});

ui.goto.addEventListener("submit", (event) => {
  event.preventDefault();
  const s = session;
  if (!s || !ui.goto.reportValidity()) return;
  const roomId = ui.gotoRoom.value.trim();
  ui.gotoRoom.value = "";
  if (roomId !== s.roomId) void join(s.userId, roomId);
});

ui.composer.addEventListener("submit", (event) => {
  event.preventDefault();
  const s = session;
  const text = ui.text.value.trimEnd();
  if (!s?.room || text.trim() === "") return;
  ui.text.value = "";
  ui.text.style.height = "";
  // The send shows up at once under "sending…" (the pending event), then as a committed message.
  // Sending ends the typing indicator (the server clears it with the message).
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
  const room = session?.room;
  if (!room) return;
  // The SDK sends at most one typing frame per 2 s however often this is called.
  if (ui.text.value.trim() === "") room.stopTyping();
  else room.typing();
});

ui.text.addEventListener("blur", () => session?.room?.stopTyping());

ui.older.addEventListener("click", async () => {
  const s = session;
  if (!s?.room) return;
  ui.older.disabled = true;
  try {
    await s.room.loadOlder(HISTORY_PAGE);
    if (session === s) renderMessages(s);
  } catch (error) {
    if (session === s) showBanner(`Could not load older messages: ${messageOf(error)}`);
  } finally {
    ui.older.disabled = false;
  }
});

ui.rejoin.addEventListener("click", () => {
  const s = session;
  if (s) void join(s.userId, s.roomId);
});

ui.leave.addEventListener("click", () => leave());

// Seq numbers are for debugging the SDK's guarantees: hidden unless asked for.
const setDebug = (on) => {
  document.body.classList.toggle("debug", on);
  ui.debug.checked = on;
};
ui.debug.addEventListener("change", () => {
  setDebug(ui.debug.checked);
  remember(DEBUG_KEY, ui.debug.checked ? "1" : "");
});
setDebug(recall(DEBUG_KEY) === "1" || new URLSearchParams(location.search).has("debug"));

// Read what is on screen when the reader comes back to the tab.
document.addEventListener("visibilitychange", () => {
  const s = session;
  if (!s) return;
  markReadIfVisible(s);
  if (document.visibilityState === "visible") void refreshRooms(s);
});
window.addEventListener("focus", () => session && markReadIfVisible(session));

// Closing the tab or navigating away closes the socket cleanly instead of leaving it to time out.
window.addEventListener("pagehide", () => session?.client.close());

// A link or a reload with ?room=…&user=… joins straight away (&name=… also sets the display name).
const params = new URLSearchParams(location.search);
ui.user.value = params.get("user") ?? recall(USER_KEY);
ui.name.value = params.get("name") ?? recall(NAME_KEY);
ui.room.value = params.get("room") ?? "lobby";
if (params.get("user") && params.get("room") && ui.joinForm.checkValidity()) {
  void join(ui.user.value, ui.room.value, params.get("name") ?? undefined);
} else (ui.user.value ? ui.room : ui.user).focus();
