// Fails when src/schema.ts is not what openapi-typescript makes of openapi/openapi.json now:
// regenerate with `npm run generate` and commit the result.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const fresh = join(mkdtempSync(join(tmpdir(), "pg-ts-drift-")), "schema.ts");
execFileSync("npx", ["openapi-typescript", "../../openapi/openapi.json", "-o", fresh], { stdio: "ignore" });
if (readFileSync(fresh, "utf8") !== readFileSync("src/schema.ts", "utf8")) {
  console.error("FAIL: src/schema.ts differs from openapi/openapi.json: run `npm run generate` and commit it");
  process.exit(1);
}
console.log("src/schema.ts matches openapi/openapi.json");
