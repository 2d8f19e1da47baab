"""Writes partner-gateway.json, the Grafana dashboard (edit here, then run it; deploy/prometheus/test.sh
fails when the committed JSON differs from what this writes). Usage: python3 generate.py [OUT]"""
import json
import os
import sys
panels=[]; pid=[0]
def nid():
    pid[0]+=1; return pid[0]
y=[0]
def row(title):
    panels.append({"type":"row","title":title,"id":nid(),"collapsed":False,"gridPos":{"h":1,"w":24,"x":0,"y":y[0]},"panels":[]}); y[0]+=1
x=[0]
def ts(title, targets, unit="short", w=8, desc="", stack=False, max_=None):
    if x[0]+w>24: x[0]=0; y[0]+=8
    p={"type":"timeseries","title":title,"id":nid(),"description":desc,
       "datasource":{"type":"prometheus","uid":"${datasource}"},
       "gridPos":{"h":8,"w":w,"x":x[0],"y":y[0]},
       "fieldConfig":{"defaults":{"unit":unit,"custom":{"stacking":{"mode":"normal" if stack else "none"}}},"overrides":[]},
       "options":{"legend":{"displayMode":"list","placement":"bottom"},"tooltip":{"mode":"multi"}},
       "targets":[{"refId":chr(65+i),"expr":e,"legendFormat":l,"datasource":{"type":"prometheus","uid":"${datasource}"}} for i,(e,l) in enumerate(targets)]}
    if max_ is not None: p["fieldConfig"]["defaults"]["max"]=max_
    panels.append(p); x[0]+=w
def endrow():
    x[0]=0; y[0]+=8
J='job=~"$job"'
R='$__rate_interval'
row("Requests")
ts("Requests per second by route and status",[(f'sum by (http_route, http_response_status_code) (rate(http_server_request_duration_seconds_count{{{J}}}[{R}]))',"{{http_route}} {{http_response_status_code}}")],"reqps",stack=True)
ts("Latency by route (p50, p99)",[(f'histogram_quantile(0.5, sum by (le, http_route) (rate(http_server_request_duration_seconds_bucket{{{J}}}[{R}])))',"p50 {{http_route}}"),(f'histogram_quantile(0.99, sum by (le, http_route) (rate(http_server_request_duration_seconds_bucket{{{J}}}[{R}])))',"p99 {{http_route}}")],"s")
ts("5xx ratio of calls (probes and scrapes left out), active requests, open connections",[(f'sum(rate(http_server_request_duration_seconds_count{{{J}, http_route!~"/livez|/readyz|/metrics", http_response_status_code=~"5.."}}[{R}])) / sum(rate(http_server_request_duration_seconds_count{{{J}, http_route!~"/livez|/readyz|/metrics"}}[{R}]))',"5xx ratio"),(f'sum(http_server_active_requests{{{J}}})',"active requests"),(f'sum(gateway_connections_open{{{J}}})',"open connections")],"short")
endrow()
row("Tencent Cloud (upstream)")
ts("Upstream calls by action and outcome",[(f'sum by (tencent_action, outcome) (rate(http_client_request_duration_seconds_count{{{J}}}[{R}]))',"{{tencent_action}} {{outcome}}")],"reqps",stack=True)
ts("Tencent error codes",[(f'sum by (tencent_action, tencent_code) (rate(http_client_request_duration_seconds_count{{{J}, outcome="error"}}[{R}]))',"{{tencent_action}} {{tencent_code}}")],"reqps",desc="RequestLimitExceeded here means Tencent's quota was exceeded: see the alert's runbook.")
ts("Upstream latency by action (p50, p99)",[(f'histogram_quantile(0.5, sum by (le, tencent_action) (rate(http_client_request_duration_seconds_bucket{{{J}}}[{R}])))',"p50 {{tencent_action}}"),(f'histogram_quantile(0.99, sum by (le, tencent_action) (rate(http_client_request_duration_seconds_bucket{{{J}}}[{R}])))',"p99 {{tencent_action}}")],"s")
ts("Retries by action and reason",[(f'sum by (tencent_action, reason) (rate(gateway_upstream_retries_total{{{J}}}[{R}]))',"{{tencent_action}} {{reason}}")],"reqps")
ts("Actions refused for a missing CAM permission",[(f'max by (tencent_action) (gateway_upstream_action_denied{{{J}}})',"{{tencent_action}}")],"short")
endrow()
row("Quota")
ts("Quota utilization by action (admitted calls / effective quota)",[(f'sum by (tencent_action) (rate(gateway_quota_wait_seconds_count{{{J}}}[{R}])) / max by (tencent_action) (gateway_quota_effective{{{J}}})',"{{tencent_action}}")],"percentunit",max_=1)
ts("Quota wait by action (p50, p99)",[(f'histogram_quantile(0.5, sum by (le, tencent_action) (rate(gateway_quota_wait_seconds_bucket{{{J}}}[{R}])))',"p50 {{tencent_action}}"),(f'histogram_quantile(0.99, sum by (le, tencent_action) (rate(gateway_quota_wait_seconds_bucket{{{J}}}[{R}])))',"p99 {{tencent_action}}")],"s")
ts("Quota rejections (429) and late departures",[(f'sum by (tencent_action) (rate(gateway_quota_rejections_total{{{J}}}[{R}]))',"rejected {{tencent_action}}"),(f'sum by (tencent_action, reason) (rate(gateway_quota_late_departures_total{{{J}}}[{R}]))',"late {{tencent_action}} {{reason}}")],"reqps")
ts("Quota: configured vs effective (calls/s)",[(f'max by (tencent_action) (gateway_quota_configured{{{J}}})',"configured {{tencent_action}}"),(f'min by (tencent_action) (gateway_quota_effective{{{J}}})',"effective {{tencent_action}}")],"short")
ts("Quota window guard",[(f'max by (tencent_action) (gateway_quota_guard_seconds{{{J}}})',"{{tencent_action}}")],"s")
endrow()
row("Credit and idempotency")
ts("Idempotency results",[(f'sum by (route, result) (rate(gateway_idempotency_requests_total{{{J}}}[{R}]))',"{{route}} {{result}}")],"reqps",stack=True)
ts("Reconciliations by result",[(f'sum by (result) (increase(gateway_credit_reconciliations_total{{{J}}}[{R}]))',"{{result}}"),(f'sum by (result) (increase(gateway_credit_history_scans_total{{{J}}}[{R}]))',"history scan {{result}}")],"short")
ts("Unsettled allocations",[(f'max(gateway_credit_unsettled{{{J}}})',"unsettled"),(f'time() - max(gateway_credit_unsettled_oldest_timestamp_seconds{{{J}}} > 0)',"age of the oldest (s)"),(f'sum(increase(gateway_credit_marker_mismatches_total{{{J}}}[{R}]))',"marker mismatches")],"short",desc="An allocation of unknown outcome should settle within credit.settle_ms plus a resolver pass.")
ts("Invitation cooldowns",[(f'sum by (source) (rate(gateway_invitation_cooldowns_total{{{J}}}[{R}]))',"{{source}}")],"reqps")
ts("Idempotency store fill (memory store)",[(f'max(gateway_idempotency_records{{{J}}} / gateway_idempotency_capacity{{{J}}})',"fill"),(f'sum(rate(gateway_idempotency_evictions_total{{{J}}}[{R}]))',"evictions/s")],"percentunit")
endrow()
row("Store and fleet")
ts("Store up (min over replicas)",[(f'min(gateway_store_up{{{J}}})',"store up")],"short",max_=1)
ts("Store errors by operation, quota fallback decisions",[(f'sum by (operation) (rate(gateway_store_errors_total{{{J}}}[{R}]))',"error {{operation}}"),(f'sum by (tencent_action, result) (rate(gateway_quota_fallback_total{{{J}}}[{R}]))',"fallback {{tencent_action}} {{result}}")],"reqps")
ts("Fleet: replicas and quota shares",[(f'max(gateway_fleet_replicas{{{J}}})',"replicas"),(f'sum by (tencent_action) (gateway_quota_share{{{J}}})',"shares {{tencent_action}}")],"short")
ts("Builds running",[(f'sum by (version) (gateway_build_info{{{J}}})',"{{version}}")],"short")
ts("Connections closed: over the cap, timed out",[(f'sum(rate(gateway_connections_rejected_total{{{J}}}[{R}]))',"over max_connections"),(f'sum by (limit) (rate(gateway_connections_timed_out_total{{{J}}}[{R}]))',"timed out {{limit}}")],"reqps")
ts("JWKS age and refresh failures",[(f'max(gateway_jwks_age_seconds{{{J}}})',"age (s)"),(f'sum(increase(gateway_jwks_refresh_failures_total{{{J}}}[{R}]))',"refresh failures")],"short")
endrow()
dash={"title":"partner-gateway","uid":"partner-gateway","tags":["partner-gateway","tencent-cloud"],
 "description":"partner-gateway: requests, Tencent Cloud calls, quota, credit settlement, store and fleet. Ships with the gateway (deploy/grafana).",
 "schemaVersion":39,"version":1,"editable":True,"graphTooltip":1,"time":{"from":"now-6h","to":"now"},"refresh":"30s",
 "timezone":"","links":[],"annotations":{"list":[]},
 "templating":{"list":[
   {"name":"datasource","type":"datasource","query":"prometheus","label":"Data source","current":{}},
   {"name":"job","type":"query","label":"Job","datasource":{"type":"prometheus","uid":"${datasource}"},
    "query":{"query":"label_values(gateway_build_info, job)","refId":"job"},"definition":"label_values(gateway_build_info, job)",
    "includeAll":True,"multi":True,"allValue":".*","refresh":2,"current":{}}]},
 "panels":panels}
out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "partner-gateway.json")
with open(out, "w") as f:
    json.dump(dash, f, indent=2)
    f.write("\n")
