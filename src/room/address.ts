// How a room is named: one Durable Object per (tenant, room), named `<tenant>:<roomId>`. The
// Worker finds the object by that name; the object reads it back from `ctx.id.name`, so the room
// key never travels in headers or RPC arguments.

import type { RoomKey } from "../storage/types.js";

export const roomName = (room: RoomKey): string => `${room.tenant}:${room.roomId}`;

/** The inverse of roomName (tenant ids never contain ':'); undefined for anything else. */
export const roomKeyOf = (name: string | undefined): RoomKey | undefined => {
  const at = name?.indexOf(":") ?? -1;
  if (!name || at <= 0 || at === name.length - 1) return undefined;
  return { tenant: name.slice(0, at), roomId: name.slice(at + 1) };
};

/** The room's object. */
export const roomStub = (env: Env, room: RoomKey) => env.ROOM.get(env.ROOM.idFromName(roomName(room)));
