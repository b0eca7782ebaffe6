#!/usr/bin/env bash
# tests/sink/run_s3_tests.sh BINARY: runs the S3 object store tests against a signature-checking
# moto_server on 127.0.0.1 (a free port), started and stopped here. Exits 77 (ctest's skip) with
# a message when moto_server or boto3 is absent. Recipe: INITIAL_NO_AUTH_ACTION_COUNT=3 lets
# three unauthenticated IAM calls create a user, its access key and an allow-all inline policy;
# every later request is signature-checked.
set -euo pipefail
bin=$1
shift
if ! command -v moto_server >/dev/null 2>&1; then
  echo "SKIP: moto_server is not installed (pip's moto[server]); the S3 object store tests need a signature-checking S3 server"
  exit 77
fi
if ! python3 -c 'import boto3' >/dev/null 2>&1; then
  echo "SKIP: python3 has no boto3; the S3 object store tests need it to set up moto and read objects back"
  exit 77
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
work=$(mktemp -d)
INITIAL_NO_AUTH_ACTION_COUNT=3 moto_server -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
moto=$!
cleanup() {
  kill "$moto" 2>/dev/null || true
  wait "$moto" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 1 150); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
  if ! kill -0 "$moto" 2>/dev/null; then
    echo "moto_server exited:"; cat "$work/moto.log"; exit 1
  fi
  sleep 0.2
done
export SHOAL_S3_ENDPOINT="http://127.0.0.1:$port"
creds=$(python3 - <<PY
import boto3, json
iam = boto3.client("iam", endpoint_url="$SHOAL_S3_ENDPOINT", region_name="us-east-1",
                   aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
iam.create_user(UserName="shoal-sink")
key = iam.create_access_key(UserName="shoal-sink")["AccessKey"]
iam.put_user_policy(UserName="shoal-sink", PolicyName="all", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
print(key["AccessKeyId"], key["SecretAccessKey"])
PY
)
read -r SHOAL_S3_KEY_ID SHOAL_S3_SECRET <<<"$creds"
export SHOAL_S3_KEY_ID SHOAL_S3_SECRET
echo "moto_server on $SHOAL_S3_ENDPOINT, access key id $SHOAL_S3_KEY_ID"
"$bin" "$@"
