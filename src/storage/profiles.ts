// User profiles (per tenant): display name, avatar URL, custom data. A cross-room read, so, like
// the rooms list, it runs in the Worker on a connection opened for the request and closed after.

import { PostgresStore, type PostgresOptions } from "./postgres.js";

export interface Profile {
  userId: string;
  name: string | null;
  avatarUrl: string | null;
  data: Record<string, unknown>;
  updatedAt: string | null;
}

export interface ProfilePatch {
  name?: string | null;
  avatarUrl?: string | null;
  data?: Record<string, unknown>;
}

type Options = Pick<PostgresOptions, "connectionString" | "statementTimeoutMs">;

const once = async <T>(options: Options, run: (store: PostgresStore) => Promise<T>): Promise<T> => {
  const store = new PostgresStore({ ...options, idleTimeoutMs: 1000, maxConnections: 1 });
  try {
    return await run(store);
  } finally {
    await store.close();
  }
};

/** Profiles of `userIds` (unknown users get an empty profile, so a client can cache the answer). */
export const readProfiles = (options: Options, tenant: string, userIds: readonly string[]): Promise<Profile[]> =>
  once(options, async (store) => {
    const found = new Map((await store.readProfiles(tenant, userIds)).map((p) => [p.userId, p]));
    return userIds.map((userId) => found.get(userId) ?? { userId, name: null, avatarUrl: null, data: {}, updatedAt: null });
  });

export const writeProfile = (options: Options, tenant: string, userId: string, patch: ProfilePatch): Promise<Profile> =>
  once(options, (store) => store.writeProfile(tenant, userId, patch));

/** The token's `name` claim, kept until the user sets a profile (never overwrites one). */
export const rememberClaimedName = (options: Options, tenant: string, userId: string, name: string): Promise<void> =>
  once(options, (store) => store.rememberName(tenant, userId, name));
