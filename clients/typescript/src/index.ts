// A typed client for partner-gateway: the routes' types are generated from openapi/openapi.json
// (src/schema.ts, `npm run generate`); this file adds what types cannot say: one Idempotency-Key
// per allocation intent with the retry loop the README describes, and problem+json errors as a
// typed error class.

import createFetchClient, { type Client } from "openapi-fetch";

import type { components, paths } from "./schema.js";

export type { components, paths } from "./schema.js";
export type Problem = components["schemas"]["Problem"];
export type FieldError = components["schemas"]["FieldError"];
export type CreditRequest = components["schemas"]["CreditRequest"];
export type CreditResponse = components["schemas"]["CreditResponse"];

/** An RFC 9457 problem the gateway answered, with its HTTP status and `Retry-After`. */
export class ProblemError extends Error {
  readonly problem: Problem;
  readonly status: number;
  /** Seconds, when the gateway said when to try again. */
  readonly retryAfter: number | undefined;

  constructor(problem: Problem, status: number, retryAfter?: number) {
    super(`${problem.title}: ${problem.detail}`);
    this.name = "ProblemError";
    this.problem = problem;
    this.status = status;
    this.retryAfter = retryAfter;
  }

  /** The stable problem type, e.g. `/problems/validation-failed`. */
  get type(): string {
    return this.problem.type;
  }

  /** The rejected fields of a validation problem. */
  get errors(): FieldError[] {
    return this.problem.errors ?? [];
  }
}

/** An allocation whose outcome was still unknown after every attempt: keep the key, retry later. */
export class OutcomeUnknownError extends Error {
  readonly idempotencyKey: string;
  readonly last: ProblemError;

  constructor(idempotencyKey: string, last: ProblemError) {
    super(`allocation ${idempotencyKey} still unsettled; keep the key and retry later`);
    this.name = "OutcomeUnknownError";
    this.idempotencyKey = idempotencyKey;
    this.last = last;
  }
}

/** Statuses after which the same request, with the same key, may be sent again. */
export const RETRYABLE_STATUSES: readonly number[] = [409, 429, 502, 503, 504];

export interface GatewayOptions {
  /** The gateway's base URL, e.g. `http://127.0.0.1:8080`. */
  baseUrl: string;
  /** An API key or a JWT, sent as `Authorization: Bearer …`. */
  token: string;
  /** Attempts per allocation before giving up with `OutcomeUnknownError` (default 30). */
  maxAttempts?: number;
  /** The wait when no `Retry-After` came, in seconds (default 1). */
  defaultRetryAfter?: number;
  /** How to wait (tests replace it); default: setTimeout. */
  sleep?: (ms: number) => Promise<void>;
  /** The fetch to use (default: the global one). */
  fetch?: typeof globalThis.fetch;
}

export interface AllocateOptions {
  remark?: string;
  /** The intent's key; a new UUID when not given. Pass the same key to resume an intent. */
  idempotencyKey?: string;
}

export interface Allocation extends CreditResponse {
  idempotencyKey: string;
  /** True when the gateway answered with the stored result of an earlier attempt. */
  replayed: boolean;
}

function problemOf(response: Response, body: unknown): ProblemError {
  const retryAfter = response.headers.get("Retry-After");
  const problem: Problem =
    body && typeof body === "object" && "type" in body
      ? (body as Problem)
      : {
          type: "about:blank",
          title: response.statusText || "HTTP error",
          status: response.status,
          detail: typeof body === "string" ? body : `HTTP ${response.status}`,
        };
  return new ProblemError(problem, response.status, retryAfter === null ? undefined : Number(retryAfter));
}

/** The gateway's routes, typed, plus `allocateCredit`. */
export class Gateway {
  /** The generated client: every route, typed by the OpenAPI document. */
  readonly api: Client<paths>;
  private readonly options: Required<Omit<GatewayOptions, "fetch">>;

  constructor(options: GatewayOptions) {
    this.options = {
      maxAttempts: 30,
      defaultRetryAfter: 1,
      sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
      ...options,
    };
    this.api = createFetchClient<paths>({
      baseUrl: options.baseUrl,
      headers: { Authorization: `Bearer ${options.token}` },
      fetch: options.fetch,
    });
  }

  /** Mails an invitation link; a problem answer throws `ProblemError`. */
  async invite(email: string) {
    const { data, error, response } = await this.api.POST("/customers/invitations", {
      body: { email },
    });
    if (data === undefined) throw problemOf(response, error);
    return data;
  }

  /**
   * Allocates `amount` to customer `uin` exactly once: one Idempotency-Key for this intent, sent
   * again on every retry (409, 429, 502, 503, 504, waiting `Retry-After`). A definite refusal
   * throws `ProblemError`; an outcome still unknown after every attempt throws
   * `OutcomeUnknownError` carrying the key to retry with later. Never retry with a new key.
   */
  async allocateCredit(uin: string, amount: number, options: AllocateOptions = {}): Promise<Allocation> {
    const idempotencyKey = options.idempotencyKey ?? crypto.randomUUID();
    let last: ProblemError | undefined;
    for (let attempt = 0; attempt < this.options.maxAttempts; attempt++) {
      const { data, error, response } = await this.api.POST("/customers/{uin}/credit", {
        params: { path: { uin }, header: { "Idempotency-Key": idempotencyKey } },
        body: { amount, remark: options.remark },
      });
      if (data !== undefined) {
        return { ...data, idempotencyKey, replayed: response.headers.get("Idempotent-Replayed") === "true" };
      }
      last = problemOf(response, error);
      if (!RETRYABLE_STATUSES.includes(response.status)) throw last;
      const wait = last.retryAfter ?? this.options.defaultRetryAfter;
      await this.options.sleep(Math.max(0, wait) * 1000);
    }
    throw new OutcomeUnknownError(idempotencyKey, last!);
  }
}
