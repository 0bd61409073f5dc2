#!/bin/sh
# One-shot job of the `storage-init` service (image minio/mc): create the bucket and an
# application user whose policy covers only that bucket. Idempotent: safe on every start.
set -eu
: "${MINIO_ROOT_USER:?}" "${MINIO_ROOT_PASSWORD:?}" "${GRADER_S3_BUCKET:?}"
: "${AWS_ACCESS_KEY_ID:?}" "${AWS_SECRET_ACCESS_KEY:?}"
endpoint="${MINIO_ENDPOINT:-http://storage:9000}"

tries=0
until mc alias set local "$endpoint" "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" >/dev/null 2>&1; do
    tries=$((tries + 1))
    [ "$tries" -lt 30 ] || { echo "storage-init: MinIO at $endpoint not reachable" >&2; exit 1; }
    sleep 2
done

mc mb --ignore-existing "local/$GRADER_S3_BUCKET"

policy=/tmp/grader-app-policy.json
cat > "$policy" <<JSON
{
  "Version": "2012-10-17",
  "Statement": [
    {"Effect": "Allow",
     "Action": ["s3:GetBucketLocation", "s3:ListBucket"],
     "Resource": ["arn:aws:s3:::$GRADER_S3_BUCKET"]},
    {"Effect": "Allow",
     "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
     "Resource": ["arn:aws:s3:::$GRADER_S3_BUCKET/*"]}
  ]
}
JSON
mc admin policy create local grader-app "$policy"
# `user add` on an existing user only updates its secret key.
mc admin user add local "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY"
# `attach` fails when the policy is already attached: that is the state we want.
mc admin policy attach local grader-app --user "$AWS_ACCESS_KEY_ID" >/dev/null 2>&1 || true
echo "storage-init: bucket $GRADER_S3_BUCKET and user $AWS_ACCESS_KEY_ID ready"
