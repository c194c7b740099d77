# kiln agent: runs the job kiln assigns to this instance and reports on it through S3.
#
# The user data of every instance kiln launches starts this script in the background (cloud-init
# runs user data once, as root, at first boot). Needs only sh, curl (>= 7.75, for --aws-sigv4)
# and setsid, and an instance role (IAM instance profile) allowed to read and write the job's
# bucket. The user data sets KILN_REGION and, for an AWS-compatible endpoint, KILN_S3_ENDPOINT
# (SSM is reached there too unless KILN_SSM_ENDPOINT says otherwise).
#
# Every KILN_AGENT_INTERVAL seconds it reads the instance tag `kiln:job` through the instance
# metadata service (tags in metadata are enabled on the instances kiln launches):
# - a new value `s3://BUCKET/kiln/jobs/JOB_ID` is a job to run: it downloads spec.env (the
#   KILN_* environment), env.sh (the user's env), setup.sh and run.sh (and, when spec.env names
#   KILN_WORKDIR_ARCHIVE, the workdir kiln uploaded, unpacked into KILN_WORKDIR), finds its rank as the
#   index of its private IP in KILN_NODE_IPS, and starts `setup` then `run` in a new session
#   (with KILN_NUM_GPUS_PER_NODE set to the GPUs `nvidia-smi -L` lists, if it lists any). The
#   env's sensitive values are not in the bucket: when spec.env names KILN_ENV_PARAMETER, the
#   agent reads that SSM SecureString parameter (GetParameter, so the role needs
#   ssm:GetParameter on it and kms:Decrypt on its key) into a 0600 file the job's shell sources
#   after env.sh and then removes;
# - while the job runs, and once after it ends, it uploads the new part of the node's log and
#   then status/RANK.json (state, exit code, times, heartbeat) under that prefix. The log goes
#   in parts `logs/node-RANK/OFFSET` (OFFSET: the part's first byte, 16 digits): the open part
#   is uploaded again as it grows until it holds KILN_LOG_PART_BYTES or is KILN_LOG_PART_SECONDS
#   old, then the next part opens. So each heartbeat uploads at most one part's worth of old
#   bytes, however long the log;
# - a removed or changed tag stops the job: SIGTERM to its process group, SIGKILL after
#   KILN_STOP_GRACE seconds;
# - while the job runs it also reads the spot interruption notice, meta-data/spot/instance-action
#   (404 until EC2 means to take the instance back), every KILN_NOTICE_INTERVAL seconds (default
#   1, whatever KILN_AGENT_INTERVAL is; both whole seconds). On the first notice it records it in
#   status/RANK.json (`notice`: the time EC2 gave for the interruption, `notice_action`,
#   `noticed_at`: when the agent saw it) and uploads the status at once, sends the job's process
#   group KILN_PREEMPT_SIGNAL (default TERM; spec.env may name another, and is read again from the
#   bucket then, so that a change kiln made since the job started counts) so that it writes a
#   last checkpoint, and SIGKILL after KILN_STOP_GRACE seconds if it still runs. Jobs start with
#   SIGINT, SIGQUIT and SIGHUP at their defaults where `env --default-signal` is there (coreutils
#   8.31+): a shell started in the background ignores SIGINT and SIGQUIT (and SIGHUP under nohup)
#   and can never trap a signal ignored when it started. Once the process
#   group is gone, the checkpoint directory is synced as when a job ends (every file; after a
#   SIGKILL only those unchanged for KILN_CHECKPOINT_QUIET seconds, as when a job is stopped)
#   and the final status says `"state":"lost","preempted":true`, which kiln reads as a
#   preemption (an exit code the job wrote on the way out is kept).
# - a multi-node job fails fast: a node whose job ends failed or lost (its final status) then
#   writes PREFIX/fail-fast.json ({"rank":R,"state":S}); the other nodes' agents look for it
#   every KILN_PEER_INTERVAL seconds (default 2) while their part runs and stop it (SIGTERM to
#   its process group, SIGKILL after KILN_STOP_GRACE), saying so in the node's log, rather than
#   leave it waiting in a collective for a peer that is gone.
#   Their final status says `"stopped_for":R`: kiln does not take their exit for the failure.
#
# KILN_CHECKPOINT_DIR is a local directory, JOB_DIR/checkpoint (JOB_DIR: the job's directory
# under KILN_AGENT_DIR/jobs), created for every job. When spec.env names KILN_CHECKPOINT_URI
# (s3://BUCKET/PATH, PATH percent-encoded; spec.env of an older kiln: KILN_CHECKPOINT_DIR held
# the URI), the agent
# - restores it before `setup`: every object under PATH/ (ListObjectsV2 page by page, GetObject
#   each), so the job starts from what earlier jobs left there; the job is not started until
#   the listing and every download succeed (an object whose key is no file name under PATH/ is
#   skipped);
# - uploads what the job adds or changes there (PutObject; checkpoint.manifest records the
#   size, mtime and inode of each file as the bucket holds it): while it runs, with each
#   heartbeat in the background, the files unchanged for KILN_CHECKPOINT_QUIET seconds (a file
#   still being written waits); when it ends, every new or changed file, before the final
#   status (the status says `running` until then; a sync that fails 3 times is given up, and
#   the node's log says so); when it is stopped, as while it runs. Files the job deletes stay
#   in the bucket. A file larger than KILN_CHECKPOINT_PART_BYTES (128 MiB) goes in a multipart
#   upload of parts that size.
# Every node restores the whole prefix and uploads its own new or changed files: a file written
# on any rank reaches the bucket (two nodes writing one name: the last upload wins).
set -u
IMDS="${KILN_IMDS:-http://169.254.169.254}"
DIR="${KILN_AGENT_DIR:-/var/lib/kiln}"
INTERVAL="${KILN_AGENT_INTERVAL:-10}"
PART_BYTES="${KILN_LOG_PART_BYTES:-1048576}"
PART_SECONDS="${KILN_LOG_PART_SECONDS:-600}"
KILN_S3_ENDPOINT="${KILN_S3_ENDPOINT:-}"
KILN_SSM_ENDPOINT="${KILN_SSM_ENDPOINT:-$KILN_S3_ENDPOINT}"
QUIET="${KILN_CHECKPOINT_QUIET:-5}"
MAX_KEYS="${KILN_LIST_MAX_KEYS:-1000}"
PART="${KILN_CHECKPOINT_PART_BYTES:-134217728}"
NOTICE="${KILN_NOTICE_INTERVAL:-1}"
PEER="${KILN_PEER_INTERVAL:-2}"
PREEMPT_SIGNAL="${KILN_PREEMPT_SIGNAL:-TERM}"
mkdir -p "$DIR/jobs"
echo $$ >"$DIR/agent.pid"
# What starts a job with the signals a background shell ignores at their defaults (see the top).
DEFAULT_SIGNALS=""
if env --default-signal=INT,QUIT,HUP true 2>/dev/null; then DEFAULT_SIGNALS="env --default-signal=INT,QUIT,HUP"; fi

log() { echo "kiln-agent $(date -u +%Y-%m-%dT%H:%M:%SZ) $*"; }

imds() {
  tok=$(curl -sf -m 5 -X PUT "$IMDS/latest/api/token" -H "X-aws-ec2-metadata-token-ttl-seconds: 300") || return 1
  curl -sf -m 5 -H "X-aws-ec2-metadata-token: $tok" "$IMDS/latest/$1"
}

# The value of a string field of the JSON document on stdin.
field() { sed -n "s/.*\"$1\"[[:space:]]*:[[:space:]]*\"\([^\"]*\)\".*/\1/p" | head -n 1; }

# The instance role's credentials into AK, SK and TK.
creds() {
  role=$(imds meta-data/iam/security-credentials/ | head -n 1) || return 1
  [ -n "$role" ] || return 1
  c=$(imds "meta-data/iam/security-credentials/$role") || return 1
  AK=$(printf '%s\n' "$c" | field AccessKeyId)
  SK=$(printf '%s\n' "$c" | field SecretAccessKey)
  TK=$(printf '%s\n' "$c" | field Token)
  [ -n "$AK" ] && [ -n "$SK" ]
}

url() {
  rest=${1#s3://}
  bucket=${rest%%/*}
  key=${rest#*/}
  if [ -n "$KILN_S3_ENDPOINT" ]; then
    echo "${KILN_S3_ENDPOINT%/}/$bucket/$key"
  else
    echo "https://$bucket.s3.$KILN_REGION.amazonaws.com/$key"
  fi
}

# s3 S3_URI CURL_ARGS...: one signed request.
s3() {
  u=$(url "$1")
  shift
  if [ -n "$TK" ]; then
    curl -sf -m 120 --aws-sigv4 "aws:amz:$KILN_REGION:s3" -u "$AK:$SK" -H "x-amz-security-token: $TK" \
      -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$@" "$u"
  else
    curl -sf -m 120 --aws-sigv4 "aws:amz:$KILN_REGION:s3" -u "$AK:$SK" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$@" "$u"
  fi
}

# ssm_env NAME: the value of the SecureString parameter NAME (base64), decoded, on stdout.
ssm_env() {
  ep="${KILN_SSM_ENDPOINT:-https://ssm.$KILN_REGION.amazonaws.com}"
  set -- -sf -m 60 --aws-sigv4 "aws:amz:$KILN_REGION:ssm" -u "$AK:$SK" -H "X-Amz-Target: AmazonSSM.GetParameter" \
    -H "Content-Type: application/x-amz-json-1.1" --data-binary "{\"Name\":\"$1\",\"WithDecryption\":true}"
  [ -z "$TK" ] || set -- "$@" -H "x-amz-security-token: $TK"
  r=$(curl "$@" "${ep%/}/") || return 1
  # The value is base64: no quote or backslash of its own (a JSON writer may escape '/').
  v=$(printf '%s\n' "$r" | field Value | tr -d '\\')
  [ -n "$v" ] && printf '%s\n' "$v" | base64 -d
}

# urlenc STRING [/]: STRING percent-encoded as S3 wants it in a signed request: the RFC 3986
# unreserved characters kept, and '/' too when a second argument is given (a key's path).
urlenc() {
  # Most keys need nothing: no process for those (the characters spelled out: a range may
  # take in more in some locales).
  case $1 in
  *[!ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~/-]*) ;;
  */*) [ -z "${2:-}" ] || {
    printf %s "$1"
    return
  } ;;
  *)
    printf %s "$1"
    return
    ;;
  esac
  printf '%s' "$1" | od -An -v -tx1 | tr -s ' \n' '\n\n' | while read -r h; do
    case $h in
    '') ;;
    2f) if [ -n "${2:-}" ]; then printf /; else printf %%2F; fi ;;
    2d | 2e | 3[0-9] | 4[1-9a-f] | 5[0-9a] | 5f | 6[1-9a-f] | 7[0-9a] | 7e) printf "\\$(printf %o $((0x$h)))" ;;
    *) printf %%%s "$h" | tr a-f A-F ;;
    esac
  done
}

# The text of XML character data on stdin, unescaped (a key holding another character reference
# stays escaped: its GetObject finds nothing and it is skipped).
xml_text() {
  sed -e 's/&lt;/</g' -e 's/&gt;/>/g' -e 's/&quot;/"/g' -e "s/&apos;/'/g" -e "s/&#39;/'/g" -e 's/&amp;/\&/g'
}

# The keys under the checkpoint prefix into $jd/checkpoint.keys, one a line (ListObjectsV2 page
# by page; the query's parameters in the order SigV4 signs them).
ck_list() {
  : >"$jd/checkpoint.keys" || return 1
  token=""
  while :; do
    q="list-type=2&max-keys=$MAX_KEYS&prefix=$(urlenc "$ck_prefix")"
    [ -z "$token" ] || q="continuation-token=$(urlenc "$token")&$q"
    s3 "s3://$ck_bucket/?$q" -o "$jd/checkpoint.xml" || return 1
    # Every '<' starts an element: one element a line.
    tr '<' '\n' <"$jd/checkpoint.xml" >"$jd/checkpoint.page"
    sed -n 's/^Key>//p' "$jd/checkpoint.page" | xml_text >>"$jd/checkpoint.keys"
    grep -qx 'IsTruncated>true' "$jd/checkpoint.page" || return 0
    token=$(sed -n 's/^NextContinuationToken>//p' "$jd/checkpoint.page" | xml_text)
    [ -n "$token" ] || return 1
  done
}

# The files of the checkpoint directory: "SIZE MTIME INODE PATH", one a line.
ck_scan() {
  find "$ck" -type f ! -name '*.kiln-part' -exec stat -c '%s %Y %i %n' {} + 2>/dev/null
}

# Restores the checkpoint directory from the bucket (see the top).
ck_restore() {
  mkdir -p "$ck" || return 1
  : >"$jd/checkpoint.manifest"
  [ -n "$ck_uri" ] || return 0
  ck_list || {
    log "cannot list $ck_uri (the role needs s3:ListBucket on the bucket)"
    return 1
  }
  n=0
  while IFS= read -r k; do
    rel=${k#"$ck_prefix"}
    dir=""
    case $rel in */) dir=1 rel=${rel%/} ;; esac
    case "/$rel/" in
    // | *//* | */../* | */./*) continue ;; # the prefix itself, or no file name under it
    /kiln/jobs/*) [ -n "$ck_prefix" ] || continue ;; # the bucket's root: not the jobs' files
    esac
    if [ -n "$dir" ]; then
      mkdir -p "$ck/$rel" 2>/dev/null || log "skipping s3://$ck_bucket/$k: a file of the same name is there"
      continue
    fi
    # S3 may hold both `a` and `a/b`: a file system cannot; the first in the listing wins.
    case $rel in */*) mkdir -p "$ck/${rel%/*}" 2>/dev/null ;; esac
    if [ -d "$ck/$rel" ] || ! [ -d "$ck/$(dirname "$rel")" ]; then
      log "skipping s3://$ck_bucket/$k: a file or folder of the same name is there"
      continue
    fi
    code=$(s3 "s3://$ck_bucket/$(urlenc "$k" /)" -w '%{http_code}' -o "$ck/$rel.kiln-part" -m 0 -y 120 -Y 1)
    if [ $? = 0 ] && mv -f "$ck/$rel.kiln-part" "$ck/$rel"; then
      stat -c '%s %Y %i %n' "$ck/$rel" >>"$jd/checkpoint.manifest"
      n=$((n + 1))
    elif [ "$code" = 404 ]; then
      rm -f "$ck/$rel.kiln-part"
      log "skipping s3://$ck_bucket/$k: not found (deleted since the listing, or a key this agent cannot read back)"
    else
      rm -f "$ck/$rel.kiln-part"
      log "cannot download s3://$ck_bucket/$k into the checkpoint directory"
      return 1
    fi
  done <"$jd/checkpoint.keys"
  log "restored $n files from $ck_uri into $ck"
}

# ck_put FILE KEY: uploads FILE to the checkpoint bucket's KEY: one PutObject, or for a file
# larger than PART bytes (one PutObject takes at most 5 GiB) a multipart upload of PART-byte
# parts (S3 takes 10,000: up to 1.25 TiB with the default 128 MiB), each copied to a file first.
ck_put() {
  dest="s3://$ck_bucket/$(urlenc "$2" /)"
  size=$(wc -c <"$1") || return 1
  if [ "$size" -le "$PART" ]; then
    s3 "$dest" -T "$1" -o /dev/null -m 0 -y 120 -Y 1
    return
  fi
  s3 "$dest?uploads=" -d '' -H "Content-Type: application/octet-stream" -o "$jd/upload.xml" || return 1
  id=$(tr '<' '\n' <"$jd/upload.xml" | sed -n 's/^UploadId>//p' | xml_text)
  [ -n "$id" ] || return 1
  q="uploadId=$(urlenc "$id")"
  n=0
  off=0
  printf '<CompleteMultipartUpload>' >"$jd/upload.parts"
  while [ "$off" -lt "$size" ]; do
    n=$((n + 1))
    len=$PART
    [ $((size - off)) -ge "$len" ] || len=$((size - off))
    # A file, not a pipe: from a pipe curl sends chunks, which S3 refuses.
    tail -c +$((off + 1)) "$1" | head -c "$len" >"$jd/upload.part" || break
    s3 "$dest?partNumber=$n&$q" -T "$jd/upload.part" -D "$jd/upload.headers" -o /dev/null -m 0 -y 120 -Y 1 || break
    etag=$(sed -n 's/^[Ee][Tt][Aa][Gg]:[[:space:]]*//p' "$jd/upload.headers" | tr -d '\r')
    [ -n "$etag" ] || break
    printf '<Part><PartNumber>%s</PartNumber><ETag>%s</ETag></Part>' "$n" "$etag" >>"$jd/upload.parts"
    off=$((off + len))
  done
  rm -f "$jd/upload.part"
  printf '</CompleteMultipartUpload>' >>"$jd/upload.parts"
  # CompleteMultipartUpload may answer 200 with an error in its body.
  if [ "$off" -ge "$size" ] && s3 "$dest?$q" --data-binary @"$jd/upload.parts" -H "Content-Type: application/xml" -o "$jd/upload.xml" &&
    ! grep -q '<Error>' "$jd/upload.xml"; then
    return 0
  fi
  s3 "$dest?$q" -X DELETE -o /dev/null
  return 1
}

# ck_sync final|running: uploads the new or changed files of the checkpoint directory (with
# `running`, only those unchanged for QUIET seconds); fails when an upload failed.
ck_sync() {
  [ -n "$ck_uri" ] && [ -d "$ck" ] || return 0
  now=$(date +%s)
  ck_scan >"$jd/checkpoint.scan"
  # Still as uploaded: kept in the manifest; the rest are candidates.
  grep -Fx -f "$jd/checkpoint.manifest" "$jd/checkpoint.scan" >"$jd/checkpoint.manifest.new"
  grep -Fxv -f "$jd/checkpoint.manifest" "$jd/checkpoint.scan" >"$jd/checkpoint.changed"
  failed=0
  while IFS= read -r line; do
    mtime=${line#* }
    f=${mtime#* }
    f=${f#* }
    mtime=${mtime%% *}
    rel=${f#"$ck/"}
    [ -f "$f" ] || continue # gone, or a name with a newline
    [ "$1" = final ] || [ $((now - mtime)) -ge "$QUIET" ] || continue
    if ck_put "$f" "$ck_prefix$rel"; then
      printf '%s\n' "$line" >>"$jd/checkpoint.manifest.new"
    else
      log "cannot upload $f to $ck_uri$rel"
      failed=1
    fi
  done <"$jd/checkpoint.changed"
  mv -f "$jd/checkpoint.manifest.new" "$jd/checkpoint.manifest"
  return $failed
}

# A sync in the background (heartbeats go on meanwhile); its exit status in checkpoint.done.
ck_start() {
  rm -f "$jd/checkpoint.done"
  (
    ck_sync "$1"
    echo $? >"$jd/checkpoint.done"
  ) &
  ck_pid=$!
}

# Whether a background sync runs (one that ended is reaped).
ck_busy() {
  [ -n "$ck_pid" ] || return 1
  [ -f "$jd/checkpoint.done" ] || return 0
  wait "$ck_pid" 2>/dev/null
  ck_pid=""
  return 1
}

# Whether the final sync is done (or given up); starts it, or again, when none runs (of every
# file, or after a job killed on its way out, of the quiet ones: ck_mode).
ck_final() {
  [ -z "$ck_synced" ] || return 0
  ! ck_busy || return 1
  if [ "$ck_tries" -gt 0 ] && [ "$(cat "$jd/checkpoint.done" 2>/dev/null)" = 0 ]; then
    ck_synced=1
  elif [ "$ck_tries" -ge 3 ]; then
    echo "kiln-agent: could not upload every file of the checkpoint directory to $ck_uri (see $DIR/agent.log on the instance)" >>"$jd/node.log"
    ck_synced=1
  else
    ck_tries=$((ck_tries + 1))
    ck_start "$ck_mode"
    return 1
  fi
}

current=""
pid=""
ck=""
ck_uri=""
ck_bucket=""
ck_prefix=""
ck_pid=""
ck_synced=""
ck_tries=0
ck_mode=final
rank=""
jd=""
notice=""
notice_action=""
noticed_at=""
signal=""
kill_at=0
killed=""
stop_for=""
peer_at=0
next_report=0
reported_end=""
part=0
part_at=0
sent=0

stop_job() {
  [ -n "$pid" ] || return 0
  log "stopping job $current (process group $pid)"
  kill -TERM -"$pid" 2>/dev/null
  waited=0
  while kill -0 -"$pid" 2>/dev/null && [ "$waited" -lt "${KILN_STOP_GRACE:-10}" ]; do
    sleep 1
    waited=$((waited + 1))
  done
  kill -KILL -"$pid" 2>/dev/null
  pid=""
  # What it wrote since the last sync (as while it runs: a file it was writing stays out).
  while ck_busy; do sleep 1; done
  if [ -n "$ck_synced" ] || ck_sync running; then
    rm -rf "$ck"
  else
    log "kept $ck: some of its files did not reach $ck_uri"
  fi
}

start_job() {
  jd="$DIR/jobs/$(printf '%s' "$1" | tr -c 'A-Za-z0-9._-' '_')"
  # Private to the agent's user: the job's env (secret.env holds its sensitive values).
  mkdir -p "$jd" && chmod 700 "$jd"
  for f in spec.env env.sh setup.sh run.sh; do
    s3 "$1/$f" -o "$jd/$f" || { log "cannot download $1/$f yet"; return 1; }
  done
  KILN_ENV_PARAMETER=""
  KILN_WORKDIR_ARCHIVE=""
  KILN_CHECKPOINT_URI=""
  KILN_CHECKPOINT_DIR=""
  KILN_PREEMPT_SIGNAL=""
  . "$jd/spec.env"
  # The workdir kiln uploaded from the machine running it: unpacked where the scripts run.
  if [ -n "$KILN_WORKDIR_ARCHIVE" ]; then
    s3 "$1/$KILN_WORKDIR_ARCHIVE" -o "$jd/workdir.tar" || { log "cannot download $1/$KILN_WORKDIR_ARCHIVE yet"; return 1; }
    { rm -rf "$KILN_WORKDIR" && mkdir -p "$KILN_WORKDIR" && tar -xf "$jd/workdir.tar" -C "$KILN_WORKDIR"; } ||
      { log "cannot unpack the job's workdir into $KILN_WORKDIR"; return 1; }
    rm -f "$jd/workdir.tar"
  fi
  rm -f "$jd/secret.env"
  if [ -n "$KILN_ENV_PARAMETER" ]; then
    (umask 077 && ssm_env "$KILN_ENV_PARAMETER" >"$jd/secret.env") || {
      rm -f "$jd/secret.env"
      log "cannot read the job's SSM parameter $KILN_ENV_PARAMETER yet (the role needs ssm:GetParameter on it)"
      return 1
    }
  fi
  ip=$(imds meta-data/local-ipv4) || return 1
  iid=$(imds meta-data/instance-id) || return 1
  rank=""
  i=0
  old_ifs=$IFS
  IFS=,
  for x in $KILN_NODE_IPS; do
    [ "$x" = "$ip" ] && rank=$i
    i=$((i + 1))
  done
  IFS=$old_ifs
  if [ -z "$rank" ]; then
    log "job $1 does not list this instance's IP $ip: not running it"
    return 0
  fi
  export KILN_NODE_RANK="$rank"
  # The checkpoint directory, restored before the job starts.
  ck="$jd/checkpoint"
  # An older kiln's spec.env had the URI in KILN_CHECKPOINT_DIR.
  ck_uri="${KILN_CHECKPOINT_URI:-}"
  case $ck_uri:${KILN_CHECKPOINT_DIR:-} in :s3://*) ck_uri=$KILN_CHECKPOINT_DIR ;; esac
  ck_raw=$ck_uri
  ck_bucket=${ck_raw#s3://}
  ck_bucket=${ck_bucket%%/*}
  ck_prefix=${ck_raw#s3://"$ck_bucket"}
  ck_prefix=${ck_prefix#/}
  case $ck_prefix in '' | */) ;; *) ck_prefix="$ck_prefix/" ;; esac
  ck_pid=""
  ck_synced=""
  ck_tries=0
  ck_mode=final
  notice=""
  notice_action=""
  noticed_at=""
  kill_at=0
  killed=""
  stop_for=""
  peer_at=0
  # The signal a spot interruption notice sends the job: spec.env's, else the agent's.
  signal=${KILN_PREEMPT_SIGNAL:-$PREEMPT_SIGNAL}
  KILN_PREEMPT_SIGNAL=""
  ck_restore || {
    rm -f "$jd/secret.env"
    return 1
  }
  export KILN_CHECKPOINT_URI="$ck_uri"
  started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  reported_end=""
  part=0
  part_at=$(date +%s)
  sent=0
  rm -f "$jd/exit"
  log "starting job $KILN_JOB_ID as node $rank of $KILN_NUM_NODES"
  # Appended to, so that the agent's own lines (a notice) land after the job's, never over them.
  : >"$jd/node.log"
  # KILN_NUM_GPUS_PER_NODE: the GPUs nvidia-smi lists, when it lists some (a pool mixes types).
  # shellcheck disable=SC2086 # DEFAULT_SIGNALS is a command and its argument, or nothing.
  setsid $DEFAULT_SIGNALS sh -c 'set -a; . "$0/spec.env"; KILN_CHECKPOINT_DIR="$0/checkpoint"; set +a
    g=$(nvidia-smi -L 2>/dev/null | grep -c "^GPU ") && [ "$g" -gt 0 ] && KILN_NUM_GPUS_PER_NODE=$g
    set -a; . "$0/env.sh"; [ ! -f "$0/secret.env" ] || . "$0/secret.env"; set +a; rm -f "$0/secret.env"; mkdir -p "$KILN_WORKDIR"; cd "$KILN_WORKDIR" || exit 1
    { [ ! -s "$0/setup.sh" ] || . "$0/setup.sh"; } && sh "$0/run.sh"; echo $? >"$0/exit.tmp"; mv "$0/exit.tmp" "$0/exit"' "$jd" \
    >>"$jd/node.log" 2>&1 </dev/null &
  pid=$!
}

# Uploads what the log gained since the last upload, part by part (see the top).
upload_log() {
  size=$(wc -c <"$jd/node.log" 2>/dev/null) || return 0
  while [ "$size" -gt "$sent" ]; do
    end=$size
    [ $((end - part)) -le "$PART_BYTES" ] || end=$((part + PART_BYTES))
    tail -c +$((part + 1)) "$jd/node.log" | head -c $((end - part)) >"$jd/part"
    s3 "$current/logs/node-$rank/$(printf %016d "$part")" -T "$jd/part" -o /dev/null || { log "cannot upload the log"; return 1; }
    sent=$end
    now=$(date +%s)
    if [ $((sent - part)) -ge "$PART_BYTES" ] || [ $((now - part_at)) -ge "$PART_SECONDS" ]; then
      part=$sent
      part_at=$now
    fi
  done
}

report() {
  next_report=$(($(date +%s) + INTERVAL))
  state=running
  code=null
  finished=null
  if [ -f "$jd/exit" ]; then
    code=$(cat "$jd/exit")
    if [ "$code" = 0 ]; then state=succeeded; else state=failed; fi
    finished="\"$(date -u -r "$jd/exit" +%Y-%m-%dT%H:%M:%SZ)\""
  elif [ -n "$notice$stop_for" ] && [ -z "$killed" ] && kill -0 -"$pid" 2>/dev/null; then
    : # Told to go: running while any process of its group writes its last checkpoint.
  elif [ -n "$notice$stop_for" ] || ! kill -0 "$pid" 2>/dev/null; then
    state=failed
    finished="\"$(date -u +%Y-%m-%dT%H:%M:%SZ)\""
  fi
  if [ "$state" = running ]; then
    ck_busy || ck_start running
  elif ! ck_final; then
    # Ended, but its checkpoint files are still on their way: running until they are there.
    state=running
    code=null
    finished=null
  fi
  # The final status of a job stopped for a notice.
  preempted=false
  if [ -n "$notice" ] && [ "$state" != running ]; then
    state=lost
    preempted=true
  fi
  n=""
  [ -z "$notice" ] || n=$(printf ',"notice":"%s","notice_action":"%s","noticed_at":"%s","preempted":%s' \
    "$notice" "$notice_action" "$noticed_at" "$preempted")
  [ -z "$stop_for" ] || n="$n,\"stopped_for\":$stop_for"
  printf '{"rank":%s,"instance_id":"%s","ip":"%s","state":"%s","exit_code":%s,"started_at":"%s","finished_at":%s,"heartbeat":%s%s}\n' \
    "$rank" "$iid" "$ip" "$state" "$code" "$started" "$finished" "$(date +%s)" "$n" >"$jd/status.json"
  # The status after the log: a final status means the whole log is uploaded.
  upload_log || [ "$state" = running ] || return
  s3 "$current/status/$rank.json" -T "$jd/status.json" -o /dev/null || { log "cannot upload the status"; return; }
  [ "$state" = running ] || reported_end=1
  # The first node to fail tells the others (see the top).
  case $state:$stop_for in
    failed: | lost:)
      [ "${KILN_NUM_NODES:-1}" -gt 1 ] || return 0
      printf '{"rank":%s,"state":"%s"}\n' "$rank" "$state" >"$jd/fail-fast.json"
      s3 "$current/fail-fast.json" -T "$jd/fail-fast.json" -o /dev/null || log "cannot tell the other nodes that this one $state"
      ;;
  esac
}

# Whether another node of the job ended failed or lost (its fail-fast.json); if so stops this
# node's part as for a notice (see the top).
check_peers() {
  [ "${KILN_NUM_NODES:-1}" -gt 1 ] || return 0
  now=$(date +%s)
  [ "$now" -ge "$peer_at" ] || return 0
  peer_at=$((now + PEER))
  r=$(s3 "$current/fail-fast.json" -m 5) || return 0
  peer=$(printf '%s\n' "$r" | sed -n 's/.*"rank":\([0-9]*\).*/\1/p' | head -n 1)
  peer_state=$(printf '%s\n' "$r" | field state | tr -cd 'a-z')
  [ -n "$peer" ] && [ "$peer" != "$rank" ] || return 0
  stop_for=$peer
  log "node $peer of job $current $peer_state: stopping node $rank (process group $pid)"
  echo "kiln-agent: node $peer $peer_state: stopping this node's part of the job (a multi-node job fails fast)" >>"$jd/node.log"
  kill -TERM -"$pid" 2>/dev/null
  kill_at=$((now + ${KILN_STOP_GRACE:-10}))
}

# Reads the spot interruption notice; on the first, records it, signals the job and reports at
# once (see the top).
check_notice() {
  r=$(imds meta-data/spot/instance-action) || return 0
  a=$(printf '%s\n' "$r" | field action)
  [ -n "$a" ] || return 0
  notice=$(printf '%s\n' "$r" | field time | tr -cd 'A-Za-z0-9:.+-')
  notice_action=$(printf '%s' "$a" | tr -cd 'a-z-')
  noticed_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  # The signal as spec.env names it now (kiln rewrites the line when the job's preempt_signal
  # changes); the one it named at the start when it cannot be read.
  s=$(s3 "$current/spec.env" -m 5 | sed -n "s/^KILN_PREEMPT_SIGNAL='\([A-Z0-9]*\)'\$/\1/p" | tail -n 1)
  case $s in TERM | INT | QUIT | HUP | USR1 | USR2) signal=$s ;; esac
  log "spot interruption notice ($notice_action at $notice): SIG$signal to job $current (process group $pid)"
  echo "kiln-agent: spot interruption notice ($notice_action at $notice): SIG$signal sent to the job" >>"$jd/node.log"
  kill -"$signal" -"$pid" 2>/dev/null || log "cannot send SIG$signal to process group $pid"
  kill_at=$(($(date +%s) + ${KILN_STOP_GRACE:-10}))
  report
}

# Waits INTERVAL seconds; meanwhile, while a job runs, reads the interruption notice (and the
# other nodes' fail-fast.json) every NOTICE seconds and, once told to stop, watches for its end
# every 0.2 s and SIGKILLs its process group after its grace. Once the job has ended (its exit
# file, or no process of its group left) it reports at once, which starts the final checkpoint
# sync, and again as soon as that sync is done (or every INTERVAL while it runs, as the
# heartbeat), rather than at the next round.
pause() {
  until=$(($(date +%s) + INTERVAL))
  while :; do
    step=$NOTICE
    if [ -n "$pid" ] && [ -z "$reported_end" ]; then
      if [ -f "$jd/exit" ] || ! kill -0 -"$pid" 2>/dev/null; then
        if ! ck_busy || [ "$(date +%s)" -ge "$next_report" ]; then report; fi
        step=0.2
      elif [ -z "$notice$stop_for" ]; then
        check_notice
        [ -n "$notice" ] || check_peers
      else
        if [ -z "$killed" ] && [ "$(date +%s)" -ge "$kill_at" ]; then
          kill -KILL -"$pid" 2>/dev/null && log "job $current still ran ${KILN_STOP_GRACE:-10} s after it was told to stop: killed"
          killed=1
          ck_mode=running
        fi
        step=0.2
      fi
    fi
    left=$((until - $(date +%s)))
    [ "$left" -gt 0 ] || return 0
    if [ -z "$pid" ] || [ -n "$reported_end" ]; then
      sleep "$left"
    elif [ "$step" = 0.2 ] || [ "$step" -lt "$left" ]; then
      sleep "$step"
    else
      sleep "$left"
    fi
  done
}

while :; do
  if creds && keys=$(imds meta-data/tags/instance); then
    want=""
    if printf '%s\n' "$keys" | grep -qx 'kiln:job'; then
      want=$(imds meta-data/tags/instance/kiln:job) || want="$current"
    fi
    if [ "$want" != "$current" ]; then
      stop_job
      current=""
      rank=""
      if [ -n "$want" ] && start_job "$want"; then current="$want"; fi
    fi
    if [ -n "$current" ] && [ -n "$rank" ] && [ -z "$reported_end" ]; then report; fi
  fi
  pause
done
