// Typing indicators, both ways. Outgoing: the app calls typing() on every keystroke and this file
// turns that into one `typing` frame every TYPING_REFRESH_MS (the server keeps an indicator for
// 5 s without a refresh). Incoming: the server sends the whole set of typists (never ourselves)
// whenever it changes. Typing is ephemeral: nothing is queued while offline, and the set is
// forgotten with the socket (a new socket hears the next change).

import { type ClientFrame, ClientFrameType } from "../protocol/frames.js";

/** One `typing` frame per this interval while the user keeps typing (the server's indicator lasts 5 s). */
export const TYPING_REFRESH_MS = 2_000;

/** The socket, as typing sees it (Connection implements it). */
export interface TypingWire {
  readonly ready: boolean;
  write(frame: ClientFrame): boolean;
}

export interface TypingHost {
  /** The set of other users typing changed. */
  changed(typists: readonly string[]): void;
}

/**
 * One room's typing indicators.
 *
 * @example
 * const typing = new Typing(() => "alice", connection, { changed: (t) => show(t) });
 * input.addEventListener("input", () => typing.typing());
 * typing.onFrame(["bob"]);
 */
export class Typing {
  readonly #userId: () => string | undefined;
  readonly #wire: TypingWire;
  readonly #host: TypingHost;
  #typists: readonly string[] = [];
  /** When the last start frame went out; -Infinity when the user is not typing (as far as the server knows). */
  #lastStartAt = Number.NEGATIVE_INFINITY;

  constructor(userId: () => string | undefined, wire: TypingWire, host: TypingHost) {
    this.#userId = userId;
    this.#wire = wire;
    this.#host = host;
  }

  /** Other users typing now, in the server's order. A new array after each change. */
  get typists(): readonly string[] {
    return this.#typists;
  }

  /** See Room.typing. */
  typing(): void {
    const now = Date.now();
    if (now - this.#lastStartAt < TYPING_REFRESH_MS || !this.#wire.ready) return;
    if (this.#wire.write({ type: ClientFrameType.Typing })) this.#lastStartAt = now;
  }

  /** See Room.stopTyping. */
  stopTyping(): void {
    if (this.#lastStartAt === Number.NEGATIVE_INFINITY) return;
    this.#lastStartAt = Number.NEGATIVE_INFINITY;
    if (this.#wire.ready) this.#wire.write({ type: ClientFrameType.Typing, stop: true });
  }

  /**
   * The user sent a message: the server ends their indicator when it commits the message (at the
   * moment the others receive it, so the indicator never vanishes before the message appears), so
   * no stop frame is sent; the next keystroke starts a new indicator at once.
   */
  sent(): void {
    this.#lastStartAt = Number.NEGATIVE_INFINITY;
  }

  /** A `typing` frame: the current typists. */
  onFrame(userIds: readonly string[]): void {
    const me = this.#userId();
    this.#set(userIds.filter((id) => id !== me));
  }

  /** The socket is gone: the server forgets our indicator, and we cannot trust the set we had. */
  connectionLost(): void {
    this.#lastStartAt = Number.NEGATIVE_INFINITY;
    this.#set([]);
  }

  #set(typists: readonly string[]): void {
    if (typists.length === this.#typists.length && typists.every((id, i) => id === this.#typists[i])) return;
    this.#typists = typists;
    this.#host.changed(typists);
  }
}
