//! `job`: a batch job. Create writes the job's scripts into `ROOT/jobs/NAME-TOKEN/` and submits
//! the batch script with `sbatch` (job name `kiln-NAME-TOKEN`, output `output.log` there).
//! Read observes every job of a refresh with one `squeue` call, and, for jobs that finished,
//! one `sacct` call (the job completion log, `sacct -c`, when accounting is off). A job Slurm
//! no longer knows at all, unfinished, is `lost`, and a lost job plans a replacement. Delete is
//! `scancel`, waiting until the job's processes are gone, then removes the job's directory.
//! Recover finds an interrupted submission by the job's directory or its name in `squeue`.

mod spec;

use std::collections::{BTreeMap, BTreeSet};

use kiln_diag::{Diagnostic, Diagnostics};
use kiln_provider::portable::job::{self, JobStatus};
use kiln_provider::portable::{secret_env, workdir};
use kiln_provider::{
    async_trait, ApplyResponse, CreateRequest, DeleteRequest, ImportRequest, LogSeek, LogsRequest, LogsResponse, PlanRequest, PlanResponse,
    ReadItem, ReadResult, RecoverRequest, UpdateRequest,
};
use kiln_value::{Map, Value};

use self::spec::JobSpec;
use crate::parse::{self, SacctRow, SqueueRow};
use crate::shell::write_file;
use crate::util::{attrs, error, num, object_id, opt_str, read_error, set, str_attr, u64_attr};
use crate::{Ctx, Kind, KindSchema, Outcome};

pub(crate) struct Job;

/// Most bytes one `logs` call returns.
const LOG_CHUNK: u64 = 1 << 20;

/// Seconds delete waits for a cancelled job's processes to end.
const CANCEL_WAIT: u64 = 120;

fn known_spec(address: &str, v: &Value) -> Result<JobSpec, Diagnostic> {
    JobSpec::parse(address, v)?
        .ok_or_else(|| error("E-SLURM-UNKNOWN", address, format!("{address}: the job's configuration is still unknown")))
}

/// Writes the job's files and submits it; prints sbatch's answer. Args: DIR, then sbatch's.
/// The directory and its files are private to their owner (0700, 0600): `batch.sh` exports the
/// job's `env`, sensitive values included, which the job needs; sbatch and the job keep the
/// login's umask.
const SUBMIT: &str = r#"set -e
dir=$1; shift
__kiln_umask=$(umask); umask 077
mkdir -p "$dir"
chmod 700 "$dir"
cd "$dir"
__FILES__
umask "$__kiln_umask"
out=$(sbatch "$@") || { rc=$?; cd /; rm -rf "$dir"; exit $rc; }
id=${out%%;*}
printf '%s\n' "$id" > "$dir/slurm_job_id"
printf '%s\n' "$out"
"#;

/// The jobs' directories that exist, then `squeue` of the jobs. Args: FORMAT IDS... -- DIRS...
const OBSERVE: &str = r#"fmt=$1; shift
ids=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do ids+=("$1"); shift; done
shift
for d in "$@"; do [ -d "$d" ] && printf '@@dir %s\n' "$d"; done
echo '@@squeue'
IFS=,
out=$(squeue -h --states=all -j "${ids[*]}" -O "$fmt" 2>&1); rc=$?
if [ $rc -ne 0 ]; then
  case "$out" in *"Invalid job id"*) out="" ;; *) printf '%s\n' "$out" >&2; exit $rc ;; esac
fi
printf '%s\n' "$out"
"#;

/// `sacct` of finished jobs; the job completion log (`sacct -c`) when accounting is off.
/// Args: FIELDS IDS...
const ACCOUNTING: &str = r#"fields=$1; shift
IFS=,
err=$(mktemp)
out=$(sacct -X -n --parsable2 -j "$*" -o "$fields" 2>"$err"); rc=$?
if [ $rc -ne 0 ] || grep -qi "accounting storage is disabled" "$err"; then
  rm -f "$err"
  echo '@@source jobcomp'
  sacct -c -n --parsable2 -j "$*" -o "$fields"
  exit 0
fi
rm -f "$err"
echo '@@source accounting'
printf '%s\n' "$out"
"#;

/// Cancels a job unless it has ended, waits until it has, removes its directory.
/// Args: ID DIR WAIT_SECONDS
const CANCEL: &str = r#"id=$1 dir=$2 wait=$3
state() { squeue -h --states=all -j "$id" -o %T 2>/dev/null | head -n1; }
active() {
  case "$(state)" in
    PENDING|RUNNING|COMPLETING|CONFIGURING|SUSPENDED|STOPPED|REQUEUED|REQUEUE_HOLD|REQUEUE_FED|RESIZING|SIGNALING|STAGE_OUT|SPECIAL_EXIT|RESV_DEL_HOLD) return 0 ;;
    *) return 1 ;;
  esac
}
if active; then
  msg=$(scancel "$id" 2>&1) || { active && { echo "scancel $id: $msg" >&2; exit 1; }; }
fi
for _ in $(seq 1 $((wait * 5))); do active || break; sleep 0.2; done
if active; then echo "job $id is still $(state) ${wait}s after scancel" >&2; exit 3; fi
case "$dir" in */jobs/*) rm -rf "$dir" ;; esac
"#;

/// Where the output written since a time starts in a job's output file, from its time index
/// `FILE.idx` (`none` without one). Args: FILE EPOCH AWK
const SINCE: &str = r#"f=$1
size=$(stat -c %s "$f" 2>/dev/null || echo 0)
if [ -f "$f.idx" ]; then awk -v t="$2" "$3" "$f.idx"; elif [ "$size" = 0 ]; then echo 0; else echo none; fi
"#;

/// What a job's output file holds from an offset. Args: FILE OFFSET COUNT ID
const LOGS: &str = r#"f=$1 off=$2 n=$3 id=$4
st=$(squeue -h --states=all -j "$id" -o %T 2>/dev/null | head -n1)
size=$(stat -c %s "$f" 2>/dev/null || echo -1)
printf '%s\n%s\n' "${st:-GONE}" "$size"
if [ "$size" -gt "$off" ]; then tail -c +$((off + 1)) "$f" | head -c "$n"; fi
"#;

/// The job an interrupted create submitted, if any: by the ID file SUBMIT writes, else (a kill
/// between sbatch's answer and that file) by the job's name, which holds the create's token: in
/// squeue, then in accounting or the job completion log for a job squeue has already forgotten
/// (names compared here: the job completion log may not filter by name).
/// A squeue that fails is an error, never "no job": the submission is not forgotten while Slurm
/// cannot be asked. Args: DIR NAME
const FIND: &str = r#"dir=$1 name=$2
if [ -s "$dir/slurm_job_id" ]; then cat "$dir/slurm_job_id"; exit 0; fi
out=$(squeue -h --states=all -n "$name" -o %i 2>&1) || { printf 'squeue: %s\n' "$out" >&2; exit 1; }
id=$(printf '%s\n' "$out" | grep -E '^[0-9_]+$' | head -n1)
if [ -z "$id" ]; then
  id=$(sacct -X -n --parsable2 -S now-30days --name="$name" -o JobID,JobName 2>/dev/null | awk -F'|' -v n="$name" '$2 == n && $1 ~ /^[0-9_]+$/ {print $1; exit}')
fi
if [ -z "$id" ]; then
  id=$(sacct -c -n --parsable2 -S now-30days --name="$name" -o JobID,JobName 2>/dev/null | awk -F'|' -v n="$name" '$2 == n && $1 ~ /^[0-9_]+$/ {print $1; exit}')
fi
if [ -n "$id" ]; then mkdir -p "$dir"; printf '%s\n' "$id" > "$dir/slurm_job_id"; echo "$id"; exit 0; fi
case "$dir" in */jobs/*) rm -rf "$dir" ;; esac
"#;

/// A job Slurm knows, by ID: its record, its batch script, and kiln's run.sh when kiln made it.
const SHOW: &str = r#"id=$1
rec=$(scontrol show job -o "$id") || exit $?
printf '%s\n' "$rec"
echo '@@script'
out=$(printf '%s\n' "$rec" | tr ' ' '\n' | sed -n 's/^StdOut=//p' | head -n1)
d=$(dirname "$out")
if [ -f "$d/run.sh" ] && [ -f "$d/slurm_job_id" ]; then cat "$d/run.sh"; else scontrol write batch_script "$id" - 2>/dev/null; fi
"#;

/// What Slurm says of one job.
#[derive(Debug, Clone, Default, PartialEq)]
struct Seen {
    /// Whether its directory exists.
    dir: bool,
    queue: Option<SqueueRow>,
    acct: Option<SacctRow>,
}

/// `state` with the computed attributes from what was seen; `None` when the job is gone (its
/// directory removed and Slurm no longer runs it).
fn observed(state: &Value, seen: &Seen) -> Option<Value> {
    let mut m = attrs(state);
    let prior_status = str_attr(state, "status").unwrap_or_default().to_string();
    let slurm_state = match (&seen.queue, &seen.acct) {
        (Some(q), Some(a)) if parse::is_terminal(&q.state) && parse::is_terminal(&a.state) => Some(a.state.clone()),
        (Some(q), _) => Some(q.state.clone()),
        (None, Some(a)) => Some(a.state.clone()),
        (None, None) => None,
    };
    let Some(slurm_state) = slurm_state else {
        if !seen.dir {
            return None;
        }
        // Slurm forgot the job (purged, or its controller lost its state): a finished job keeps
        // what was last seen, an unfinished one is lost.
        if !JobStatus::parse(&prior_status).is_some_and(JobStatus::is_terminal) {
            m.insert("status".into(), Value::from(JobStatus::Lost));
            m.insert("reason".into(), Value::from("Slurm has no record of the job"));
        }
        return Some(Value::Map(m));
    };
    let terminal = parse::is_terminal(&slurm_state);
    if terminal && !seen.dir {
        return None;
    }
    let q = seen.queue.as_ref();
    let a = seen.acct.as_ref();
    let start = q.and_then(|q| q.start.clone()).or_else(|| a.and_then(|a| a.start.clone()));
    let end = if terminal { q.and_then(|q| q.end.clone()).or_else(|| a.and_then(|a| a.end.clone())) } else { None };
    let node_list = q.and_then(|q| q.node_list.clone()).or_else(|| a.and_then(|a| a.node_list.clone()));
    let status = parse::status_of(&slurm_state);
    let started = if status == JobStatus::Pending { None } else { start.as_deref().and_then(parse::time) };
    m.insert("status".into(), Value::from(status));
    m.insert("slurm_state".into(), Value::from(slurm_state.as_str()));
    m.insert("lost_reason".into(), lost_reason(status, &slurm_state));
    m.insert("reason".into(), opt_str(q.and_then(|q| q.reason.as_deref()).filter(|_| !terminal || status != JobStatus::Succeeded)));
    let exit_code = a.and_then(|a| a.exit_code).map(Value::from).or_else(|| set(state, "exit_code").cloned().filter(|_| terminal));
    m.insert("exit_code".into(), exit_code.filter(|_| terminal).unwrap_or(Value::Null));
    m.insert("node_list".into(), opt_str(node_list.as_deref()));
    m.insert(
        "started_at".into(),
        started
            .map_or_else(|| set(state, "started_at").cloned().filter(|_| status != JobStatus::Pending).unwrap_or(Value::Null), Value::from),
    );
    m.insert("finished_at".into(), opt_str(end.as_deref().and_then(parse::time).as_deref()));
    // Slurm's own requeues, or the count kiln started it with (`kiln watch` replaced a lost or
    // failed job: one more than that job's): whichever is more.
    let restarts = q.map_or(0, |q| q.restarts).max(u64_attr(state, "restarts").unwrap_or(0));
    m.insert("restarts".into(), num(restarts));
    Some(Value::Map(m))
}

/// Why a lost job is lost, in `kiln watch`'s categories: Slurm preempted it, or its node failed.
fn lost_reason(status: JobStatus, slurm_state: &str) -> Value {
    use kiln_provider::portable::recovery::Category;
    match (status, slurm_state) {
        (JobStatus::Lost, "PREEMPTED") => Value::from(Category::Preemption.as_str()),
        (JobStatus::Lost, _) => Value::from(Category::HostFailure.as_str()),
        _ => Value::Null,
    }
}

/// Observes many jobs: one `squeue` call (with the directory check), and one `sacct` call
/// for the jobs that ended without a known exit code. Errors apply to the whole batch.
async fn observe(ctx: &Ctx, address: &str, states: &[&Value]) -> Result<Vec<Seen>, Diagnostic> {
    let ids: Vec<String> = states.iter().map(|s| str_attr(s, "job_id").unwrap_or_default().to_string()).collect();
    let dirs: Vec<String> = states.iter().map(|s| str_attr(s, "job_dir").unwrap_or_default().to_string()).collect();
    let wanted: Vec<&str> = ids.iter().map(String::as_str).filter(|i| !i.is_empty()).collect();
    let mut seen: Vec<Seen> = states.iter().map(|_| Seen::default()).collect();
    if wanted.is_empty() {
        return Ok(seen);
    }
    let mut args: Vec<&str> = vec![parse::SQUEUE_FORMAT];
    args.extend(wanted.iter().copied());
    args.push("--");
    args.extend(dirs.iter().map(String::as_str).filter(|d| !d.is_empty()));
    let out = ctx.run(address, "squeue", "reading the jobs' states (squeue)", OBSERVE, &args).await?.text();
    let (head, queue) = out.split_once("@@squeue\n").unwrap_or((&out, ""));
    let present: BTreeSet<&str> = head.lines().filter_map(|l| l.strip_prefix("@@dir ")).collect();
    let rows: BTreeMap<String, SqueueRow> = parse::squeue_rows(queue).into_iter().map(|r| (r.job_id.clone(), r)).collect();
    for (i, s) in seen.iter_mut().enumerate() {
        s.dir = present.contains(dirs[i].as_str());
        s.queue = rows.get(&ids[i]).cloned();
    }
    // Ended (or forgotten) jobs whose exit code is not known yet.
    let need: Vec<&str> = seen
        .iter()
        .zip(states)
        .zip(&ids)
        .filter(|((s, st), id)| {
            let known = st.get("exit_code").is_some_and(|c| !c.is_null())
                && s.queue.as_ref().is_none_or(|q| Some(q.state.as_str()) == str_attr(st, "slurm_state"));
            !id.is_empty() && s.queue.as_ref().is_none_or(|q| parse::is_terminal(&q.state)) && !known
        })
        .map(|(_, id)| id.as_str())
        .collect();
    if !need.is_empty() {
        let mut args = vec![parse::SACCT_FIELDS];
        args.extend(need.iter().copied());
        // Accounting is a bonus: a failure leaves the states squeue gave.
        if let Ok(out) = ctx.run_raw(address, "sacct", ACCOUNTING, &args).await {
            let rows: BTreeMap<String, SacctRow> = parse::sacct_rows(&out.text()).into_iter().map(|r| (r.job_id.clone(), r)).collect();
            for (i, s) in seen.iter_mut().enumerate() {
                s.acct = rows.get(&ids[i]).cloned();
            }
        }
    }
    Ok(seen)
}

async fn observe_one(ctx: &Ctx, address: &str, state: &Value) -> Result<Option<Value>, Diagnostic> {
    let seen = observe(ctx, address, &[state]).await?;
    Ok(seen.first().and_then(|s| observed(state, s)))
}

/// The job's directory and name for a create with `token`.
async fn place(ctx: &Ctx, address: &str, token: &str) -> Result<(String, String), Diagnostic> {
    let id = object_id(address, "job", token);
    let root = ctx.root().await.map_err(|e| ctx.unreachable(address, &e))?;
    Ok((format!("{root}/jobs/{id}"), format!("kiln-{id}")))
}

async fn create(ctx: &Ctx, req: &CreateRequest<'_>) -> Result<Value, Diagnostic> {
    let spec = known_spec(req.address, req.planned)?;
    let secrets = secret_env::values(req.planned).map_err(|e| error("E-SLURM-JOB-SECRET", req.address, format!("{}: {e}", req.address)))?;
    let tar = workdir::upload(&ctx.working_dir, req.planned, "E-SLURM-JOB-WORKDIR", req.address)?;
    let (dir, name) = place(ctx, req.address, req.token).await?;
    // An uploaded workdir is `workdir` in the job's directory on the shared file system; else
    // `workdir` names a directory where sbatch runs (this machine, or the login node's side).
    let workdir = match spec.workdir.as_deref() {
        _ if tar.is_some() => Ok(format!("{dir}/workdir")),
        Some(p) => ctx.absolute(p).await,
        None => ctx.runner.base_dir().await,
    };
    let workdir = workdir.map_err(|e| ctx.unreachable(req.address, &e))?;
    let checkpoint = match &spec.checkpoint_dir {
        Some(c) => ctx.absolute(c).await.map_err(|e| ctx.unreachable(req.address, &e))?,
        None => format!("{dir}/checkpoints"),
    };
    let output = format!("{dir}/output.log");
    let mut files = write_file(&format!("{dir}/batch.sh"), spec.batch_script(req.address, &dir, &checkpoint).as_bytes());
    files += &write_file(&format!("{dir}/run.sh"), spec.run.as_bytes());
    if !spec.setup.trim().is_empty() {
        files += &write_file(&format!("{dir}/setup.sh"), spec.setup.as_bytes());
    }
    if !secrets.is_empty() {
        // Under SUBMIT's umask 077: mode 0600 in the job's 0700 directory.
        files += &write_file(&format!("{dir}/{}", secret_env::FILE), secret_env::exports(&secrets).as_bytes());
    }
    if tar.is_some() {
        // The archive follows the script on its stdin (streamed from the one copy, never
        // encoded into it), received into the job's directory and checked whole first.
        let w = kiln_remote::shell::quote(&format!("{dir}/workdir"));
        files += &format!(
            "rm -rf {w} && mkdir {w} && {} && tar -xf workdir.tar -C {w} || {{ rm -f workdir.tar; echo \"cannot unpack the job's workdir (tar)\" >&2; exit 4; }}\nrm -f workdir.tar\n",
            kiln_remote::shell::receive("workdir.tar")
        );
    }
    let script = SUBMIT.replace("__FILES__", &files);
    let mut args: Vec<String> = vec![dir.clone()];
    args.extend(spec.sbatch_args(&name, &output, &workdir));
    args.push(format!("{dir}/batch.sh"));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = match &tar {
        Some(tar) => ctx.run_with_input(req.address, "sbatch", "submitting the job (sbatch)", &script, &args, tar).await?,
        None => ctx.run(req.address, "sbatch", "submitting the job (sbatch)", &script, &args).await?,
    };
    let job_id = parse::sbatch_job_id(&out.text()).ok_or_else(|| {
        error("E-SLURM-SUBMIT", req.address, format!("{}: sbatch printed no job ID: {}", req.address, out.complaint()))
            .hint(format!("look at {dir}/batch.sh and run sbatch by hand"))
    })?;
    let mut m = attrs(req.planned);
    for (k, v) in [
        ("job_id", Value::from(job_id.as_str())),
        ("job_name", Value::from(name.as_str())),
        ("job_dir", Value::from(dir.as_str())),
        ("output", Value::from(output.as_str())),
        ("status", Value::from(JobStatus::Pending)),
        ("slurm_state", Value::from("PENDING")),
        ("lost_reason", Value::Null),
        ("reason", Value::Null),
        ("exit_code", Value::Null),
        ("node_list", Value::Null),
        ("started_at", Value::Null),
        ("finished_at", Value::Null),
        ("restarts", num(job::restarts_of(req.planned))),
    ] {
        m.insert(k.to_string(), v);
    }
    let state = secret_env::seal(Value::Map(m));
    // The submission stands even if this first look fails; the next refresh looks again.
    Ok(observe_one(ctx, req.address, &state).await.ok().flatten().unwrap_or(state))
}

/// The job's configuration is all force-new; an update only records a new value of its
/// `cluster` object that changes nothing the job asked Slurm for.
fn update(req: &UpdateRequest<'_>) -> Result<Value, Diagnostic> {
    known_spec(req.address, req.planned)?;
    Ok(secret_env::seal(req.planned.clone()))
}

async fn delete(ctx: &Ctx, req: &DeleteRequest<'_>) -> Result<(), Diagnostic> {
    let Some(id) = str_attr(req.prior, "job_id") else { return Ok(()) };
    let dir = str_attr(req.prior, "job_dir").unwrap_or_default();
    ctx.run(req.address, "scancel", &format!("cancelling job {id} (scancel)"), CANCEL, &[id, dir, &CANCEL_WAIT.to_string()]).await?;
    Ok(())
}

/// A lost job asks to be replaced; so does a change of what it takes from its cluster or
/// checkpoint objects. Otherwise the prior `cluster` value is kept: the cluster's node states
/// move all the time and are not a change to the job.
fn plan(ctx: &Ctx, req: &PlanRequest<'_>) -> Result<PlanResponse, Diagnostic> {
    let spec = JobSpec::parse(req.address, req.config)?;
    let mut planned = attrs(req.proposed);
    let mut requires_replace = Vec::new();
    let mut diagnostics = Diagnostics::new();
    if !ctx.runner.is_remote() {
        // Slurm on this machine runs the scripts in the workdir itself (as `local` does): its
        // nodes see this machine's files, so nothing is uploaded or digested.
        if req.prior.is_none() || planned.get(workdir::DIGEST_ATTR).is_some_and(Value::is_unknown) {
            planned.insert(workdir::DIGEST_ATTR.into(), Value::Null);
        }
    } else {
        // Over SSH: a local workdir is uploaded to the shared file system through the login node.
        let (replace, withheld) = workdir::plan_job_digest(&ctx.working_dir, req.config, req.prior, &mut planned)
            .map_err(|e| workdir::error("E-SLURM-JOB-WORKDIR", req.address, &e))?;
        requires_replace.extend(replace);
        diagnostics.extend(withheld);
    }
    secret_env::plan(req.prior, &mut planned);
    let unknown_or = |n: Option<u64>| n.map_or(Value::Unknown, num);
    planned.insert("nodes".into(), unknown_or(spec.as_ref().map(|s| s.nodes)));
    planned.insert("tasks".into(), unknown_or(spec.as_ref().map(|s| s.tasks)));
    planned.insert("gpus_per_node".into(), unknown_or(spec.as_ref().map(|s| s.gpus_per_node)));
    if req.prior.is_none() {
        planned.insert("restarts".into(), job::restarts_after(req.replacing));
    }
    if let Some(prior) = req.prior {
        // A job written before `lost_reason` existed has none (absent is null: no change).
        planned.insert("lost_reason".into(), prior.get("lost_reason").cloned().unwrap_or(Value::Null));
        requires_replace.extend(job::replace_if_lost(prior, &mut planned));
        match (JobSpec::parse(req.address, prior).ok().flatten(), &spec) {
            (Some(old), Some(new)) => {
                let replaced = old.replaced_by(new);
                if !replaced.contains(&"cluster".to_string()) {
                    if let Some(c) = prior.get("cluster") {
                        planned.insert("cluster".into(), c.clone());
                    }
                }
                requires_replace.extend(replaced);
            }
            _ => requires_replace.extend(["cluster".to_string(), "checkpoint".to_string()]),
        }
    }
    Ok(PlanResponse { planned: Value::Map(planned), requires_replace, diagnostics })
}

async fn recover(ctx: &Ctx, req: &RecoverRequest<'_>) -> Result<Option<Value>, Diagnostic> {
    let (dir, name) = place(ctx, req.address, req.token).await?;
    let out = ctx.run(req.address, "squeue", "looking for an interrupted submission (squeue)", FIND, &[&dir, &name]).await?;
    let Some(id) = out.text().lines().map(str::trim).find(|l| !l.is_empty()).map(str::to_string) else { return Ok(None) };
    let mut m = attrs(req.planned);
    for (k, v) in [
        ("job_id", Value::from(id.as_str())),
        ("job_name", Value::from(name.as_str())),
        ("job_dir", Value::from(dir.as_str())),
        ("output", Value::from(format!("{dir}/output.log"))),
        ("status", Value::from(JobStatus::Pending)),
        ("slurm_state", Value::from("PENDING")),
        ("lost_reason", Value::Null),
        ("restarts", num(job::restarts_of(req.planned))),
    ] {
        m.insert(k.to_string(), v);
    }
    for k in ["reason", "exit_code", "node_list", "started_at", "finished_at"] {
        m.entry(k.to_string()).or_insert(Value::Null);
    }
    observe_one(ctx, req.address, &secret_env::seal(Value::Map(m))).await
}

async fn import(ctx: &Ctx, req: &ImportRequest<'_>) -> Result<Value, Diagnostic> {
    if req.id.is_empty() || !req.id.chars().all(|c| c.is_ascii_digit() || c == '_') {
        return Err(error("E-SLURM-IMPORT", req.address, format!("{}: `{}` is not a Slurm job ID", req.address, req.id))
            .hint("import a job by the number sbatch and squeue show, such as 1234"));
    }
    let out = ctx.run(req.address, "scontrol", &format!("reading job {} (scontrol show job)", req.id), SHOW, &[req.id]).await?.text();
    let (rec, script) = out.split_once("@@script\n").unwrap_or((&out, ""));
    let r = parse::scontrol_records(rec).into_iter().next().unwrap_or_default();
    let get = |k: &str| r.get(k).filter(|v| !parse::nothing(v)).cloned();
    let output = get("StdOut").unwrap_or_default();
    let dir = output.rsplit_once('/').map(|(d, _)| d.to_string()).unwrap_or_default();
    let count = |k: &str| get(k).and_then(|n| n.parse::<u64>().ok()).map_or(Value::Null, num);
    let cluster = Value::Map(
        [
            ("partition", opt_str(get("Partition").as_deref())),
            ("account", opt_str(get("Account").as_deref())),
            ("qos", opt_str(get("QOS").as_deref())),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect::<Map>(),
    );
    let state: Map = [
        ("cluster", cluster),
        ("run", Value::from(script)),
        ("nodes", count("NumNodes")),
        ("tasks", count("NumTasks")),
        ("requeue", Value::from(get("Requeue").as_deref() == Some("1"))),
        ("job_id", Value::from(req.id)),
        ("job_name", opt_str(get("JobName").as_deref())),
        ("job_dir", Value::from(dir)),
        ("output", Value::from(output)),
        ("status", Value::from(JobStatus::Pending)),
        ("restarts", count("Restarts")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let state = Value::Map(state);
    Ok(observe_one(ctx, req.address, &state).await?.unwrap_or(state))
}

async fn logs(ctx: &Ctx, req: &LogsRequest<'_>) -> Result<LogsResponse, Diagnostic> {
    if req.node != 0 {
        return Err(error(
            "E-SLURM-LOGS",
            req.address,
            format!(
                "{}: a Slurm job writes one output file for all its nodes and tasks; there is no separate log of node {}",
                req.address, req.node
            ),
        )
        .hint(format!("run `kiln logs {}` (node 0) to read the job's output file", req.address)));
    }
    let (Some(file), Some(id)) = (str_attr(req.state, "output"), str_attr(req.state, "job_id")) else {
        return Err(error("E-SLURM-LOGS", req.address, format!("{}: the job has no output file in state", req.address))
            .hint("run `kiln apply` to submit it"));
    };
    if let Some(LogSeek::Since(t)) = req.seek {
        let out = ctx
            .run(
                req.address,
                "logs",
                "reading the output file's time index",
                SINCE,
                &[file, &t.to_string(), kiln_provider::logs::AWK_OFFSET_SINCE],
            )
            .await?;
        let at = String::from_utf8_lossy(&out.stdout).trim().parse::<u64>().map_err(|_| {
            error(
                "E-LOGS-SINCE",
                req.address,
                format!("{}: the job's output file has no time index (a kiln without time indexes submitted the job), so --since cannot tell when its output was written", req.address),
            )
            .hint("use --tail N instead, or replace the job (`kiln apply --replace ADDRESS`) to index its new output")
        })?;
        return Ok(LogsResponse { data: Vec::new(), next_offset: at, finished: false, all_nodes: true, diagnostics: Diagnostics::new() });
    }
    let most = if req.seek.is_some() { 0 } else { LOG_CHUNK };
    let out = ctx
        .run(req.address, "logs", "reading the job's output file", LOGS, &[file, &req.offset.to_string(), &most.to_string(), id])
        .await?;
    let mut parts = out.stdout.splitn(3, |b| *b == b'\n');
    let state = String::from_utf8_lossy(parts.next().unwrap_or_default()).trim().to_string();
    let size: i64 = String::from_utf8_lossy(parts.next().unwrap_or_default()).trim().parse().unwrap_or(-1);
    let data = parts.next().unwrap_or_default().to_vec();
    let ended = state == "GONE" || parse::is_terminal(&state);
    if req.seek == Some(LogSeek::End) {
        let next_offset = u64::try_from(size).unwrap_or(0);
        return Ok(LogsResponse { data: Vec::new(), next_offset, finished: ended, all_nodes: true, diagnostics: Diagnostics::new() });
    }
    let next_offset = req.offset + data.len() as u64;
    Ok(LogsResponse { data, next_offset, finished: ended && next_offset as i64 >= size, all_nodes: true, diagnostics: Diagnostics::new() })
}

#[async_trait]
impl Kind<Ctx, ()> for Job {
    fn name(&self) -> &'static str {
        "job"
    }

    fn schema(&self) -> KindSchema {
        KindSchema::new("A batch job submitted with sbatch; its tasks run the script with srun", crate::schema::job())
    }

    fn validate(&self, config: &Value) -> Diagnostics {
        let mut d: Diagnostics = JobSpec::parse("", config).err().map(Diagnostics::from).unwrap_or_default();
        d.extend(secret_env::validate(config));
        d.extend(kiln_provider::portable::job::validate(config));
        d
    }

    async fn plan(&self, ctx: &Ctx, req: &PlanRequest<'_>) -> Outcome<PlanResponse> {
        let mut r = plan(ctx, req)?;
        if ctx.runner.is_remote() {
            r.diagnostics.extend(workdir::not_here_warning(&ctx.working_dir, req.config, "W-SLURM-JOB-WORKDIR", "login node's side"));
        }
        r.diagnostics.extend(spec::checkpoint_warning(req.address, req.config, ctx.runner.is_remote()));
        Ok(r)
    }

    async fn create(&self, ctx: &Ctx, req: &CreateRequest<'_>) -> Outcome<ApplyResponse> {
        Ok(ApplyResponse::ok(create(ctx, req).await?))
    }

    async fn update(&self, _ctx: &Ctx, req: &UpdateRequest<'_>) -> Outcome<ApplyResponse> {
        Ok(ApplyResponse::ok(update(req)?))
    }

    async fn delete(&self, ctx: &Ctx, req: &DeleteRequest<'_>) -> Outcome<Diagnostics> {
        delete(ctx, req).await?;
        Ok(Diagnostics::new())
    }

    async fn read(&self, ctx: &Ctx, items: &[&ReadItem<'_>], _batch: &()) -> Outcome<Vec<ReadResult>> {
        let first = items.first().map_or("job", |i| i.address);
        let states: Vec<&Value> = items.iter().map(|i| i.state).collect();
        match observe(ctx, first, &states).await {
            Ok(seen) => Ok(items
                .iter()
                .zip(seen)
                .map(|(item, s)| match str_attr(item.state, "job_id") {
                    None => ReadResult::gone(),
                    Some(_) => observed(item.state, &s).map_or_else(ReadResult::gone, ReadResult::found),
                })
                .collect()),
            Err(d) => Ok(items.iter().map(|i| read_error(d.clone().address(i.address))).collect()),
        }
    }

    async fn recover(&self, ctx: &Ctx, req: &RecoverRequest<'_>) -> Outcome<ReadResult> {
        Ok(recover(ctx, req).await?.map_or_else(ReadResult::gone, ReadResult::found))
    }

    async fn import(&self, ctx: &Ctx, req: &ImportRequest<'_>) -> Outcome<ReadResult> {
        Ok(ReadResult::found(import(ctx, req).await?))
    }

    async fn shell(&self, ctx: &Ctx, req: &kiln_provider::ShellRequest<'_>) -> Outcome<kiln_provider::ShellAccess> {
        Ok(crate::access::shell(ctx, req).await?)
    }

    async fn logs(&self, ctx: &Ctx, req: &LogsRequest<'_>) -> Outcome<LogsResponse> {
        Ok(logs(ctx, req).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `kiln watch`'s category of a lost Slurm job: PREEMPTED is a preemption, a node lost
    /// otherwise a host failure.
    #[test]
    fn a_lost_job_says_why_in_kiln_watchs_categories() {
        use kiln_provider::portable::recovery::{failure, Category};
        let job = |state: &str| {
            let status = parse::status_of(state);
            Value::Map([("status".to_string(), Value::from(status)), ("lost_reason".to_string(), lost_reason(status, state))].into())
        };
        assert_eq!(failure(&job("PREEMPTED")).map(|f| f.category), Some(Category::Preemption));
        assert_eq!(failure(&job("NODE_FAIL")).map(|f| f.category), Some(Category::HostFailure));
        assert_eq!(failure(&job("FAILED")).map(|f| f.category), Some(Category::Error));
        assert_eq!(lost_reason(JobStatus::Running, "RUNNING"), Value::Null);
    }

    fn row(id: &str, state: &str) -> SqueueRow {
        SqueueRow {
            job_id: id.into(),
            state: state.into(),
            reason: None,
            restarts: 0,
            start: Some("2026-11-25T05:34:41".into()),
            end: Some("2026-11-25T05:35:41".into()),
            node_list: Some("vm".into()),
            nodes: 1,
            name: "kiln-j-1".into(),
        }
    }

    fn acct(id: &str, state: &str, code: i64) -> SacctRow {
        SacctRow {
            job_id: id.into(),
            name: "kiln-j-1".into(),
            state: state.into(),
            exit_code: Some(code),
            start: Some("2026-11-25T05:34:41".into()),
            end: Some("2026-11-25T05:35:41".into()),
            node_list: Some("vm".into()),
        }
    }

    fn prior(status: &str) -> Value {
        Value::from_json(
            &serde_json::json!({ "job_id": "7", "job_dir": "/r/jobs/j-1", "status": status, "exit_code": null, "restarts": 0 }),
        )
    }

    fn get<'a>(v: &'a Value, k: &str) -> &'a Value {
        v.get(k).unwrap_or(&Value::Null)
    }

    #[test]
    fn running_job() {
        let v = observed(&prior("pending"), &Seen { dir: true, queue: Some(row("7", "RUNNING")), acct: None }).unwrap();
        assert_eq!(get(&v, "status"), &Value::from("running"));
        assert_eq!(get(&v, "finished_at"), &Value::Null);
        assert!(get(&v, "started_at").as_str().is_some_and(|s| s.ends_with('Z')));
    }

    #[test]
    fn finished_job_takes_its_exit_code_from_accounting() {
        let v =
            observed(&prior("running"), &Seen { dir: true, queue: Some(row("7", "FAILED")), acct: Some(acct("7", "FAILED", 3)) }).unwrap();
        assert_eq!(get(&v, "status"), &Value::from("failed"));
        assert_eq!(get(&v, "exit_code"), &Value::from(3i64));
        assert!(get(&v, "finished_at").as_str().is_some());
        let v = observed(&prior("running"), &Seen { dir: true, queue: None, acct: Some(acct("7", "COMPLETED", 0)) }).unwrap();
        assert_eq!(get(&v, "status"), &Value::from("succeeded"));
    }

    /// Runs FIND for `DIR/jobs/j-1` with fake `squeue` and `sacct` scripts first on the PATH.
    fn find(squeue: &str, sacct: &str, id_file: bool) -> (std::process::Output, bool) {
        let tmp = tempfile::tempdir().unwrap();
        let bin = tmp.path().join("bin");
        let dir = tmp.path().join("jobs/j-1");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        if id_file {
            std::fs::write(dir.join("slurm_job_id"), "99\n").unwrap();
        }
        for (name, body) in [("squeue", squeue), ("sacct", sacct)] {
            let path = bin.join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::process::Command::new("chmod").arg("+x").arg(&path).status().unwrap();
        }
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
        let out = std::process::Command::new("bash")
            .args(["-c", FIND, "find", &dir.display().to_string(), "kiln-j-1"])
            .env("PATH", path)
            .output()
            .unwrap();
        (out, dir.exists())
    }

    fn id_of(out: &std::process::Output) -> String {
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Issue 10, defect 2 (Slurm): a create killed after sbatch answered but before the job ID
    /// was recorded is found by the job's name, in squeue or, once squeue has forgotten it, in
    /// accounting; a squeue that cannot reach the controller is an error, and the directory stays.
    #[test]
    fn an_unrecorded_submission_is_found_by_name_and_never_forgotten_on_error() {
        let (out, _) = find("exit 9", "exit 9", true);
        assert_eq!(id_of(&out), "99", "the ID file comes first");
        let (out, _) = find("[ \"$4\" = kiln-j-1 ] && echo 17", "exit 1", false);
        assert_eq!(id_of(&out), "17", "found in squeue by name");
        let (out, kept) = find("exit 0", "echo '41|kiln-other'; echo '42|kiln-j-1'", false);
        assert_eq!((id_of(&out).as_str(), kept), ("42", true), "found in accounting once squeue forgot it");
        let (out, kept) = find("echo 'slurm_load_jobs error: Unable to contact slurm controller' >&2; exit 1", "exit 1", false);
        assert!(!out.status.success(), "a failing squeue is an error");
        assert!(String::from_utf8_lossy(&out.stderr).contains("Unable to contact"), "{out:?}");
        assert!(kept, "the job's directory stays while Slurm cannot be asked");
        let (out, kept) = find("exit 0", "exit 1", false);
        assert!(out.status.success() && id_of(&out).is_empty() && !kept, "nothing submitted: the directory is cleared");
    }

    #[test]
    fn forgotten_jobs() {
        let v = observed(&prior("running"), &Seen { dir: true, queue: None, acct: None }).unwrap();
        assert_eq!(get(&v, "status"), &Value::from(JobStatus::Lost));
        let v = observed(&prior("succeeded"), &Seen { dir: true, queue: None, acct: None }).unwrap();
        assert_eq!(get(&v, "status"), &Value::from("succeeded"));
        assert_eq!(observed(&prior("succeeded"), &Seen { dir: false, queue: None, acct: None }), None);
        assert_eq!(observed(&prior("running"), &Seen { dir: false, queue: Some(row("7", "CANCELLED")), acct: None }), None);
        let still = observed(&prior("running"), &Seen { dir: false, queue: Some(row("7", "RUNNING")), acct: None });
        assert!(still.is_some(), "a running job whose directory was removed still exists");
    }

    /// Issue 10 (defect 11): the job's directory, whose batch script exports the sensitive
    /// `env`, is private (0700, files 0600); sbatch runs with the login's umask.
    #[test]
    fn the_submitted_files_are_private_to_their_owner() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let bin = tmp.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let sbatch = bin.join("sbatch");
        std::fs::write(&sbatch, format!("#!/bin/sh\numask > '{}'\necho 123\n", tmp.path().join("sbatch-umask").display())).unwrap();
        std::fs::set_permissions(&sbatch, std::fs::Permissions::from_mode(0o755)).unwrap();
        let dir = tmp.path().join("jobs/j-1");
        let files = crate::shell::write_file(&format!("{}/batch.sh", dir.display()), b"export TOKEN='hunter2-s3cr3t'\n");
        let script = format!("umask 022\n{}", SUBMIT.replace("__FILES__", &files));
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
        let out = std::process::Command::new("bash")
            .args(["-c", &script, "submit", &dir.display().to_string(), &format!("{}/batch.sh", dir.display())])
            .env("PATH", path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("batch.sh")), 0o600);
        assert_eq!(std::fs::read_to_string(tmp.path().join("sbatch-umask")).unwrap().trim(), "0022", "sbatch keeps the login's umask");
    }
}
