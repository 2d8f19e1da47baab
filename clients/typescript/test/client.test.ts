import { describe, expect, inject, it } from "vitest";

import { Gateway, OutcomeUnknownError, ProblemError } from "../src/index.js";

const CUSTOMER = "800000232018";
const gateway = () => new Gateway({ baseUrl: inject("baseUrl"), token: inject("token") });

/** One fault in the simulator, through its admin route. */
async function fault(body: object) {
  const res = await fetch(`${inject("simulator")}/_sandbox/faults`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  expect(res.ok).toBe(true);
}

describe("the typed client against a sandbox gateway", () => {
  it("sends an invitation", async () => {
    const sent = await gateway().invite(`ts-client-${Date.now()}@example.com`);
    expect(sent.invitationLink).toMatch(/^https:\/\//);
  });

  it("allocates credit, and a retry with the same key is a replay that allocates nothing", async () => {
    const client = gateway();
    const first = await client.allocateCredit(CUSTOMER, 12.5, { remark: "ts client" });
    expect(first.uin).toBe(CUSTOMER);
    expect(first.amount).toBe(12.5);
    expect(first.replayed).toBe(false);
    const again = await client.allocateCredit(CUSTOMER, 12.5, {
      remark: "ts client",
      idempotencyKey: first.idempotencyKey,
    });
    expect(again.replayed).toBe(true);
    expect(again.totalCredit).toBe(first.totalCredit);
  });

  it("settles an outcome-unknown allocation by retrying with its key", async () => {
    const client = gateway();
    const before = await client.api.GET("/customers/{uin}/credit", { params: { path: { uin: CUSTOMER } } });
    expect(before.data).toBeDefined();
    // Tencent applies it, then the answer is cut: the first attempt cannot know the outcome.
    await fault({ action: "AllocateCustomerCredit", kind: "truncate_after_execute", times: 1 });
    const statuses: number[] = [];
    const watching = new Gateway({
      baseUrl: inject("baseUrl"),
      token: inject("token"),
      fetch: async (input, init) => {
        const method = input instanceof Request ? input.method : (init?.method ?? "GET");
        const res = await fetch(input, init);
        if (method === "POST") statuses.push(res.status);
        return res;
      },
    });
    const settled = await watching.allocateCredit(CUSTOMER, 7.25, { remark: "cut answer" });
    expect(statuses[0]).toBeGreaterThanOrEqual(500);
    expect(statuses.at(-1)).toBe(200);
    // Applied exactly once.
    expect(settled.totalCredit).toBeCloseTo(before.data!.totalCredit + 7.25, 2);
  });

  it("turns a 422 into a ProblemError naming the field, without retrying", async () => {
    let attempts = 0;
    const client = new Gateway({
      baseUrl: inject("baseUrl"),
      token: inject("token"),
      fetch: (input, init) => {
        attempts++;
        return fetch(input, init);
      },
    });
    const error = await client.allocateCredit(CUSTOMER, 0.001).catch((e) => e);
    expect(error).toBeInstanceOf(ProblemError);
    expect(error.status).toBe(422);
    expect(error.type).toBe("/problems/validation-failed");
    expect(error.errors.map((e: { field: string }) => e.field)).toContain("amount");
    expect(attempts).toBe(1);
  });

  it("gives up with the key to resume when the outcome stays unknown", async () => {
    const client = new Gateway({
      baseUrl: "http://127.0.0.1:1",
      token: "unused",
      maxAttempts: 2,
      sleep: async () => {},
      fetch: async () =>
        new Response(
          JSON.stringify({ type: "/problems/credit-outcome-unknown", title: "t", status: 504, detail: "d" }),
          { status: 504, headers: { "content-type": "application/problem+json", "Retry-After": "1" } },
        ),
    });
    const error = await client.allocateCredit(CUSTOMER, 1, { idempotencyKey: "resume-me" }).catch((e) => e);
    expect(error).toBeInstanceOf(OutcomeUnknownError);
    expect(error.idempotencyKey).toBe("resume-me");
    expect(error.last.status).toBe(504);
  });
});
