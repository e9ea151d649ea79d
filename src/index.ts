// Entry point: the Hono app is the Worker's fetch, the attachment sweep its cron; Room is the
// per-room Durable Object.
import { app } from "./api/app.js";
import { sweepUnbound } from "./api/attachments.js";

export { Room } from "./room/room.js";
export { RoomReplica } from "./replica/replica.js";

export default {
  fetch: app.fetch,
  /** The cron trigger (wrangler.toml): uploads never sent are deleted after their TTL. */
  scheduled: (_controller, env, ctx) => {
    ctx.waitUntil(sweepUnbound(env).then(() => undefined));
  },
} satisfies ExportedHandler<Env>;
