//! The schemas the `local` provider publishes: its configuration block and the portable kinds
//! `bucket`, `cluster`, `job` and `spot_pool` (declared so that using it fails with a clear
//! message rather than an unknown kind). Each kind publishes its own from these bodies; the
//! provider's is assembled from its kinds table.

use kiln_provider::portable::job::{self, JobSchema};
use kiln_provider::portable::request::{self, Per};
use kiln_schema::{Attribute, Body};
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
    request::request_attributes(Body::new().attr("nodes", nodes), Per::Node.docs(), false)
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
                "Each node's CPUs with an exact `cpus` (\"0-3\": positions among the CPUs kiln may use); empty when nodes share the machine",
            ),
        )
        .attr(CREATED_AT, Attribute::computed(Type::String, "When the cluster was created (RFC 3339); none in a state written before kiln recorded it"))
}

/// The computed creation time of a cluster, for `kiln status`'s uptime.
pub(crate) const CREATED_AT: &str = "created_at";

pub(crate) fn job() -> Body {
    JobSchema { job_id: "Identifier; also the name of the job's directory", ..JobSchema::default() }
        .body()
        .attr("stop_grace", job::stop_grace())
        .attr("exit_codes", job::exit_codes())
        .attr("restarts", job::restarts())
        .attr("log_dir", Attribute::computed(Type::String, "Directory holding node-RANK.log files"))
        .attr("pids", Attribute::computed(Type::List(Box::new(Type::Number)), "Process (group) ID of each node"))
}

pub(crate) fn spot_pool() -> Body {
    request::request_attributes(Body::new(), Per::Instance.docs(), false)
        .attr("capacity", Attribute::optional(Type::Number, "Instances"))
        .attr("max_price", Attribute::optional(Type::Number, "Highest hourly price"))
        .attr("on_demand_fallback", Attribute::optional(Type::Bool, "Use on-demand capacity when spot is short"))
}

#[cfg(test)]
mod tests {
    /// The portable job body plus these extras, with the types and flags states were written with.
    #[test]
    fn the_job_schema_is_portable_and_keeps_its_shape() {
        let extras = "exit_codes: List(Any) computed; log_dir: String computed; pids: List(Number) computed; restarts: Number computed; stop_grace: Number optional default=10; checkpoint {} Single 0..1";
        kiln_provider::portable::job::assert_schema(&super::job(), extras);
    }
}
