//! The schemas the `aws` provider publishes: its configuration block and the kinds `bucket`
//! (an S3 bucket), `cluster` (EC2 instances) and `spot_pool` (an EC2 Fleet); each kind publishes
//! its own from these bodies.

use kiln_provider::portable::request::{Per, RequestDocs, WithRequest};
#[cfg(test)]
use kiln_schema::ProviderSchema;
use kiln_schema::{Attribute, Body};
use kiln_value::Type;

/// The provider's schema, as its kinds table assembles it.
#[cfg(test)]
pub fn schema() -> ProviderSchema {
    <crate::AwsProvider as kiln_provider::kinds::KindProvider>::provider_schema()
}

fn strings() -> Type {
    Type::List(Box::new(Type::String))
}

pub(crate) fn config() -> Body {
    Body::new()
        .attr("region", Attribute::optional(Type::String, "AWS region, such as \"us-east-1\"; default: AWS_REGION or the profile's"))
        .attr(
            "endpoint",
            Attribute::optional(Type::String, "URL of an AWS-compatible endpoint for every service; default: AWS_ENDPOINT_URL"),
        )
        .attr("profile", Attribute::optional(Type::String, "Shared config/credentials profile; default: AWS_PROFILE or `default`"))
        .attr(
            "max_attempts",
            Attribute::optional(Type::Number, "Attempts per API call, retries of throttling and 5xx included (default 5)"),
        )
}

pub(crate) fn bucket() -> Body {
    Body::new()
        .attr(
            "name",
            Attribute::optional_computed(
                Type::String,
                "Bucket name (global across AWS); default: kiln-NAME-XXXXXXXX, from the address and the create",
            )
            .force_new(),
        )
        .attr("versioning", Attribute::optional(Type::Bool, "Keep every version of every object").default(false))
        .attr("expire_days", Attribute::optional(Type::Number, "Delete objects this many days after they were written"))
        .attr("noncurrent_expire_days", Attribute::optional(Type::Number, "With versioning: delete replaced versions after this many days"))
        .attr("encryption", Attribute::optional(Type::String, "Default encryption: \"AES256\" (SSE-S3) or \"aws:kms\"").default("AES256"))
        .attr("block_public_access", Attribute::optional(Type::Bool, "Block every form of public access").default(true))
        .attr("tags", Attribute::optional(Type::Map(Box::new(Type::String)), "Tags, besides kiln's own kiln:address and kiln:token"))
        .attr("force_destroy", Attribute::optional(Type::Bool, "Allow destroy to delete every object (and version) first").default(false))
        .attr("uri", Attribute::computed(Type::String, "s3://NAME"))
        .attr("arn", Attribute::computed(Type::String, "arn:aws:s3:::NAME"))
        .attr("region", Attribute::computed(Type::String, "Region the bucket lives in"))
}

pub(crate) fn cluster() -> Body {
    Body::new()
        .attr("nodes", Attribute::optional(Type::Number, "Instances; changing it launches or terminates the difference").default(1i64))
        .attr(
            "instance_type",
            Attribute::optional_computed(Type::String, "EC2 instance type; default: resolved from accelerators, cpus and memory")
                .force_new(),
        )
        .request(RequestDocs { cpus: "vCPUs per node: exactly \"8\", or at least \"8+\"", ..Per::Node.docs() }, false)
        .attr(
            "spot",
            Attribute::optional(
                Type::Any,
                "true: spot instances; false: on-demand; \"auto\": spot, and on-demand when EC2 has no spot capacity for any candidate type (`market` says which launched)",
            )
            .default(false)
            .force_new(),
        )
        .attr(
            "image",
            Attribute::optional_computed(Type::String, "AMI ID; default: the newest Amazon Linux 2023 (x86_64) at plan time").force_new(),
        )
        .attr("disk_gb", Attribute::optional(Type::Number, "Root volume size in GiB (gp3); default: the image's").force_new())
        .attr(
            "subnet_id",
            Attribute::optional_computed(Type::String, "Subnet; default: a default subnet of the default VPC where the type is offered")
                .force_new(),
        )
        .attr(
            "security_group_ids",
            Attribute::optional_computed(strings(), "Security groups; default: one kiln creates (SSH in, all traffic between nodes)")
                .force_new(),
        )
        .attr("key_name", Attribute::optional_computed(Type::String, "EC2 key pair; default: one kiln creates").force_new())
        .attr(
            "instance_profile",
            Attribute::optional(
                Type::String,
                "IAM instance profile (name or ARN) of the instances; the kiln agent uses its role to read jobs from S3",
            )
            .force_new(),
        )
        .attr(
            "ssh_cidr",
            Attribute::optional_computed(
                Type::String,
                "Where SSH (port 22) may come from, for the security group kiln creates: a CIDR block such as \"203.0.113.7/32\"; default: nowhere (\"\", no SSH ingress). A world-open block (0.0.0.0/0, ::/0) gets a plan warning. Objects made before this default changed keep the value they have",
            )
            .force_new(),
        )
        .attr("tags", Attribute::optional(Type::Map(Box::new(Type::String)), "Tags, besides kiln:address, kiln:token and kiln:node"))
        .attr("zone", Attribute::computed(Type::String, "Availability zone of the subnet"))
        .attr("gpus_per_node", Attribute::computed(Type::Number, "GPUs of each instance, from its instance type"))
        .attr(
            "instance_type_candidates",
            Attribute::optional_computed(
                strings(),
                "The types a create tries, in order, until one has capacity (at most 5); the one launched is `instance_type`. Given with `instance_type`: the types tried after it (placement sets both); default: the candidates for accelerators, cpus and memory, or `instance_type` alone. A cluster keeps the type it runs while that is the first choice or the list is unchanged",
            ),
        )
        .attr("market", Attribute::computed(Type::String, "What the instances run on: \"spot\", \"on-demand\", or \"mixed\" (nodes healed on-demand under spot = \"auto\"; they go back to spot when lost nodes are next replaced, never by stopping a running job)"))
        .attr("instance_ids", Attribute::computed(strings(), "Instance of each node, by rank"))
        .attr("private_ips", Attribute::computed(strings(), "Private IP of each node, by rank"))
        .attr("public_ips", Attribute::computed(strings(), "Public IP of each node, by rank (\"\" when none)"))
        .attr(
            "state",
            Attribute::computed(Type::String, "running, pending, stopped, or degraded (nodes lost, such as to a spot interruption)"),
        )
        .attr("lost", Attribute::computed(Type::List(Box::new(Type::Any)), "Nodes lost since the last apply: {node, instance_id, reason}. The reason is EC2's state reason code (Server.SpotInstanceTermination for a spot interruption), or the spot request's status code (marked-for-termination, marked-for-stop) for a node with an interruption notice: it is replaced at once rather than when EC2 takes it back two minutes later, so a job restarted meanwhile does not start on it"))
        .attr("ssh_private_key", Attribute::computed(Type::String, "Private key of the key pair kiln created (\"\" otherwise)").sensitive())
        .attr(
            "created_at",
            Attribute::computed(Type::String, "When the cluster came up (RFC 3339): its first instance's launch time, read by refresh for older states too"),
        )
}

fn tags() -> Attribute {
    Attribute::optional(Type::Map(Box::new(Type::String)), "Tags, besides kiln:address and kiln:token; changed in place")
}

pub(crate) fn vpc() -> Body {
    Body::new()
        .attr("cidr_block", Attribute::required(Type::String, "IPv4 range, such as \"10.0.0.0/16\"").force_new())
        .attr("tags", tags())
        .attr("id", Attribute::computed(Type::String, "VPC ID"))
        .attr("is_default", Attribute::computed(Type::Bool, "Whether it is the region's default VPC"))
}

pub(crate) fn subnet() -> Body {
    Body::new()
        .attr("vpc_id", Attribute::required(Type::String, "The VPC, such as aws_vpc.main.id").force_new())
        .attr("cidr_block", Attribute::required(Type::String, "IPv4 range inside the VPC's, such as \"10.0.1.0/24\"").force_new())
        .attr(
            "availability_zone",
            Attribute::optional_computed(Type::String, "Zone, such as \"us-east-1a\"; default: AWS chooses").force_new(),
        )
        .attr("map_public_ip_on_launch", Attribute::optional(Type::Bool, "Give instances launched here a public IP").default(false))
        .attr("tags", tags())
        .attr("id", Attribute::computed(Type::String, "Subnet ID"))
}

pub(crate) fn security_group() -> Body {
    Body::new()
        .attr("name", Attribute::optional_computed(Type::String, "Group name; default: kiln-NAME-XXXXXXXX").force_new())
        .attr("description", Attribute::optional(Type::String, "Description").default("Managed by kiln").force_new())
        .attr("vpc_id", Attribute::optional_computed(Type::String, "The VPC; default: the region's default VPC").force_new())
        .attr(
            "ingress",
            Attribute::optional(
                Type::List(Box::new(Type::Any)),
                "Inbound rules {protocol, from_port, to_port, cidr_blocks, self}; protocol \"-1\" (or \"all\") is every protocol; changed in place",
            ),
        )
        .attr("tags", tags())
        .attr("id", Attribute::computed(Type::String, "Security group ID"))
}

pub(crate) fn key_pair() -> Body {
    Body::new()
        .attr("key_name", Attribute::optional_computed(Type::String, "Key name; default: kiln-NAME-XXXXXXXX").force_new())
        .attr(
            "public_key",
            Attribute::optional(Type::String, "OpenSSH public key to import; default: AWS generates an ed25519 key").force_new(),
        )
        .attr("tags", tags())
        .attr("id", Attribute::computed(Type::String, "Key pair ID"))
        .attr("fingerprint", Attribute::computed(Type::String, "Key fingerprint"))
        .attr("private_key", Attribute::computed(Type::String, "The generated private key (\"\" when public_key was given)").sensitive())
}

/// The portable `job` ([`kiln_provider::portable::job`]) with aws's descriptions and extras.
pub(crate) fn job() -> Body {
    use kiln_provider::portable::job::{self as portable, CheckpointBlock, JobSchema};
    let checkpoint = CheckpointBlock {
        required: true,
        force_new: true,
        description: "The bucket for checkpoints (KILN_CHECKPOINT_DIR) and for the job's own files",
        bucket: "The S3 bucket, such as `bucket.checkpoints`: also holds the job's scripts, status and logs",
        path: "Prefix inside the bucket, such as \"run-1/\"",
    };
    JobSchema {
        cluster: "The cluster or spot pool to run on, such as `cluster.train`",
        workdir: "Directory on the machine running kiln (relative to the configuration directory), uploaded through the job's bucket \
                  to /var/lib/kiln/work/JOB_ID on each instance, less what its .kilnignore excludes; a path that is not a directory \
                  here names one on the instances (its meaning before); default: /var/lib/kiln/work/JOB_ID",
        nodes: "Nodes to run on; default: all of the cluster's instances",
        job_id: "Identifier; also the name of the job's prefix in the bucket",
        started_at: "RFC 3339 time the first node started",
        checkpoint,
        ..JobSchema::default()
    }
    .body()
    .attr("stop_grace", portable::stop_grace())
    .attr(
        crate::job::PREEMPT_SIGNAL,
        Attribute::optional(
            Type::String,
            "Signal the kiln agent sends the job's processes when EC2 gives a node's instance a spot interruption notice, so \
             that the job writes a last checkpoint (SIGKILL follows after `stop_grace`): SIGTERM (the default), SIGINT, SIGQUIT, \
             SIGHUP, SIGUSR1 or SIGUSR2. Changing it is an in-place update that reaches running jobs too",
        ),
    )
    .attr(
        "heartbeat_timeout",
        Attribute::optional(Type::Number, "Seconds without a heartbeat after which a running node counts as lost").default(120i64),
    )
    .attr("uri", Attribute::computed(Type::String, "s3://BUCKET/kiln/jobs/JOB_ID: the job's scripts, status/ and logs/"))
    .attr("instance_ids", Attribute::computed(strings(), "Instance of each node, by rank"))
    .attr("node_ips", portable::node_ips())
    .attr("exit_codes", portable::exit_codes())
    .attr("restarts", portable::restarts())
    .attr(
        "lost_reason",
        Attribute::computed(
            Type::String,
            "Why a `lost` job is lost: \"preemption\" (spot took a node back: an interruption notice, or \
             Server.SpotInstanceTermination) or \"host_failure\" (a node's instance gone otherwise, or its heartbeat stopped); \
             null otherwise",
        ),
    )
    .attr(
        crate::job::NOTICE_AT,
        Attribute::computed(
            Type::String,
            "RFC 3339 time a kiln agent first saw a spot interruption notice for one of the job's nodes (the job runs on \
             meanwhile, writing its last checkpoint, and is `lost` to preemption once it stops); null until then",
        ),
    )
}

pub(crate) fn spot_pool() -> Body {
    let number = || Type::Number;
    Body::new()
        .attr("capacity", Attribute::required(number(), "Instances the pool keeps running; changing it is an in-place update"))
        .attr("on_demand_base", Attribute::optional(number(), "How many of them are on-demand").default(0i64))
        .attr(
            "on_demand_fallback",
            Attribute::optional(Type::Bool, "Fill with on-demand instances when spot capacity is short").default(false),
        )
        .attr(
            "spot",
            Attribute::optional(
                Type::Any,
                "true (the default: spot past on_demand_base), false (every instance on-demand: on_demand_base = capacity) or \"auto\" \
                 (spot, filled with on-demand when short: on_demand_fallback)",
            ),
        )
        .attr(
            "instance_types",
            Attribute::optional_computed(
                strings(),
                "Instance types to choose from; default: the candidates for accelerators, cpus and memory",
            )
            .force_new(),
        )
        .request(RequestDocs { cpus: "vCPUs per instance: exactly \"8\", or at least \"8+\"", ..Per::Instance.docs() }, false)
        .attr(
            "allocation_strategy",
            Attribute::optional(Type::String, "Spot allocation: price-capacity-optimized, capacity-optimized, lowest-price, ...")
                .default("price-capacity-optimized")
                .force_new(),
        )
        .attr("max_price", Attribute::optional(number(), "Highest spot price per instance-hour, in USD").force_new())
        .attr(
            "image",
            Attribute::optional_computed(Type::String, "AMI ID; default: the newest Amazon Linux 2023 (x86_64) at plan time").force_new(),
        )
        .attr("disk_gb", Attribute::optional(number(), "Root volume size in GiB (gp3); default: the image's").force_new())
        .attr(
            "subnet_ids",
            Attribute::optional_computed(strings(), "Subnets; default: the default subnets of every zone offering the first type")
                .force_new(),
        )
        .attr("security_group_ids", Attribute::optional_computed(strings(), "Security groups; default: one kiln creates").force_new())
        .attr("key_name", Attribute::optional_computed(Type::String, "EC2 key pair; default: one kiln creates").force_new())
        .attr(
            "instance_profile",
            Attribute::optional(
                Type::String,
                "IAM instance profile (name or ARN) of the instances; the kiln agent uses its role to read jobs from S3",
            )
            .force_new(),
        )
        .attr(
            "ssh_cidr",
            Attribute::optional_computed(
                Type::String,
                "Where SSH (port 22) may come from, for the security group kiln creates: a CIDR block such as \"203.0.113.7/32\"; default: nowhere (\"\", no SSH ingress). A world-open block (0.0.0.0/0, ::/0) gets a plan warning. Objects made before this default changed keep the value they have",
            )
            .force_new(),
        )
        .attr(
            "tags",
            Attribute::optional(Type::Map(Box::new(Type::String)), "Tags for the fleet, its template and its instances").force_new(),
        )
        .attr("fleet_id", Attribute::computed(Type::String, "EC2 Fleet ID"))
        .attr("launch_template_id", Attribute::computed(Type::String, "Launch template the fleet launches from"))
        .attr("token", Attribute::computed(Type::String, "Token of the create; the fleet's instances carry it as kiln:token"))
        .attr(
            "on_demand_target",
            Attribute::computed(number(), "The fleet's on-demand target: on_demand_base, raised by on_demand_fallback"),
        )
        .attr("instance_ids", Attribute::computed(strings(), "Running instances of the fleet"))
        .attr("gpus_per_node", Attribute::computed(number(), "GPUs of each instance: the fewest among `instance_types`"))
        .attr("spot_instances", Attribute::computed(number(), "How many of them are spot"))
        .attr("on_demand_instances", Attribute::computed(number(), "How many of them are on-demand"))
        .attr("state", Attribute::computed(Type::String, "active (at capacity) or filling"))
        .attr("ssh_private_key", Attribute::computed(Type::String, "Private key of the key pair kiln created (\"\" otherwise)").sensitive())
        .attr(
            "created_at",
            Attribute::computed(Type::String, "When the pool was created (RFC 3339): its fleet's creation time, read by refresh for older states too"),
        )
}
