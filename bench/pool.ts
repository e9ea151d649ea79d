// The main process's handle on the load-generator children: forks them, runs a measurement as
// "prepare every part, then start every part at one wall-clock instant", collects the results.
import { type ChildProcess, fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { CpuUse, FromChild, Job, JobResult, ToChild } from "./ipc.js";

const LOADGEN = fileURLToPath(new URL("./loadgen.ts", import.meta.url));

export interface PartResult<R extends JobResult = JobResult> {
  pid: number;
  result: R;
  cpu: CpuUse;
}

interface Waiter {
  resolve: (message: FromChild) => void;
  reject: (error: Error) => void;
}

class Child {
  private readonly waiters = new Map<number, Waiter>();
  private exited: Error | undefined;

  constructor(readonly process: ChildProcess) {
    process.on("message", (raw: unknown) => {
      // One question per job id is outstanding at a time: its answer (or `failed`) settles it.
      const message = raw as FromChild;
      const waiter = this.waiters.get(message.id);
      if (!waiter) return;
      this.waiters.delete(message.id);
      waiter.resolve(message);
    });
    process.on("exit", (code, signal) => {
      this.exited = new Error(`load generator ${process.pid} exited (${code ?? signal})`);
      for (const waiter of this.waiters.values()) waiter.reject(this.exited);
      this.waiters.clear();
    });
  }

  get pid(): number {
    return this.process.pid ?? -1;
  }

  /** Sends a command and waits for the answer of the given phase, within timeoutMs. */
  ask(message: ToChild, id: number, phase: "prepared" | "done", timeoutMs: number): Promise<FromChild> {
    if (this.exited) return Promise.reject(this.exited);
    return new Promise((resolve, reject) => {
      const key = id;
      const timer = setTimeout(() => {
        this.waiters.delete(key);
        reject(new Error(`load generator ${this.pid}: no ${phase} answer for job ${id} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.set(key, {
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.process.send(message);
    });
  }
}

export class LoadGenPool {
  private nextId = 1;

  private constructor(private readonly children: Child[]) {}

  /** Forks `size` children (each loads TypeScript through tsx, inherited from this process). */
  static start(size: number): LoadGenPool {
    const children: Child[] = [];
    for (let i = 0; i < size; i++) {
      children.push(new Child(fork(LOADGEN, [], { stdio: ["ignore", "inherit", "inherit", "ipc"] })));
    }
    return new LoadGenPool(children);
  }

  get size(): number {
    return this.children.length;
  }

  get pids(): number[] {
    return this.children.map((c) => c.pid);
  }

  /**
   * Runs one measurement: part i goes to child i (at most one part per child), all parts are
   * prepared, then all start together. `budgetMs` bounds the measured part plus its drain.
   * `window` callbacks fire at the start and the end of the measured window (for /proc samples).
   */
  async run<R extends JobResult>(
    parts: Job[],
    budgetMs: number,
    window?: { durationMs: number; onStart: () => void; onEnd: () => void },
    /** Prepare may open thousands of sockets (bench/scale.ts): how long it may take. */
    prepareTimeoutMs = 60_000,
  ): Promise<Array<PartResult<R>>> {
    if (parts.length > this.children.length) throw new Error(`${parts.length} parts for ${this.children.length} load generators`);
    const ids = parts.map(() => this.nextId++);
    const assigned = parts.map((job, i) => {
      const child = this.children[i];
      const id = ids[i];
      if (!child || id === undefined) throw new Error("unreachable: part without a child");
      return { job, child, id };
    });
    const preparedAnswers = await Promise.all(
      assigned.map(({ job, child, id }) => child.ask({ type: "prepare", id, job }, id, "prepared", prepareTimeoutMs)),
    );
    for (const answer of preparedAnswers) if (answer.type === "failed") throw new Error(`load generator: ${answer.error}`);
    const startAt = Date.now() + 100;
    if (window) {
      setTimeout(window.onStart, startAt - Date.now());
      setTimeout(window.onEnd, startAt + window.durationMs - Date.now());
    }
    const answers = await Promise.all(
      assigned.map(({ child, id }) => child.ask({ type: "start", id, startAt }, id, "done", budgetMs + 60_000)),
    );
    return answers.map((answer, i) => {
      if (answer.type !== "result") throw new Error(`load generator: ${answer.type === "failed" ? answer.error : "no result"}`);
      return { pid: assigned[i]?.child.pid ?? -1, result: answer.result as R, cpu: answer.cpu };
    });
  }

  close(): void {
    for (const child of this.children) {
      if (child.process.connected) child.process.send({ type: "exit" } satisfies ToChild);
      setTimeout(() => child.process.kill("SIGKILL"), 2000).unref();
    }
  }
}
