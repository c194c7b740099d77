//! The schemas the `local` provider publishes: its configuration block and the portable kinds
//! `bucket`, `cluster`, `job` and `spot_pool` (declared so that using it fails with a clear
//! message rather than an unknown kind). Each kind publishes its own from these bodies; the
//! provider's is assembled from its kinds table.

use kiln_schema::{Attribute, Block, Body, Nesting};
use kiln_value::Type;

pub(crate) fn machine() -> Body {
    Body::new()
        .attr("cpus", Attribute::computed(Type::Number, "CPU count"))
        .attr("memory_gb", Attribute::computed(Type::Number, "Total memory in GiB"))
        .attr("gpus", Attribute::computed(Type::List(Box::new(Type::Any)), "GPUs: {index, name, memory_mib}"))
        .attr("gpu_count", Attribute::computed(Type::Number, "Number of GPUs"))
}

pub(crate) fn config() -> Body {
    Body::new()
        .attr("root", Attribute::optional(Type::String, "Directory for buckets and job files; default `.kiln` in the working directory"))
}

pub(crate) fn bucket() -> Body {
    Body::new()
        .attr("name", Attribute::optional_computed(Type::String, "Directory name; default: the resource name").force_new())
        .attr("path", Attribute::optional_computed(Type::String, "Directory; default: ROOT/buckets/NAME").force_new())
        .attr("uri", Attribute::computed(Type::String, "file:// URI of the directory"))
        .attr("force_destroy", Attribute::optional(Type::Bool, "Allow destroy to delete the bucket while it holds files").default(false))
}

pub(crate) fn cluster() -> Body {
    let nodes = Attribute::optional(Type::Number, "Node slots; each node of a job runs as its own process group").default(1i64);
    kiln_provider::portable::request::with_attributes(Body::new().attr("nodes", nodes), false)
        .attr("cpus_total", Attribute::computed(Type::Number, "CPUs of this machine"))
        .attr("memory_gb", Attribute::computed(Type::Number, "Memory of this machine in GiB"))
        .attr("gpus", Attribute::computed(Type::List(Box::new(Type::Any)), "GPUs given to the cluster: {index, name, memory_mib}"))
        .attr("gpus_per_node", Attribute::computed(Type::Number, "GPUs each node gets"))
        .attr(
            "cpus_per_node",
            Attribute::computed(
                Type::Number,
                "CPUs each node gets: exactly `cpus`, or the nodes' share of the machine with `cpus = \"N+\"`",
            ),
        )
        .attr(
            "cpu_sets",
            Attribute::computed(
                Type::List(Box::new(Type::String)),
                "Each node's CPUs (\"0-3\") with an exact `cpus`; empty when nodes share the machine",
            ),
        )
}

pub(crate) fn job() -> Body {
    let checkpoint = Body::new()
        .attr("bucket", Attribute::required(Type::Any, "The bucket, such as `bucket.checkpoints`"))
        .attr("path", Attribute::optional(Type::String, "Directory inside the bucket, such as \"run-1/\"").default(""));
    Body::new()
        .attr("cluster", Attribute::required(Type::Any, "The cluster to run on, such as `cluster.train`"))
        .attr("setup", Attribute::optional(Type::String, "Script run on every node before `run`").force_new())
        .attr("run", Attribute::required(Type::String, "Script run on every node").force_new())
        .attr("workdir", Attribute::optional(Type::String, "Directory the scripts run in; default: the working directory").force_new())
        .attr("env", Attribute::optional(Type::Map(Box::new(Type::String)), "Extra environment variables").force_new())
        .attr("nodes", Attribute::optional_computed(Type::Number, "Nodes to run on; default: all of the cluster's").force_new())
        .attr("stop_grace", Attribute::optional(Type::Number, "Seconds between SIGTERM and SIGKILL when the job is stopped").default(10i64))
        .attr("job_id", Attribute::computed(Type::String, "Identifier; also the name of the job's directory"))
        .attr("status", Attribute::computed(Type::String, "pending, running, succeeded, failed or lost"))
        .attr("exit_codes", Attribute::computed(Type::List(Box::new(Type::Any)), "Exit code of each node (null while running)"))
        .attr("started_at", Attribute::computed(Type::String, "RFC 3339 time the processes started"))
        .attr("finished_at", Attribute::computed(Type::String, "RFC 3339 time the job finished (null until then)"))
        .attr("restarts", Attribute::computed(Type::Number, "Times the job was started again after being lost"))
        .attr("log_dir", Attribute::computed(Type::String, "Directory holding node-RANK.log files"))
        .attr("pids", Attribute::computed(Type::List(Box::new(Type::Number)), "Process (group) ID of each node"))
        .block(
            "checkpoint",
            Block {
                nesting: Nesting::Single,
                body: checkpoint,
                min_items: 0,
                max_items: Some(1),
                force_new: false,
                description: "Where the job keeps checkpoints (KILN_CHECKPOINT_DIR)",
            },
        )
}

pub(crate) fn spot_pool() -> Body {
    Body::new()
        .attr("accelerators", Attribute::optional(Type::Any, "GPUs per instance"))
        .attr("capacity", Attribute::optional(Type::Number, "Instances"))
        .attr("max_price", Attribute::optional(Type::Number, "Highest hourly price"))
        .attr("on_demand_fallback", Attribute::optional(Type::Bool, "Use on-demand capacity when spot is short"))
}
