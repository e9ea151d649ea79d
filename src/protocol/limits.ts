// Wire limits, shared by the server (enforcement) and the client SDK (early, friendly errors).

export const ROOM_ID_PATTERN = /^[A-Za-z0-9_-]{1,128}$/;
/**
 * A user id (the token's `sub`, path segments of the user and member routes). User ids are shown
 * to other users and used in keys: printable and bounded.
 */
export const USER_ID_PATTERN = /^[A-Za-z0-9_.@:-]{1,64}$/;
export const MAX_TEXT_CHARS = 4000;
/** User ids one send may name in `mentions`. */
export const MAX_MENTIONS = 20;
export const MAX_CLIENT_MSG_ID_CHARS = 64;
/** Largest client frame the server parses; anything larger is refused before JSON.parse. */
export const MAX_FRAME_BYTES = 16 * 1024;
/** `last` and `limit` default and cap. */
export const DEFAULT_HISTORY_LIMIT = 50;
export const MAX_HISTORY_LIMIT = 1000;
/** The `ready` frame carries at most this many messages / bytes of messages; beyond that it is `truncated`. */
export const MAX_READY_MESSAGES = 1000;
export const MAX_READY_BYTES = 1024 * 1024;

/**
 * Flow control (the `received` frame): a socket that has been sent more than this many UTF-8
 * bytes (of frames of every type after `ready`) since its last report is closed with
 * `unavailable` (4503) and resumes with `since`. The SDK reports every RECEIVED_EVERY frames
 * of any type, far below it.
 */
export const MAX_UNCONFIRMED_BYTES = 4 * 1024 * 1024;
export const RECEIVED_EVERY = 64;
/** Frames buffered for a socket between accept and `ready`; past it the join is ended (`unavailable`). */
export const MAX_JOIN_BUFFER_FRAMES = 5000;
/** Invalid frames a socket may send in a burst (refilled at 2 per second); past it the socket is closed (4400). */
export const MAX_BAD_FRAMES_BURST = 20;
/** Entries one user may have waiting for their check (authorization, rate limit) at once. */
export const MAX_PENDING_SENDS_PER_USER = 256;
/** Per-user presence data (JSON) in a room. */
export const MAX_PRESENCE_DATA_BYTES = 1024;
/** Profile custom data (JSON). */
export const MAX_PROFILE_DATA_BYTES = 4096;
export const MAX_PROFILE_NAME_CHARS = 100;
export const MAX_AVATAR_URL_CHARS = 2048;
/** Users in one `GET /v1/users?ids=` request. */
export const MAX_PROFILE_BATCH = 100;
/** A reaction: one emoji (one grapheme, at most this many UTF-8 bytes) or a `:shortcode:`. */
export const MAX_EMOJI_BYTES = 32;
export const SHORTCODE_PATTERN = /^:[a-z0-9_+-]{1,32}:$/;
/** Distinct emojis on one message. */
export const MAX_REACTIONS_PER_MESSAGE = 50;
/** A thread's page (`GET …/messages?thread=`) has the same limits as history. */

/**
 * The actor of the server API's super-user actions and the author of system messages. Not a valid
 * user id (`~` is outside USER_ID_PATTERN), so no token can claim it and no user can pass for it.
 */
export const SERVER_ACTOR = "~system";
