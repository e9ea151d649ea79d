// @edge-chat server SDK entry: the server API client (Node 20+ and Workers).
export { ChatServer, type ChatServerOptions, ServerApiError } from "./client.js";
export type { ApiKey, Member, Report, Restriction, Role, Room, UserExport, Visibility } from "./client.js";
