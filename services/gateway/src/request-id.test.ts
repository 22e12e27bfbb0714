import { describe, expect, test } from "vitest";
import { newRequestId } from "./request-id.ts";

describe("newRequestId", () => {
  test("req_ and 96 random bits in hex, none repeated across pool refills", () => {
    const ids = Array.from({ length: 2000 }, () => newRequestId());
    for (const id of ids) expect(id).toMatch(/^req_[0-9a-f]{24}$/);
    expect(new Set(ids).size).toBe(ids.length);
  });
});
