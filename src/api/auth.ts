// Authentication at the edge: every HTTP request and every socket carries a JWT (HS256,
// secret AUTH_SECRET). `sub` is the user id and `exp` is required.

import { errors, jwtVerify, SignJWT } from "jose";
import { ChatError, ErrorCode } from "../protocol/errors.js";

export interface Principal {
  userId: string;
  tenant: string;
}

/** User ids are shown to other users and used in keys: keep them printable and bounded. */
export const USER_ID_PATTERN = /^[A-Za-z0-9_.@:-]{1,64}$/;

/** Clock skew tolerated on `exp` / `nbf`, in seconds. */
const CLOCK_TOLERANCE_S = 30;

export const verifyToken = async (token: string | undefined, secret: Uint8Array | undefined): Promise<Principal> => {
  if (!secret) throw new ChatError(ErrorCode.Internal, "unable to authenticate; the server has no AUTH_SECRET");
  if (!token) throw new ChatError(ErrorCode.Unauthorized, "unable to authenticate; no token was given");
  try {
    const { payload } = await jwtVerify(token, secret, {
      algorithms: ["HS256"],
      requiredClaims: ["exp", "sub"],
      clockTolerance: CLOCK_TOLERANCE_S,
    });
    const userId = payload.sub;
    if (typeof userId !== "string" || !USER_ID_PATTERN.test(userId)) {
      throw new ChatError(ErrorCode.Unauthorized, "unable to authenticate; the token's sub is not a valid user id");
    }
    return { userId, tenant: "default" };
  } catch (cause) {
    if (cause instanceof ChatError) throw cause;
    const reason = cause instanceof errors.JWTExpired ? "the token has expired" : "the token is invalid";
    throw new ChatError(ErrorCode.Unauthorized, `unable to authenticate; ${reason}`, { cause });
  }
};

/** Dev tokens: a JWT for any user id, valid for an hour. Only routed when DEV_TOKENS=true. */
export const mintDevToken = (userId: string, secret: Uint8Array): Promise<string> =>
  new SignJWT({}).setProtectedHeader({ alg: "HS256" }).setSubject(userId).setIssuedAt().setExpirationTime("1h").sign(secret);

export const bearerToken = (header: string | undefined): string | undefined => {
  const match = header?.match(/^Bearer\s+(\S+)$/i);
  return match?.[1];
};
