// The demo page's logic: join a room with the SDK, show its timeline (messages with names and
// times, and system lines such as "alice joined"), the sends still pending and the connection
// state, who is online, who is typing, who has seen what, and an unread badge for each of your
// rooms; send, page back through history, edit and delete messages, react, and reply in threads.
// No framework: the SDK keeps the timeline contiguous, duplicate-free and current (room.timeline:
// edits, tombstones, reactions and reply counts applied), so the page appends, prepends, and
// redraws one line when the SDK says it changed. Every string that came from a user or the server
// is put on the page with textContent; nothing is ever parsed as HTML.

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
  file: /** @type {HTMLInputElement} */ (byId("file")),
  upload: byId("upload"),
  uploadName: byId("upload-name"),
  uploadProgress: /** @type {HTMLProgressElement} */ (byId("upload-progress")),
  connection: byId("connection"),
  roomLabel: byId("room-label"),
  leave: /** @type {HTMLButtonElement} */ (byId("leave")),
  thread: byId("thread"),
  threadClose: /** @type {HTMLButtonElement} */ (byId("thread-close")),
  threadParent: byId("thread-parent"),
  threadReplies: byId("thread-replies"),
  threadPending: byId("thread-pending"),
  threadComposer: /** @type {HTMLFormElement} */ (byId("thread-composer")),
  threadText: /** @type {HTMLTextAreaElement} */ (byId("thread-text")),
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
/** The reactions the page offers (any emoji the server accepts can be shown). */
const PALETTE = ["👍", "❤️", "😂", "🎉"];
const THREAD_PAGE = 100;

/**
 * The current session: one client in one room, replaced by every join. Callbacks of an older
 * session check `session === s` first, so a late event cannot draw into the new room.
 * @typedef {import("/sdk/chat-client.js").Room} Room
 * @typedef {import("/sdk/chat-client.js").Message} Message
 * @typedef {import("/sdk/chat-client.js").TimelineLine} Line
 * @typedef {{ client: ChatClient, userId: string, roomId: string, room?: Room, first?: number, last?: number,
 *             renderQueued: boolean, queued: Set<string>, rooms: import("/sdk/chat-client.js").RoomSummary[],
 *             roomsTimer: number, nodes: Map<number, { form: Line, li: HTMLElement }>,
 *             editing?: { seq: number, draft: string }, thread?: { seq: number, page: Map<number, Message> },
 *             role?: string }} Session
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
 * One committed message in its current form: who, when, the text (or "message deleted" for a
 * tombstone, "(edited)" once edited), its reactions, and what you may do with it (edit and delete
 * your own, delete any as an admin, react, reply in its thread). Its seq only in debug mode. Your
 * own are marked as acknowledged: the server committed them.
 * @param {Session} s
 * @param {Message} message
 * @param {{ inThread?: boolean }} [options]
 */
const messageItem = (s, message, options = {}) => {
  const mine = message.userId === s.userId;
  const mentioned = !mine && !message.deleted && mentionsOf(message.text).concat(message.mentions ?? []).includes(s.userId);
  const li = make("li", `message${mine ? " mine" : ""}${message.deleted ? " deleted" : ""}${mentioned ? " mentioned" : ""}`);
  if (mentioned) li.dataset.mentioned = "true";
  li.dataset.seq = String(message.seq);
  li.dataset.clientMsgId = message.clientMsgId;
  li.dataset.user = message.userId;
  if (message.deleted) li.dataset.deleted = "true";
  const meta = make("div", "meta");
  const time = make("time", "time", timeOf(message.createdAt));
  time.setAttribute("datetime", message.createdAt);
  time.title = new Date(message.createdAt).toLocaleString();
  meta.append(nameSpan(s, message.userId), time, make("span", "seq", `#${message.seq}`));
  if (message.editedAt && !message.deleted) {
    const edited = make("span", "edited", "(edited)");
    edited.title = `edited ${new Date(message.editedAt).toLocaleString()}`;
    meta.append(edited);
  }
  if (mine) {
    const status = make("span", "status", "✓ sent");
    status.dataset.status = "acked";
    meta.append(status);
  }
  li.append(meta);
  if (message.deleted) {
    li.append(make("div", "text tombstone", "message deleted"));
  } else if (s.editing?.seq === message.seq) {
    li.append(editForm(s, message));
  } else {
    li.append(make("div", "text", textOfParts(message)));
    // Links and files of a multipart message (a deleted one has none: its parts are gone).
    if (message.parts) li.append(...partsOf(s, message.parts));
  }
  if (!message.deleted) li.append(reactionsBar(message));
  const actions = make("div", "actions");
  if (!message.deleted) {
    if (mine && s.editing?.seq !== message.seq) actions.append(actionButton("edit", "Edit", "Edit this message"));
    if (mine || s.role === "admin") actions.append(actionButton("delete", "Delete", "Delete this message"));
    if (!options.inThread && message.replyTo === undefined) actions.append(actionButton("reply", "Reply", "Reply in a thread"));
  }
  const replies = message.replyCount ?? 0;
  if (!options.inThread && replies > 0) {
    const button = actionButton("replies", replies === 1 ? "1 reply" : `${replies} replies`, "Open the thread");
    button.dataset.count = String(replies);
    actions.append(button);
  }
  if (actions.childElementCount > 0) li.append(actions);
  return li;
};

/**
 * @param {string} action
 * @param {string} label
 * @param {string} title
 */
const actionButton = (action, label, title) => {
  const button = make("button", `action ${action}`, label);
  button.type = "button";
  button.dataset.action = action;
  button.title = title;
  return button;
};

/**
 * The reactions on a message (emoji and count; yours highlighted) and the palette to add one.
 * Clicking one toggles yours.
 * @param {Message} message
 */
const reactionsBar = (message) => {
  const bar = make("div", "reactions");
  const shown = new Set();
  for (const r of message.reactions ?? []) {
    shown.add(r.emoji);
    const chip = make("button", r.me ? "reaction mine" : "reaction", `${r.emoji} ${r.count}`);
    chip.type = "button";
    chip.dataset.action = "react";
    chip.dataset.emoji = r.emoji;
    chip.dataset.count = String(r.count);
    chip.dataset.mine = r.me ? "true" : "false";
    chip.setAttribute("aria-pressed", r.me ? "true" : "false");
    chip.title = r.me ? `Take back your ${r.emoji}` : `React with ${r.emoji}`;
    bar.append(chip);
  }
  const palette = make("span", "palette");
  for (const emoji of PALETTE) {
    if (shown.has(emoji)) continue;
    const add = make("button", "react-add", emoji);
    add.type = "button";
    add.dataset.action = "react";
    add.dataset.emoji = emoji;
    add.title = `React with ${emoji}`;
    palette.append(add);
  }
  bar.append(palette);
  return bar;
};

/**
 * The inline editor of your message: Enter (or Save) saves, Escape (or Cancel) leaves it as it was.
 * @param {Session} s
 * @param {Message} message
 */
const editForm = (s, message) => {
  const form = /** @type {HTMLFormElement} */ (make("form", "edit-form"));
  const text = /** @type {HTMLTextAreaElement} */ (make("textarea", "edit-text"));
  text.value = s.editing?.draft ?? message.text;
  text.maxLength = 4000;
  text.rows = Math.min(6, text.value.split("\n").length);
  text.setAttribute("aria-label", "Edit the message");
  text.addEventListener("input", () => {
    if (s.editing) s.editing.draft = text.value;
  });
  text.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    } else if (event.key === "Escape") {
      event.preventDefault();
      stopEditing(s);
    }
  });
  const save = make("button", "save", "Save");
  save.type = "submit";
  const cancel = make("button", "quiet cancel", "Cancel");
  cancel.type = "button";
  cancel.addEventListener("click", () => stopEditing(s));
  form.append(text, save, cancel);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const room = s.room;
    const draft = text.value.trimEnd();
    if (!room || draft.trim() === "") return;
    const seq = message.seq;
    stopEditing(s);
    if (draft === message.text) return;
    // The line is redrawn when the edit entry arrives (the `update` event), as on every other page.
    room.edit(seq, draft).catch((error) => {
      if (session === s && error?.code !== "left") showBanner(`Not edited: ${error.message}`);
    });
  });
  return form;
};

/** @param {Session} s @param {number} seq */
const startEditing = (s, seq) => {
  const message = heldMessage(s, seq);
  if (!message || message.deleted) return;
  s.editing = { seq, draft: message.text };
  redrawLine(s, seq);
  const text = ui.messages.querySelector(`li[data-seq="${seq}"] .edit-text`) ?? ui.thread.querySelector(`li[data-seq="${seq}"] .edit-text`);
  if (text instanceof HTMLTextAreaElement) {
    text.focus();
    text.setSelectionRange(text.value.length, text.value.length);
  }
};

/** @param {Session} s */
const stopEditing = (s) => {
  const seq = s.editing?.seq;
  s.editing = undefined;
  if (seq !== undefined) redrawLine(s, seq);
};

/** Redraws one message wherever it is shown (the timeline, the thread panel). @param {Session} s @param {number} seq */
const redrawLine = (s, seq) => {
  const node = s.nodes.get(seq);
  if (node && node.form.kind === "message") {
    const li = messageItem(s, /** @type {Message} */ (node.form));
    node.li.replaceWith(li);
    node.li = li;
    renderSeen(s);
  }
  if (s.thread) renderThread(s);
};

/**
 * A message the SDK holds, in its current form (room.messages is ordered by seq).
 * @param {Session} s
 * @param {number} seq
 * @returns {Message | undefined}
 */
const heldMessage = (s, seq) => {
  const list = s.room?.messages ?? [];
  let lo = 0;
  let hi = list.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const m = list[mid];
    if (m.seq === seq) return m;
    if (m.seq < seq) lo = mid + 1;
    else hi = mid - 1;
  }
  return s.thread?.page.get(seq);
};

/**
 * A system line ("alice joined", "carol made bob admin"), with names that follow profiles.
 * @param {Session} s
 * @param {import("/sdk/chat-client.js").SystemEntry} entry
 */
const systemItem = (s, entry) => {
  const li = make("li", "system-line");
  li.dataset.seq = String(entry.seq);
  li.dataset.event = entry.event;
  const text = make("span", "system-text");
  const actor = () => nameSpan(s, entry.userId);
  const subject = () => nameSpan(s, entry.subject ?? entry.userId);
  switch (entry.event) {
    case "member_joined":
      text.append(subject(), " joined");
      break;
    case "member_left":
      text.append(subject(), " left");
      break;
    case "member_added":
      text.append(actor(), " added ", subject(), entry.role ? ` as ${entry.role}` : "");
      break;
    case "member_removed":
      text.append(actor(), " removed ", subject());
      break;
    case "role_changed":
      text.append(actor(), " made ", subject(), ` ${entry.role ?? "a member"}`);
      break;
    case "room_updated": {
      const changes = entry.changes ?? {};
      const what =
        changes.name !== undefined
          ? ` renamed the room to “${changes.name}”`
          : changes.visibility !== undefined
            ? ` made the room ${changes.visibility}`
            : " updated the room";
      text.append(actor(), what);
      break;
    }
    default:
      text.textContent = entry.text;
  }
  const time = make("time", "time", timeOf(entry.createdAt));
  time.setAttribute("datetime", entry.createdAt);
  li.append(text, time, make("span", "seq", `#${entry.seq}`));
  return li;
};

/**
 * `@userId` mentions in a text, as the server reads them (src/hooks/notify.ts): at the start or
 * after whitespace, without trailing punctuation. The server sends a `notification` webhook to a
 * mentioned member who is away; the page highlights messages that mention you.
 * @param {string} text
 */
const mentionsOf = (text) => [...text.matchAll(/(?:^|\s)@([A-Za-z0-9_.@:-]{1,64})/g)].map((m) => m[1].replace(/[.:@-]+$/, ""));

/** @param {Session} s @param {Line} line */
const lineItem = (s, line) => (line.kind === "system" ? systemItem(s, line) : messageItem(s, line));

/**
 * What `.text` shows: for a multipart message its text parts (links and files are shown below
 * it), so nothing is shown twice; otherwise, and once edited (an edit replaces the text), the
 * message's text.
 * @param {import("/sdk/chat-client.js").Message} message
 */
const textOfParts = (message) =>
  message.parts && message.editedAt === undefined
    ? message.parts.flatMap((p) => (p.type === "text" ? [p.text] : [])).join("\n")
    : message.text;

const INLINE_IMAGES = new Set(["image/png", "image/jpeg", "image/gif", "image/webp"]);

/**
 * Signed URLs by attachment id, reused while they have a minute left: a line is redrawn on every
 * edit or reaction, and the same URL keeps the browser's cached image.
 * @type {Map<string, { url: string, expiresAt: number }>}
 */
const signedUrls = new Map();

/**
 * @param {import("/sdk/chat-client.js").Room} room
 * @param {string} id
 * @returns {Promise<string>}
 */
const signedUrlOf = async (room, id) => {
  const known = signedUrls.get(id);
  if (known && known.expiresAt - Date.now() > 60_000) return known.url;
  const fresh = await room.attachmentUrl(id);
  signedUrls.set(id, { url: fresh.url, expiresAt: Date.parse(fresh.urlExpiresAt) });
  return fresh.url;
};

/** @param {number} bytes */
const sizeOf = (bytes) => (bytes < 1024 ? `${bytes} B` : bytes < 1024 * 1024 ? `${(bytes / 1024).toFixed(1)} KiB` : `${(bytes / 1024 / 1024).toFixed(1)} MiB`);

/**
 * Links and attachments of a message. Every value goes in through a DOM property (href, src,
 * textContent), never as markup; links only if they are http(s) (the server checks too); images
 * only of the four inline types, by a signed URL the SDK asks for (an <img> cannot send a token).
 * @param {Session} s
 * @param {import("/sdk/chat-client.js").Part[]} parts
 */
const partsOf = (s, parts) => {
  const nodes = [];
  for (const part of parts) {
    if (part.type === "link") {
      let url;
      try {
        url = new URL(part.url);
      } catch {
        continue;
      }
      if (url.protocol !== "https:" && url.protocol !== "http:") continue;
      const a = /** @type {HTMLAnchorElement} */ (make("a", "link", url.href));
      a.href = url.href;
      a.target = "_blank";
      a.rel = "noopener noreferrer nofollow";
      nodes.push(a);
    } else if (part.type === "attachment") {
      const room = s.room;
      if (!room) continue;
      if (INLINE_IMAGES.has(part.contentType)) {
        const img = /** @type {HTMLImageElement} */ (make("img", "attachment-image"));
        img.alt = part.name;
        img.title = `${part.name} (${sizeOf(part.size)})`;
        if (part.width && part.height) {
          img.width = Math.min(part.width, 320);
          img.height = Math.round((img.width / part.width) * part.height);
        }
        img.dataset.attachment = part.id;
        signedUrlOf(room, part.id).then(
          (url) => (img.src = url),
          () => (img.alt = `${part.name} (unavailable)`),
        );
        nodes.push(img);
      } else {
        const a = /** @type {HTMLAnchorElement} */ (make("a", "attachment-file", `📄 ${part.name} (${sizeOf(part.size)})`));
        a.dataset.attachment = part.id;
        a.download = part.name;
        // The signed URL expires after a few minutes: fetch a fresh one on click.
        a.addEventListener("click", (event) => {
          event.preventDefault();
          signedUrlOf(room, part.id).then(
            (url) => {
              a.href = url;
              window.location.assign(url);
            },
            (error) => showBanner(`Download failed: ${messageOf(error)}`),
          );
        });
        signedUrlOf(room, part.id).then(
          (url) => (a.href = url),
          () => {},
        );
        nodes.push(a);
      }
    }
  }
  return nodes;
};

/**
 * Uploads files one by one with a progress bar, then sends them (with the composer's text as the
 * caption of the first) as one multipart message.
 * @param {Session} s
 * @param {File[]} files
 */
const sendFiles = async (s, files) => {
  const room = s.room;
  if (!room || files.length === 0) return;
  const caption = ui.text.value.trim();
  ui.text.value = "";
  const parts = caption ? [{ type: "text", text: caption }] : [];
  ui.upload.hidden = false;
  try {
    for (const file of files) {
      ui.uploadName.textContent = file.name;
      ui.uploadProgress.value = 0;
      const attachment = await room.upload(file, {
        onProgress: ({ loaded, total }) => (ui.uploadProgress.value = total > 0 ? loaded / total : 0),
      });
      parts.push({ type: "attachment", id: attachment.id });
    }
    await room.send({ parts });
  } catch (error) {
    if (session === s && error?.code !== "left") showBanner(`Not sent: ${messageOf(error)}`);
  } finally {
    ui.upload.hidden = true;
  }
};

/**
 * Brings the list up to date with room.timeline: messages and system lines, without the replies
 * (they are in their thread). The timeline grows at the end and (loadOlder) at the front; a line
 * that changed (an edit, a delete, a reaction, a reply) is a new object, and is redrawn in place.
 * @param {Session} s
 */
const renderMessages = (s) => {
  const room = s.room;
  if (!room) return;
  const lines = room.timeline.filter((l) => l.kind === "system" || l.replyTo === undefined);
  ui.older.hidden = !room.hasOlder;
  ui.beginning.hidden = room.hasOlder;
  const stick = nearBottom();
  const before = ui.scroller.scrollHeight;
  const older = document.createDocumentFragment();
  const newer = document.createDocumentFragment();
  let prepended = false;
  for (const line of lines) {
    const node = s.nodes.get(line.seq);
    if (node) {
      if (node.form !== line) {
        const li = lineItem(s, line);
        node.li.replaceWith(li);
        s.nodes.set(line.seq, { form: line, li });
      }
      continue;
    }
    const li = lineItem(s, line);
    s.nodes.set(line.seq, { form: line, li });
    if (s.first !== undefined && line.seq < s.first) {
      older.append(li);
      prepended = true;
    } else newer.append(li);
  }
  ui.messages.append(newer);
  if (prepended) {
    // Keep what the reader is looking at in place while older lines appear above it.
    ui.messages.prepend(older);
    if (!stick) ui.scroller.scrollTop += ui.scroller.scrollHeight - before;
  }
  s.first = lines[0]?.seq;
  s.last = lines[lines.length - 1]?.seq;
  renderSeen(s);
  if (s.thread) renderThread(s);
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
  // Under messages the list shows: not replies (they are in their thread), not tombstones.
  const list = room.messages.filter((m) => m.replyTo === undefined && !m.deleted);
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
  // Messages only (edits, deletes and reactions show when they land); replies under their thread.
  const sends = pending.filter((p) => p.type === "send" && p.action.replyTo === undefined);
  ui.pending.replaceChildren(...sends.map((p) => pendingItem(s, p)));
  if (s.thread) renderThread(s);
  if (stick) scrollToBottom();
};

/**
 * @param {Session} s
 * @param {import("/sdk/chat-client.js").PendingSend} p
 */
const pendingItem = (s, p) => {
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
};

// ---------------------------------------------------------------------------------------------
// Threads: a panel with the parent, its replies (a REST page from room.thread, merged with the
// replies the SDK holds, which it keeps current) and a composer that replies with room.reply.

/** @param {Session} s @param {number} seq */
const openThread = async (s, seq) => {
  const room = s.room;
  if (!room) return;
  s.thread = { seq, page: new Map() };
  ui.thread.hidden = false;
  ui.workspace.classList.add("with-thread");
  renderThread(s);
  ui.threadText.focus();
  try {
    const page = await room.thread(seq, { limit: THREAD_PAGE });
    if (session !== s || s.thread?.seq !== seq) return;
    for (const m of page.messages) s.thread.page.set(m.seq, m);
    renderThread(s);
  } catch (error) {
    if (session === s) showBanner(`Could not load the thread: ${messageOf(error)}`);
  }
};

/** @param {Session} s */
const closeThread = (s) => {
  s.thread = undefined;
  ui.thread.hidden = true;
  ui.workspace.classList.remove("with-thread");
  ui.threadParent.replaceChildren();
  ui.threadReplies.replaceChildren();
  ui.threadPending.replaceChildren();
};

/** @param {Session} s */
const renderThread = (s) => {
  const thread = s.thread;
  const room = s.room;
  if (!thread || !room) return;
  const parent = heldMessage(s, thread.seq);
  ui.threadParent.replaceChildren(...(parent ? [messageItem(s, parent, { inThread: true })] : []));
  // The SDK's forms are current (it applies every change); a page is as of when it was read.
  const replies = new Map(thread.page);
  for (const m of room.messages) if (m.replyTo === thread.seq) replies.set(m.seq, m);
  const ordered = [...replies.values()].sort((a, b) => a.seq - b.seq);
  ui.threadReplies.replaceChildren(...ordered.map((m) => messageItem(s, m, { inThread: true })));
  ui.threadPending.replaceChildren(
    ...room.pending.filter((p) => p.type === "send" && p.action.replyTo === thread.seq).map((p) => pendingItem(s, p)),
  );
  ui.threadComposer.hidden = parent?.deleted === true;
};

/**
 * Clicks on a message's buttons (in the timeline or the thread panel), by delegation.
 * @param {MouseEvent} event
 */
const onMessageClick = (event) => {
  const s = session;
  const room = s?.room;
  const target = event.target instanceof Element ? event.target.closest("button[data-action]") : null;
  const li = target?.closest("li[data-seq]");
  if (!s || !room || !(target instanceof HTMLElement) || !(li instanceof HTMLElement)) return;
  const seq = Number(li.dataset.seq);
  const fail = (what) => (error) => {
    if (session === s && error?.code !== "left") showBanner(`${what}: ${error.message}`);
  };
  switch (target.dataset.action) {
    case "edit":
      startEditing(s, seq);
      break;
    case "delete":
      if (s.editing?.seq === seq) s.editing = undefined;
      room.delete(seq).catch(fail("Not deleted"));
      break;
    case "react": {
      const emoji = target.dataset.emoji ?? "";
      const mine = heldMessage(s, seq)?.reactions?.some((r) => r.emoji === emoji && r.me) === true;
      (mine ? room.unreact(seq, emoji) : room.react(seq, emoji)).catch(fail("Reaction not saved"));
      break;
    }
    case "reply":
    case "replies":
      void openThread(s, seq);
      break;
  }
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
    // Admins may delete anyone's message: when the role changes, every line is redrawn.
    const role = rooms.find((r) => r.roomId === s.roomId)?.role;
    if (role !== s.role) {
      s.role = role;
      s.nodes.clear();
      s.first = s.last = undefined;
      ui.messages.replaceChildren();
      renderMessages(s);
    }
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
    nodes: new Map(),
  };
  session = s;
  closeThread(s);
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
  // A held message changed (edited, deleted, a reaction, a reply): its line is redrawn in place.
  room.on("update", () => session === s && queueRender(s));
  room.on("system", () => session === s && queueRender(s));
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
    // A ban closes the socket for good (close 4451): say so, and offer no rejoin that would fail.
    if (error.code === "banned") return showBanner(`You are banned here: ${error.message}`, { sticky: true, rejoin: false });
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
  // Mentions go to the server explicitly too (it also reads @userId in the text), so they are
  // carried on the message for every client.
  const mentions = [...new Set(mentionsOf(text))].filter((id) => id !== s.userId).slice(0, 20);
  s.room.send(text, mentions.length > 0 ? { mentions } : {}).catch((error) => {
    if (session === s && error?.code !== "left") showBanner(`Not sent: ${error.message}`);
  });
});

ui.file.addEventListener("change", () => {
  const files = [...(ui.file.files ?? [])];
  ui.file.value = "";
  if (session) void sendFiles(session, files);
});

// Files dropped anywhere on the chat are attached like the button's.
const chat = byId("chat");
chat.addEventListener("dragover", (event) => {
  if (event.dataTransfer?.types.includes("Files")) event.preventDefault();
});
chat.addEventListener("drop", (event) => {
  const files = [...(event.dataTransfer?.files ?? [])];
  if (files.length === 0 || !session) return;
  event.preventDefault();
  void sendFiles(session, files);
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

ui.messages.addEventListener("click", onMessageClick);
ui.thread.addEventListener("click", onMessageClick);
ui.threadClose.addEventListener("click", () => session && closeThread(session));

ui.threadComposer.addEventListener("submit", (event) => {
  event.preventDefault();
  const s = session;
  const text = ui.threadText.value.trimEnd();
  if (!s?.room || !s.thread || text.trim() === "") return;
  ui.threadText.value = "";
  s.room.reply(s.thread.seq, text).catch((error) => {
    if (session === s && error?.code !== "left") showBanner(`Reply not sent: ${error.message}`);
  });
});

ui.threadText.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    ui.threadComposer.requestSubmit();
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
