// Starts a sandbox gateway (the repository's own binary, built if needed) with an API key of this
// run, and hands its address, the key and the simulator's address to the tests.

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { TestProject } from "vitest/node";

const repo = resolve(import.meta.dirname, "../../..");
const binary = process.env.PG_BIN ?? join(repo, "target/debug/partner-gateway");

function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once("error", fail);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => done(port));
    });
  });
}

let gateway: ChildProcess | undefined;

export async function setup(project: TestProject) {
  if (!process.env.PG_BIN) {
    const built = spawnSync("cargo", ["build", "--quiet"], { cwd: repo, stdio: "inherit" });
    if (built.status !== 0) throw new Error("cargo build failed");
  }
  const key = "pgw_ts_" + randomBytes(24).toString("base64url");
  const sha256 = createHash("sha256").update(key).digest("hex");
  const dir = mkdtempSync(join(tmpdir(), "pg-ts-client-"));
  const config = join(dir, "gateway.toml");
  writeFileSync(
    config,
    [
      "[[auth.api_keys]]",
      'name = "typescript-client-tests"',
      `sha256 = "${sha256}"`,
      'scopes = ["invitations:send", "credit:allocate", "customers:read"]',
      "[upstream]",
      // A cut answer is noticed at once; the retry after it settles the outcome.
      "timeout_ms = 2000",
      "",
    ].join("\n"),
  );
  const port = await freePort();
  const child = spawn(binary, ["serve", "--sandbox", "--config", config], {
    env: { ...process.env, GATEWAY__SERVER__LISTEN: `127.0.0.1:${port}`, GATEWAY__LOG__FORMAT: "json" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  gateway = child;
  let output = "";
  child.stdout!.on("data", (chunk) => (output += chunk));
  child.stderr!.on("data", (chunk) => (output += chunk));
  const deadline = Date.now() + 30_000;
  let simulator: string | undefined;
  for (;;) {
    simulator ??= /simulator\s+(http:\/\/127\.0\.0\.1:\d+)/.exec(output)?.[1];
    if (simulator) {
      const ready = await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.ok, () => false);
      if (ready) break;
    }
    if (child.exitCode !== null) throw new Error(`the gateway exited:\n${output}`);
    if (Date.now() > deadline) throw new Error(`the gateway did not start:\n${output}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  project.provide("baseUrl", `http://127.0.0.1:${port}`);
  project.provide("token", key);
  project.provide("simulator", simulator);
}

export async function teardown() {
  gateway?.kill("SIGTERM");
}

declare module "vitest" {
  export interface ProvidedContext {
    baseUrl: string;
    token: string;
    simulator: string;
  }
}
