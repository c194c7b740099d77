//! The schemas the `slurm` provider publishes: its configuration block (where Slurm's commands
//! run) and the kinds `cluster` (a partition) and `job` (an sbatch job), each published by its kind.

use kiln_provider::offerings::OwnedPrice;
use kiln_provider::portable::job::{CheckpointBlock, JobSchema};
use kiln_provider::portable::request::{RequestDocs, WithRequest};
use kiln_schema::{Attribute, Block, Body, Nesting};
use kiln_value::Type;

fn list(t: Type) -> Type {
    Type::List(Box::new(t))
}

pub(crate) fn config() -> Body {
    let login = Body::new()
        .attr("host", Attribute::required(Type::String, "The login node's address or DNS name"))
        .attr("port", Attribute::optional(Type::Number, "SSH port").default(22i64))
        .attr("user", Attribute::optional(Type::String, "Login user; default: ssh's default"))
        .attr("identity_file", Attribute::optional(Type::String, "Private key file on the machine running kiln"))
        .attr(
            "host_key",
            Attribute::optional(
                Type::String,
                "The login node's public key (\"ssh-ed25519 AAAA...\") or its fingerprint (\"SHA256:...\"); without it, ~/.ssh/known_hosts must hold it. Never accepted unseen",
            ),
        )
        .attr("connect_timeout", Attribute::optional(Type::Number, "Seconds to wait for the SSH connection").default(10i64));
    let body = Body::new().attr(
        "root",
        Attribute::optional(
            Type::String,
            "Directory for job scripts and output files, on a file system the compute nodes share; default `.kiln/slurm` \
                 (in the working directory, or the login user's home over SSH)",
        ),
    );
    OwnedPrice::attributes(
        body,
        "Price in USD per node-hour of an idle node, for the placement optimizer (owned hardware); default 0",
        "Price in USD per GPU-hour of an idle node's GPUs, added to `hourly_price`; default 0",
    )
    .block(
        "login",
        Block {
            nesting: Nesting::Single,
            body: login,
            min_items: 0,
            max_items: Some(1),
            force_new: false,
            description: "Run Slurm's commands on this login node over SSH; without it they run on this machine",
        },
    )
}

pub(crate) fn cluster() -> Body {
    Body::new()
        .attr("partition", Attribute::optional_computed(Type::String, "Partition jobs go to; default: the cluster's default partition"))
        .attr("reservation", Attribute::optional(Type::String, "Reservation jobs run in (sbatch --reservation)"))
        .attr("account", Attribute::optional(Type::String, "Account jobs are charged to (sbatch --account)"))
        .attr("qos", Attribute::optional(Type::String, "Quality of service of jobs (sbatch --qos)"))
        .attr("nodes", Attribute::optional(Type::Number, "Nodes a job gets unless it says otherwise").default(1i64))
        .request(
            RequestDocs {
                accelerators: "GPUs per node, `NAME[:COUNT]` such as \"A100:8\" (a name of the accelerator table, or a GRES type of the partition's nodes as written), or a list of alternatives",
                cpus: "CPUs per node: exactly \"8\" (a job's node gets 8: sbatch --cpus-per-task), or at least \"8+\"",
                memory: "Memory a node must have in GiB: \"64\" or \"64+\"",
            },
            false,
        )
        .attr("state", Attribute::computed(Type::String, "The partition's state: up, down, drain or inactive"))
        .attr("node_names", Attribute::computed(list(Type::String), "The partition's nodes"))
        .attr(
            "node_states",
            Attribute::computed(Type::Map(Box::new(Type::String)), "Each node's state (idle, mixed, allocated, down, ...)"),
        )
        .attr("total_nodes", Attribute::computed(Type::Number, "Nodes in the partition"))
        .attr("total_cpus", Attribute::computed(Type::Number, "CPUs in the partition"))
        .attr("total_gpus", Attribute::computed(Type::Number, "GPUs (GRES `gpu`) in the partition"))
        .attr("gres", Attribute::computed(list(Type::String), "The generic resources of the partition's nodes, as Slurm lists them"))
        .attr("max_time", Attribute::computed(Type::String, "The partition's time limit (UNLIMITED, or D-HH:MM:SS)"))
        .attr("gpus_per_node", Attribute::computed(Type::Number, "GPUs each node of a job gets (from `accelerators`)"))
        .attr("gpu_type", Attribute::computed(Type::String, "The GRES type `accelerators` names, as Slurm spells it (null: any)"))
        .attr(
            "cpus_per_node",
            Attribute::computed(Type::Number, "CPUs each node of a job gets: exactly `cpus`, or (\"N+\") the fewest a fitting node has; null without `cpus`"),
        )
        .attr(
            "created_at",
            Attribute::computed(Type::String, "When kiln took the partition as this cluster (RFC 3339; Slurm records no creation time); none in a state written before kiln recorded it"),
        )
}

pub(crate) fn job() -> Body {
    JobSchema {
        cluster: "The partition to run in, such as `cluster.debug`",
        setup: "Script run once on every node before `run`",
        run: "Script every task runs (through srun)",
        workdir: "Directory the scripts run in, on the machine running kiln (relative to the configuration directory); through a \
                  login node it is uploaded to the job's directory (job_dir/workdir), less what its .kilnignore excludes, \
                  and a path that is not a directory here names one on the login node's side (its meaning before); default: the \
                  working directory (or the login user's home over SSH)",
        nodes: "Nodes (sbatch --nodes); default: the cluster's `nodes`",
        job_id: "Slurm's job ID (also KILN_JOB_ID)",
        started_at: "RFC 3339 time the job started (null while pending)",
        checkpoint: CheckpointBlock {
            bucket: "A bucket with a `path` every node can reach, such as `bucket.checkpoints`",
            ..CheckpointBlock::default()
        },
    }
    .body()
    .attr("tasks", Attribute::optional_computed(Type::Number, "Tasks in all (sbatch --ntasks); default: one per node").force_new())
    .attr(
        "gpus_per_node",
        Attribute::optional_computed(Type::Number, "GPUs per node (sbatch --gpus-per-node); default: the cluster's").force_new(),
    )
    .attr("cpus_per_task", Attribute::optional(Type::Number, "CPUs per task (sbatch --cpus-per-task)").force_new())
    .attr("memory", Attribute::optional(Type::String, "Memory per node, such as \"16G\" (sbatch --mem)").force_new())
    .attr("time_limit", Attribute::optional(Type::String, "Time limit, such as \"2:00:00\" or \"1-00:00:00\" (sbatch --time)").force_new())
    .attr("requeue", Attribute::optional(Type::Bool, "Requeue the job when it is preempted or its node fails").default(false).force_new())
    .attr("sbatch_args", Attribute::optional(list(Type::String), "More sbatch options, such as [\"--constraint=ib\"]").force_new())
    .attr("job_name", Attribute::computed(Type::String, "The job's name in Slurm: kiln-NAME-TOKEN"))
    .attr("slurm_state", Attribute::computed(Type::String, "The job's state in Slurm (PENDING, RUNNING, COMPLETED, CANCELLED, ...)"))
    .attr(
        "lost_reason",
        Attribute::computed(
            Type::String,
            "Why the job is lost: preemption (PREEMPTED) or host_failure (NODE_FAIL, BOOT_FAIL, REVOKED); null otherwise",
        ),
    )
    .attr("reason", Attribute::computed(Type::String, "Why Slurm holds the job pending (null when none)"))
    .attr("exit_code", Attribute::computed(Type::Number, "The batch script's exit code (null until the job ends)"))
    .attr("node_list", Attribute::computed(Type::String, "Nodes the job runs on, as a Slurm host list"))
    .attr("restarts", Attribute::computed(Type::Number, "Times Slurm requeued the job"))
    .attr("job_dir", Attribute::computed(Type::String, "Directory holding the job's scripts and output"))
    .attr("output", Attribute::computed(Type::String, "The job's output file (stdout and stderr of every task)"))
}

#[cfg(test)]
mod tests {
    /// The portable job body plus these extras, with the types and flags states were written with.
    #[test]
    fn the_job_schema_is_portable_and_keeps_its_shape() {
        let extras = "cpus_per_task: Number optional force_new; exit_code: Number computed; gpus_per_node: Number optional+computed force_new; job_dir: String computed; job_name: String computed; lost_reason: String computed; memory: String optional force_new; node_list: String computed; output: String computed; reason: String computed; requeue: Bool optional force_new default=false; restarts: Number computed; sbatch_args: List(String) optional force_new; slurm_state: String computed; tasks: Number optional+computed force_new; time_limit: String optional force_new; checkpoint {} Single 0..1";
        kiln_provider::portable::job::assert_schema(&super::job(), extras);
    }
}
