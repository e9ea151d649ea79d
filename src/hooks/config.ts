// Webhook endpoints of a tenant (the `webhooks` array of its TENANTS entry) and the delivery
// settings (WEBHOOK_* vars). Validated when the configuration is read, so a typo in an event
// type or a URL that points into a private network is a loud configuration error, not an
// endpoint that silently never hears anything (or an SSRF probe of our own network).

import { isPrivateHost } from "../outbound.js";

/** Every event type an endpoint may subscribe to (docs/webhooks.md, "Event catalogue"). */
export const WebhookEventType = {
  MessageCreated: "message.created",
  MessageEdited: "message.edited",
  MessageDeleted: "message.deleted",
  Reaction: "reaction",
  MemberAdded: "member.added",
  MemberRemoved: "member.removed",
  MemberUpdated: "member.updated",
  /** Moderation (docs/server-api.md): a ban or mute set or lifted; `data.event` says which. */
  MemberModerated: "member.moderated",
  RoomCreated: "room.created",
  RoomUpdated: "room.updated",
  RoomDeleted: "room.deleted",
  /** A user reported a message or a user (`POST /v1/rooms/{id}/reports`); no seq (reports are not in the stream). */
  ReportCreated: "report.created",
  Notification: "notification",
} as const;

export type WebhookEventType = (typeof WebhookEventType)[keyof typeof WebhookEventType];

const EVENT_TYPES: ReadonlySet<string> = new Set(Object.values(WebhookEventType));

export interface WebhookEndpoint {
  /** Stable name of the endpoint within its tenant (its delivery cursor in each room is keyed by it). */
  id: string;
  url: string;
  /** HMAC-SHA256 key of the signature header (at least 16 characters). */
  secret: string;
  events: ReadonlySet<WebhookEventType>;
}

export interface WebhookSettings {
  /** WEBHOOKS_ALLOW_PRIVATE=true (dev and tests only): endpoints on loopback or private addresses are accepted. */
  allowPrivate: boolean;
  /** Failed deliveries of one event before it is dead-lettered (WEBHOOK_MAX_ATTEMPTS, default 8). */
  maxAttempts: number;
  /** The first retry's delay in seconds, doubling per failure (WEBHOOK_RETRY_BASE_S, default 10), capped at 1 h. */
  retryBaseS: number;
  /** How long one HTTP delivery may take (WEBHOOK_TIMEOUT_MS, default 10 s). */
  timeoutMs: number;
}

export interface WebhookEnv {
  WEBHOOKS_ALLOW_PRIVATE?: string;
  WEBHOOK_MAX_ATTEMPTS?: string;
  WEBHOOK_RETRY_BASE_S?: string;
  WEBHOOK_TIMEOUT_MS?: string;
}

const positive = (value: string | undefined, fallback: number): number => {
  const n = Number(value);
  return value !== undefined && value !== "" && Number.isSafeInteger(n) && n > 0 ? n : fallback;
};

export const webhookSettings = (env: WebhookEnv): WebhookSettings => ({
  allowPrivate: env.WEBHOOKS_ALLOW_PRIVATE === "true",
  maxAttempts: positive(env.WEBHOOK_MAX_ATTEMPTS, 8),
  retryBaseS: positive(env.WEBHOOK_RETRY_BASE_S, 10),
  timeoutMs: positive(env.WEBHOOK_TIMEOUT_MS, 10_000),
});

/** Delay before the retry that follows `failures` consecutive failed deliveries (1-based): base · 2^(n−1), at most 1 h. */
export const retryDelayS = (failures: number, baseS: number): number => Math.min(3600, baseS * 2 ** Math.max(0, failures - 1));

// The address check is the one every outbound URL goes through (src/outbound.ts); re-exported
// for callers that only know this module.
export { isPrivateHost };

/** Why this URL may not be an endpoint, or undefined when it may. */
export const refuseUrl = (raw: string, allowPrivate: boolean): string | undefined => {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return "is not a URL";
  }
  if (url.protocol !== "https:" && !(allowPrivate && url.protocol === "http:")) {
    return "must be https:// (http:// only with WEBHOOKS_ALLOW_PRIVATE=true, for local development)";
  }
  if (url.username || url.password) return "must not carry credentials (sign with the secret instead)";
  if (!allowPrivate && isPrivateHost(url.hostname)) {
    return "points at a loopback or private address; refused (SSRF). Set WEBHOOKS_ALLOW_PRIVATE=true only for local development";
  }
  return undefined;
};

const ENDPOINT_ID = /^[A-Za-z0-9_-]{1,64}$/;

/** A short stable id from the URL, for endpoints configured without one (FNV-1a, hex). */
const idOfUrl = (url: string): string => {
  let h = 0x811c9dc5;
  for (let i = 0; i < url.length; i++) {
    h ^= url.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return `ep-${h.toString(16).padStart(8, "0")}`;
};

/**
 * Parses `TENANTS.<tenant>.webhooks`: `[{"url": "https://…", "secret": "…", "events": ["message.created", …], "id"?: "…"}]`.
 * `events` may be `["*"]` for every type.
 */
export const parseWebhooks = (
  tenant: string,
  raw: unknown,
  allowPrivate: boolean,
): { endpoints: WebhookEndpoint[]; error: string | undefined } => {
  const endpoints: WebhookEndpoint[] = [];
  if (raw === undefined) return { endpoints, error: undefined };
  const at = `TENANTS.${tenant}.webhooks`;
  if (!Array.isArray(raw)) return { endpoints, error: `${at} must be an array of {url, secret, events}` };
  const seen = new Set<string>();
  for (const [i, item] of raw.entries()) {
    const here = `${at}[${i}]`;
    if (typeof item !== "object" || item === null || Array.isArray(item)) return { endpoints, error: `${here} must be an object {url, secret, events}` };
    const e = item as Record<string, unknown>;
    if (typeof e.url !== "string") return { endpoints, error: `${here}.url must be a string` };
    const refused = refuseUrl(e.url, allowPrivate);
    if (refused) return { endpoints, error: `${here}.url ${refused}` };
    if (typeof e.secret !== "string" || e.secret.length < 16) return { endpoints, error: `${here}.secret must be a string of at least 16 characters` };
    if (!Array.isArray(e.events) || e.events.length === 0) return { endpoints, error: `${here}.events must be a non-empty array of event types (or ["*"])` };
    const events = new Set<WebhookEventType>();
    for (const type of e.events) {
      if (type === "*") {
        for (const t of Object.values(WebhookEventType)) events.add(t);
      } else if (typeof type === "string" && EVENT_TYPES.has(type)) {
        events.add(type as WebhookEventType);
      } else {
        return { endpoints, error: `${here}.events: unknown event type ${JSON.stringify(type)}; known: ${[...EVENT_TYPES].join(", ")}` };
      }
    }
    const id = e.id === undefined ? idOfUrl(e.url) : e.id;
    if (typeof id !== "string" || !ENDPOINT_ID.test(id)) return { endpoints, error: `${here}.id must be 1–64 of [A-Za-z0-9_-]` };
    if (seen.has(id)) return { endpoints, error: `${here}: endpoint id ${JSON.stringify(id)} is used twice (give each an "id")` };
    seen.add(id);
    endpoints.push({ id, url: e.url, secret: e.secret, events });
  }
  return { endpoints, error: undefined };
};
