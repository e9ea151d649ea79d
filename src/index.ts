// Entry point: the Hono app is the Worker's fetch, the attachment sweep its cron; Room is the
// per-room Durable Object.
import { app } from "./api/app.js";
import { sweepUnbound } from "./api/attachments.js";
import { consumeDeadLetters, consumeWebhooks, type QueueJob } from "./hooks/consumer.js";

export { Room } from "./room/room.js";
export { RoomReplica } from "./replica/replica.js";

export default {
  fetch: app.fetch,
  /** The cron trigger (wrangler.toml): uploads never sent are deleted after their TTL. */
  scheduled: (_controller, env, ctx) => {
    ctx.waitUntil(sweepUnbound(env).then(() => undefined));
  },
  /** Webhook delivery (src/hooks/consumer.ts): the webhooks queue and its dead-letter queue (wrangler.toml). */
  queue: async (batch, env) => {
    if (batch.queue.endsWith("-dlq")) await consumeDeadLetters(batch as MessageBatch<QueueJob>, env);
    else await consumeWebhooks(batch as MessageBatch<QueueJob>, env);
  },
} satisfies ExportedHandler<Env>;
