// The tenant's before-commit hook: one synchronous HTTP call per message (and edit) before it is
// sequenced, which may allow it, reject it (a typed `rejected`, no seq used) or rewrite its text.
// The contract (docs/server-api.md, "Before-commit hook"):
//
//   POST <url>   content-type: application/json
//   x-chat-timestamp: <unix seconds>
//   x-chat-signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>
//   {"tenant","roomId","userId","kind":"message"|"edit","clientMsgId","text","parts"?,"target"?,"replyTo"?}
//
//   200 {"action":"allow"} | {"action":"reject","reason"?:string} | {"action":"rewrite","text":string}
//
// Anything else — a timeout (`timeoutMs`), a network error, a non-2xx status, a body that is not
// one of the three — is a failure of the hook, and the tenant's `failMode` decides: `open` lets
// the message through unchanged, `closed` refuses it with `unavailable` (retry the same
// clientMsgId). It runs inside the sender's chain (their messages keep their order) and off the
// writer: a slow hook delays that sender only, never the room's commits.

import type { BeforeCommitConfig } from "../config.js";
import { outboundUrlProblem } from "../outbound.js";
import { ChatError, ErrorCode } from "../protocol/errors.js";
import type { EntryKind } from "../protocol/frames.js";
import { MAX_TEXT_CHARS } from "../protocol/limits.js";
import type { Part } from "../protocol/parts.js";

export interface HookRequest {
  tenant: string;
  roomId: string;
  userId: string;
  kind: typeof EntryKind.Message | typeof EntryKind.Edit;
  clientMsgId: string;
  text: string;
  parts?: Part[];
  target?: number;
  replyTo?: number;
}

/** What the room does with the message: as it is, or with new text (and parts, for a multipart message). */
export type HookDecision = { ok: true; text: string; parts?: Part[] } | { ok: false; error: ChatError };

export type HookAnswer = { action: "allow" } | { action: "reject"; reason?: string } | { action: "rewrite"; text: string };

const MAX_REASON_CHARS = 200;

/** The hook's answer, checked; undefined when it is not one (a failure of the hook). */
export const parseHookAnswer = (value: unknown): HookAnswer | undefined => {
  if (typeof value !== "object" || value === null) return undefined;
  const v = value as Record<string, unknown>;
  if (v.action === "allow") return { action: "allow" };
  if (v.action === "reject") {
    if (v.reason !== undefined && typeof v.reason !== "string") return undefined;
    return v.reason === undefined ? { action: "reject" } : { action: "reject", reason: v.reason.slice(0, MAX_REASON_CHARS) };
  }
  if (v.action === "rewrite") {
    if (typeof v.text !== "string" || v.text.length === 0 || [...v.text].length > MAX_TEXT_CHARS || v.text.includes("\u0000")) return undefined;
    return { action: "rewrite", text: v.text };
  }
  return undefined;
};

/** A rewrite of a multipart message: its text parts become one with the new text; links and attachments stay. */
export const rewriteParts = (parts: Part[] | undefined, text: string): Part[] | undefined =>
  parts === undefined ? undefined : [{ type: "text", text }, ...parts.filter((p) => p.type !== "text")];

const hex = (bytes: ArrayBuffer): string => [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, "0")).join("");

/** `v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`: what a receiver recomputes to verify a call. */
export const signHookBody = async (secret: string, timestamp: number, body: string): Promise<string> => {
  const key = await crypto.subtle.importKey("raw", new TextEncoder().encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return `v1=${hex(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(`${timestamp}.${body}`)))}`;
};

/**
 * Calls the hook and turns its answer (or its failure, through the fail mode) into a decision.
 * `warn` hears about failures of the hook (never the message's text).
 */
export const reviewMessage = async (
  config: BeforeCommitConfig,
  request: HookRequest,
  options: { allowPrivate: boolean; warn: (what: string) => void; fetchImpl?: typeof fetch },
): Promise<HookDecision> => {
  const failed = (why: string): HookDecision => {
    options.warn(why);
    if (config.failMode === "open") return { ok: true, text: request.text, ...(request.parts ? { parts: request.parts } : {}) };
    return { ok: false, error: new ChatError(ErrorCode.Unavailable, "unable to send; the message could not be reviewed now, retry") };
  };
  // Checked again at call time (config is checked at parse): a URL must never slip through.
  const problem = outboundUrlProblem(config.url, options.allowPrivate);
  if (problem) return failed(`before-commit hook url ${problem}`);
  const body = JSON.stringify(request);
  const timestamp = Math.floor(Date.now() / 1000);
  let answer: unknown;
  try {
    const res = await (options.fetchImpl ?? fetch)(config.url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-chat-timestamp": String(timestamp),
        "x-chat-signature": await signHookBody(config.secret, timestamp, body),
      },
      body,
      // Redirects could lead anywhere (SSRF): the hook answers itself or not at all.
      redirect: "manual",
      signal: AbortSignal.timeout(config.timeoutMs),
    });
    if (res.status < 200 || res.status > 299) {
      await res.body?.cancel().catch(() => {});
      return failed(`before-commit hook answered ${res.status}`);
    }
    answer = await res.json();
  } catch (error) {
    const timedOut = error instanceof Error && (error.name === "TimeoutError" || error.name === "AbortError");
    return failed(timedOut ? `before-commit hook did not answer within ${config.timeoutMs} ms` : "before-commit hook could not be reached");
  }
  const parsed = parseHookAnswer(answer);
  if (!parsed) return failed("before-commit hook answered something other than allow, reject or rewrite");
  if (parsed.action === "reject") {
    const reason = parsed.reason ? `: ${parsed.reason}` : "";
    return { ok: false, error: new ChatError(ErrorCode.Rejected, `unable to send; the message was rejected${reason}`) };
  }
  if (parsed.action === "rewrite") {
    const parts = rewriteParts(request.parts, parsed.text);
    return { ok: true, text: parsed.text, ...(parts ? { parts } : {}) };
  }
  return { ok: true, text: request.text, ...(request.parts ? { parts: request.parts } : {}) };
};
