#!/usr/bin/env bash
# Deploys OpenFloat to an AWS account, or removes everything a deploy made:
#
#   infra/deploy.sh deploy      (make deploy STACK=NAME [REGION=...] ...)
#   infra/deploy.sh undeploy    (make undeploy STACK=NAME [REGION=...])
#   infra/deploy.sh drill       (make drill STACK=NAME JOB=ID [NOTICE_MINUTES=2])
#
# deploy: builds the worker image (stack STACK-worker-image, infra/worker-image.json: EC2 Image
# Builder on Debian 12, from the worker source archive it uploads), packages the control plane
# (python -m infra.package, then aws cloudformation package) and deploys stack STACK with the
# image's AMI as WorkerImageId; then prints the API's URL and how to create the first admin.
# Rerunning it updates both stacks; the image is rebuilt only when the worker source or
# Debian's image changed, and the AMIs it replaced are deregistered.
# drill: a reclaim drill on AWS: AWS FIS sends EC2's Spot interruption to job JOB's instance
# (stack STACK-reclaim-drill, infra/reclaim-drill.json), NOTICE_MINUTES before terminating it.
# undeploy: deletes the stacks, the workers, the data bucket, the secrets and command queues
# the OpCenter made, the worker AMIs and their snapshots, and what deploy put in BUCKET.
#
# Settings, from the environment (make passes its variables on):
#   STACK                  the stack's name (required): letters, digits and dashes
#   REGION                 default: AWS_REGION, AWS_DEFAULT_REGION or `aws configure get region`
#   BUCKET                 artifacts bucket (worker source, packaged code, build logs);
#                          default openfloat-artifacts-ACCOUNT-REGION, created when missing
#   SUBNETS                the workers' subnets, one per AZ, comma-separated (WorkerSubnetIds)
#   SECURITY_GROUPS        the workers' security groups, comma-separated (WorkerSecurityGroupIds)
#   VPC                    the workers' VPC (WorkerVpcId)
#   LICENSE_KEY            the license issuer's public key the OpCenter trusts (LicenseIssuerKey;
#                          python -m infra.license keygen makes a pair); required at first
#   CHECKPOINT_INTERVAL    seconds between the checkpoints of a running job that sets no
#                          --checkpointInterval (CheckpointIntervalSeconds): 0 (none) or >= 10
#   DATA_BUCKETS           buckets whose s3:// data volumes jobs mount without keys of their own,
#                          comma-separated names (WorkerDataBuckets): the workers' role may list,
#                          read and write them
#   BUILD_SUBNET, BUILD_SECURITY_GROUPS   where the image is built (default: the default VPC)
#   BUILD_INSTANCE_TYPE    the image's build and test instances (default m5.large)
#   DEBIAN_AMI_PARAMETER   the public SSM parameter naming Debian 12's latest amd64 AMI
# SUBNETS, SECURITY_GROUPS, VPC, LICENSE_KEY, CHECKPOINT_INTERVAL and DATA_BUCKETS left out keep
# what the stack has (its defaults at first).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"  # python -m infra.package and infra.worker_source run from the project's root
PY=${PY:-$ROOT/.venv/bin/python}
BUILD=$ROOT/build
DEBIAN_AMI_PARAMETER=${DEBIAN_AMI_PARAMETER:-/aws/service/debian/release/bookworm/latest/amd64}
POLL_SECONDS=30

log() { printf '[deploy] %s\n' "$*"; }
die() { printf 'deploy: %s\n' "$*" >&2; exit 1; }

COMMAND=${1:-}
case "$COMMAND" in
  deploy | undeploy | drill) ;;
  *) die "usage: infra/deploy.sh deploy|undeploy|drill (got '${COMMAND}')" ;;
esac

# --- settings and what they need, checked before anything is changed ------------------------
STACK=${STACK:-}
[ -n "$STACK" ] || die "set STACK to the stack's name: make $COMMAND STACK=openfloat"
[[ "$STACK" =~ ^[A-Za-z][A-Za-z0-9-]{0,62}$ ]] ||
  die "STACK '$STACK' is not a stack name: a letter, then up to 62 letters, digits or dashes"
check_list() { # NAME VALUE PATTERN: a comma-separated list of ids of one kind
  [ -z "$2" ] || [[ "$2" =~ ^$3(,$3)*$ ]] || die "$1 '$2' is not a comma-separated list of $3 ids"
}
SUBNETS=${SUBNETS:-} SECURITY_GROUPS=${SECURITY_GROUPS:-} VPC=${VPC:-}
BUILD_SUBNET=${BUILD_SUBNET:-} BUILD_SECURITY_GROUPS=${BUILD_SECURITY_GROUPS:-}
check_list SUBNETS "$SUBNETS" 'subnet-[0-9a-f]+'
check_list SECURITY_GROUPS "$SECURITY_GROUPS" 'sg-[0-9a-f]+'
check_list VPC "$VPC" 'vpc-[0-9a-f]+'
LICENSE_KEY=${LICENSE_KEY:-}
[ -z "$LICENSE_KEY" ] || [[ "$LICENSE_KEY" =~ ^[A-Za-z0-9+/]{43}=$ ]] ||
  die "LICENSE_KEY '$LICENSE_KEY' is not an Ed25519 public key in base64 (python -m infra.license keygen prints one)"
CHECKPOINT_INTERVAL=${CHECKPOINT_INTERVAL:-}
[ -z "$CHECKPOINT_INTERVAL" ] || [[ "$CHECKPOINT_INTERVAL" =~ ^(0|[1-9][0-9]{1,5})$ ]] ||
  die "CHECKPOINT_INTERVAL '$CHECKPOINT_INTERVAL' is not 0 or whole seconds from 10 to 999999"
DATA_BUCKETS=${DATA_BUCKETS:-}
# S3's rules for a bucket's name: 3 to 63 lowercase letters, digits, dots and dashes.
[ -z "$DATA_BUCKETS" ] || [[ "$DATA_BUCKETS" =~ ^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](,[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])*$ ]] ||
  die "DATA_BUCKETS '$DATA_BUCKETS' is not a comma-separated list of bucket names (no s3://, no prefix)"
check_list BUILD_SUBNET "$BUILD_SUBNET" 'subnet-[0-9a-f]+'
check_list BUILD_SECURITY_GROUPS "$BUILD_SECURITY_GROUPS" 'sg-[0-9a-f]+'
[[ -z "$VPC" || "$VPC" != *,* ]] || die "VPC takes one VPC id, not '$VPC'"
[[ -z "$BUILD_SUBNET" || "$BUILD_SUBNET" != *,* ]] || die "BUILD_SUBNET takes one subnet id, not '$BUILD_SUBNET'"
if [[ -n "$BUILD_SUBNET" && -z "$BUILD_SECURITY_GROUPS" || -z "$BUILD_SUBNET" && -n "$BUILD_SECURITY_GROUPS" ]]; then
  die "set BUILD_SUBNET and BUILD_SECURITY_GROUPS together, or neither"
fi

JOB=${JOB:-} NOTICE_MINUTES=${NOTICE_MINUTES:-2}
if [ "$COMMAND" = drill ]; then
  [ -n "$JOB" ] || die "set JOB to the id of an Executing Spot job: make drill STACK=$STACK JOB=ID"
  [[ "$JOB" =~ ^[a-z0-9]+$ ]] || die "JOB '$JOB' is not a job id (float list shows them)"
  if ! [[ "$NOTICE_MINUTES" =~ ^[0-9]+$ ]] || [ "$NOTICE_MINUTES" -lt 2 ] || [ "$NOTICE_MINUTES" -gt 15 ]; then
    die "NOTICE_MINUTES '$NOTICE_MINUTES' is not a whole number of minutes from 2 to 15"
  fi
fi

command -v aws >/dev/null 2>&1 ||
  die "the AWS CLI (aws) is not on PATH: install AWS CLI v2, then run 'aws configure'"
if [ "$COMMAND" = deploy ] && [ ! -x "$PY" ]; then
  die "no Python environment at $PY: run 'make setup' (make deploy does)"
fi
REGION=${REGION:-${AWS_REGION:-${AWS_DEFAULT_REGION:-$(aws configure get region 2>/dev/null || true)}}}
[ -n "$REGION" ] || die "no AWS region: set REGION (make $COMMAND REGION=eu-west-1) or run 'aws configure'"
export AWS_REGION=$REGION AWS_DEFAULT_REGION=$REGION AWS_PAGER=""
ACCOUNT=$(aws sts get-caller-identity --query Account --output text 2>/dev/null) ||
  die "no working AWS credentials for region $REGION ('aws sts get-caller-identity' fails): run 'aws configure' or set AWS_PROFILE"

DEFAULT_BUCKET=openfloat-artifacts-$ACCOUNT-$REGION
BUCKET=${BUCKET:-$DEFAULT_BUCKET}
IMAGE_STACK=$STACK-worker-image
DRILL_STACK=$STACK-reclaim-drill
PREFIX=$STACK
IMAGE_TAG=openfloat:worker-image

# --- CloudFormation -------------------------------------------------------------------------
stack_status() { # NAME: its status, empty when there is no such stack
  aws cloudformation describe-stacks --stack-name "$1" --query 'Stacks[0].StackStatus' \
    --output text 2>/dev/null || true
}

stack_output() { # NAME KEY
  aws cloudformation describe-stacks --stack-name "$1" \
    --query "Stacks[0].Outputs[?OutputKey=='$2'].OutputValue" --output text
}

why_failed() { # NAME: the reasons of the stack's latest failed resources, then HINT if set
  aws cloudformation describe-stack-events --stack-name "$1" --max-items 50 \
    --query "StackEvents[?contains(ResourceStatus, 'FAILED')].[LogicalResourceId, ResourceStatusReason]" \
    --output text 2>/dev/null | head -n 10 | sed 's/^/  /' >&2 || true
  [ -z "${HINT:-}" ] || printf '  %s\n' "$HINT" >&2
}

wait_stack() { # NAME: wait while it is in progress; its final status
  local status
  status=$(stack_status "$1")
  while [[ "$status" == *_IN_PROGRESS ]]; do
    sleep "$POLL_SECONDS"
    status=$(stack_status "$1")
  done
  echo "$status"
}

deploy_stack() { # NAME TEMPLATE PARAMETER=VALUE...
  local name=$1 template=$2 status rc=0
  shift 2
  status=$(stack_status "$name")
  case "$status" in
    *_IN_PROGRESS) die "stack $name is $status: wait for it to end, then run again" ;;
    ROLLBACK_COMPLETE | ROLLBACK_FAILED)
      log "stack $name is $status from a failed first create: deleting it first"
      aws cloudformation delete-stack --stack-name "$name"
      aws cloudformation wait stack-delete-complete --stack-name "$name" ;;
  esac
  log "stack $name: deploying $template"
  aws cloudformation deploy --stack-name "$name" --template-file "$template" \
    --s3-bucket "$BUCKET" --s3-prefix "$PREFIX/templates" \
    --capabilities CAPABILITY_IAM CAPABILITY_NAMED_IAM CAPABILITY_AUTO_EXPAND \
    --no-fail-on-empty-changeset --tags "openfloat:stack=$STACK" \
    --parameter-overrides "$@" || rc=$?
  if [ "$rc" -ne 0 ]; then
    # The CLI stops waiting after an hour; an image build with its test may take longer.
    status=$(stack_status "$name")
    [[ "$status" == *_IN_PROGRESS ]] || { why_failed "$name"; die "stack $name was not deployed (status ${status:-none}); see the reasons above"; }
    log "stack $name: still $status, waiting on"
    status=$(wait_stack "$name")
    [[ "$status" == CREATE_COMPLETE || "$status" == UPDATE_COMPLETE ]] ||
      { why_failed "$name"; die "stack $name ended $status; see the reasons above"; }
  fi
  log "stack $name: $(stack_status "$name")"
}

delete_stack() { # NAME
  local status
  status=$(stack_status "$1")
  [ -n "$status" ] || { log "stack $1: none"; return 0; }
  log "stack $1: deleting"
  aws cloudformation delete-stack --stack-name "$1"
  status=$(wait_stack "$1")
  [ -z "$status" ] || [ "$status" = DELETE_COMPLETE ] || { why_failed "$1"; die "stack $1 ended $status"; }
  log "stack $1: deleted"
}

# --- worker images --------------------------------------------------------------------------
worker_amis() { # the AMIs the image stack built, one per line
  aws ec2 describe-images --owners self --filters "Name=tag:$IMAGE_TAG,Values=$IMAGE_STACK" \
    --query 'Images[].ImageId' --output text | tr '\t' '\n' | sed '/^$/d'
}

deregister_ami() { # AMI: deregister it and delete its snapshots
  local snapshots
  snapshots=$(aws ec2 describe-images --image-ids "$1" \
    --query 'Images[0].BlockDeviceMappings[].Ebs.SnapshotId' --output text | tr '\t' '\n' | grep '^snap-' | paste -sd' ' - || true)
  log "image $1: deregistering, deleting snapshots $snapshots"
  aws ec2 deregister-image --image-id "$1"
  for snapshot in $snapshots; do
    aws ec2 delete-snapshot --snapshot-id "$snapshot"
  done
}

ensure_bucket() {
  if aws s3api head-bucket --bucket "$BUCKET" >/dev/null 2>&1; then
    return 0
  fi
  [ "$BUCKET" = "$DEFAULT_BUCKET" ] ||
    die "bucket $BUCKET does not exist or is not yours: create it in $REGION, or leave BUCKET out"
  log "bucket $BUCKET: creating"
  if [ "$REGION" = us-east-1 ]; then
    aws s3api create-bucket --bucket "$BUCKET" >/dev/null
  else
    aws s3api create-bucket --bucket "$BUCKET" \
      --create-bucket-configuration "LocationConstraint=$REGION" >/dev/null
  fi
  aws s3api put-public-access-block --bucket "$BUCKET" --public-access-block-configuration \
    BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true
}

# --- deploy ---------------------------------------------------------------------------------
deploy() {
  if [ -z "$LICENSE_KEY" ] && [ -z "$(stack_status "$STACK")" ]; then
    die "set LICENSE_KEY to the public key of the issuer whose licenses stack $STACK accepts: make deploy STACK=$STACK LICENSE_KEY=... (python -m infra.license keygen --out DIR makes a pair)"
  fi
  ensure_bucket

  log "packaging the control plane"
  "$PY" -m infra.package "$BUILD/package"

  local packed archive digest key parent root_device build_id ami url
  packed=$("$PY" -m infra.worker_source "$BUILD/worker")
  read -r archive digest <<<"$packed"
  key=$PREFIX/worker/openfloat-worker-$digest.tar.gz
  if aws s3api head-object --bucket "$BUCKET" --key "$key" >/dev/null 2>&1; then
    log "worker source: s3://$BUCKET/$key already there"
  else
    log "worker source: uploading s3://$BUCKET/$key"
    aws s3 cp --only-show-errors "$archive" "s3://$BUCKET/$key"
  fi

  parent=$(aws ssm get-parameter --name "$DEBIAN_AMI_PARAMETER" --query Parameter.Value --output text) ||
    die "cannot read Debian 12's AMI from SSM parameter $DEBIAN_AMI_PARAMETER in $REGION"
  root_device=$(aws ec2 describe-images --image-ids "$parent" --query 'Images[0].RootDeviceName' --output text)
  # The component and recipe are named by what they are made of: the archive, Debian's image
  # and the template (a recipe cannot change under the same name and version).
  build_id=$(printf '%s %s %s' "$digest" "$parent" "$(sha256sum <"$ROOT/infra/worker-image.json")" |
    sha256sum | cut -c1-16)
  log "worker image: build $build_id (source $digest, Debian 12 image $parent); a new build takes 30 to 60 minutes"
  local image_params=(SourceBucket="$BUCKET" SourceKey="$key" LogKeyPrefix="$PREFIX/image-builder-logs/"
    BuildId="$build_id" ParentImageId="$parent" RootDeviceName="$root_device"
    BuildInstanceType="${BUILD_INSTANCE_TYPE:-m5.large}"
    BuildSubnetId="$BUILD_SUBNET" BuildSecurityGroupIds="$BUILD_SECURITY_GROUPS")
  HINT="the image's build and test logs are under s3://$BUCKET/$PREFIX/image-builder-logs/"
  deploy_stack "$IMAGE_STACK" "$ROOT/infra/worker-image.json" "${image_params[@]}"
  HINT=""
  ami=$(stack_output "$IMAGE_STACK" ImageId)
  [[ "$ami" == ami-* ]] || die "stack $IMAGE_STACK has no ImageId output (got '$ami')"
  log "worker image: $ami"

  aws cloudformation package --template-file "$BUILD/package/sam.json" --s3-bucket "$BUCKET" \
    --s3-prefix "$PREFIX/app" --output-template-file "$BUILD/package/packaged.json" --use-json >/dev/null
  local app_params=(WorkerImageId="$ami")
  [ -z "$SUBNETS" ] || app_params+=(WorkerSubnetIds="$SUBNETS")
  [ -z "$SECURITY_GROUPS" ] || app_params+=(WorkerSecurityGroupIds="$SECURITY_GROUPS")
  [ -z "$VPC" ] || app_params+=(WorkerVpcId="$VPC")
  [ -z "$LICENSE_KEY" ] || app_params+=(LicenseIssuerKey="$LICENSE_KEY")
  [ -z "$CHECKPOINT_INTERVAL" ] || app_params+=(CheckpointIntervalSeconds="$CHECKPOINT_INTERVAL")
  [ -z "$DATA_BUCKETS" ] || app_params+=(WorkerDataBuckets="$DATA_BUCKETS")
  deploy_stack "$STACK" "$BUILD/package/packaged.json" "${app_params[@]}"

  # The stack now launches from the new image: the ones it replaced only cost storage.
  # (A running worker keeps running: deregistering an AMI leaves its instances alone.)
  for old in $(worker_amis); do
    [ "$old" = "$ami" ] || deregister_ami "$old"
  done

  url=$(stack_output "$STACK" EndpointURL)
  cat <<EOF

OpenFloat is deployed: stack $STACK in $REGION, workers from $ami.
  API:   $url
First admin (once; at least 8 characters):
  OPENFLOAT_ADMIN_PASSWORD='...' $PY -m infra.admin $STACK
Then log in, and apply a license issued for OpCenter $(stack_output "$STACK" OpCenterId):
  $(dirname "$PY")/float login -a $url -u admin -p '...'
  $(dirname "$PY")/float license apply LICENSE.json
EOF
}

# --- drill ----------------------------------------------------------------------------------
drill() {
  local template experiment
  [ -n "$(stack_status "$STACK")" ] || die "there is no stack $STACK in $REGION: make deploy first"
  deploy_stack "$DRILL_STACK" "$ROOT/infra/reclaim-drill.json" JobId="$JOB" NoticeMinutes="$NOTICE_MINUTES"
  template=$(stack_output "$DRILL_STACK" ExperimentTemplateId)
  experiment=$(aws fis start-experiment --experiment-template-id "$template" \
    --tags "openfloat:job=$JOB" --query experiment.id --output text)
  cat <<EOF

AWS FIS experiment $experiment: EC2's Spot interruption warning for job $JOB's instance now,
its termination in $NOTICE_MINUTES minutes. Watch the job go Capturing, Floating, Executing:
  float show -j $JOB
  aws fis get-experiment --id $experiment --query experiment.state
EOF
}

# --- undeploy -------------------------------------------------------------------------------
PROFILE_ARN=""

stack_instances() { # the live workers: from this stack's images or with its instance profile
  local amis filters found=""
  amis=$(worker_amis | paste -sd, -)
  for filters in ${amis:+"Name=image-id,Values=$amis"} ${PROFILE_ARN:+"Name=iam-instance-profile.arn,Values=$PROFILE_ARN"}; do
    found+=" $(aws ec2 describe-instances --filters "$filters" \
      "Name=instance-state-name,Values=pending,running,stopping,stopped" \
      --query 'Reservations[].Instances[].InstanceId' --output text)"
  done
  tr -s ' \t' '\n' <<<"$found" | grep '^i-' | sort -u | paste -sd' ' - || true
}

terminate_workers() {
  local instances
  instances=$(stack_instances)
  [ -n "$instances" ] || return 0
  log "workers: terminating $instances"
  # shellcheck disable=SC2086
  aws ec2 terminate-instances --instance-ids $instances >/dev/null
  # shellcheck disable=SC2086
  aws ec2 wait instance-terminated --instance-ids $instances
}

undeploy() {
  local data_bucket="" prefix="" profile="" queue secret volume snapshot
  if [ -n "$(stack_status "$STACK")" ]; then
    data_bucket=$(stack_output "$STACK" DataBucket)
    prefix=$(stack_output "$STACK" QueuePrefix)
    profile=$(stack_output "$STACK" WorkerInstanceProfile)
  fi
  case "$profile" in
    arn:*) PROFILE_ARN=$profile ;;
    "" | None) ;;
    *) PROFILE_ARN=$(aws iam get-instance-profile --instance-profile-name "$profile" \
         --query InstanceProfile.Arn --output text 2>/dev/null || true) ;;
  esac
  delete_stack "$DRILL_STACK"
  # Workers first (their security group goes with the stack), then the control plane; a
  # workflow that launched one meanwhile has it terminated before a second try.
  terminate_workers
  if ! (delete_stack "$STACK"); then
    terminate_workers
    delete_stack "$STACK"
  fi
  terminate_workers
  if [ -n "$prefix" ] && [ "$prefix" != None ]; then
    # Each worker's command queue is made by the workflows, not the stack.
    for queue in $(aws sqs list-queues --queue-name-prefix "${prefix}cmd-" --query 'QueueUrls[]' --output text); do
      [ "$queue" = None ] || { log "queue $queue: deleting"; aws sqs delete-queue --queue-url "$queue"; }
    done
    # Jobs' data volumes and their snapshots are made by the workflows, tagged with the
    # OpCenter's queue prefix; with the workers gone, nothing holds them.
    for volume in $(aws ec2 describe-volumes --filters "Name=tag:openfloat:opcenter,Values=$prefix" \
        --query 'Volumes[].VolumeId' --output text); do
      [ "$volume" = None ] || { log "volume $volume: deleting"; aws ec2 delete-volume --volume-id "$volume"; }
    done
    for snapshot in $(aws ec2 describe-snapshots --owner-ids self \
        --filters "Name=tag:openfloat:opcenter,Values=$prefix" --query 'Snapshots[].SnapshotId' --output text); do
      [ "$snapshot" = None ] || { log "snapshot $snapshot: deleting"; aws ec2 delete-snapshot --snapshot-id "$snapshot"; }
    done
  fi
  # Registry credentials, users' secrets and the token key are made by the API, not the stack.
  for secret in $(aws secretsmanager list-secrets --filters "Key=name,Values=openfloat/$STACK/" \
      --query 'SecretList[].ARN' --output text); do
    [ "$secret" = None ] || { log "secret $secret: deleting"; aws secretsmanager delete-secret \
      --secret-id "$secret" --force-delete-without-recovery >/dev/null; }
  done
  # The stack keeps its data bucket (job scripts, logs, checkpoints) on deletion.
  if [ -n "$data_bucket" ] && [ "$data_bucket" != None ] &&
      aws s3api head-bucket --bucket "$data_bucket" >/dev/null 2>&1; then
    log "bucket $data_bucket: deleting with its content"
    aws s3 rb --force "s3://$data_bucket" >/dev/null
  fi

  delete_stack "$IMAGE_STACK"
  for ami in $(worker_amis); do deregister_ami "$ami"; done

  if aws s3api head-bucket --bucket "$BUCKET" >/dev/null 2>&1; then
    log "bucket $BUCKET: deleting s3://$BUCKET/$PREFIX/"
    aws s3 rm --recursive --only-show-errors "s3://$BUCKET/$PREFIX/"
    if [ "$BUCKET" = "$DEFAULT_BUCKET" ] &&
        [ "$(aws s3api list-objects-v2 --bucket "$BUCKET" --max-keys 1 --no-paginate --query KeyCount --output text)" = 0 ]; then
      log "bucket $BUCKET: empty, deleting it"
      aws s3api delete-bucket --bucket "$BUCKET"
    fi
  fi
  log "stack $STACK and everything deploy made for it are gone from $REGION"
}

"$COMMAND"
