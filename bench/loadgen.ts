// A load-generator child process (forked by bench/pool.ts). It runs one job at a time on the
// main process's command: prepare, then start. It exits with its parent.
import { prepare, type Prepared } from "./jobs.js";
import type { FromChild, ToChild } from "./ipc.js";

const reply = (message: FromChild): void => {
  process.send?.(message);
};

const prepared = new Map<number, Prepared>();
const describe = (error: unknown): string => (error instanceof Error ? (error.stack ?? error.message) : String(error));

process.on("message", (raw: unknown) => {
  const message = raw as ToChild;
  switch (message.type) {
    case "prepare":
      prepare(message.job).then(
        (p) => {
          prepared.set(message.id, p);
          reply({ type: "prepared", id: message.id });
        },
        (error: unknown) => reply({ type: "failed", id: message.id, error: describe(error) }),
      );
      return;
    case "start": {
      const p = prepared.get(message.id);
      prepared.delete(message.id);
      if (!p) {
        reply({ type: "failed", id: message.id, error: `job ${message.id} was never prepared` });
        return;
      }
      p.run(message.startAt).then(
        ({ result, cpu }) => reply({ type: "result", id: message.id, result, cpu }),
        (error: unknown) => reply({ type: "failed", id: message.id, error: describe(error) }),
      );
      return;
    }
    case "exit":
      process.exit(0);
  }
});

// An orphaned child (the parent was killed) must not keep sockets open.
process.on("disconnect", () => process.exit(0));
