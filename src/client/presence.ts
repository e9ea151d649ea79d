// Who is in the room. Each `ready` carries a snapshot that is consistent with the `presence`
// frames after it (docs/protocol.md: no change is both in the snapshot and in a frame, none in
// neither), so the map is replaced by every snapshot and then moved by every delta: no merging.
// Our own presence data lives on the socket on the server side, so it is sent again on every new
// socket.

import { decodeSmallObject } from "../protocol/codec.js";
import { type ClientFrame, ClientFrameType, type PresenceEntry, type PresenceFrame } from "../protocol/frames.js";
import { MAX_PRESENCE_DATA_BYTES } from "../protocol/limits.js";
import { ChatClientError } from "./errors.js";

/** What a user set with {@link Room.setPresence}: a small JSON object (at most 1 KiB), e.g. `{ status: "away" }`. */
export type PresenceData = Record<string, unknown>;

/** The socket, as presence sees it (Connection implements it). */
export interface PresenceWire {
  readonly ready: boolean;
  write(frame: ClientFrame): boolean;
}

export interface PresenceHost {
  /** Someone came online, went offline or changed their data; `presence` is the new map. */
  changed(presence: ReadonlyMap<string, PresenceData | undefined>, change: PresenceChange): void;
}

/** One change to the map: a delta from the server, or `snapshot` when a `ready` replaced the map. */
export type PresenceChange =
  | { kind: "snapshot" }
  | { kind: "online" | "offline" | "data"; userId: string; data: PresenceData | undefined };

/**
 * One room's presence map.
 *
 * @example
 * const presence = new Presence(connection, { changed: (map) => render([...map.keys()]) });
 * presence.onSnapshot(ready.presence);
 * presence.set({ status: "away" });
 */
export class Presence {
  readonly #wire: PresenceWire;
  readonly #host: PresenceHost;
  #map: ReadonlyMap<string, PresenceData | undefined> = new Map();
  /** What this client set, sent again on every new socket. */
  #mine: PresenceData | undefined;

  constructor(wire: PresenceWire, host: PresenceHost) {
    this.#wire = wire;
    this.#host = host;
  }

  /** Who is online (userId → their data, if they set any). A new map after each change. */
  get presence(): ReadonlyMap<string, PresenceData | undefined> {
    return this.#map;
  }

  /** See Room.setPresence. */
  set(data: PresenceData): void {
    // The server's own check (a JSON object of at most 1 KiB), so a refusal comes now, with its code.
    const checked = decodeSmallObject("presence data", data, MAX_PRESENCE_DATA_BYTES);
    if (!checked.ok) throw new ChatClientError(checked.error.code, `unable to set presence; ${checked.error.message}`);
    this.#mine = data;
    if (this.#wire.ready) this.#wire.write({ type: ClientFrameType.Presence, data });
  }

  /** The `ready` of a new socket: its snapshot replaces the map (absent from a server that predates presence). */
  onReady(snapshot: readonly PresenceEntry[] | undefined): void {
    if (snapshot) {
      this.#map = new Map(snapshot.map((entry) => [entry.userId, entry.data]));
      this.#host.changed(this.#map, { kind: "snapshot" });
    }
    // The data belonged to the old socket; the server announces it again once it has it.
    if (this.#mine !== undefined) this.#wire.write({ type: ClientFrameType.Presence, data: this.#mine });
  }

  /** A `presence` frame. */
  onFrame(frame: PresenceFrame): void {
    const next = new Map(this.#map);
    let change: PresenceChange;
    if (!frame.online) {
      if (!next.delete(frame.userId)) return;
      change = { kind: "offline", userId: frame.userId, data: undefined };
    } else if (frame.data !== undefined) {
      next.set(frame.userId, frame.data);
      change = { kind: "data", userId: frame.userId, data: frame.data };
    } else {
      if (next.has(frame.userId)) return;
      next.set(frame.userId, undefined);
      change = { kind: "online", userId: frame.userId, data: undefined };
    }
    this.#map = next;
    this.#host.changed(next, change);
  }
}
