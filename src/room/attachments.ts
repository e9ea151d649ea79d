// The room's side of attachments (issue #17): who may upload and download, recording an upload,
// and the check that makes a multipart send ready to commit. The bytes never pass through the
// room object: the Worker streams them to and from R2; the room decides and keeps the record.
//
// Why an attachment cannot be bound twice, bound after it was deleted, or bound by someone else:
//  - Only this room's object binds its attachments, and only inside its commit statement, which
//    re-checks in the same transaction that each named upload exists, belongs to the sender and
//    is unbound (COMMIT_SQL in src/storage/postgres.ts). So the binding commits with the message,
//    or neither does.
//  - `prepare` checks the same before the send is queued, plus that the object is still in R2,
//    and reserves the ids in memory until the send's outcome: two sends naming one upload (even
//    in one batch) cannot both pass; the second hears `conflict` and consumes no seq.
//  - The cleanup sweep (src/api/attachments.ts) removes only uploads older than the unbound TTL;
//    `prepare` refuses uploads older than TTL − UNBOUND_MARGIN_S (by Postgres' clock both), so
//    the sweep never deletes what a queued send is about to bind.

import { ChatError, ErrorCode } from "../protocol/errors.js";
import { type Part, PartType, summaryOf } from "../protocol/parts.js";
import {
  type AttachmentConfig,
  type AttachmentDescriptor,
  type AttachmentRecord,
  type AttachmentStore,
  deleteObjects,
  deletePrefix,
  objectKey,
  partOf,
  roomPrefix,
} from "../storage/attachments.js";
import type { RoomKey, Visibility } from "../storage/types.js";
import type { PreparedSend, SendRequestOf } from "./sends.js";

export interface RoomAttachmentsDeps {
  key: RoomKey;
  /** The R2 bucket (undefined: attachments are not configured in this deployment). */
  bucket: R2Bucket | undefined;
  store(): AttachmentStore;
  config: AttachmentConfig;
  /** Throws unless `userId` may send here now (joins open rooms like a send does). */
  authorizeSend(userId: string): Promise<unknown>;
  /** Throws unless `userId` may read the room now; answers its visibility. */
  authorizeRead(userId: string): Promise<Visibility>;
}

/** What the Worker needs to serve a download. */
export interface DownloadGrant {
  attachment: AttachmentDescriptor;
  key: string;
  visibility: Visibility;
}

const notConfigured = (): ChatError =>
  new ChatError(ErrorCode.NotFound, "unable to use attachments; this deployment has no attachment bucket");

export class RoomAttachments {
  /** Upload ids named by a send that has no outcome yet (memory: a restart fails those sends anyway). */
  private readonly reserved = new Set<string>();

  constructor(private readonly deps: RoomAttachmentsDeps) {}

  /** Before any byte is stored: the caller may send here and is under the pending quota. */
  async admitUpload(userId: string): Promise<{ key: string; id: string; visibility: Visibility }> {
    if (!this.deps.bucket) throw notConfigured();
    await this.deps.authorizeSend(userId);
    // For the signed URL in the answer (how it may be cached); a sender can read, so this passes.
    const visibility = await this.deps.authorizeRead(userId);
    const pending = await this.deps.store().pendingOf(this.deps.key, userId);
    if (pending >= this.deps.config.pendingMax) {
      throw new ChatError(
        ErrorCode.RateLimited,
        `unable to upload; ${this.deps.config.pendingMax} uploads of yours here are not sent yet (send or wait for them to expire)`,
        { retryAfterMs: 60_000 },
      );
    }
    const id = crypto.randomUUID();
    return { id, key: objectKey(this.deps.key, id), visibility };
  }

  /** After the object is stored: the record (checked again: access may have changed while bytes streamed). */
  async record(userId: string, upload: Omit<AttachmentDescriptor, "createdAt">): Promise<AttachmentDescriptor> {
    await this.deps.authorizeSend(userId);
    return this.deps.store().insert(this.deps.key, userId, upload);
  }

  /** A download: readers of the room get bound attachments; an unbound one only its uploader. */
  async download(userId: string, id: string): Promise<DownloadGrant> {
    if (!this.deps.bucket) throw notConfigured();
    const visibility = await this.deps.authorizeRead(userId);
    const record = await this.deps.store().get(this.deps.key, id);
    if (!record || (record.boundSeq === null && record.userId !== userId)) {
      throw new ChatError(ErrorCode.NotFound, "unable to find the attachment in this room");
    }
    const { userId: _u, boundSeq: _b, ...attachment } = record;
    return { attachment, key: objectKey(this.deps.key, id), visibility };
  }

  /**
   * A multipart send's check (Sends calls it inside the user's chain): every attachment part
   * names an upload of this sender in this room that is unbound, young enough and still in R2.
   * Resolves the parts (name, size, type, dimensions) and the summary text; reserves the ids
   * until `settle`.
   */
  async prepare(userId: string, request: SendRequestOf): Promise<PreparedSend> {
    const sendParts = request.parts ?? [];
    const ids = sendParts.flatMap((p) => (p.type === PartType.Attachment ? [p.id] : []));
    if (ids.length === 0) return { text: summaryOf(sendParts), parts: sendParts as Part[] };
    const bucket = this.deps.bucket;
    if (!bucket) throw notConfigured();
    const busy = ids.find((id) => this.reserved.has(id));
    if (busy) throw new ChatError(ErrorCode.Conflict, `unable to send; attachment ${busy} is used by another message being sent`);
    const records = new Map((await this.deps.store().find(this.deps.key, ids, this.deps.config.unboundTtlS)).map((r) => [r.id, r]));
    // A resend of a message that did commit (its ack was lost): every upload is bound to this
    // sender's message with this clientMsgId. The commit statement answers it with the original.
    const resend = ids.every((id) => {
      const r = records.get(id);
      return r !== undefined && r.userId === userId && r.boundSeq !== null && r.boundClientMsgId === request.clientMsgId;
    });
    if (resend) {
      const parts = sendParts.map((p) => (p.type === PartType.Attachment ? partOf(records.get(p.id) as AttachmentRecord) : p));
      return { text: summaryOf(parts), parts };
    }
    for (const id of ids) {
      const record = records.get(id);
      // Another user's upload, another room's, another tenant's, or none: all the same answer,
      // so ids cannot be probed.
      if (!record || record.userId !== userId) {
        throw new ChatError(ErrorCode.NotFound, `unable to send; attachment ${id} is not an upload of yours in this room`);
      }
      if (record.boundSeq !== null) {
        throw new ChatError(ErrorCode.Conflict, `unable to send; attachment ${id} is already used by message ${record.boundSeq}`);
      }
      if (!record.bindable) throw new ChatError(ErrorCode.NotFound, `unable to send; attachment ${id} has expired, upload it again`);
    }
    // The object may have been lost after its record was written (an R2 failure, an operator):
    // no message may reference bytes that are not there.
    const heads = await Promise.all(ids.map((id) => bucket.head(objectKey(this.deps.key, id))));
    const lost = ids.find((_, i) => heads[i] === null);
    if (lost) throw new ChatError(ErrorCode.NotFound, `unable to send; the file of attachment ${lost} is gone, upload it again`);
    // Checked again after the awaits: another send of this user may have reserved one meanwhile.
    const raced = ids.find((id) => this.reserved.has(id));
    if (raced) throw new ChatError(ErrorCode.Conflict, `unable to send; attachment ${raced} is used by another message being sent`);
    for (const id of ids) this.reserved.add(id);
    const parts: Part[] = sendParts.map((p) => {
      if (p.type !== PartType.Attachment) return p;
      const record = records.get(p.id) as AttachmentRecord;
      return partOf(record);
    });
    return {
      text: summaryOf(parts),
      parts,
      settle: () => {
        for (const id of ids) this.reserved.delete(id);
      },
    };
  }

  /** A purge: every object under the room's prefix (the rows go with the room's cascade). */
  async purgeObjects(): Promise<void> {
    if (this.deps.bucket) await deletePrefix(this.deps.bucket, roomPrefix(this.deps.key));
  }

  /**
   * Messages were deleted (issue #14's `delete` entries): their attachments' objects go, then
   * their records. Objects first, so a failure leaves records a retry finds again.
   */
  async deleteForSeqs(seqs: readonly number[]): Promise<void> {
    const bucket = this.deps.bucket;
    if (!bucket || seqs.length === 0) return;
    const ids = await this.deps.store().boundTo(this.deps.key, seqs);
    await deleteObjects(
      bucket,
      ids.map((id) => objectKey(this.deps.key, id)),
    );
    await this.deps.store().remove(this.deps.key, ids);
  }
}
