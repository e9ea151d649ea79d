// One direction of one wsproxy connection: frames pass straight through, or wait here while a
// "pause" fault holds or delays them, always leaving in arrival order.
import type { Fault } from "./faults.js";

/** One direction of one connection. Items are held here while a pause fault is active; null = end. */
export class Lane {
  private queue: { data: Buffer | null; at: number }[] = [];
  private timer: NodeJS.Timeout | undefined;
  constructor(
    private readonly deliver: (data: Buffer | null) => void,
    private readonly fault: () => Fault,
  ) {}

  push(data: Buffer | null): void {
    this.queue.push({ data, at: Date.now() });
    this.pump();
  }

  /** Releases what the current fault allows, strictly in arrival order. */
  pump(): void {
    clearTimeout(this.timer);
    while (this.queue[0]) {
      const f = this.fault();
      if (f.mode === "pause") {
        if (f.delayMs === undefined) return; // held until setFault changes the mode
        const wait = this.queue[0].at + f.delayMs - Date.now();
        if (wait > 0) {
          this.timer = setTimeout(() => this.pump(), wait);
          return;
        }
      }
      const item = this.queue.shift();
      if (item) this.deliver(item.data);
    }
  }

  clear(): void {
    clearTimeout(this.timer);
    this.queue = [];
  }
}
