// The queue consumer: delivers webhook jobs over HTTPS, signed, and tells the room how it went.
// A job's events go out one at a time, in order; the first failure stops the job (the rest must
// not overtake it) and is reported to the room, which re-sends from there after its backoff
// (src/hooks/dispatcher.ts). The consumer keeps no state: a job the room no longer expects (stale
// token) is delivered anyway and its report ignored, so the worst case is a duplicate.

import { readConfig } from "../config.js";
import { roomStub } from "../room/address.js";
import { signWebhook, WebhookHeader } from "../server/webhooks.js";
import { refuseUrl, retryDelayS, type WebhookEndpoint } from "./config.js";
import type { HookJob, HookReport, SeqEvent } from "./dispatcher.js";
import type { WebhookEvent } from "./events.js";

/** A room.created / room.deleted event (no seq): retried by the queue itself, dead-lettered by its DLQ. */
export interface RoomEventJob {
  kind: "room";
  tenant: string;
  endpointId: string;
  event: WebhookEvent;
}

export type QueueJob = HookJob | RoomEventJob;

export type Post = (url: string, init: RequestInit) => Promise<Response>;

/** One signed POST; resolves with why it failed, or undefined when the endpoint answered 2xx. */
export const deliver = async (endpoint: WebhookEndpoint, event: WebhookEvent, body: string, timeoutMs: number, post: Post, allowPrivate: boolean): Promise<string | undefined> => {
  // Checked again at delivery: the configuration was checked when read, but a redirect target is not.
  const refused = refuseUrl(endpoint.url, allowPrivate);
  if (refused) return `url ${refused}`;
  const timestamp = Math.floor(Date.now() / 1000);
  try {
    const response = await post(endpoint.url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "user-agent": "edge-chat-webhooks/1",
        [WebhookHeader.Id]: event.id,
        [WebhookHeader.Type]: event.type,
        [WebhookHeader.Timestamp]: String(timestamp),
        [WebhookHeader.Signature]: await signWebhook(endpoint.secret, timestamp, body),
      },
      body,
      // A redirect could lead anywhere (an internal address): it counts as a failure.
      redirect: "manual",
      signal: AbortSignal.timeout(timeoutMs),
    });
    // The body is not needed; reading it frees the connection.
    await response.body?.cancel().catch(() => {});
    return response.ok ? undefined : `HTTP ${response.status}`;
  } catch (error) {
    return error instanceof Error ? `${error.name}: ${error.message}`.slice(0, 200) : "delivery failed";
  }
};

/** Delivers a seq job in order, stopping at the first failure; returns what to report. */
export const runJob = async (job: HookJob, endpoint: WebhookEndpoint, timeoutMs: number, post: Post, allowPrivate: boolean): Promise<HookReport> => {
  for (let i = 0; i < job.events.length; i++) {
    const event = job.events[i] as SeqEvent;
    const error = await deliver(endpoint, event, JSON.stringify(event), timeoutMs, post, allowPrivate);
    if (error !== undefined) {
      // The failing seq's events that did not arrive (its earlier ones did, and are sent again: duplicates).
      const events = job.events.slice(i).filter((e) => e.seq === event.seq);
      return { endpointId: job.endpointId, token: job.token, failure: { seq: event.seq, events, error } };
    }
  }
  return { endpointId: job.endpointId, token: job.token };
};

const endpointOf = (env: Env, tenant: string, endpointId: string): WebhookEndpoint | undefined =>
  readConfig(env).tenants.get(tenant)?.webhooks.find((e) => e.id === endpointId);

/** The Worker's `queue` handler for the webhooks queue. */
export const consumeWebhooks = async (batch: MessageBatch<QueueJob>, env: Env, post: Post = fetch): Promise<void> => {
  const settings = readConfig(env).webhooks;
  await Promise.all(
    batch.messages.map(async (message) => {
      const job = message.body;
      const endpoint = endpointOf(env, job.tenant, job.endpointId);
      if (!endpoint) {
        // The endpoint was removed from the configuration: nobody to deliver to.
        message.ack();
        return;
      }
      if (job.kind === "room") {
        const error = await deliver(endpoint, job.event, JSON.stringify(job.event), settings.timeoutMs, post, settings.allowPrivate);
        if (error === undefined) message.ack();
        // The queue's own retries (max_retries, then the dead-letter queue) carry these.
        else message.retry({ delaySeconds: retryDelayS(message.attempts, settings.retryBaseS) });
        return;
      }
      const report = await runJob(job, endpoint, settings.timeoutMs, post, settings.allowPrivate);
      try {
        const answer = await roomStub(env, { tenant: job.tenant, roomId: job.roomId }).webhookReport(report);
        if (!answer.ok) throw new Error(answer.message);
        message.ack();
      } catch (error) {
        // The room could not hear it: the queue retries the job (its deliveries repeat: duplicates).
        console.warn(`webhooks: unable to report job ${job.endpointId} of ${job.tenant}:${job.roomId}: ${error instanceof Error ? error.message : String(error)}`);
        message.retry();
      }
    }),
  );
};

/**
 * The dead-letter queue's consumer. A seq job lands here when its report never reached the room:
 * the room is told at once (it re-sends the job). A room event lands here after the queue's
 * retries: it is recorded as a dead letter by its room.
 */
export const consumeDeadLetters = async (batch: MessageBatch<QueueJob>, env: Env): Promise<void> => {
  await Promise.all(
    batch.messages.map(async (message) => {
      const job = message.body;
      try {
        if (job.kind === "seq") {
          await roomStub(env, { tenant: job.tenant, roomId: job.roomId }).webhookLost(job.endpointId, job.token);
        } else {
          await roomStub(env, { tenant: job.tenant, roomId: job.event.roomId }).webhookDeadLetter(job.endpointId, job.event);
        }
        message.ack();
      } catch {
        message.retry();
      }
    }),
  );
};
