//! The `aws` provider: the portable kinds on Amazon Web Services.
//!
//! - `bucket`: an S3 bucket with versioning, an expiry lifecycle rule, default encryption
//!   (SSE-S3), public access blocked by default and tags; `uri` = `s3://NAME`. Destroy refuses a
//!   bucket holding objects unless `force_destroy = true`, and then deletes every version first.
//! - `cluster`: `nodes` EC2 instances of one type, given or resolved from `accelerators`, `cpus`
//!   and `memory` through DescribeInstanceTypes; on-demand or spot; in a default subnet unless
//!   told otherwise, with a security group and key pair kiln creates unless given.
//! - `job`: a training job on a cluster's or pool's instances, run by the kiln agent that the
//!   instances' user data starts; status, heartbeats and logs are objects in the job's bucket
//!   (see [`job`]).
//! - `spot_pool`: an EC2 Fleet of type `maintain` over several instance types × subnets: target
//!   `capacity`, `on_demand_base`, price-capacity-optimized spot allocation by default,
//!   `max_price`, `on_demand_fallback`; changing the capacity is an in-place update.
//!
//! - `aws_vpc`, `aws_subnet`, `aws_security_group`, `aws_key_pair`: the network objects, for
//!   configurations that want them explicit (see [`net`]); clusters and pools take their IDs.
//!
//! Every object carries the tags `kiln:address` and `kiln:token` (the create's idempotency
//! token), cluster instances also `kiln:node` (their rank): `recover` finds what an interrupted create
//! made by these tags, since ClientToken alone is not honoured everywhere. Refresh reads all
//! instances with one DescribeInstances call per page of 1,000, filtered by the `kiln:address`
//! tag key. [`AwsProvider::api_calls`] counts calls by operation.
//!
//! Placement (see [`offerings`]): the instance offers the catalog's `aws` rows in its region, and
//! `kiln catalog refresh aws` reads them from DescribeInstanceTypes and DescribeSpotPriceHistory.
//!
//! Configuration and credentials: see [`settings`]. The provider registers as `aws`
//! ([`AwsFactory`]); the binary wires it in.

// Operations fail with one diagnostic that goes straight into the response; boxing it would
// only add noise.
#![allow(clippy::result_large_err)]

mod bucket;
pub mod calls;
pub(crate) mod cluster;
pub mod error;
pub(crate) mod job;
mod net;
pub mod offerings;
mod schema;
pub mod settings;
mod spot_pool;
mod ssh;
pub use kiln_provider::throttle;
mod util;

use std::collections::BTreeMap;

use kiln_diag::{Diagnostic, Diagnostics};
use kiln_provider::kinds::{KindFactory, KindProvider, Kinds, Mutation};
use kiln_provider::offerings::{CatalogRefresh, OfferingsResponse};
use kiln_provider::{async_trait, ConfigureRequest, Limits};

pub use calls::ApiCalls;
pub use settings::{Clients, Settings};
pub use util::{TAG_ADDRESS, TAG_NODE, TAG_TOKEN};

pub const NAME: &str = "aws";

/// Operations one provider instance runs at once when AWS does not throttle it.
const CONCURRENCY: usize = 16;

/// Builds `aws` provider instances from `provider "aws" { ... }` blocks.
pub struct AwsFactory;

impl KindFactory for AwsFactory {
    type Provider = AwsProvider;
}

/// What every kind's operations see: the clients and what is looked up once per instance.
pub struct Ctx {
    pub clients: Clients,
    pub catalog: tokio::sync::OnceCell<cluster::catalog::Catalog>,
    pub default_image: tokio::sync::OnceCell<String>,
    pub throttle: throttle::Throttle,
    /// The configuration's directory on this machine: a job's `workdir` is relative to it.
    pub working_dir: std::path::PathBuf,
}

/// A configured `aws` provider (one region, one set of credentials).
pub struct AwsProvider {
    ctx: Ctx,
}

impl AwsProvider {
    pub async fn connect(settings: Settings) -> Result<AwsProvider, Diagnostic> {
        let clients = Clients::connect(&settings).await?;
        let throttle = throttle::Throttle::new(CONCURRENCY);
        let ctx = Ctx { clients, catalog: Default::default(), default_image: Default::default(), throttle, working_dir: ".".into() };
        Ok(AwsProvider { ctx })
    }

    /// API calls made so far, by operation.
    pub fn api_calls(&self) -> &ApiCalls {
        &self.ctx.clients.calls
    }

    /// Create, update and delete operations allowed at once now: lower while AWS throttles.
    pub fn concurrency(&self) -> usize {
        self.ctx.throttle.limit()
    }

    /// Runs one create, update or delete within the [`throttle::Throttle`].
    async fn throttled<T>(&self, op: impl std::future::Future<Output = T>) -> T {
        let slot = self.ctx.throttle.acquire().await;
        let before = self.ctx.clients.calls.throttled();
        let out = op.await;
        self.ctx.throttle.done(slot, self.ctx.clients.calls.throttled() > before);
        out
    }

    pub fn region(&self) -> &str {
        &self.ctx.clients.region
    }
}

pub(crate) use cluster::instances::AllInstances;
pub(crate) use kiln_provider::kinds::{Kind, Outcome};
pub(crate) use kiln_schema::KindSchema;

/// The kinds; a read's batch is one DescribeInstances answer shared by every kind that needs it.
static KINDS: Kinds<Ctx, AllInstances> = Kinds {
    provider: NAME,
    config: schema::config,
    kinds: &[
        &bucket::Bucket,
        &cluster::Cluster,
        &spot_pool::SpotPool,
        &job::Job,
        &net::Net(net::Vpc),
        &net::Net(net::Subnet),
        &net::Net(net::SecurityGroup),
        &net::Net(net::KeyPair),
    ],
    data: &[],
};

#[async_trait]
impl KindProvider for AwsProvider {
    type Ctx = Ctx;
    type Batch = AllInstances;
    const KINDS: &'static Kinds<Ctx, AllInstances> = &KINDS;

    async fn configure(req: ConfigureRequest) -> Result<Self, Diagnostics> {
        let mut p = AwsProvider::connect(Settings::from_config(&req.config)?).await?;
        p.ctx.working_dir = req.working_dir.clone();
        Ok(p)
    }

    fn ctx(&self) -> &Ctx {
        &self.ctx
    }

    fn limits(&self) -> Limits {
        Limits { concurrency: Some(CONCURRENCY) }
    }

    fn api_calls(&self) -> BTreeMap<String, u64> {
        self.ctx.clients.calls.by_operation()
    }

    /// Creates, updates and deletes run within the [`throttle::Throttle`].
    async fn mutation<'a, T: Send + 'a>(&'a self, op: Mutation<'a, T>) -> T {
        self.throttled(op).await
    }

    /// The catalog's `aws` rows in this instance's region (see [`offerings`]).
    async fn offerings(&self) -> OfferingsResponse {
        offerings::offerings(&self.ctx)
    }

    /// The region's rows from DescribeInstanceTypes and DescribeSpotPriceHistory.
    async fn refresh_catalog(&self) -> CatalogRefresh {
        offerings::refresh(&self.ctx).await
    }
}
