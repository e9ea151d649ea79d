// CORS and security headers. A browser app on another origin calls the REST API with
// `Authorization: Bearer …` (no cookies), so what CORS decides is which origins' scripts may read
// our answers. The allowed origins are the deployment's (CORS_ORIGINS; `*` in dev, none by
// default) plus each tenant's own (`corsOrigins` in TENANTS).
//
// A preflight carries no token, so it cannot know the tenant: it is answered before
// authentication (OPTIONS never gets a 401) for any origin that some tenant or the deployment
// allows. The actual request is authenticated; `tenantCors` then withdraws the grant when the
// origin belongs only to other tenants, so acme's origin cannot read globex's answers.

import type { Context, MiddlewareHandler } from "hono";
import { cors } from "hono/cors";
import { type Config, readConfig } from "../config.js";

/** Request headers a browser app may send. */
export const CORS_ALLOW_HEADERS = ["Authorization", "Content-Type"];
/** Response headers a browser app may read besides the CORS-safelisted ones. */
export const CORS_EXPOSE_HEADERS = ["Retry-After", "X-Chat-Source"];
export const CORS_ALLOW_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
const PREFLIGHT_MAX_AGE_S = 600;

/** API answers are JSON, never a document: nothing may load, nothing may frame them. */
export const API_CSP = "default-src 'none'; frame-ancestors 'none'";
/**
 * The demo page (public/): its own script, stylesheet and SDK bundle, sockets to this origin or
 * any ws/wss endpoint it is pointed at. No inline script or style: index.html has none, and
 * app.js only sets element.style through the CSSOM, which CSP does not restrict.
 */
export const DEMO_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self' ws: wss:; " +
  "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const anyTenantOrigins = new WeakMap<Config, Set<string>>();
const allTenantOrigins = (config: Config): Set<string> => {
  let origins = anyTenantOrigins.get(config);
  if (!origins) {
    origins = new Set([...config.tenants.values()].flatMap((t) => t.corsOrigins));
    anyTenantOrigins.set(config, origins);
  }
  return origins;
};

const deploymentAllows = (config: Config, origin: string): boolean =>
  config.corsOrigins === "any" || config.corsOrigins.includes(origin);

/** May a script on `origin` read this deployment's answers at all (before the tenant is known)? */
export const originAllowed = (config: Config, origin: string): boolean =>
  origin !== "" && (deploymentAllows(config, origin) || allTenantOrigins(config).has(origin));

/** May a script on `origin` read answers given to `tenant`'s users? */
export const originAllowedFor = (config: Config, tenant: string, origin: string): boolean =>
  deploymentAllows(config, origin) || (config.tenants.get(tenant)?.corsOrigins.includes(origin) ?? false);

const isUpgrade = (c: Context): boolean => c.req.header("upgrade")?.toLowerCase() === "websocket";

const corsHandler = cors({
  origin: (origin, c) => (originAllowed(readConfig(c.env), origin) ? origin : null),
  allowMethods: CORS_ALLOW_METHODS,
  allowHeaders: CORS_ALLOW_HEADERS,
  exposeHeaders: CORS_EXPOSE_HEADERS,
  maxAge: PREFLIGHT_MAX_AGE_S,
});

/** hono/cors on the API; WebSocket upgrades are not CORS requests (their 101 is passed through untouched). */
export const apiCors: MiddlewareHandler = (c, next) => (isUpgrade(c) ? next() : corsHandler(c, next));

/** After authentication: withdraws the CORS grant when the origin is not this tenant's nor the deployment's. */
export const tenantCors = (c: Context, tenant: string): void => {
  const origin = c.req.header("origin");
  if (!origin || isUpgrade(c) || c.res.status === 101) return;
  if (!originAllowedFor(readConfig(c.env), tenant, origin)) c.header("Access-Control-Allow-Origin", undefined);
};

/**
 * On every response: no MIME sniffing, no referrer, and a CSP (the page's for the demo, a
 * deny-all one for everything else). A 101 carries a WebSocket, not a document: left as it is.
 */
export const securityHeaders: MiddlewareHandler = async (c, next) => {
  await next();
  if (c.res.status === 101) return;
  c.header("X-Content-Type-Options", "nosniff");
  c.header("Referrer-Policy", "no-referrer");
  const isPage = (c.res.headers.get("content-type") ?? "").startsWith("text/html");
  c.header("Content-Security-Policy", isPage ? DEMO_CSP : API_CSP);
};
