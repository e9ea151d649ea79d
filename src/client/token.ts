// Tokens come from the app's own backend (`tokenProvider`). The SDK never verifies them (it holds no
// key); it only reads `exp` to ask for a new one before the server would refuse the old one, and
// drops a token the server has refused (the `unauthorized` close code or frame, HTTP 401).

import { ChatClientError } from "./errors.js";

/** The claims the SDK reads. `sub` is the user id the server derives from the token. */
export interface TokenClaims {
  exp?: number;
  iat?: number;
  sub?: string;
}

/** Refresh a minute before expiry, or after 80% of the lifetime for tokens shorter than five minutes. */
export const DEFAULT_REFRESH_SKEW_MS = 60_000;

/**
 * A freshly fetched token is used even if it already looks expired. With no `iat`, only the local
 * clock says whether `exp` has passed; a clock that runs ahead would otherwise make the SDK fetch
 * token after token in a tight loop. The server is the judge: it closes with `unauthorized` if the token is bad.
 */
export const MIN_TOKEN_USE_MS = 5_000;

const base64UrlDecode = (segment: string): string => {
  const base64 = segment.replace(/-/g, "+").replace(/_/g, "/");
  const binary = atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4));
  const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
  return new TextDecoder().decode(bytes);
};

/**
 * Reads a JWT's payload without verifying it; undefined for anything that is not a JWT (an opaque
 * token is fine: it is used until the server refuses it).
 *
 * @example
 * decodeJwtClaims(token)?.exp; // seconds since the epoch
 */
export const decodeJwtClaims = (token: string): TokenClaims | undefined => {
  const payload = token.split(".")[1];
  if (payload === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(base64UrlDecode(payload));
  } catch {
    return undefined;
  }
  if (typeof parsed !== "object" || parsed === null) return undefined;
  const { exp, iat, sub } = parsed as Record<string, unknown>;
  return {
    ...(typeof exp === "number" && Number.isFinite(exp) ? { exp } : {}),
    ...(typeof iat === "number" && Number.isFinite(iat) ? { iat } : {}),
    ...(typeof sub === "string" ? { sub } : {}),
  };
};

/**
 * The local time (ms) from which a token should no longer be presented, or undefined if it never
 * expires. When the token has `iat`, its lifetime (`exp − iat`) is counted from `fetchedAt`, so a
 * local clock that is minutes off does not matter; otherwise `exp` is read against the local clock.
 *
 * @example
 * // issued now, valid for 10 minutes: refresh after 9 minutes
 * tokenRefreshAt({ iat: 1000, exp: 1600 }, Date.now()); // Date.now() + 540_000
 */
export const tokenRefreshAt = (
  claims: TokenClaims | undefined,
  fetchedAt: number,
  skewMs: number = DEFAULT_REFRESH_SKEW_MS,
): number | undefined => {
  if (claims?.exp === undefined) return undefined;
  const expiresAt =
    claims.iat !== undefined && claims.exp > claims.iat ? fetchedAt + (claims.exp - claims.iat) * 1000 : claims.exp * 1000;
  const lifetime = expiresAt - fetchedAt;
  return expiresAt - Math.max(0, Math.min(skewMs, lifetime / 5));
};

interface CachedToken {
  token: string;
  claims: TokenClaims | undefined;
  fetchedAt: number;
  refreshAt: number | undefined;
}

/**
 * Caches the provider's token, asks for a new one shortly before it expires, and shares one
 * provider call between concurrent callers (a reconnect and a REST fill often need one at once).
 *
 * @example
 * const tokens = new TokenSource(() => fetch("/my-backend/chat-token").then((r) => r.text()));
 * const token = await tokens.get();
 * tokens.invalidate(token); // the server said 401: the next get() asks the provider again
 */
export class TokenSource {
  #current: CachedToken | undefined;
  #inflight: Promise<string> | undefined;

  constructor(
    private readonly provider: () => Promise<string>,
    private readonly now: () => number = Date.now,
    private readonly skewMs: number = DEFAULT_REFRESH_SKEW_MS,
  ) {}

  /** A token that is not about to expire, fetching a new one if needed. */
  get(): Promise<string> {
    const current = this.#current;
    if (current) {
      const now = this.now();
      const fresh = current.refreshAt === undefined || now < current.refreshAt;
      if (fresh || now - current.fetchedAt < MIN_TOKEN_USE_MS) return Promise.resolve(current.token);
    }
    return this.#refresh();
  }

  /** The claims of the current token, if it is a JWT. */
  get claims(): TokenClaims | undefined {
    return this.#current?.claims;
  }

  /**
   * Forget `token` because the server refused it. A token other than the current one is ignored:
   * two requests that failed with the same old token must not throw away the new one.
   */
  invalidate(token: string): void {
    if (this.#current?.token === token) this.#current = undefined;
  }

  #refresh(): Promise<string> {
    this.#inflight ??= this.#fetch().finally(() => {
      this.#inflight = undefined;
    });
    return this.#inflight;
  }

  async #fetch(): Promise<string> {
    let token: unknown;
    try {
      token = await this.provider();
    } catch (cause) {
      throw new ChatClientError("unauthorized", "unable to get a token; tokenProvider threw", { cause });
    }
    if (typeof token !== "string" || token.length === 0) {
      throw new ChatClientError("unauthorized", "unable to get a token; tokenProvider must resolve to a non-empty string");
    }
    const fetchedAt = this.now();
    const claims = decodeJwtClaims(token);
    this.#current = { token, claims, fetchedAt, refreshAt: tokenRefreshAt(claims, fetchedAt, this.skewMs) };
    return token;
  }
}
