// The SSRF check of outbound URLs (src/outbound.ts).

import { describe, expect, it } from "vitest";
import { outboundUrlProblem } from "../outbound.js";

describe("outbound URLs", () => {
  it("refuses private, loopback, link-local and local names unless the dev flag allows them", () => {
    for (const url of [
      "https://127.0.0.1/hook",
      "https://10.1.2.3/",
      "https://172.20.0.1/",
      "https://192.168.1.1/",
      "https://169.254.169.254/latest/meta-data",
      "https://100.64.0.1/",
      "https://0.0.0.0/",
      "https://[::1]/",
      "https://[fd00::1]/",
      "https://[fe80::1]/",
      "https://[::ffff:127.0.0.1]/",
      "https://localhost/",
      "https://api.localhost/",
      "https://db.internal/",
      "http://hooks.example.com/",
    ]) {
      expect(outboundUrlProblem(url, false), url).toBeDefined();
      expect(outboundUrlProblem(url, true), url).toBeUndefined();
    }
  });

  it("accepts public https URLs and refuses what is never allowed", () => {
    expect(outboundUrlProblem("https://hooks.example.com/review", false)).toBeUndefined();
    expect(outboundUrlProblem("https://8.8.8.8/", false)).toBeUndefined();
    expect(outboundUrlProblem("https://172.32.0.1/", false)).toBeUndefined();
    for (const url of ["ftp://example.com/", "not a url", "https://user:pw@example.com/"]) expect(outboundUrlProblem(url, true), url).toBeDefined();
  });
});
