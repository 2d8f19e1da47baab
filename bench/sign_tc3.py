"""The official Python SDK's TC3 signing on this product's vector 1, for scale next to the Rust
benchmark. `sign_tc3` derives the day key and signs the string to sign; `full` also hashes the body
and builds the canonical request and string to sign, as the gateway's signature does."""
import hashlib
import timeit

from tencentcloud.common.sign import Sign

KEY = "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE"
DATE, SERVICE = "2023-11-14", "intlpartnersmgt"
BODY = b'{"ClientUin": 800000232018, "AddedCredit": 100.0, "Remark": "test"}'
SIGNATURE = "1a3884c556a0d1c7b0079fca38d23c8eba25d3b2c1d2e14e4a2e6387de53c637"


def string_to_sign():
    canonical = (
        "POST\n/\n\ncontent-type:application/json\n"
        "host:intlpartnersmgt.intl.tencentcloudapi.com\n\ncontent-type;host\n"
        + hashlib.sha256(BODY).hexdigest()
    )
    return (
        f"TC3-HMAC-SHA256\n1700000000\n{DATE}/{SERVICE}/tc3_request\n"
        + hashlib.sha256(canonical.encode()).hexdigest()
    )


def full():
    return Sign.sign_tc3(KEY, DATE, SERVICE, string_to_sign())


S2S = string_to_sign()


def sign_only():
    return Sign.sign_tc3(KEY, DATE, SERVICE, S2S)


assert full() == SIGNATURE and sign_only() == SIGNATURE
N = 20000
for name, fn in [("python sdk sign_tc3", sign_only), ("python sdk full signature", full)]:
    best = min(timeit.repeat(fn, number=N, repeat=5)) / N
    print(f"{name:<28} {best * 1e6:8.2f} µs")
