// Authentication at the edge: every HTTP request and every socket carries a JWT issued by the
// tenant's own backend. `sub` is the user id, `tenant` (default "default") picks the tenant whose
// key verifies it: HS256 with the tenant's secret, or RS256/ES256 through the tenant's JWKS URL.
// The tenant claim is read before verification only to choose the key; a token signed with any
// other tenant's key fails verification.

import {
  createRemoteJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  errors,
  type JWTPayload,
  type JWTVerifyGetKey,
  jwtVerify,
  SignJWT,
} from "jose";
import { type Config, DEFAULT_TENANT, TENANT_ID_PATTERN, type TenantConfig } from "../config.js";
import { ChatError, ErrorCode } from "../protocol/errors.js";
import { USER_ID_PATTERN } from "../protocol/limits.js";

export interface Principal {
  userId: string;
  tenant: string;
  /** The token's `name` claim (a display name), used until the user sets a profile. */
  name?: string;
}

/** Clock skew tolerated on `exp` / `nbf`, in seconds. */
const CLOCK_TOLERANCE_S = 30;

/** JWKS are fetched once per isolate and URL, then cached (jose re-fetches on an unknown `kid`). */
const jwksCache = new Map<string, JWTVerifyGetKey>();
const jwksFor = (url: string): JWTVerifyGetKey => {
  let jwks = jwksCache.get(url);
  if (!jwks) {
    jwks = createRemoteJWKSet(new URL(url), { cacheMaxAge: 10 * 60_000, cooldownDuration: 30_000, timeoutDuration: 5000 });
    jwksCache.set(url, jwks);
  }
  return jwks;
};

const unauthorized = (reason: string, cause?: unknown): ChatError =>
  new ChatError(ErrorCode.Unauthorized, `unable to authenticate; ${reason}`, cause === undefined ? undefined : { cause });

export const verifyToken = async (token: string | undefined, config: Config): Promise<Principal> => {
  if (config.configError) throw new ChatError(ErrorCode.Internal, `unable to authenticate; server misconfigured: ${config.configError}`);
  if (!token) throw unauthorized("no token was given");
  let tenantId: string;
  let alg: string | undefined;
  try {
    const claims = decodeJwt(token);
    alg = decodeProtectedHeader(token).alg;
    tenantId = claims.tenant === undefined ? DEFAULT_TENANT : String(claims.tenant);
  } catch (cause) {
    throw unauthorized("the token is malformed", cause);
  }
  const tenant = TENANT_ID_PATTERN.test(tenantId) ? config.tenants.get(tenantId) : undefined;
  if (!tenant) throw unauthorized("the token's tenant is unknown");
  try {
    const { payload } = await verifyWith(tenant, token, alg);
    const userId = payload.sub;
    if (typeof userId !== "string" || !USER_ID_PATTERN.test(userId)) throw unauthorized("the token's sub is not a valid user id");
    checkLifetime(payload, config.maxTokenTtlS);
    const name = payload.name;
    // An odd name claim is ignored rather than refused: it is decoration, not identity.
    return typeof name === "string" && name.length > 0 && name.length <= 100 && name.isWellFormed() && !name.includes("\u0000")
      ? { userId, tenant: tenant.id, name }
      : { userId, tenant: tenant.id };
  } catch (cause) {
    if (cause instanceof ChatError) throw cause;
    if (cause instanceof errors.JWTExpired) throw unauthorized("the token has expired", cause);
    if (cause instanceof errors.JWTClaimValidationFailed) throw unauthorized(`the token's ${cause.claim} claim is not accepted`, cause);
    throw unauthorized("the token is invalid", cause);
  }
};

/**
 * A stolen token is useful until it expires, so a tenant's backend may not mint one that lives
 * for months. The lifetime is exp − iat, measured from now instead when iat is missing or in the
 * future (an iat set ahead of time would otherwise hide a long-lived token).
 */
const checkLifetime = (payload: JWTPayload, maxTtlS: number): void => {
  const now = Math.floor(Date.now() / 1000);
  const exp = payload.exp ?? now;
  const from = typeof payload.iat === "number" ? Math.min(payload.iat, now) : now;
  const lifetime = exp - from;
  if (lifetime > maxTtlS + CLOCK_TOLERANCE_S) {
    throw unauthorized(
      `the token lives ${lifetime} s (exp − ${typeof payload.iat === "number" ? "iat" : "now"}), over the maximum of ${maxTtlS} s; mint shorter-lived tokens`,
    );
  }
};

const verifyWith = (tenant: TenantConfig, token: string, alg: string | undefined) => {
  const options = {
    requiredClaims: ["exp", "sub"],
    clockTolerance: CLOCK_TOLERANCE_S,
    ...(tenant.audience ? { audience: tenant.audience } : {}),
    ...(tenant.issuer ? { issuer: tenant.issuer } : {}),
  };
  // The algorithm list is fixed per key type, so `alg: none` or an HS256 token "signed" with a
  // public key never verifies.
  if (alg === "HS256" && tenant.hs256Secret) return jwtVerify(token, tenant.hs256Secret, { ...options, algorithms: ["HS256"] });
  if (tenant.jwksUrl) return jwtVerify(token, jwksFor(tenant.jwksUrl), { ...options, algorithms: ["RS256", "ES256"] });
  throw unauthorized("the token's algorithm is not accepted for its tenant");
};

/**
 * Dev tokens: a JWT for any user id, valid for an hour. Only routed when DEV_TOKENS=true, and only
 * for tenants without keys of their own (see TenantConfig.devTokens).
 */
export const mintDevToken = (userId: string, tenant: TenantConfig): Promise<string> => {
  const secret = tenant.hs256Secret;
  if (!tenant.devTokens || !secret) {
    throw new ChatError(
      ErrorCode.Forbidden,
      "unable to mint a token; this tenant verifies its own tokens (dev tokens are for the default tenant and devOnly tenants)",
    );
  }
  const claims = tenant.id === DEFAULT_TENANT ? {} : { tenant: tenant.id };
  return new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).setSubject(userId).setIssuedAt().setExpirationTime("1h").sign(secret);
};

export const bearerToken = (header: string | undefined): string | undefined => {
  const match = header?.match(/^Bearer\s+(\S+)$/i);
  return match?.[1];
};
