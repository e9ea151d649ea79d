// Wire limits, shared by the server (enforcement) and the client SDK (early, friendly errors).

export const ROOM_ID_PATTERN = /^[A-Za-z0-9_-]{1,128}$/;
export const MAX_TEXT_CHARS = 4000;
export const MAX_CLIENT_MSG_ID_CHARS = 64;
/** Largest client frame the server parses; anything larger is refused before JSON.parse. */
export const MAX_FRAME_BYTES = 16 * 1024;
/** `last` and `limit` default and cap. */
export const DEFAULT_HISTORY_LIMIT = 50;
export const MAX_HISTORY_LIMIT = 1000;
/** The `ready` frame carries at most this many messages / bytes of messages; beyond that it is `truncated`. */
export const MAX_READY_MESSAGES = 1000;
export const MAX_READY_BYTES = 1024 * 1024;
