// Sends from a replica's clients go to the primary (the room's single writer). One request in
// flight per replica, carrying every send queued meanwhile in arrival order, so a user's sends
// keep their order (the primary enqueues a batch in one turn, in order) and a burst costs one
// long-haul round trip, not one per message.

import { ErrorCode } from "../protocol/errors.js";
import type { SendOutcome } from "../room/results.js";
import type { SendRequestOf } from "../room/sends.js";

export interface ForwardedSend {
  userId: string;
  request: SendRequestOf;
}

export class Forwarder {
  private queue: Array<ForwardedSend & { resolve: (outcome: SendOutcome) => void }> = [];
  private inFlight = false;

  constructor(private readonly call: (sends: ForwardedSend[]) => Promise<SendOutcome[]>) {}

  get pending(): number {
    return this.queue.length + (this.inFlight ? 1 : 0);
  }

  send(userId: string, request: SendRequestOf): Promise<SendOutcome> {
    return new Promise((resolve) => {
      this.queue.push({ userId, request, resolve });
      this.pump();
    });
  }

  private pump(): void {
    if (this.inFlight || this.queue.length === 0) return;
    this.inFlight = true;
    const batch = this.queue.splice(0);
    this.call(batch.map(({ userId, request }) => ({ userId, request }))).then(
      (outcomes) => {
        this.inFlight = false;
        for (const [i, item] of batch.entries()) item.resolve(outcomes[i] ?? lost());
        this.pump();
      },
      () => {
        // The outcome is unknown (the call may have reached the primary): the client resends with
        // the same clientMsgId and the primary's dedup answers with the first commit's ack.
        this.inFlight = false;
        for (const item of batch) item.resolve(lost());
        this.pump();
      },
    );
  }
}

const lost = (): SendOutcome => ({
  ok: false,
  code: ErrorCode.Unavailable,
  message: "unable to send; the room did not answer; resend with the same clientMsgId",
});
