// @edge-chat server SDK entry: the server API client (Node 20+ and Workers).
export { ChatServer, type ChatServerOptions, ServerApiError } from "./client.js";
export type { ApiKey, Member, Report, Restriction, Role, Room, UserExport, Visibility } from "./client.js";
// Verifying the webhooks the room sends (docs/webhooks.md, "Verifying a delivery").
export { DEFAULT_TOLERANCE_S, signWebhook, verifyWebhook, WebhookHeader } from "./webhooks.js";
export type { VerifyFailure, VerifyOptions, VerifyResult, WebhookDelivery } from "./webhooks.js";
