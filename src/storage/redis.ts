// Redis (Upstash) adapter: the mirror of committed messages for fanout outside the room.
//
// Key layout (stable; consumers rely on it). `{…}` is a Redis Cluster hash tag, so a room's keys
// live on one shard:
//   chat:{<tenant>:<roomId>}:messages   stream; entry id `<seq>-0`, one field `message` = Message JSON,
//                                       trimmed with MAXLEN ~ (MIRROR_MAXLEN, default 1,000)
//   chat:{<tenant>:<roomId>}:live       pub/sub channel; one PUBLISH per mirrored batch:
//                                       {"roomId","tenant","messages":[Message…]}
//   chat:{<tenant>:<roomId>}:access     "public" while the room is public; the edge read path
//                                       serves a room from the stream only then
// The stream is written strictly in seq order with explicit ids, so it can lag Postgres but never
// holds a seq Postgres does not and never holds one twice. It holds each entry as it was when it
// was mirrored, until it changes: a message that is edited, deleted, reacted to or replied to is
// removed from the stream (XDEL) in the same pipeline as the change entry, and a deleted message
// and its edits are removed *before* the delete commits (room: Mirror.redact). So the stream never
// serves a stale or deleted form; the holes it leaves are filled over REST, which serves current
// forms (readers already check contiguity, and the edge read path falls back on a hole).

import { Redis } from "@upstash/redis/cloudflare";
import { type Entry, EntryKind, type Message } from "../protocol/frames.js";
import { targetOf } from "../protocol/lifecycle.js";
import { type RoomKey, StorageError } from "./types.js";

export const REDIS_PREFIX = "chat";
export const streamKey = (room: RoomKey): string => `${REDIS_PREFIX}:{${room.tenant}:${room.roomId}}:messages`;
export const channelKey = (room: RoomKey): string => `${REDIS_PREFIX}:{${room.tenant}:${room.roomId}}:live`;
export const accessKey = (room: RoomKey): string => `${REDIS_PREFIX}:{${room.tenant}:${room.roomId}}:access`;
/** Set while `userId` is banned from the room (expires with a timed ban): the edge read path refuses them. */
export const roomBanKey = (room: RoomKey, userId: string): string => `${REDIS_PREFIX}:{${room.tenant}:${room.roomId}}:ban:${userId}`;
/** Set while `userId` is banned from the tenant. */
export const tenantBanKey = (tenant: string, userId: string): string => `${REDIS_PREFIX}:tenant:{${tenant}}:ban:${userId}`;

/** A ban mark: until (ISO) sets the key's expiry; null keeps it until removed. */
export const setBanMark = async (redis: Redis, key: string, until: string | null): Promise<void> => {
  try {
    if (until === null) await redis.set(key, "1");
    else await redis.set(key, "1", { pxat: Date.parse(until) });
  } catch (cause) {
    throw new StorageError("writing a ban mark in Redis failed", "failed", { cause });
  }
};

/** Redis' answer to an XADD with an id at or below the stream's top: already mirrored. */
const ALREADY_MIRRORED = /equal or smaller than the target stream top item/i;

export interface MirrorStore {
  /** Appends committed entries (ascending, contiguous) to the room's stream and publishes them. */
  append(room: RoomKey, messages: readonly Entry[]): Promise<void>;
  /** Removes these seqs from the stream (a delete's redaction, before it commits). */
  remove(room: RoomKey, seqs: readonly number[]): Promise<void>;
  /**
   * Messages with seq > afterSeq, oldest first, at most `limit`, if the stream still holds
   * seq afterSeq+1 (the trimmed window covers the request); otherwise undefined.
   */
  readAfter(room: RoomKey, afterSeq: number, limit: number): Promise<{ messages: Message[]; topSeq: number } | undefined>;
  /** Marks the room readable at the edge (public) or not (private). */
  setAccess(room: RoomKey, visibility: "public" | "private"): Promise<void>;
  /** Removes the room's stream and access mark (the room was deleted). */
  drop(room: RoomKey): Promise<void>;
  /** Marks (or unmarks: until = undefined) `userId` as banned from the room for the edge read path. */
  markBan?(room: RoomKey, userId: string, until: string | null | undefined): Promise<void>;
}

export interface UpstashOptions {
  url: string;
  token: string;
  maxLen: number;
  /** A request that has not answered by then fails; the mirror retries from its watermark. */
  timeoutMs: number;
}

const seqOfId = (id: string): number => Number(id.split("-")[0]);

export class UpstashMirror implements MirrorStore {
  private readonly redis: Redis;
  private readonly writer: Redis;

  constructor(private readonly options: UpstashOptions) {
    this.redis = new Redis({
      url: options.url,
      token: options.token,
      // The mirror has its own retry loop (from its watermark, with backoff, via an alarm):
      // the client's retries would only hold a failed batch longer.
      retry: { retries: 0 },
      enableTelemetry: false,
      signal: () => AbortSignal.timeout(options.timeoutMs),
    });
    // The writes' answers are only checked for errors, so the writer takes them as Redis sends
    // them: with automatic deserialization the client tries JSON.parse on every reply (an XADD's
    // "<seq>-0" throws and is caught, per entry), 14 µs of the room's thread per mirrored message
    // in a CPU profile (bench:profile --mirror). Reads keep it: XRANGE's reply shape depends on it.
    this.writer = new Redis({
      url: options.url,
      token: options.token,
      retry: { retries: 0 },
      enableTelemetry: false,
      automaticDeserialization: false,
      signal: () => AbortSignal.timeout(options.timeoutMs),
    });
  }

  async append(room: RoomKey, messages: readonly Entry[]): Promise<void> {
    if (messages.length === 0) return;
    const key = streamKey(room);
    const pipeline = this.writer.pipeline();
    const changed = new Set<number>();
    // Each entry is serialized once, for its XADD and for the batch's PUBLISH alike.
    const encoded: string[] = [];
    for (const message of messages) {
      const json = JSON.stringify(message);
      encoded.push(json);
      pipeline.xadd(key, `${message.seq}-0`, { message: json }, {
        trim: { type: "MAXLEN", threshold: this.options.maxLen, comparison: "~" },
      });
      const target = targetOf(message);
      if (target !== undefined) changed.add(target);
      if (message.kind === EntryKind.Delete) for (const seq of message.redacts) changed.add(seq);
    }
    // After the XADDs: a change and the message it names can be in one batch.
    if (changed.size > 0) pipeline.xdel(key, [...changed].map((seq) => `${seq}-0`));
    pipeline.publish(
      channelKey(room),
      `{"tenant":${JSON.stringify(room.tenant)},"roomId":${JSON.stringify(room.roomId)},"messages":[${encoded.join(",")}]}`,
    );
    let results: Array<{ error?: string }>;
    try {
      results = (await pipeline.exec({ keepErrors: true })) as Array<{ error?: string }>;
    } catch (cause) {
      throw new StorageError("mirroring to Redis failed", "failed", { cause });
    }
    for (const result of results) {
      if (result.error && !ALREADY_MIRRORED.test(result.error)) {
        // Only the start of Redis' error: the rest can echo the command (user content).
        throw new StorageError(`mirroring to Redis failed: ${result.error.slice(0, 80)}`, "failed");
      }
    }
  }

  async remove(room: RoomKey, seqs: readonly number[]): Promise<void> {
    if (seqs.length === 0) return;
    try {
      await this.writer.xdel(streamKey(room), seqs.map((seq) => `${seq}-0`));
    } catch (cause) {
      throw new StorageError("removing deleted messages from the Redis mirror failed", "failed", { cause });
    }
  }

  async setAccess(room: RoomKey, visibility: "public" | "private"): Promise<void> {
    try {
      await this.redis.set(accessKey(room), visibility);
    } catch (cause) {
      throw new StorageError("updating the room's access mark in Redis failed", "failed", { cause });
    }
  }

  async drop(room: RoomKey): Promise<void> {
    try {
      await this.redis.del(accessKey(room), streamKey(room));
    } catch (cause) {
      throw new StorageError("removing the room from Redis failed", "failed", { cause });
    }
  }

  async markBan(room: RoomKey, userId: string, until: string | null | undefined): Promise<void> {
    if (until !== undefined) return setBanMark(this.redis, roomBanKey(room, userId), until);
    try {
      await this.redis.del(roomBanKey(room, userId));
    } catch (cause) {
      throw new StorageError("removing a ban mark in Redis failed", "failed", { cause });
    }
  }

  /** The client, for the tenant ban marks the Worker writes (src/api/server.ts). */
  get client(): Redis {
    return this.redis;
  }

  /**
   * `reader`: the user asking. A reader banned from the room or the tenant (a mark written before
   * the ban took effect anywhere else) gets undefined, so the room answers them (with `banned`).
   */
  async readAfter(
    room: RoomKey,
    afterSeq: number,
    limit: number,
    reader?: string,
  ): Promise<{ messages: Message[]; topSeq: number } | undefined> {
    const key = streamKey(room);
    const pipeline = this.redis.pipeline();
    pipeline.get(accessKey(room));
    pipeline.xrange(key, `${afterSeq + 1}-0`, "+", limit);
    pipeline.xrevrange(key, "+", "-", 1);
    if (reader !== undefined) pipeline.exists(roomBanKey(room, reader), tenantBanKey(room.tenant, reader));
    let access: unknown;
    let range: Record<string, Record<string, unknown>>;
    let top: Record<string, Record<string, unknown>>;
    let banned: unknown;
    try {
      [access, range, top, banned] = (await pipeline.exec()) as [unknown, typeof range, typeof top, unknown];
    } catch (cause) {
      throw new StorageError("reading the Redis mirror failed", "failed", { cause });
    }
    // Private (or unknown) rooms are only served by the room object, which checks membership.
    if (access !== "public") return undefined;
    // A banned reader (or an answer we cannot read) goes to the room, which refuses them.
    if (reader !== undefined && banned !== 0) return undefined;
    const entries = Object.entries(range);
    const first = entries[0];
    // Covered only if the stream still holds the very next seq: then, written strictly in order,
    // it holds everything from there to its top with no gap.
    if (!first || seqOfId(first[0]) !== afterSeq + 1) return undefined;
    const messages: Message[] = [];
    for (const [id, fields] of entries) {
      // The client already JSON-parsed the field (automatic deserialization).
      const raw = fields.message;
      const message = (typeof raw === "string" ? JSON.parse(raw) : raw) as Message | undefined;
      if (!message || typeof message !== "object" || message.seq !== seqOfId(id) || message.seq !== afterSeq + 1 + messages.length) return undefined;
      messages.push(message);
    }
    const topId = Object.keys(top)[0];
    return { messages, topSeq: topId ? seqOfId(topId) : afterSeq };
  }
}
