// Interoperability: Tencent's official Node.js SDK (tencentcloud-sdk-nodejs-intl-en) calls the
// sandbox simulator, with TC3-HMAC-SHA256 as the gateway signs.
//
// This SDK derives the signing service from the endpoint's first label and signs the `host`
// header without its port, so it talks to the real endpoint name, which this process resolves to
// the sandbox: the request then carries `Host: intlpartnersmgt.tencentcloudapi.com:PORT` while the
// signature covers `intlpartnersmgt.tencentcloudapi.com`, as it would against Tencent.
//
// Run with: PG_BIN=target/debug/partner-gateway npm test (tests/interop/run.sh does it).

import { spawn } from "node:child_process";
import dns from "node:dns";
import net from "node:net";
import path from "node:path";
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const tencentcloud = require("tencentcloud-sdk-nodejs-intl-en");
const { Credential, ClientProfile, HttpProfile } = tencentcloud.common;
const IntlpartnersmgtClient = tencentcloud.intlpartnersmgt.v20220928.Client;
const models = tencentcloud.intlpartnersmgt.v20220928.Models;

const SECRET_ID = "AKIDinteropnode00000000000";
const SECRET_KEY = "interop-node-secret-key-0123456789";
const HOST = "intlpartnersmgt.tencentcloudapi.com";
const CUSTOMER = 800000232018;
const BINARY =
  process.env.PG_BIN ?? path.join(import.meta.dirname, "..", "..", "..", "target", "debug", "partner-gateway");

// The real endpoint's name resolves to the sandbox, in this process only.
const systemLookup = dns.lookup;
dns.lookup = (hostname, options, callback) => {
  if (hostname !== HOST) return systemLookup(hostname, options, callback);
  const cb = typeof options === "function" ? options : callback;
  const all = typeof options === "object" && options?.all;
  return all ? cb(null, [{ address: "127.0.0.1", family: 4 }]) : cb(null, "127.0.0.1", 4);
};

let sandbox;
let port;

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
    server.on("error", reject);
  });
}

async function listening(port, deadline) {
  for (;;) {
    const ok = await new Promise((resolve) => {
      const socket = net.connect(port, "127.0.0.1", () => resolve(socket.end() && true));
      socket.on("error", () => resolve(false));
    });
    if (ok) return;
    if (sandbox.exitCode !== null) throw new Error(`the sandbox exited (${sandbox.exitCode})`);
    if (Date.now() > deadline) throw new Error("the sandbox did not start listening");
    await new Promise((r) => setTimeout(r, 50));
  }
}

before(async () => {
  port = await freePort();
  sandbox = spawn(BINARY, ["sandbox", "--listen", `127.0.0.1:${port}`], {
    env: { ...process.env, TENCENTCLOUD_SECRET_ID: SECRET_ID, TENCENTCLOUD_SECRET_KEY: SECRET_KEY },
    stdio: ["ignore", "ignore", "inherit"],
  });
  await listening(port, Date.now() + 20_000);
});

after(() => sandbox?.kill("SIGTERM"));

function client(secretKey = SECRET_KEY) {
  const http = new HttpProfile();
  http.protocol = "http://";
  http.endpoint = `${HOST}:${port}`;
  const profile = new ClientProfile();
  profile.signMethod = "TC3-HMAC-SHA256";
  profile.httpProfile = http;
  return new IntlpartnersmgtClient(new Credential(SECRET_ID, secretKey), "", profile);
}

/** Calls `action` with `params` through the SDK, as a promise. */
function call(action, params, secretKey) {
  const request = new models[`${action}Request`]();
  request.from_json_string(JSON.stringify(params));
  return new Promise((resolve, reject) =>
    client(secretKey)[action](request, (error, response) => (error ? reject(error) : resolve(response))),
  );
}

test("AllocateCustomerCredit, then QueryCreditAllocationHistory shows it", async () => {
  const allocated = await call("AllocateCustomerCredit", { ClientUin: CUSTOMER, AddedCredit: 100.5, Remark: "node" });
  assert.equal(allocated.TotalCredit, 100.5);
  assert.equal(allocated.RemainingCredit, 100.5);
  assert.ok(allocated.RequestId);

  const page = await call("QueryCreditAllocationHistory", { ClientUin: CUSTOMER, Page: 1, PageSize: 10 });
  assert.equal(page.Total, 1);
  assert.equal(page.History[0].Remark, "node");
  assert.equal(page.History[0].Credit, 100.5);
});

test("CreateAndSendClientInvitationMail", async () => {
  const sent = await call("CreateAndSendClientInvitationMail", { Email: "node.interop@example.com" });
  assert.match(sent.InvitationLink, /^https:\/\//);
  assert.ok(sent.RequestId);
});

test("QueryCreditByUinList", async () => {
  const credits = await call("QueryCreditByUinList", { UinList: [CUSTOMER] });
  assert.equal(credits.Data.length, 1);
  assert.equal(credits.Data[0].Uin, CUSTOMER);
  assert.equal(typeof credits.Data[0].TotalCredit, "number");
});

test("QueryPartnerCredit", async () => {
  const credit = await call("QueryPartnerCredit", {});
  assert.equal(typeof credit.AllocatedCredit, "number");
  assert.equal(typeof credit.TotalCredit, "number");
  assert.equal(typeof credit.RemainingCredit, "number");
});

test("QueryCustomersCredit and DescribeCustomerInfo", async () => {
  const listed = await call("QueryCustomersCredit", {
    FilterType: "ClientUin",
    Filter: String(CUSTOMER),
    Page: 1,
    PageSize: 10,
    Order: "desc",
  });
  assert.equal(listed.Total, 1);
  assert.equal(listed.Data[0].ClientUin, CUSTOMER);
  const profiles = await call("DescribeCustomerInfo", { CustomerUin: [CUSTOMER, 12345] });
  assert.deepEqual(
    profiles.Data.map((p) => p.CustomerUin),
    [String(CUSTOMER)],
  );
  assert.equal(profiles.Data[0].Email, listed.Data[0].Email);
});

test("QueryInvitationInfo finds a link it issued", async () => {
  const sent = await call("CreateAndSendClientInvitationMail", { Email: "node.lookup@example.com" });
  const token = sent.InvitationLink.split("/").pop();
  const info = await call("QueryInvitationInfo", { InvitationToken: [token, "never-issued"] });
  assert.deepEqual(
    info.InvitationInfo.map((i) => i.InvitationToken),
    [token],
  );
  assert.equal(info.InvitationInfo[0].Status, 1);
  assert.equal(info.InvitationInfo[0].ClientMail, "node.lookup@example.com");
});

test("a wrong secret key gets AuthFailure.SignatureFailure", async () => {
  await assert.rejects(call("QueryPartnerCredit", {}, "not-the-right-key"), (error) => {
    assert.equal(error.code, "AuthFailure.SignatureFailure");
    assert.ok(error.requestId);
    return true;
  });
});
