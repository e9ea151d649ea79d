// How replicas are named and chosen. A replica is a Durable Object per (tenant, room, region,
// shard), named `<tenant>:<roomId>@<region>#<shard>`; room ids and tenant ids never contain '@'
// or '#' (ROOM_ID_PATTERN, TENANT_ID_PATTERN), so the name parses back unambiguously and a
// replica's room is its name, never an argument a caller could forge.

import type { RoomKey } from "../storage/types.js";
import { roomKeyOf, roomName } from "../room/address.js";

/** Cloudflare's Durable Object location hints, which are also our region names. */
export const REGIONS = ["wnam", "enam", "sam", "weur", "eeur", "apac", "oc", "afr", "me"] as const;
export type Region = (typeof REGIONS)[number];

export const isRegion = (value: string | undefined): value is Region => REGIONS.includes(value as Region);

/** The region nearest a request's continent (request.cf.continent), when it has one. */
export const regionOfContinent = (continent: string | undefined): Region | undefined => {
  switch (continent) {
    case "NA":
      return "enam";
    case "SA":
      return "sam";
    case "EU":
      return "weur";
    case "AS":
      return "apac";
    case "OC":
      return "oc";
    case "AF":
      return "afr";
    default:
      return undefined;
  }
};

export interface ReplicaAddress {
  room: RoomKey;
  region: Region;
  shard: number;
}

export const replicaName = (a: ReplicaAddress): string => `${roomName(a.room)}@${a.region}#${a.shard}`;

export const replicaAddressOf = (name: string | undefined): ReplicaAddress | undefined => {
  const match = name ? /^(.+)@([a-z]+)#(\d{1,3})$/.exec(name) : null;
  if (!match) return undefined;
  const [, roomPart, region, shard] = match;
  const room = roomKeyOf(roomPart);
  if (!room || !isRegion(region) || roomPart?.includes("@")) return undefined;
  return { room, region, shard: Number(shard) };
};

/** Is `name` a replica of `room` (the primary refuses to register or push to anything else)? */
export const isReplicaOf = (name: string, room: RoomKey): boolean => {
  const address = replicaAddressOf(name);
  return address !== undefined && address.room.tenant === room.tenant && address.room.roomId === room.roomId;
};

/** FNV-1a: a user's sockets all go to the same shard of a region (stable, cheap, not secret). */
export const shardOf = (userId: string, shards: number): number => {
  let hash = 0x811c9dc5;
  for (let i = 0; i < userId.length; i++) {
    hash ^= userId.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) % Math.max(1, shards);
};

export interface RouteInput {
  /** Replication on for this deployment (REPLICATION=on) or this tenant (`"replication": true`). */
  enabled: boolean;
  /** request.cf.continent, when the runtime gives one. */
  continent: string | undefined;
  /** `?region=` on the socket URL: honoured only when the override is allowed (dev, tests). */
  override: string | undefined;
  overrideAllowed: boolean;
  shards: number;
  userId: string;
}

/** Where a socket goes: the primary, or a replica near the client. */
export const routeSocket = (input: RouteInput): { to: "primary" } | { to: "replica"; region: Region; shard: number } => {
  if (!input.enabled) return { to: "primary" };
  if (input.overrideAllowed && input.override === "primary") return { to: "primary" };
  const region = input.overrideAllowed && isRegion(input.override) ? input.override : regionOfContinent(input.continent);
  if (!region) return { to: "primary" };
  return { to: "replica", region, shard: shardOf(input.userId, input.shards) };
};
