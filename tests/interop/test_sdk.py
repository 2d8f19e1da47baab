"""Interoperability: Tencent's official Python SDK calls the sandbox simulator.

The SDK signs with its own TC3 implementation; the simulator verifies with ours. Both actions must
succeed with the right key, and a wrong key must get AuthFailure.SignatureFailure, exactly as the
real service answers.

Run with: PG_BIN=target/debug/partner-gateway .venv/bin/python -m pytest tests/interop
"""

import base64
import json
import os
import socket
import subprocess
import time

import pytest
from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.intlpartnersmgt.v20220928 import intlpartnersmgt_client, models

SECRET_ID = "AKIDinteroptest000000000000"
SECRET_KEY = "interop-secret-key-0123456789abcdef"
CUSTOMER = 800000232018
# The simulator's identity provider, role and issuer (src/sandbox/sts.rs).
PROVIDER_ID = "partner-gateway-tke"
ROLE_ARN = "qcs::cam::uin/100000000001:roleName/partner-gateway-role"
ISSUER = "https://oidc.sandbox.invalid"
BINARY = os.environ.get("PG_BIN", os.path.join(os.path.dirname(__file__), "..", "..", "target", "debug", "partner-gateway"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def sandbox():
    port = free_port()
    env = dict(os.environ, TENCENTCLOUD_SECRET_ID=SECRET_ID, TENCENTCLOUD_SECRET_KEY=SECRET_KEY)
    proc = subprocess.Popen(
        [BINARY, "sandbox", "--listen", f"127.0.0.1:{port}"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError("the sandbox exited: " + proc.stderr.read().decode())
            if time.monotonic() > deadline:
                raise RuntimeError("the sandbox did not start listening")
            time.sleep(0.05)
    yield f"127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=10)


def client(endpoint, secret_key=SECRET_KEY):
    # This SDK release takes the scheme as `protocol=` and keeps it in the `scheme` attribute.
    http = HttpProfile(endpoint=endpoint, protocol="http")
    assert http.scheme == "http"
    profile = ClientProfile(httpProfile=http)
    return intlpartnersmgt_client.IntlpartnersmgtClient(credential.Credential(SECRET_ID, secret_key), "", profile)


def test_allocate_customer_credit_succeeds(sandbox):
    req = models.AllocateCustomerCreditRequest()
    req.ClientUin = CUSTOMER
    req.AddedCredit = 100.5
    req.Remark = "interop"
    resp = client(sandbox).AllocateCustomerCredit(req)
    assert resp.TotalCredit == 100.5
    assert resp.RemainingCredit == 100.5
    assert resp.RequestId

    history = models.QueryCreditAllocationHistoryRequest()
    history.ClientUin = CUSTOMER
    history.Page = 1
    history.PageSize = 10
    page = client(sandbox).QueryCreditAllocationHistory(history)
    assert page.Total == 1
    assert page.History[0].Remark == "interop"
    assert page.History[0].AllocatedCredit == 100.5

    # The field meanings of the SDK model: Credit is this allocation's increment, AllocatedCredit
    # the customer's total after it, ClientCreditAfter the available credit after it.
    req.AddedCredit = 1
    req.Remark = "second"
    client(sandbox).AllocateCustomerCredit(req)
    entries = client(sandbox).QueryCreditAllocationHistory(history).History
    second = next(e for e in entries if e.Remark == "second")
    assert second.Credit == 1
    assert second.AllocatedCredit == 101.5
    assert second.ClientCreditAfter == 101.5


def test_create_and_send_client_invitation_mail_succeeds(sandbox):
    req = models.CreateAndSendClientInvitationMailRequest()
    req.Email = "interop@example.com"
    resp = client(sandbox).CreateAndSendClientInvitationMail(req)
    assert resp.InvitationLink.startswith("https://")
    assert resp.RequestId


def test_the_credit_queries_succeed(sandbox):
    req = models.QueryCreditByUinListRequest()
    req.UinList = [CUSTOMER]
    credits = client(sandbox).QueryCreditByUinList(req)
    assert len(credits.Data) == 1
    assert credits.Data[0].Uin == CUSTOMER
    assert isinstance(credits.Data[0].TotalCredit, (int, float))

    partner = client(sandbox).QueryPartnerCredit(models.QueryPartnerCreditRequest())
    assert isinstance(partner.TotalCredit, (int, float))
    assert isinstance(partner.RemainingCredit, (int, float))
    assert partner.RequestId


def test_the_customer_list_and_profiles_succeed(sandbox):
    req = models.QueryCustomersCreditRequest()
    req.FilterType = "ClientUin"
    req.Filter = str(CUSTOMER)
    req.Page = 1
    req.PageSize = 10
    req.Order = "desc"
    listed = client(sandbox).QueryCustomersCredit(req)
    assert listed.Total == 1
    assert listed.Data[0].ClientUin == CUSTOMER
    assert listed.Data[0].Email

    req = models.DescribeCustomerInfoRequest()
    req.CustomerUin = [CUSTOMER, 12345]
    profiles = client(sandbox).DescribeCustomerInfo(req)
    assert [p.CustomerUin for p in profiles.Data] == [str(CUSTOMER)]
    assert profiles.Data[0].Email == listed.Data[0].Email


def test_query_invitation_info_finds_a_link_it_issued(sandbox):
    req = models.CreateAndSendClientInvitationMailRequest()
    req.Email = "interop.lookup@example.com"
    link = client(sandbox).CreateAndSendClientInvitationMail(req).InvitationLink
    token = link.rsplit("/", 1)[1]
    req = models.QueryInvitationInfoRequest()
    req.InvitationToken = [token, "never-issued"]
    info = client(sandbox).QueryInvitationInfo(req)
    assert [i.InvitationToken for i in info.InvitationInfo] == [token]
    assert info.InvitationInfo[0].Status == 1
    assert info.InvitationInfo[0].ClientMail == "interop.lookup@example.com"


@pytest.mark.parametrize("action", ["AllocateCustomerCredit", "CreateAndSendClientInvitationMail"])
def test_a_wrong_secret_key_gets_signature_failure(sandbox, action):
    if action == "AllocateCustomerCredit":
        req = models.AllocateCustomerCreditRequest()
        req.ClientUin = CUSTOMER
        req.AddedCredit = 1.0
    else:
        req = models.CreateAndSendClientInvitationMailRequest()
        req.Email = "wrong-key@example.com"
    with pytest.raises(TencentCloudSDKException) as err:
        getattr(client(sandbox, secret_key="not-the-right-key"), action)(req)
    assert err.value.get_code() == "AuthFailure.SignatureFailure"
    assert err.value.get_request_id()


def test_errors_come_back_as_sdk_exceptions(sandbox):
    req = models.AllocateCustomerCreditRequest()
    req.ClientUin = 1
    req.AddedCredit = 1.0
    with pytest.raises(TencentCloudSDKException) as err:
        client(sandbox).AllocateCustomerCredit(req)
    assert err.value.get_code() == "UnauthorizedOperation.UinNoAuth"


def client_with(endpoint, cred):
    http = HttpProfile(endpoint=endpoint, protocol="http")
    return intlpartnersmgt_client.IntlpartnersmgtClient(cred, "", ClientProfile(httpProfile=http))


def partner_credit(endpoint, cred):
    return client_with(endpoint, cred).QueryPartnerCredit(models.QueryPartnerCreditRequest())


def test_the_sdks_cvm_role_provider_gets_credentials_the_api_accepts(sandbox):
    cred = credential.CVMRoleCredential()
    # The SDK's own provider, pointed at the simulator's metadata service.
    cred._role_endpoint = f"http://{sandbox}/latest/meta-data/cam/security-credentials/"
    secret_id, secret_key, token = cred.get_credential_info()
    assert secret_id.startswith("AKIDtmp") and secret_key and token
    assert partner_credit(sandbox, cred).RequestId
    # The temporary key without its token is refused, as Tencent refuses it.
    with pytest.raises(TencentCloudSDKException) as err:
        partner_credit(sandbox, credential.Credential(secret_id, secret_key))
    assert err.value.get_code().startswith("AuthFailure")


def web_identity_token(issuer, exp):
    def part(value):
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")
    claims = {"iss": issuer, "sub": "system:serviceaccount:partners:gateway", "exp": exp}
    return part({"alg": "RS256", "typ": "JWT"}) + "." + part(claims) + ".c2lnbmF0dXJl"


@pytest.fixture
def tke_pod(tmp_path, monkeypatch):
    """The pod environment TKE workload identity gives; the SDK's STS call over plain http."""
    token_file = tmp_path / "token"
    monkeypatch.setenv("TKE_REGION", "ap-singapore")
    monkeypatch.setenv("TKE_PROVIDER_ID", PROVIDER_ID)
    monkeypatch.setenv("TKE_WEB_IDENTITY_TOKEN_FILE", str(token_file))
    monkeypatch.setenv("TKE_ROLE_ARN", ROLE_ARN)
    # The SDK asks STS over https; the simulator listens on plain http.
    monkeypatch.setattr(credential, "HttpProfile", lambda: HttpProfile(protocol="http"))
    return token_file


def test_the_sdks_tke_oidc_provider_gets_credentials_the_api_accepts(sandbox, tke_pod):
    tke_pod.write_text(web_identity_token(ISSUER, int(time.time()) + 600))
    cred = credential.DefaultTkeOIDCRoleArnProvider().get_credentials()
    cred.endpoint = sandbox
    secret_id, _, token = cred.get_credential_info()
    assert secret_id.startswith("AKIDtmp") and token
    assert partner_credit(sandbox, cred).RequestId


def test_the_simulated_sts_refuses_a_token_from_another_issuer_as_sts_does(sandbox, tke_pod):
    tke_pod.write_text(web_identity_token("https://someone-else.invalid", int(time.time()) + 600))
    cred = credential.DefaultTkeOIDCRoleArnProvider().get_credentials()
    cred.endpoint = sandbox
    with pytest.raises(TencentCloudSDKException) as err:
        cred.get_credential_info()
    assert err.value.get_code() == "InvalidParameter.WebIdentityTokenError"
