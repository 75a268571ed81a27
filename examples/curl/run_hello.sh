#!/usr/bin/env bash
# Runs examples/hello through Odin's gateway with nothing but curl and jq (the HTTP/JSON API):
# log in, submit the pipeline inline, stream its events to the end, print the evaluate task's log.
#
# Usage: ODIN_GATEWAY=127.0.0.1:8080 ODIN_USERNAME=admin ODIN_PASSWORD=... examples/curl/run_hello.sh
# (`odin dev status` prints the gateway address; the admin password is in ~/.local/state/odin/dev/admin-password.)
set -euo pipefail
gateway=${ODIN_GATEWAY:?set ODIN_GATEWAY to the gateway host:port}
username=${ODIN_USERNAME:?set ODIN_USERNAME}
password=${ODIN_PASSWORD:?set ODIN_PASSWORD}
hello=$(cd "$(dirname "$0")/../hello" && pwd)
api="http://$gateway/v1"

# 1. Log in. The body goes through stdin so the password never shows in the process list.
tokens=$(jq -n --arg u "$username" --arg p "$password" '{username: $u, password: $p}' |
  curl -sS --fail-with-body -H 'content-type: application/json' -d @- "$api/auth:login")
auth="authorization: Bearer $(jq -r .tokens.accessToken <<<"$tokens")"

# 2. Submit main.yml and the other files of examples/hello inline; requestId makes a retried POST harmless.
files='{}'
for path in "$hello"/*; do
  name=$(basename "$path")
  [ "$name" = main.yml ] && continue
  files=$(jq --arg name "$name" --rawfile text "$path" '. + {($name): $text}' <<<"$files")
done
request=$(jq -n --rawfile main "$hello/main.yml" --argjson files "$files" --arg id "curl-$(date +%s%N)" \
  '{requestId: $id, inline: {mainYml: $main, files: $files}}')
job=$(curl -sS --fail-with-body -H "$auth" -H 'content-type: application/json' -d "$request" "$api/jobs" |
  jq -r .job.name)
echo "created $job"

# 3. Stream its events (one JSON object per line) until the job ends; the stream closes by itself.
curl -sS -N --fail-with-body -H "$auth" "$api/$job:watch" |
  jq -r --unbuffered 'select(.event) | .event |
    [.seq, (.type | sub("TYPE_"; "")), ((.task // "") | split("/") | last // "-"), (.taskState // .jobState),
     (if .attempt then "attempt \(.attempt)" else "" end), (.reason // "")] | join("  ")'

# 4. The outcome and the last task's log (read from the log store once the task has ended).
state=$(curl -sS --fail-with-body -H "$auth" "$api/$job" | jq -r .job.state)
echo "job $job: $state"
curl -sS --fail-with-body -H "$auth" "$api/$job/tasks/evaluate:logs" | jq -j '.data // empty'
[ "$state" = STATE_SUCCEEDED ]
