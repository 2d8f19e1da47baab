import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    globalSetup: ["test/gateway.setup.ts"],
    testTimeout: 60_000,
    hookTimeout: 600_000,
  },
});
