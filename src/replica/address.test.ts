import { describe, expect, it } from "vitest";
import { isReplicaOf, replicaAddressOf, replicaName, routeSocket, shardOf } from "./address.js";

describe("replica names", () => {
  it("round-trips and refuses anything else", () => {
    const name = replicaName({ room: { tenant: "acme", roomId: "general" }, region: "weur", shard: 3 });
    expect(name).toBe("acme:general@weur#3");
    expect(replicaAddressOf(name)).toEqual({ room: { tenant: "acme", roomId: "general" }, region: "weur", shard: 3 });
    for (const bad of ["acme:general", "acme:general@mars#1", "acme:general@weur", "acme:a@weur@weur#1", ":x@weur#1", undefined]) {
      expect(replicaAddressOf(bad), String(bad)).toBeUndefined();
    }
  });

  it("is a replica of its own room only (tenant and room)", () => {
    expect(isReplicaOf("acme:general@weur#0", { tenant: "acme", roomId: "general" })).toBe(true);
    expect(isReplicaOf("acme:general@weur#0", { tenant: "globex", roomId: "general" })).toBe(false);
    expect(isReplicaOf("acme:general@weur#0", { tenant: "acme", roomId: "generally" })).toBe(false);
    expect(isReplicaOf("acme:general2@weur#0", { tenant: "acme", roomId: "general" })).toBe(false);
  });
});

describe("routeSocket", () => {
  const base = { enabled: true, continent: "EU", override: undefined, overrideAllowed: false, shards: 1, userId: "ann" };
  it("off: the primary, whatever the client asks", () => {
    expect(routeSocket({ ...base, enabled: false, override: "apac", overrideAllowed: true })).toEqual({ to: "primary" });
  });
  it("on: the replica of the client's continent; no continent: the primary", () => {
    expect(routeSocket(base)).toEqual({ to: "replica", region: "weur", shard: 0 });
    expect(routeSocket({ ...base, continent: undefined })).toEqual({ to: "primary" });
  });
  it("the override is honoured only where allowed", () => {
    expect(routeSocket({ ...base, override: "apac" })).toEqual({ to: "replica", region: "weur", shard: 0 });
    expect(routeSocket({ ...base, override: "apac", overrideAllowed: true })).toEqual({ to: "replica", region: "apac", shard: 0 });
    expect(routeSocket({ ...base, override: "primary", overrideAllowed: true })).toEqual({ to: "primary" });
    expect(routeSocket({ ...base, override: "nowhere", overrideAllowed: true })).toEqual({ to: "replica", region: "weur", shard: 0 });
  });
  it("shards spread users and keep each user on one shard", () => {
    const counts = new Map<number, number>();
    for (let i = 0; i < 4000; i++) {
      const shard = shardOf(`user-${i}`, 8);
      expect(shard).toBe(shardOf(`user-${i}`, 8));
      counts.set(shard, (counts.get(shard) ?? 0) + 1);
    }
    expect(counts.size).toBe(8);
    for (const n of counts.values()) expect(n).toBeGreaterThan(350);
  });
});
