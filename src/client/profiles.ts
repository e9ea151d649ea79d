// User profiles (display name, avatar, the app's own data), read through a cache. A chat screen
// asks for the same few names over and over, one message at a time: every id asked for in the
// same tick goes into one `GET /v1/users?ids=…` (up to 100 per request), and an answer is kept
// for `maxAgeMs`, so rendering a page of history costs one request, not fifty.

import { MAX_PROFILE_BATCH, USER_ID_PATTERN } from "../protocol/limits.js";
import type { Profile } from "./decode.js";
import { ChatClientError } from "./errors.js";
import { clearTimer, type Timer } from "./timers.js";

/** How long a profile is served from the cache before it is asked for again. */
export const PROFILE_MAX_AGE_MS = 5 * 60_000;

/** The REST route, as the cache sees it (RestApi implements it). */
export interface ProfileSource {
  getProfiles(userIds: readonly string[]): Promise<Profile[]>;
}

interface Cached {
  promise: Promise<Profile>;
  /** The answer; while a refresh is in flight, the previous one (for `cached()`). */
  profile?: Profile;
  /** Whether `promise` has settled with `profile`. */
  settled: boolean;
  at: number;
}

interface Waiting {
  resolve: (profile: Profile) => void;
  reject: (error: unknown) => void;
}

/**
 * The profiles of a client's users, cached and fetched in batches. Get it as `client.profiles`.
 *
 * @example
 * const { name } = await client.profiles.get("bob");
 * const [a, b] = await client.profiles.getMany(["alice", "bob"]); // one request
 * label.textContent = client.profiles.cached("bob")?.name ?? "bob"; // synchronous, if known
 */
export class Profiles {
  readonly #source: ProfileSource;
  readonly #maxAgeMs: number;
  readonly #cache = new Map<string, Cached>();
  /** Ids asked for in this tick, sent together when it ends. */
  #batch = new Map<string, Waiting>();
  #timer: Timer | undefined;

  constructor(source: ProfileSource, maxAgeMs: number = PROFILE_MAX_AGE_MS) {
    this.#source = source;
    this.#maxAgeMs = maxAgeMs;
  }

  /**
   * A user's profile: from the cache, or fetched together with every other id asked for in the
   * same tick. An unknown user has an empty profile (name null), not an error.
   *
   * @example
   * const profile = await client.profiles.get(message.userId);
   * nameLabel.textContent = profile.name ?? message.userId;
   */
  get(userId: string): Promise<Profile> {
    if (!USER_ID_PATTERN.test(userId)) {
      return Promise.reject(
        new ChatClientError("bad_request", `unable to read a profile; ${JSON.stringify(userId)} is not a user id`),
      );
    }
    const cached = this.#cache.get(userId);
    if (cached && (!cached.settled || Date.now() - cached.at < this.#maxAgeMs)) return cached.promise;
    const entry: Cached = {
      at: Date.now(),
      settled: false,
      promise: new Promise<Profile>((resolve, reject) => {
        this.#batch.set(userId, { resolve, reject });
      }),
      ...(cached?.profile === undefined ? {} : { profile: cached.profile }),
    };
    entry.promise.then(
      (profile) => {
        if (this.#cache.get(userId) !== entry) return;
        entry.profile = profile;
        entry.settled = true;
        entry.at = Date.now();
      },
      // A failed fetch is not cached: the next get() asks again (an older answer stays for cached()).
      () => {
        if (this.#cache.get(userId) !== entry) return;
        if (cached) this.#cache.set(userId, cached);
        else this.#cache.delete(userId);
      },
    );
    this.#cache.set(userId, entry);
    // A macrotask, not a microtask: ids asked for in the continuations of one event still share it.
    this.#timer ??= setTimeout(() => this.#flush(), 0);
    return entry.promise;
  }

  /**
   * Several profiles, in the order asked, in as few requests as the batch limit allows.
   *
   * @example
   * const profiles = await client.profiles.getMany([...room.presence.keys()]);
   */
  getMany(userIds: readonly string[]): Promise<Profile[]> {
    return Promise.all(userIds.map((id) => this.get(id)));
  }

  /**
   * The cached profile, if there is one (however old): for drawing at once, before {@link get} resolves.
   *
   * @example
   * const name = client.profiles.cached(userId)?.name ?? userId;
   */
  cached(userId: string): Profile | undefined {
    return this.#cache.get(userId)?.profile;
  }

  /**
   * Forgets one user's profile, or all of them, so the next get() fetches it again.
   *
   * @example
   * client.profiles.invalidate("bob");
   */
  invalidate(userId?: string): void {
    if (userId === undefined) this.#cache.clear();
    else this.#cache.delete(userId);
  }

  /** @internal A profile the client just wrote (setProfile): cached as the newest answer. */
  store(profile: Profile): void {
    this.#cache.set(profile.userId, { promise: Promise.resolve(profile), profile, settled: true, at: Date.now() });
  }

  #flush(): void {
    clearTimer(this.#timer);
    this.#timer = undefined;
    const batch = this.#batch;
    this.#batch = new Map();
    const ids = [...batch.keys()];
    for (let i = 0; i < ids.length; i += MAX_PROFILE_BATCH) {
      const chunk = ids.slice(i, i + MAX_PROFILE_BATCH);
      this.#source.getProfiles(chunk).then(
        (profiles) => {
          const byId = new Map(profiles.map((p) => [p.userId, p]));
          for (const id of chunk) {
            const profile = byId.get(id);
            if (profile) batch.get(id)?.resolve(profile);
            else
              batch.get(id)?.reject(new ChatClientError("protocol", `unable to read a profile; the server did not return ${id}`));
          }
        },
        (error: unknown) => {
          for (const id of chunk) batch.get(id)?.reject(error);
        },
      );
    }
  }
}
