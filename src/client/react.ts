// React bindings (`@edge-chat/client/react`): hooks over a Room's getters and events. A Room
// already keeps every value a chat screen shows (messages, unread, typists, presence) correct
// across reconnects; these hooks only make React re-render when one of them changes. They read
// through useSyncExternalStore, so a concurrent render never shows two different versions of
// the room at once (React's "tearing"). React is a peer dependency: the core SDK never imports it.

import { useCallback, useEffect, useRef, useState, useSyncExternalStore } from "react";
// Only through the SDK's public entry: the package's react.js imports it as "./index.js", so an
// app that uses both gets one SDK (one ChatClientError class for instanceof), not two copies.
import {
  type ChatClient,
  ChatClientError,
  type ConnectionState,
  type JoinOptions,
  type Message,
  type PresenceData,
  type Room,
  type RoomEvents,
  type TimelineLine,
} from "./index.js";

/** What {@link useRoom} returns: the joined room once `ready` is applied, its state, and why a join failed. */
export interface RoomHandle {
  /** The joined room; undefined while joining, after a failed join, or without a client or room id. */
  room: Room | undefined;
  /** `joining` until the join resolves, then the room's own state (`live`, `reconnecting`, `offline`, …). */
  state: ConnectionState | "joining" | "idle";
  /** Why the join failed (the room is then undefined), or the last error the room reported. */
  error: ChatClientError | undefined;
}

/**
 * Joins `roomId` while the component is mounted and leaves it on unmount or when `roomId`
 * changes. Pass the same `ChatClient` on every render (create it once, outside the component or
 * in a `useMemo`); `undefined` for either argument joins nothing (e.g. before a login).
 *
 * @example
 * function Chat({ client }: { client: ChatClient }) {
 *   const { room, state } = useRoom(client, "lobby", { last: 50 });
 *   const messages = useMessages(room);
 *   return <>{state !== "live" && <Banner state={state} />}{messages.map((m) => <Line key={m.seq} m={m} />)}</>;
 * }
 */
export function useRoom(client: ChatClient | undefined, roomId: string | undefined, options: Omit<JoinOptions, "signal"> = {}): RoomHandle {
  const [handle, setHandle] = useState<RoomHandle>({ room: undefined, state: client && roomId ? "joining" : "idle", error: undefined });
  // The options are read when the join starts; only their values restart it (an object literal
  // is new on every render).
  const { last, since } = options;
  useEffect(() => {
    if (!client || roomId === undefined) {
      setHandle({ room: undefined, state: "idle", error: undefined });
      return;
    }
    const abort = new AbortController();
    let joined: Room | undefined;
    const offs: (() => void)[] = [];
    setHandle({ room: undefined, state: "joining", error: undefined });
    const join: JoinOptions = { signal: abort.signal };
    if (last !== undefined) join.last = last;
    if (since !== undefined) join.since = since;
    client.join(roomId, join).then(
      (room) => {
        // StrictMode and fast room switches unmount before a join resolves: leave that room.
        if (abort.signal.aborted) return room.leave();
        joined = room;
        setHandle({ room, state: room.state, error: undefined });
        offs.push(room.on("state", (state) => setHandle((h) => (h.room === room ? { ...h, state } : h))));
        offs.push(room.on("error", (error) => setHandle((h) => (h.room === room ? { ...h, error } : h))));
      },
      (error: unknown) => {
        if (abort.signal.aborted) return;
        const reason = error instanceof ChatClientError ? error : new ChatClientError("protocol", `unable to join room ${roomId}; ${String(error)}`);
        setHandle({ room: undefined, state: "offline", error: reason });
      },
    );
    return () => {
      abort.abort();
      for (const off of offs) off();
      joined?.leave();
    };
  }, [client, roomId, last, since]);
  return handle;
}

/**
 * A value read from the room, re-read when one of `events` fires. The snapshot is cached per
 * event, as useSyncExternalStore requires (it compares snapshots with Object.is and would loop
 * on a fresh object per call).
 */
function useRoomValue<T>(room: Room | undefined, events: readonly (keyof RoomEvents)[], read: (room: Room) => T, empty: T): T {
  const cache = useRef<{ room: Room; version: number; value: T } | undefined>(undefined);
  const version = useRef(0);
  const subscribe = useCallback(
    (onChange: () => void) => {
      if (!room) return () => {};
      const offs = events.map((event) =>
        room.on(event, () => {
          version.current++;
          onChange();
        }),
      );
      return () => {
        for (const off of offs) off();
      };
    },
    // `events` are module constants below.
    [room, events],
  );
  const snapshot = (): T => {
    if (!room) return empty;
    const known = cache.current;
    if (known && known.room === room && known.version === version.current) return known.value;
    const value = read(room);
    cache.current = { room, version: version.current, value };
    return value;
  };
  return useSyncExternalStore(subscribe, snapshot, snapshot);
}

const NO_MESSAGES: readonly Message[] = [];
const NO_LINES: readonly TimelineLine[] = [];
const NO_TYPISTS: readonly string[] = [];
const NO_PRESENCE: ReadonlyMap<string, PresenceData | undefined> = new Map();
const NO_UNREAD = { unread: 0, readSeq: 0 } as const;
// What changes each list: a new message, a change to one it holds (edit, delete, reaction, reply
// count), an older page in front of it, and for the timeline a system entry.
const MESSAGE_EVENTS = ["message", "update", "older"] as const;
const TIMELINE_EVENTS = ["message", "update", "older", "system"] as const;
const TYPING_EVENTS = ["typing"] as const;
const PRESENCE_EVENTS = ["presence"] as const;
const UNREAD_EVENTS = ["unread"] as const;

/**
 * The room's messages, ordered by seq, contiguous, without duplicates (`room.messages`), in their
 * current form; a new array whenever one joins the list, one of them changes (edited, deleted,
 * reacted to, replied to), or `room.loadOlder()` puts older ones in front.
 *
 * @example
 * const messages = useMessages(room);
 * return <ul>{messages.map((m) => <li key={m.seq}>{m.userId}: {m.text}</li>)}</ul>;
 */
export function useMessages(room: Room | undefined): readonly Message[] {
  return useRoomValue(room, MESSAGE_EVENTS, (r) => r.messages, NO_MESSAGES);
}

/**
 * What a chat shows as lines (`room.timeline`): the messages and the system entries ("alice
 * joined", role and room changes) in their place, by seq.
 *
 * @example
 * const lines = useTimeline(room);
 * return <ul>{lines.map((l) => <li key={l.seq}>{l.kind === "system" ? <i>{l.text}</i> : `${l.userId}: ${l.text}`}</li>)}</ul>;
 */
export function useTimeline(room: Room | undefined): readonly TimelineLine[] {
  return useRoomValue(room, TIMELINE_EVENTS, (r) => r.timeline, NO_LINES);
}

/**
 * Who is online in the room (userId → their presence data), you included.
 *
 * @example
 * const online = usePresence(room);
 * return <span>{online.size} online</span>;
 */
export function usePresence(room: Room | undefined): ReadonlyMap<string, PresenceData | undefined> {
  return useRoomValue(room, PRESENCE_EVENTS, (r) => new Map(r.presence), NO_PRESENCE);
}

/**
 * The other users typing now (never you). Call `room.typing()` on your input's keystrokes.
 *
 * @example
 * const typists = useTyping(room);
 * return typists.length > 0 ? <em>{typists.join(", ")} typing…</em> : null;
 */
export function useTyping(room: Room | undefined): readonly string[] {
  return useRoomValue(room, TYPING_EVENTS, (r) => [...r.typists], NO_TYPISTS);
}

/**
 * The exact count of others' messages after your read cursor, and the cursor (`room.unread`,
 * `room.readSeq`). `room.markRead()` moves it.
 *
 * @example
 * const { unread } = useUnread(room);
 * return unread > 0 ? <Badge n={unread} /> : null;
 */
export function useUnread(room: Room | undefined): { unread: number; readSeq: number } {
  return useRoomValue(room, UNREAD_EVENTS, (r) => ({ unread: r.unread, readSeq: r.readSeq }), NO_UNREAD);
}
