// Rooms and members: create, update (visibility), delete, join, roles, removal. Every change goes
// through the room's object so it can act on the live sockets at once, and they run one at a
// time, in arrival order (`serial`), so two changes can never interleave their awaits.
//
// Why a permission change cannot race with what it affects (docs/architecture.md, "Authorization"):
//  - Every decision is taken when its effect happens and against the state in memory at that
//    moment: a socket is accepted in the same turn as its check (Room.fetch), a history read or
//    send is decided after its awaits (Room.decide), and frames go only to sockets that exist.
//  - Revocations (making a room private, removing or demoting someone) change memory FIRST, in
//    one turn with closing the sockets that lost access, and only then write Postgres and Redis;
//    if a write fails the change is undone and reported `unavailable`. So from the turn a
//    revocation starts, nobody who lost access is accepted, served, or sent a frame.
//  - Grants (making a room public, adding someone) write Postgres first and change memory after:
//    until the change is durable, the room behaves as before.
//  - A revocation returns only after every entry authorized before it has its outcome
//    (Writer.settled): no entry authorized under the old rights commits after the call returns.
//  - The edge read path serves a room from Redis only while Redis says "public": the mark is
//    written (awaited) before a room is made private in Postgres, and it fails closed.

import { ChatError, ErrorCode } from "../protocol/errors.js";
import { SERVER_ACTOR } from "../protocol/limits.js";
import { SystemEvent, type SystemEntry } from "../protocol/frames.js";
import type { MirrorStore } from "../storage/redis.js";
import type { Member, MessageStore, Role, RoomKey, RoomPatch, RoomRecord, Visibility } from "../storage/types.js";
import { type Action, can, isRevocation, type RoomAccess } from "./access.js";
import { roomName } from "./address.js";
import { describeError } from "./log.js";
import type { SocketHub } from "./sockets.js";
import type { Writer } from "./writer.js";

/** A room as the API shows it, with the caller's role. */
export interface RoomInfo {
  roomId: string;
  name: string;
  visibility: Visibility;
  metadata: Record<string, unknown>;
  createdBy: string | null;
  createdAt: string;
  latestSeq: number;
  role: Role | null;
}

export interface AdminDeps {
  key: RoomKey;
  store(): MessageStore;
  /** Boots the room and decides `action` for `userId` against the state after the awaits. */
  authorize(userId: string, action: Action): Promise<{ record: RoomRecord; role: Role | null }>;
  access: RoomAccess;
  writer: Pick<Writer, "record" | "lastSeq" | "forget" | "updateRecord" | "settled">;
  sockets: Pick<SocketHub, "users" | "endAll">;
  /** Redis, for the edge read path's access mark (undefined: no mirror, no edge path). */
  mirrorStore: MirrorStore | undefined;
  /** Stops the mirror (waiting for a write in flight) before its stream is dropped. */
  stopMirror(): Promise<void>;
  /**
   * Forgets what the room held in memory and object storage: everything once it is deleted, or
   * only the mirror watermark after a failed delete (its stream may be gone: mirror afresh).
   */
  forgetRoom(deleted: boolean): Promise<void>;
  /**
   * Commits a system entry (who did what to whom) in the room's stream, after the change it
   * describes is durable. Never rejects: if the entry cannot be committed (Postgres failed right
   * after the change), the change stands without its timeline line, and that is logged.
   */
  recordEvent(actor: string, event: SystemEventBody, text: string): Promise<void>;
  /** The room became private: replicas re-check their users now (in order with later entries). */
  accessNarrowed?(): void;
  /**
   * Deletes the room's attachment objects (R2) before a purge removes their rows: objects first,
   * so a failure leaves rows that a retried purge finds again, never objects nobody can find.
   */
  purgeObjects?(): Promise<void>;
}

/** The fields of a system entry (src/protocol/frames.ts SystemEntry) besides its envelope. */
export type SystemEventBody = Pick<SystemEntry, "event"> & Partial<Pick<SystemEntry, "subject" | "role" | "changes" | "until">>;

export class RoomAdmin {
  private chain: Promise<unknown> = Promise.resolve();
  /** Set while a delete runs: every new operation on the room answers not_found. */
  deleting = false;

  constructor(private readonly deps: AdminDeps) {}

  /**
   * Runs `run` in the same one-at-a-time order as every membership change (moderation.ts uses it:
   * a ban ends a membership, so it must not interleave with a role change of the same user).
   */
  exclusive<T>(run: () => Promise<T>): Promise<T> {
    return this.serial(run);
  }

  /** Runs changes one at a time, in arrival order; a failed change does not stop the next. */
  private serial<T>(run: () => Promise<T>): Promise<T> {
    const next = this.chain.then(run, run);
    this.chain = next.catch(() => {});
    return next;
  }

  create(actor: string, init: { visibility: Visibility; name: string; metadata: Record<string, unknown> }): Promise<RoomInfo> {
    return this.serial(async () => {
      const { key, store, writer, access } = this.deps;
      // The server API creates rooms without becoming a member (its actor is no user).
      const creatorRole = actor === SERVER_ACTOR ? null : "admin";
      const record = await store().createRoom(key, { ...init, createdBy: actor, creatorRole });
      if (!record) throw new ChatError(ErrorCode.Conflict, "unable to create the room; the id is taken (perhaps by a deleted room)");
      writer.forget(); // re-boot on next use, with this record
      if (creatorRole) access.set(actor, creatorRole);
      if (record.visibility === "public") await this.markAccess("public");
      return roomInfo(key, record, creatorRole);
    });
  }

  get(actor: string): Promise<RoomInfo> {
    return (async () => {
      const { record, role } = await this.deps.authorize(actor, "read");
      return roomInfo(this.deps.key, { ...record, lastSeq: this.deps.writer.lastSeq }, role);
    })();
  }

  update(actor: string, patch: RoomPatch): Promise<RoomInfo> {
    return this.serial(async () => {
      const { key, store, writer, access, sockets, mirrorStore } = this.deps;
      const { record, role } = await this.deps.authorize(actor, "manage");
      const goingPrivate = patch.visibility === "private" && record.visibility === "public";
      const goingPublic = patch.visibility === "public" && record.visibility === "private";
      if (goingPrivate) {
        // Load the role of everyone connected while the room is still public (reads may wait)…
        for (const userId of sockets.users()) await access.roleOf(userId);
        // …then, in one turn: the room is private in memory and every socket whose user is not
        // known to be a member is closed. A socket that joined during the loads is closed too
        // (its user's role is not known); it reconnects and is checked against the new state.
        const current = writer.record ?? record;
        writer.updateRecord({ ...current, visibility: "private" });
        this.deps.accessNarrowed?.();
        for (const userId of sockets.users()) {
          if (!access.known(userId)) {
            sockets.endAll(ErrorCode.Forbidden, "the room became private; you are not a member", userId);
          }
        }
        try {
          if (mirrorStore) await mirrorStore.setAccess(key, "private");
          const updated = await store().updateRoom(key, patch);
          if (!updated) throw new ChatError(ErrorCode.NotFound, "unable to update the room; it does not exist");
          writer.updateRecord(updated);
          await writer.settled();
          await this.recordUpdate(actor, record, patch);
          return roomInfo(key, { ...updated, lastSeq: writer.lastSeq }, role);
        } catch (error) {
          // Not private after all (nothing durable changed, or the outcome is unknown): the room
          // stays public in memory, as Postgres most likely says; the caller retries.
          const latest = writer.record;
          if (latest) writer.updateRecord({ ...latest, visibility: "public" });
          throw error;
        }
      }
      const updated = await store().updateRoom(key, patch);
      if (!updated) throw new ChatError(ErrorCode.NotFound, "unable to update the room; it does not exist");
      writer.updateRecord(updated);
      if (goingPublic) await this.markAccess("public");
      await this.recordUpdate(actor, record, patch);
      return roomInfo(key, { ...updated, lastSeq: writer.lastSeq }, role);
    });
  }

  delete(actor: string, purge: boolean): Promise<{ deleted: true; purged: boolean }> {
    return this.serial(async () => {
      const { key, store, writer, mirrorStore, sockets } = this.deps;
      await this.deps.authorize(actor, "manage");
      this.deleting = true;
      try {
        // Nothing authorized before the delete may commit after it; then no mirror write may
        // start or still be running when the stream is dropped (it would bring entries back).
        await writer.settled();
        await this.deps.stopMirror();
        if (mirrorStore) await mirrorStore.drop(key);
        if (purge) await this.deps.purgeObjects?.();
        await store().deleteRoom(key, purge);
      } catch (error) {
        // Still there: next use boots again (and re-mirrors from scratch: the stream may be gone).
        writer.forget();
        this.deleting = false;
        await this.deps.forgetRoom(false).catch(() => {});
        throw error;
      }
      await this.deps.forgetRoom(true);
      this.deleting = false;
      sockets.endAll(ErrorCode.NotFound, "the room was deleted");
      return { deleted: true as const, purged: purge };
    });
  }

  /** Joins a public room (a re-join restores at most the role the user had: a viewer stays a viewer). */
  join(actor: string): Promise<Member> {
    return this.serial(async () => {
      const { key, store, access } = this.deps;
      const { record, role } = await this.deps.authorize(actor, "read");
      if (record.visibility !== "public" && role === null) {
        throw new ChatError(ErrorCode.Forbidden, "unable to join; private rooms are joined by invitation");
      }
      const member = await store().joinMember(key, actor);
      access.set(actor, member.role);
      if (role === null) await this.deps.recordEvent(actor, { event: SystemEvent.MemberJoined, subject: actor, role: member.role }, `${actor} joined`);
      return member;
    });
  }

  /** The first send of a user with no role in an open room: they join like `join`. */
  joinOnSend(userId: string): Promise<Role> {
    return this.serial(async () => {
      const member = await this.deps.store().joinMember(this.deps.key, userId);
      this.deps.access.set(userId, member.role);
      return member.role;
    });
  }

  /** Adds a member or changes a role (admins only). The last admin cannot be demoted. */
  setMember(actor: string, target: string, role: Role): Promise<Member> {
    return this.serial(async () => {
      const { key, store, access, writer } = this.deps;
      await this.deps.authorize(actor, "manage");
      const before = await access.roleOf(target);
      const revoking = isRevocation(before, role);
      if (revoking && before !== "admin") access.set(target, role);
      let result: Member | "last_admin";
      try {
        result = await store().setMember(key, target, role);
      } catch (error) {
        access.set(target, before);
        throw error;
      }
      if (result === "last_admin") {
        access.set(target, before);
        throw new ChatError(ErrorCode.Conflict, "unable to change the role; the room must keep at least one admin");
      }
      access.set(target, result.role);
      if (revoking) await writer.settled();
      if (before === null) {
        await this.deps.recordEvent(actor, { event: SystemEvent.MemberAdded, subject: target, role: result.role }, `${actor} added ${target} as ${result.role}`);
      } else if (before !== result.role) {
        await this.deps.recordEvent(actor, { event: SystemEvent.RoleChanged, subject: target, role: result.role }, `${actor} made ${target} ${result.role}`);
      }
      return result;
    });
  }

  /** Removes a member (admins, or anyone for themselves: leaving). Their sockets close at once if they lose read access. */
  removeMember(actor: string, target: string): Promise<{ removed: boolean }> {
    return this.serial(async () => {
      const { key, store, access, writer, sockets } = this.deps;
      const { record } = await this.deps.authorize(actor, actor === target ? "read" : "manage");
      const before = await access.roleOf(target);
      // The last admin's removal is refused by the store: revoke an admin only once it is durable.
      const revokeFirst = before !== "admin";
      const endSockets = (): void => {
        const current = writer.record ?? record;
        if (!can("read", current.visibility, null)) {
          sockets.endAll(ErrorCode.Forbidden, "you are no longer a member of this room", target);
        }
      };
      if (revokeFirst) {
        access.set(target, null);
        endSockets();
      }
      let result: "removed" | "absent" | "last_admin";
      try {
        result = await store().removeMember(key, target);
      } catch (error) {
        access.set(target, before);
        throw error;
      }
      if (result === "last_admin") {
        access.set(target, before);
        throw new ChatError(ErrorCode.Conflict, "unable to remove the member; the room must keep at least one admin");
      }
      if (!revokeFirst) {
        access.set(target, null);
        endSockets();
      }
      await writer.settled();
      if (result === "removed") {
        await (actor === target
          ? this.deps.recordEvent(actor, { event: SystemEvent.MemberLeft, subject: actor }, `${actor} left`)
          : this.deps.recordEvent(actor, { event: SystemEvent.MemberRemoved, subject: target }, `${actor} removed ${target}`));
      }
      return { removed: result === "removed" };
    });
  }

  members(actor: string, limit: number): Promise<{ members: Member[] }> {
    return (async () => {
      await this.deps.authorize(actor, "read");
      return { members: await this.deps.store().listMembers(this.deps.key, limit) };
    })();
  }

  /** The timeline line of a room update: what changed, compared with the record before it. */
  private async recordUpdate(actor: string, before: RoomRecord, patch: RoomPatch): Promise<void> {
    const changes: NonNullable<SystemEntry["changes"]> = {};
    const said: string[] = [];
    if (patch.name !== undefined && patch.name !== before.name) {
      changes.name = patch.name;
      said.push(`renamed the room to ${patch.name}`);
    }
    if (patch.visibility !== undefined && patch.visibility !== before.visibility) {
      changes.visibility = patch.visibility;
      said.push(`made the room ${patch.visibility}`);
    }
    if (patch.metadata !== undefined) {
      changes.metadata = true;
      said.push("changed the room's details");
    }
    if (said.length === 0) return;
    await this.deps.recordEvent(actor, { event: SystemEvent.RoomUpdated, changes }, `${actor} ${said.join(", ")}`);
  }

  /** The edge read path's mark. Awaited; a failure only means the room is served by the room object (fails closed). */
  private async markAccess(visibility: "public"): Promise<void> {
    await this.deps.mirrorStore?.setAccess(this.deps.key, visibility).catch((error: unknown) => {
      console.warn(`room ${roomName(this.deps.key)}: the edge access mark was not written: ${describeError(error)}`);
    });
  }
}

export const roomInfo = (room: RoomKey, record: RoomRecord, role: Role | null): RoomInfo => ({
  roomId: room.roomId,
  name: record.name,
  visibility: record.visibility,
  metadata: record.metadata,
  createdBy: record.createdBy,
  createdAt: record.createdAt,
  latestSeq: record.lastSeq,
  role,
});
