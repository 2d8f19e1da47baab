"""Writes a wrk script that POSTs one AllocateCustomerCredit straight to the simulator, signed with
TC3-HMAC-SHA256 for now (the simulator accepts a timestamp for 5 minutes; regenerate per round).
Usage: signed_lua.py HOST:PORT OUT.lua  (TENCENTCLOUD_SECRET_ID/KEY from the environment)"""
import hashlib, hmac, os, sys, time

host, out = sys.argv[1], sys.argv[2]
sid, skey = os.environ["TENCENTCLOUD_SECRET_ID"], os.environ["TENCENTCLOUD_SECRET_KEY"]
service, ct = "intlpartnersmgt", "application/json"
body = '{"ClientUin":800000232018,"AddedCredit":0.01}'
ts = int(time.time())
date = time.strftime("%Y-%m-%d", time.gmtime(ts))
canonical = f"POST\n/\n\ncontent-type:{ct}\nhost:{host}\n\ncontent-type;host\n" + hashlib.sha256(body.encode()).hexdigest()
scope = f"{date}/{service}/tc3_request"
to_sign = f"TC3-HMAC-SHA256\n{ts}\n{scope}\n" + hashlib.sha256(canonical.encode()).hexdigest()
h = lambda k, m: hmac.new(k, m.encode(), hashlib.sha256).digest()
key = h(h(h(("TC3" + skey).encode(), date), service), "tc3_request")
sig = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
auth = f"TC3-HMAC-SHA256 Credential={sid}/{scope}, SignedHeaders=content-type;host, Signature={sig}"
headers = {
    "Content-Type": ct, "Authorization": auth, "X-TC-Action": "AllocateCustomerCredit",
    "X-TC-Version": "2022-09-28", "X-TC-Timestamp": str(ts),
}
with open(out, "w") as f:
    f.write('wrk.method = "POST"\n')
    f.write(f"wrk.body = '{body}'\n")
    for k, v in headers.items():
        f.write(f'wrk.headers["{k}"] = "{v}"\n')
    f.write(open(os.path.join(os.path.dirname(__file__), "result.lua")).read())
