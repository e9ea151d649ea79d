// The one timer helper the room's parts share. Workers' typings refuse `clearTimeout(undefined)`,
// and every part keeps its timers as "maybe set".

export type Timer = ReturnType<typeof setTimeout>;

/** clearTimeout for a timer that may not be set. */
export const clearTimer = (timer: Timer | undefined): void => {
  if (timer !== undefined) clearTimeout(timer);
};
