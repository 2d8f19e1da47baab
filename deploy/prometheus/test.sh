#!/usr/bin/env bash
# Checks the alert rules and the dashboard with promtool (Debian's `prometheus` package, installed
# when missing): the rules load, every alert's unit tests pass (a firing and a quiet case each),
# and every PromQL expression of deploy/grafana/partner-gateway.json parses. That the rules and the
# dashboard name only metrics and labels the gateway exports is a cargo test
# (tests/api/deploy.rs).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dashboard="$here/../grafana/partner-gateway.json"
for tool in promtool jq; do
  if ! command -v "$tool" >/dev/null; then
    package=$tool; [ "$tool" = promtool ] && package=prometheus
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
    $sudo apt-get install -y -q "$package" >/dev/null ||
      { $sudo apt-get update -q && $sudo apt-get install -y -q "$package" >/dev/null; }
  fi
done

echo "-- promtool check rules alerts.yaml"
promtool check rules "$here/alerts.yaml"
echo "-- promtool test rules alerts.test.yaml"
(cd "$here" && promtool test rules alerts.test.yaml)

echo "-- the dashboard is what deploy/grafana/generate.py writes"
generated="$(mktemp)"
python3 "$here/../grafana/generate.py" "$generated"
diff -q "$generated" "$dashboard" >/dev/null ||
  { rm -f "$generated"; echo "FAIL: partner-gateway.json differs from generate.py's output: run it" >&2; exit 1; }
rm -f "$generated"

echo "-- every PromQL expression of the dashboard parses"
rules="$(mktemp --suffix=.yaml)"
trap 'rm -f "$rules"' EXIT
# Each panel query becomes a recording rule, with Grafana's variables given plausible values.
jq -r '
  [.panels[] | select(.targets) | .targets[].expr] + [.templating.list[] | select(.type == "query") | .query.query]
  | map(gsub("\\$__rate_interval"; "1m") | gsub("\\$job"; ".*"))
  | map(select(startswith("label_values(") | not))
  | {groups: [{name: "dashboard", rules: to_entries | map({record: "dashboard:expr_\(.key)", expr: .value})}]}
' "$dashboard" >"$rules"
count=$(jq '[.panels[] | select(.targets) | .targets[]] | length' "$dashboard")
promtool check rules "$rules" >/dev/null || { promtool check rules "$rules"; exit 1; }
echo "  $count expressions parse"
