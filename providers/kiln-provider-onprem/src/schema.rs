//! The schemas the `onprem` provider publishes: its configuration block (the fleet's hosts),
//! the kinds `fleet`, `cluster`, `job` and `bucket`, and the data source `inventory`; each kind
//! publishes its own from these bodies.

use kiln_provider::offerings::OwnedPrice;
use kiln_provider::portable::job::{self, JobSchema};
use kiln_provider::portable::request::{self, Per, RequestDocs};
use kiln_schema::{Attribute, Block, Body, Nesting};
use kiln_value::Type;

fn list(t: Type) -> Type {
    Type::List(Box::new(t))
}

fn map(t: Type) -> Type {
    Type::Map(Box::new(t))
}

fn host() -> Body {
    let body = Body::new()
        .attr("name", Attribute::optional(Type::String, "The host's name in kiln (its block label)"))
        .attr("address", Attribute::required(Type::String, "IP address or DNS name"))
        .attr("port", Attribute::optional(Type::Number, "SSH port").default(22i64))
        .attr("user", Attribute::optional(Type::String, "Login user; default: the provider's `user`, else ssh's default"))
        .attr("identity_file", Attribute::optional(Type::String, "Private key file on the machine running kiln"))
        .attr("proxy_jump", Attribute::optional(Type::String, "Name of another host of this provider to connect through"))
        .attr("labels", Attribute::optional(map(Type::String), "Labels clusters can select on, such as { rack = \"a\" }"))
        .attr(
            "host_key",
            Attribute::optional(
                Type::String,
                "The host's public key (\"ssh-ed25519 AAAA...\") or its fingerprint (\"SHA256:...\"); required to connect",
            ),
        )
        .attr("root", Attribute::optional(Type::String, "This host's directory for kiln's files; default ROOT/hosts/NAME"))
        .attr("allocate", Attribute::optional(Type::Bool, "Whether clusters may use this host (false for bastions)").default(true));
    OwnedPrice::attributes(
        body,
        "This host's price in USD per hour while free, for the placement optimizer; default: the provider's `hourly_price`",
        "This host's price in USD per GPU-hour, added per free GPU; default: the provider's `gpu_hour_price`",
    )
}

pub(crate) fn config() -> Body {
    let body = Body::new()
        .attr(
            "root",
            Attribute::optional(
                Type::String,
                "Directory for kiln's files on every host, relative to the login user's home; default \".kiln\"",
            ),
        )
        .attr("user", Attribute::optional(Type::String, "Default login user of the hosts"))
        .attr("identity_file", Attribute::optional(Type::String, "Default private key file of the hosts"))
        .attr("connect_timeout", Attribute::optional(Type::Number, "Seconds to wait for a host to answer").default(10i64));
    OwnedPrice::attributes(
        body,
        "Price in USD per host-hour of a free host, for the placement optimizer (owned hardware); default 0",
        "Price in USD per GPU-hour of a free host's free GPUs, added to `hourly_price`; default 0",
    )
    .block(
        "host",
        Block {
            nesting: Nesting::List,
            body: host(),
            min_items: 0,
            max_items: None,
            force_new: false,
            description: "One machine of the fleet",
        },
    )
}

pub(crate) fn fleet() -> Body {
    Body::new()
        .attr("names", Attribute::optional(list(Type::String), "Only these hosts; default: all"))
        .attr("labels", Attribute::optional(map(Type::String), "Only hosts with these labels"))
        .attr(
            "hosts",
            Attribute::computed(
                list(Type::Any),
                "Each host: name, address, labels, reachable, error, hostname, cpus, cpu_model, memory_gb, os, kernel, disks, gpus, gpu_count, gpus_free, held_by",
            ),
        )
        .attr("unreachable", Attribute::computed(list(Type::String), "Names of the hosts that did not answer"))
        .attr("gpu_count", Attribute::computed(Type::Number, "GPUs of the reachable hosts"))
        .attr("gpus_free", Attribute::computed(Type::Number, "GPUs no cluster holds, on reachable hosts"))
}

pub(crate) fn cluster() -> Body {
    let docs = RequestDocs {
        cpus: "CPUs per node: exactly \"16\" of its host's (the node runs on them), or at least \"16+\" (the whole host)",
        memory: "Memory a node's host must have in GiB: \"64\" or \"64+\"",
        ..Per::Node.docs()
    };
    let nodes = Attribute::optional(Type::Number, "Hosts to allocate; each node is a different host").default(1i64).force_new();
    request::request_attributes(Body::new().attr("nodes", nodes), docs, true)
        .attr("labels", Attribute::optional(map(Type::String), "Labels a host must have").force_new())
        .attr("hosts", Attribute::optional(list(Type::String), "Hosts it may use; default: any").force_new())
        .attr("cluster_id", Attribute::computed(Type::String, "Identifier; owner of the GPU claims on the hosts"))
        .attr("allocation", Attribute::computed(list(Type::Any), "Each node: host, address, gpus"))
        .attr("node_ips", Attribute::computed(list(Type::String), "Addresses of the allocated hosts, by node rank"))
        .attr("gpus_per_node", Attribute::computed(Type::Number, "GPUs each node gets"))
        .attr(request::CPUS_PER_NODE, Attribute::computed(Type::Number, "CPUs each node gets: exactly `cpus`, or (with \"N+\") its whole host, the smallest host's count"))
        .attr("unreachable", Attribute::computed(list(Type::String), "Allocated hosts that did not answer at the last refresh"))
        .attr(
            "stale_hosts",
            Attribute::computed(
                list(Type::String),
                "Hosts the cluster moved away from while they did not answer, back and still holding its GPUs; the next apply releases them",
            ),
        )
        .attr(
            "created_at",
            Attribute::computed(Type::String, "When the cluster claimed its hosts (RFC 3339); refresh reads it from the claim files for older states too"),
        )
}

pub(crate) fn job() -> Body {
    JobSchema {
        workdir: "Directory on the machine running kiln (relative to the configuration directory), uploaded over SSH to \
                  HOST_DIR/jobs/JOB_ID/workdir on each host, less what its .kilnignore excludes; a path that is not a directory here \
                  names one on the hosts (its meaning before); default: the job's directory",
        job_id: "Identifier; also the name of the job's directory on each host",
        ..JobSchema::default()
    }
    .body()
    .attr("stop_grace", job::stop_grace())
    .attr("exit_codes", job::exit_codes())
    .attr("restarts", job::restarts())
    .attr("node_ips", job::node_ips())
    .attr("master_addr", Attribute::computed(Type::String, "KILN_MASTER_ADDR: the address of rank 0"))
    .attr("master_port", Attribute::computed(Type::Number, "KILN_MASTER_PORT: a port free on rank 0 at start"))
    .attr("placement", Attribute::computed(list(Type::Any), "Each node: rank, host, address, dir (its job directory), pid"))
    .attr("pids", Attribute::computed(list(Type::Any), "Process (group) ID of each node on its host"))
}

pub(crate) fn bucket() -> Body {
    Body::new()
        .attr("host", Attribute::optional_computed(Type::String, "Host holding the directory; default: the first host").force_new())
        .attr("name", Attribute::optional_computed(Type::String, "Directory name; default: the resource name").force_new())
        .attr("path", Attribute::optional_computed(Type::String, "Directory on the host; default: HOST_DIR/buckets/NAME").force_new())
        .attr("shared", Attribute::optional(Type::Bool, "The path is a mount every host sees (NFS, Lustre...)").default(false))
        .attr("uri", Attribute::computed(Type::String, "sftp:// URI of the directory"))
        .attr("force_destroy", Attribute::optional(Type::Bool, "Allow destroy to delete the bucket while it holds files").default(false))
}

#[cfg(test)]
mod tests {
    /// The portable job body plus these extras, with the types and flags states were written with.
    #[test]
    fn the_job_schema_is_portable_and_keeps_its_shape() {
        let extras = "exit_codes: List(Any) computed; master_addr: String computed; master_port: Number computed; node_ips: List(String) computed; pids: List(Any) computed; placement: List(Any) computed; restarts: Number computed; stop_grace: Number optional default=10; checkpoint {} Single 0..1";
        kiln_provider::portable::job::assert_schema(&super::job(), extras);
    }
}
