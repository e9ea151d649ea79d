// Entry point: the Hono app is the Worker; Room is the per-room Durable Object.
import { app } from "./api/app.js";

export { Room } from "./room/room.js";
export default app;
