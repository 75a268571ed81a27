#!/usr/bin/env bash
# Runs examples/hello through Odin's gateway with grpcurl and jq, using server reflection through the gateway
# (no .proto or descriptor file needed): list the services, log in, submit the pipeline inline, stream its events
# to the end, print the evaluate task's log.
#
# Usage: ODIN_GATEWAY=127.0.0.1:8080 ODIN_USERNAME=admin ODIN_PASSWORD=... examples/grpcurl/run_hello.sh
# (`odin dev status` prints the gateway address; the admin password is in ~/.local/state/odin/dev/admin-password.)
set -euo pipefail
gateway=${ODIN_GATEWAY:?set ODIN_GATEWAY to the gateway host:port}
username=${ODIN_USERNAME:?set ODIN_USERNAME}
password=${ODIN_PASSWORD:?set ODIN_PASSWORD}
grpcurl=${GRPCURL:-grpcurl}
hello=$(cd "$(dirname "$0")/../hello" && pwd)

# 1. What the gateway serves, by reflection.
"$grpcurl" -plaintext "$gateway" list | grep '^odin\.'

# 2. Log in (the request on stdin: `-d @`, so the password is not in the process list).
tokens=$(jq -n --arg u "$username" --arg p "$password" '{username: $u, password: $p}' |
  "$grpcurl" -plaintext -d @ "$gateway" odin.auth.v1.AuthService/Login)
auth="authorization: Bearer $(jq -r .tokens.accessToken <<<"$tokens")"

# 3. Submit main.yml and the other files of examples/hello inline.
files='{}'
for path in "$hello"/*; do
  name=$(basename "$path")
  [ "$name" = main.yml ] && continue
  files=$(jq --arg name "$name" --rawfile text "$path" '. + {($name): $text}' <<<"$files")
done
jq -n --rawfile main "$hello/main.yml" --argjson files "$files" --arg id "grpcurl-$(date +%s%N)" \
  '{requestId: $id, inline: {mainYml: $main, files: $files}}' > "${TMPDIR:-/tmp}/odin-hello-request.json"
job=$("$grpcurl" -plaintext -H "$auth" -d @ "$gateway" odin.scheduler.v1.SchedulerService/CreateJob \
  < "${TMPDIR:-/tmp}/odin-hello-request.json" | jq -r .job.name)
rm -f "${TMPDIR:-/tmp}/odin-hello-request.json"
echo "created $job"

# 4. Stream its events until the job ends (grpcurl prints one JSON object per message).
"$grpcurl" -plaintext -H "$auth" -d "{\"name\": \"$job\"}" "$gateway" odin.scheduler.v1.SchedulerService/WatchJob |
  jq -r --unbuffered 'select(.event) | .event |
    [.seq, (.type | sub("TYPE_"; "")), ((.task // "") | split("/") | last // "-"), (.taskState // .jobState),
     (if .attempt then "attempt \(.attempt)" else "" end), (.reason // "")] | join("  ")'

# 5. The outcome and the last task's log.
state=$("$grpcurl" -plaintext -H "$auth" -d "{\"name\": \"$job\"}" "$gateway" \
  odin.scheduler.v1.SchedulerService/GetJob | jq -r .job.state)
echo "job $job: $state"
"$grpcurl" -plaintext -H "$auth" -d "{\"name\": \"$job/tasks/evaluate\"}" "$gateway" \
  odin.scheduler.v1.SchedulerService/StreamTaskLogs | jq -j '.data // empty'
[ "$state" = STATE_SUCCEEDED ]
