import { describe, expect, it } from "vitest";
import { COMMIT_STATEMENT, statementName } from "./statements.js";

describe("statementName", () => {
  it("is the prefix plus a hash of the text: stable for a text, different for another (a changed statement never reuses a prepared name)", () => {
    const a = statementName(COMMIT_STATEMENT, "SELECT 1");
    expect(a).toBe(statementName(COMMIT_STATEMENT, "SELECT 1"));
    expect(a.startsWith(COMMIT_STATEMENT)).toBe(true);
    expect(statementName(COMMIT_STATEMENT, "SELECT 2")).not.toBe(a);
    expect(a).toMatch(/^chat_commit_[0-9a-f]{8}$/);
  });
});
