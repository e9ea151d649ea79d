// The core guarantee, under concurrency: every client sees every message exactly once, in seq
// order, with no gap, from its first seq on; all clients agree; Postgres holds exactly 1..N.

import { describe, expect, it } from "vitest";
import type { Message } from "../src/protocol/frames.js";
import { api, eventually, isContiguous, sleep, storedMessages, TestSocket, uniqueRoom } from "./helpers.js";

const WRITERS = 4;
const PER_WRITER = 100;
const JOINERS = 12;

describe("room consistency under concurrent writers and joiners", () => {
  it("late joiners (since and last) see every message exactly once, in order, and agree; Postgres holds exactly 1..N", async () => {
    const room = uniqueRoom("conc");
    const writers = await Promise.all(
      Array.from({ length: WRITERS }, (_, w) => TestSocket.open(room, { user: `writer${w}`, last: 1 })),
    );
    await Promise.all(writers.map((w) => w.ready()));

    const joiners: TestSocket[] = [];
    let seenSeq = 0;
    // Joiners connect at random moments while the writers are sending: half resume with a
    // since cursor somewhere in the past, half ask for the newest few.
    const joining = (async () => {
      for (let j = 0; j < JOINERS; j++) {
        await sleep(Math.floor(Math.random() * 25));
        const current = Math.max(0, ...writers.flatMap((w) => w.seqs()));
        seenSeq = Math.max(seenSeq, current);
        const options =
          j % 2 === 0
            ? { user: `joiner${j}`, since: Math.floor(Math.random() * (current + 1)) }
            : { user: `joiner${j}`, last: 1 + Math.floor(Math.random() * 40) };
        joiners.push(await TestSocket.open(room, options));
      }
    })();

    // Each writer sends all its messages without waiting for acks (a real pipelined client);
    // one in four also goes over HTTP, the same pipeline.
    const httpAcks: Message[] = [];
    const sending = writers.map(async (socket, w) => {
      for (let i = 0; i < PER_WRITER; i++) {
        const clientMsgId = `w${w}-${i}`;
        if (i % 4 === 3) {
          const res = await api(`/v1/rooms/${room}/messages`, {
            user: `writer${w}`,
            body: { clientMsgId, text: `text of ${clientMsgId}` },
          });
          expect(res.status).toBe(201);
          httpAcks.push((res.body as { message: Message }).message);
        } else {
          socket.send({ type: "send", clientMsgId, text: `text of ${clientMsgId}` });
        }
        if (i % 10 === 0) await sleep(1);
      }
    });
    await Promise.all([...sending, joining]);

    const total = WRITERS * PER_WRITER;
    // Every WebSocket send is acked exactly once.
    for (const [w, socket] of writers.entries()) {
      await eventually(`acks of writer ${w}`, () => (socket.ofType("ack").length >= (PER_WRITER * 3) / 4 ? true : undefined));
      const acked = socket.ofType("ack").map((a) => a.clientMsgId);
      expect(new Set(acked).size).toBe(acked.length);
      expect(socket.ofType("error")).toEqual([]);
    }
    const everyone = [...writers, ...joiners];
    await Promise.all(everyone.map((s) => s.untilSeq(total)));

    const bySeq = new Map<number, string>();
    for (const socket of everyone) {
      const ready = await socket.ready();
      const seqs = socket.seqs();
      // One ready, first; then contiguous from its first seq to the end, no duplicates.
      expect(socket.frames[0]?.type).toBe("ready");
      expect(socket.ofType("ready")).toHaveLength(1);
      expect(isContiguous(seqs)).toBe(true);
      expect(seqs[seqs.length - 1]).toBe(total);
      expect(ready.truncated).toBe(false);
      for (const m of socket.messages()) {
        const key = `${m.userId}|${m.clientMsgId}|${m.text}|${m.id}`;
        const seen = bySeq.get(m.seq);
        if (seen === undefined) bySeq.set(m.seq, key);
        else expect(key).toBe(seen); // all clients agree on every seq's content
      }
    }
    // since-joiners got everything after their cursor; last-joiners got exactly what they asked.
    for (const socket of joiners) {
      const ready = await socket.ready();
      const first = socket.seqs()[0];
      if (first !== undefined && ready.messages.length > 0) expect(first).toBe(ready.messages[0]?.seq);
    }

    const stored = await storedMessages(room);
    expect(stored.map((m) => m.seq)).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    const storedIds = new Set(stored.map((m) => m.clientMsgId));
    for (const socket of writers) for (const ack of socket.ofType("ack")) expect(storedIds.has(ack.clientMsgId)).toBe(true);
    for (const m of httpAcks) expect(stored[m.seq - 1]?.clientMsgId).toBe(m.clientMsgId);
    // Acks carry the seq that Postgres holds for that clientMsgId.
    for (const socket of writers) {
      for (const ack of socket.ofType("ack")) expect(stored[ack.seq - 1]?.clientMsgId).toBe(ack.clientMsgId);
    }
    for (const s of everyone) s.close();
  });

  it("a joiner with since=N gets exactly seq N+1..latest in ready, then live with no gap", async () => {
    const room = uniqueRoom("since");
    const writer = await TestSocket.open(room, { user: "w" });
    await writer.ready();
    for (let i = 1; i <= 30; i++) writer.send({ type: "send", clientMsgId: `m${i}`, text: `t${i}` });
    await writer.untilSeq(30);
    const joiner = await TestSocket.open(room, { user: "j", since: 12 });
    const ready = await joiner.ready();
    expect(ready.messages.map((m) => m.seq)).toEqual(Array.from({ length: 18 }, (_, i) => 13 + i));
    expect(ready.latestSeq).toBe(30);
    writer.send({ type: "send", clientMsgId: "m31", text: "t31" });
    await joiner.untilSeq(31);
    expect(joiner.seqs()).toEqual(Array.from({ length: 19 }, (_, i) => 13 + i));
    writer.close();
    joiner.close();
  });
});
