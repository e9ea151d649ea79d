// A deadline for an operation whose outcome may stay unknown (a statement, a read for a handshake).

/** Rejects with `error()` when `promise` has not settled within `ms`; the timer never outlives it. */
export const withTimeout = <T>(promise: Promise<T>, ms: number, error: () => Error): Promise<T> => {
  let timer: ReturnType<typeof setTimeout> | null = null;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(error()), ms);
  });
  return Promise.race([promise, timeout]).finally(() => {
    if (timer !== null) clearTimeout(timer);
  });
};
