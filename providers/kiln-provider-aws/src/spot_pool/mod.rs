//! `spot_pool`: an EC2 Fleet of type `maintain` that keeps `capacity` instances running across
//! several instance types × subnets: spot by default, `on_demand_base` of them on-demand, spot
//! capacity allocated `price-capacity-optimized` unless told otherwise, never above `max_price`
//! per instance-hour when set. The instance types are given (`instance_types`) or the candidates
//! of the resource requests (see the cluster's catalog rule); the subnets are given or the
//! default subnets of every zone offering the first type.
//!
//! Create makes a security group and key pair unless given, a launch template (image, network,
//! and kiln's tags for every instance the fleet launches), then the fleet. Changing `capacity`
//! or `on_demand_base` is an in-place ModifyFleet. With `on_demand_fallback = true`, a refresh
//! that finds fewer instances than `capacity` makes the plan raise the fleet's on-demand target
//! (`on_demand_target`) by the shortfall, so on-demand capacity fills what spot cannot; it stays
//! raised until `on_demand_base` or `capacity` is changed.
//!
//! Read: one DescribeFleets call per 100 pools and one DescribeInstances call per 1,000 kiln
//! instances. The fleet's instances are those tagged with its create's token (`token`).

mod fleet;

use kiln_diag::{Diagnostic, Diagnostics};
use kiln_provider::{
    async_trait, ApplyResponse, CreateRequest, DeleteRequest, ImportRequest, PlanRequest, PlanResponse, ReadItem, ReadResult,
    RecoverRequest, UpdateRequest,
};
use kiln_value::{Map, Value};

use crate::cluster::instances::{self, Node};
use crate::cluster::spec::{Problem, Spec as Common};
use crate::cluster::{make_network, network, view};
use crate::error::AwsError;
use crate::util::{
    attrs, bool_attr, error, is_unknown, made_up_name, num, set, str_attr, str_list, strings, u64_attr, TAG_ADDRESS, TAG_TOKEN,
};
use crate::{AllInstances, Ctx, Kind, KindSchema, Outcome};

pub(crate) struct SpotPool;

pub(crate) const STRATEGIES: [&str; 5] =
    ["price-capacity-optimized", "capacity-optimized", "capacity-optimized-prioritized", "lowest-price", "diversified"];

/// Computed attributes taken from prior state when a plan request lacks them.
const COMPUTED: [&str; 14] = [
    "instance_types",
    "subnet_ids",
    "image",
    "security_group_ids",
    "key_name",
    "ssh_private_key",
    "fleet_id",
    "launch_template_id",
    "token",
    "on_demand_target",
    "instance_ids",
    "spot_instances",
    "on_demand_instances",
    "state",
];
/// Known only once the fleet has (re)filled.
const DYNAMIC: [&str; 4] = ["instance_ids", "spot_instances", "on_demand_instances", "state"];

/// What a `spot_pool` block asks for.
struct Pool {
    common: Common,
    capacity: u64,
    on_demand_base: u64,
    instance_types: Option<Vec<String>>,
    subnet_ids: Option<Vec<String>>,
    allocation_strategy: String,
    max_price: Option<String>,
    fallback: bool,
}

fn known_list(v: &Value, name: &str) -> Option<Vec<String>> {
    (!is_unknown(v, name) && set(v, name).is_some()).then(|| str_list(v, name))
}

impl Pool {
    fn parse(v: &Value) -> Result<Pool, Vec<Problem>> {
        let mut errs: Vec<Problem> = Vec::new();
        let common = Common::parse(v).unwrap_or_else(|e| {
            errs.extend(e);
            Common::parse(&Value::Null).expect("defaults parse")
        });
        let capacity = match set(v, "capacity") {
            Some(c) if c.is_unknown() => 0,
            Some(_) => u64_attr(v, "capacity").unwrap_or_else(|| {
                errs.push("`capacity` must be a whole number of instances".into());
                0
            }),
            None => {
                errs.push("`capacity` is required: how many instances the pool keeps".into());
                0
            }
        };
        let mut on_demand_base = u64_attr(v, "on_demand_base").unwrap_or(0);
        if on_demand_base > capacity {
            errs.push(format!("`on_demand_base` ({on_demand_base}) cannot exceed `capacity` ({capacity})").into());
        }
        let mut fallback = bool_attr(v, "on_demand_fallback").unwrap_or(false);
        // One vocabulary with clusters and placement: `spot` says what the two above say.
        match set(v, "spot").map(Value::unmarked) {
            None | Some(Value::Bool(true)) | Some(Value::Unknown) => {}
            Some(Value::Bool(false)) => on_demand_base = capacity,
            Some(Value::String(s)) if s == "auto" => fallback = true,
            Some(_) => errs.push("`spot` must be true, false or \"auto\" (spot, filled with on-demand when short)".into()),
        }
        let allocation_strategy = str_attr(v, "allocation_strategy").unwrap_or(STRATEGIES[0]).to_string();
        if !STRATEGIES.contains(&allocation_strategy.as_str()) {
            errs.push(format!("`allocation_strategy` must be one of {}", STRATEGIES.join(", ")).into());
        }
        let max_price = set(v, "max_price").and_then(Value::as_number).map(|n| n.normalize().to_string());
        let pool = Pool {
            common,
            capacity,
            on_demand_base,
            instance_types: known_list(v, "instance_types"),
            subnet_ids: known_list(v, "subnet_ids"),
            allocation_strategy,
            max_price,
            fallback,
        };
        if errs.is_empty() {
            Ok(pool)
        } else {
            Err(errs)
        }
    }
}

fn invalid(errs: Vec<Problem>) -> Diagnostics {
    errs.into_iter()
        .map(|e| {
            e.diagnostic(
                "E-AWS-SPOT-POOL",
                "write capacity = 4, and instance_types = [\"g5.xlarge\", \"g6.xlarge\"] or accelerators = \"A10G:1\"",
            )
        })
        .collect()
}

fn parse(address: &str, v: &Value) -> Result<Pool, Diagnostic> {
    Pool::parse(v).map_err(|e| invalid(e).with_address(address).into_vec().remove(0))
}

fn with_prior(proposed: &Value, prior: Option<&Value>) -> Value {
    let mut m = attrs(proposed);
    for k in COMPUTED {
        if m.get(k).is_none_or(Value::is_null) {
            if let Some(v) = prior.and_then(|p| p.get(k)) {
                m.insert(k.to_string(), v.clone());
            }
        }
    }
    Value::Map(m)
}

/// Given types (each must exist), else the prior ones while they are still candidates (or while
/// the request is unchanged: a state written before the shared grammar keeps the types its
/// meaning chose), else the candidates.
async fn choose_types(ctx: &Ctx, address: &str, config: &Value, pool: &Pool, same_request: bool) -> Result<Vec<String>, Diagnostic> {
    let catalog = ctx.catalog().await.map_err(|e| e.diagnostic(address, "list instance types"))?;
    if set(config, "instance_types").is_some() {
        let given = pool.instance_types.clone().unwrap_or_default();
        if let Some(bad) = given.iter().find(|t| catalog.get(t).is_none()) {
            return Err(error("E-AWS-CLUSTER-TYPE", address, format!("{address}: instance type `{bad}` does not exist in this region")));
        }
        if given.is_empty() {
            return Err(error("E-AWS-SPOT-POOL", address, format!("{address}: `instance_types` is empty")));
        }
        return Ok(given);
    }
    let candidates = catalog.candidates(&pool.common.needs);
    if candidates.is_empty() {
        return Err(error(
            "E-AWS-CLUSTER-TYPE",
            address,
            format!("{address}: no instance type in this region has {}", pool.common.needs.describe()),
        ));
    }
    match &pool.instance_types {
        Some(prior) if !prior.is_empty() && prior.iter().all(|t| candidates.contains(t) || (same_request && catalog.get(t).is_some())) => {
            Ok(prior.clone())
        }
        _ => Ok(candidates),
    }
}

async fn choose_subnets(ctx: &Ctx, address: &str, pool: &Pool, first_type: &str) -> Result<Vec<String>, Diagnostic> {
    if let Some(s) = pool.subnet_ids.clone().filter(|s| !s.is_empty()) {
        return Ok(s);
    }
    let found = network::default_subnets(&ctx.clients.ec2, first_type).await.map_err(|e| e.diagnostic(address, "find default subnets"))?;
    if found.is_empty() {
        return Err(error("E-AWS-CLUSTER-SUBNET", address, format!("{address}: no default subnet offers {first_type}"))
            .hint("set `subnet_ids`, or create a default VPC (`aws ec2 create-default-vpc`)"));
    }
    Ok(found.into_iter().map(|(s, _)| s).collect())
}

/// The on-demand target: the base, raised by the shortfall of the last refresh when falling back.
fn on_demand_target(pool: &Pool, prior: Option<&Value>) -> u64 {
    let Some(p) = prior else { return pool.on_demand_base };
    let unchanged = u64_attr(p, "capacity") == Some(pool.capacity) && u64_attr(p, "on_demand_base") == Some(pool.on_demand_base);
    let current = u64_attr(p, "on_demand_target").unwrap_or(pool.on_demand_base);
    if !unchanged {
        return pool.on_demand_base;
    }
    if !pool.fallback {
        return current;
    }
    let live = str_list(p, "instance_ids").len() as u64;
    (current + pool.capacity.saturating_sub(live)).min(pool.capacity)
}

async fn plan(ctx: &Ctx, req: &PlanRequest<'_>) -> Result<Value, Diagnostic> {
    let proposed = with_prior(req.proposed, req.prior);
    let pool = parse(req.address, &proposed)?;
    let same_request = req.prior.is_some_and(|p| kiln_provider::portable::request::unchanged(p, req.config));
    let types = choose_types(ctx, req.address, req.config, &pool, same_request).await?;
    let subnets = choose_subnets(ctx, req.address, &pool, &types[0]).await?;
    let image = match &pool.common.image {
        Some(i) => i.clone(),
        None => ctx.image().await.map_err(|e| e.diagnostic(req.address, "find the default image"))?.ok_or_else(|| {
            error("E-AWS-CLUSTER-IMAGE", req.address, format!("{}: no default image in this region", req.address))
                .hint("set `image` to an AMI ID")
        })?,
    };
    let target = on_demand_target(&pool, req.prior);
    let mut m: Map = attrs(&proposed);
    m.insert("instance_types".into(), strings(&types));
    // Every node of a job gets as many GPUs as the smallest type has.
    let catalog = ctx.catalog().await.map_err(|e| e.diagnostic(req.address, "list instance types"))?;
    m.insert("gpus_per_node".into(), num(types.iter().map(|t| catalog.gpus(t)).min().unwrap_or(0)));
    m.insert("subnet_ids".into(), strings(&subnets));
    m.insert("image".into(), image.into());
    m.insert("on_demand_base".into(), num(pool.on_demand_base));
    m.insert("on_demand_target".into(), num(target));
    m.insert("allocation_strategy".into(), pool.allocation_strategy.as_str().into());
    m.insert("ssh_cidr".into(), pool.common.ssh_cidr.as_deref().unwrap_or("").into());
    m.insert("on_demand_fallback".into(), pool.fallback.into());
    for k in ["security_group_ids", "key_name", "ssh_private_key", "fleet_id", "launch_template_id", "token"] {
        if m.get(k).is_none_or(Value::is_null) {
            m.insert(k.into(), Value::Unknown);
        }
    }
    if str_attr(req.config, "key_name").is_some() {
        m.insert("ssh_private_key".into(), "".into());
    }
    let reshaped =
        req.prior.is_none_or(|p| u64_attr(p, "capacity") != Some(pool.capacity) || u64_attr(p, "on_demand_target") != Some(target));
    if reshaped {
        for k in DYNAMIC {
            m.insert(k.into(), Value::Unknown);
        }
    }
    view::plan_created_at(&mut m, req.prior);
    Ok(Value::Map(m))
}

/// `base` with what the fleet's instances tell.
fn view(base: &Value, live: &[Node]) -> Value {
    let capacity = u64_attr(base, "capacity").unwrap_or(0);
    let mut live: Vec<&Node> = live.iter().filter(|n| n.live()).collect();
    live.sort_by(|a, b| a.id.cmp(&b.id));
    let mut m = attrs(base);
    m.insert("instance_ids".into(), strings(live.iter().map(|n| n.id.as_str())));
    m.insert("spot_instances".into(), num(live.iter().filter(|n| n.spot).count() as u64));
    m.insert("on_demand_instances".into(), num(live.iter().filter(|n| !n.spot).count() as u64));
    m.insert("state".into(), if live.len() as u64 >= capacity { "active" } else { "filling" }.into());
    Value::Map(m)
}

async fn create(ctx: &Ctx, req: &CreateRequest<'_>) -> Result<Value, Diagnostic> {
    let pool = parse(req.address, req.planned)?;
    let ec2 = &ctx.clients.ec2;
    let (Some(types), Some(subnets), Some(image)) = (pool.instance_types.clone(), pool.subnet_ids.clone(), pool.common.image.clone())
    else {
        return Err(error("E-AWS-SPOT-POOL", req.address, format!("{}: instance types, subnets or image still unknown", req.address)));
    };
    let made = make_network(ctx, req.address, req.token, "spot_pool", &pool.common, &subnets[0]).await;
    let result = match made {
        Ok(made) => launch(ctx, req, &pool, &types, &subnets, &image, made).await,
        Err(d) => Err(d),
    };
    if result.is_err() {
        let _ = fleet::delete_templates_by_token(ec2, req.token).await;
        let _ = network::delete_by_token(ec2, req.token).await;
    }
    result
}

async fn launch(
    ctx: &Ctx,
    req: &CreateRequest<'_>,
    pool: &Pool,
    types: &[String],
    subnets: &[String],
    image: &str,
    made: crate::cluster::Made,
) -> Result<Value, Diagnostic> {
    let ec2 = &ctx.clients.ec2;
    let mut tags = vec![(TAG_ADDRESS.to_string(), req.address.to_string()), (TAG_TOKEN.to_string(), req.token.to_string())];
    tags.extend(pool.common.tags.iter().cloned());
    let disk = match pool.common.disk_gb {
        Some(gb) => Some((network::root_device(ec2, image).await.map_err(|e| e.diagnostic(req.address, "read the image"))?, gb)),
        None => None,
    };
    let name = made_up_name(req.address, "spot_pool", req.token, 128);
    let user_data = crate::job::user_data(&ctx.clients.region, ctx.clients.endpoint.as_deref());
    let template = fleet::Template {
        name: &name,
        image,
        security_group_ids: &made.security_group_ids,
        key_name: &made.key_name,
        disk,
        tags: &tags,
        instance_profile: pool.common.instance_profile.as_deref(),
        user_data: &user_data,
    };
    let template_id = fleet::create_template(ec2, &template).await.map_err(|e| e.diagnostic(req.address, "create a launch template"))?;
    let target = u64_attr(req.planned, "on_demand_target").unwrap_or(pool.on_demand_base);
    let shape = fleet::Shape {
        instance_types: types,
        subnet_ids: subnets,
        capacity: pool.capacity,
        on_demand: target,
        allocation_strategy: &pool.allocation_strategy,
        max_price: pool.max_price.as_deref(),
    };
    let fleet_id = fleet::create_fleet(ec2, &template_id, &shape, req.token, &tags)
        .await
        .map_err(|e| e.diagnostic(req.address, "create the fleet"))?;
    let nodes = instances::describe_by_token(ec2, req.token).await.map_err(|e| e.diagnostic(req.address, "read the fleet's instances"))?;
    let mut base = attrs(req.planned);
    base.insert("security_group_ids".into(), strings(&made.security_group_ids));
    base.insert("key_name".into(), made.key_name.into());
    base.insert("ssh_private_key".into(), made.private_key.into());
    base.insert("fleet_id".into(), fleet_id.into());
    base.insert("launch_template_id".into(), template_id.into());
    base.insert("token".into(), req.token.into());
    base.insert("on_demand_target".into(), num(target));
    base.insert(view::CREATED_AT.into(), kiln_provider::util::now().into());
    Ok(view(&Value::Map(base), &nodes))
}

async fn update(ctx: &Ctx, req: &UpdateRequest<'_>) -> Result<Value, Diagnostic> {
    let pool = parse(req.address, req.planned)?;
    let ec2 = &ctx.clients.ec2;
    let fleet_id = str_attr(req.prior, "fleet_id").unwrap_or_default();
    let target = u64_attr(req.planned, "on_demand_target").unwrap_or(pool.on_demand_base);
    fleet::modify_fleet(ec2, fleet_id, pool.capacity, target)
        .await
        .map_err(|e| e.diagnostic(req.address, &format!("modify fleet {fleet_id}")))?;
    let token = str_attr(req.prior, "token").unwrap_or_default();
    let nodes = instances::describe_by_token(ec2, token).await.map_err(|e| e.diagnostic(req.address, "read the fleet's instances"))?;
    let mut base = attrs(req.planned);
    for k in [
        "security_group_ids",
        "key_name",
        "ssh_private_key",
        "fleet_id",
        "launch_template_id",
        "token",
        "image",
        "instance_types",
        "subnet_ids",
    ] {
        if let Some(v) = req.prior.get(k) {
            base.insert(k.into(), v.clone());
        }
    }
    base.insert("on_demand_target".into(), num(target));
    Ok(view(&Value::Map(base), &nodes))
}

async fn delete(ctx: &Ctx, req: &DeleteRequest<'_>) -> Result<(), Diagnostic> {
    let ec2 = &ctx.clients.ec2;
    let fail = |doing: &'static str| move |e: AwsError| e.diagnostic(req.address, doing);
    if let Some(id) = str_attr(req.prior, "fleet_id") {
        fleet::delete_fleet(ec2, id).await.map_err(fail("delete the fleet"))?;
    }
    if let Some(token) = str_attr(req.prior, "token") {
        let live: Vec<String> =
            instances::describe_by_token(ec2, token).await.map_err(fail("read the fleet's instances"))?.into_iter().map(|n| n.id).collect();
        instances::terminate(ec2, &live).await.map_err(fail("terminate instances"))?;
        if !live.is_empty() {
            instances::wait(ec2, &live, |n| n.state == "terminated").await.map_err(fail("wait for termination"))?;
        }
    }
    if let Some(id) = str_attr(req.prior, "launch_template_id") {
        fleet::delete_template(ec2, id).await.map_err(fail("delete the launch template"))?;
    }
    network::delete_own_security_groups(ec2, req.address, &str_list(req.prior, "security_group_ids"))
        .await
        .map_err(fail("delete the security group"))?;
    if let Some(key) = str_attr(req.prior, "key_name").filter(|k| !k.is_empty()) {
        network::delete_own_key_pair(ec2, req.address, key).await.map_err(fail("delete the key pair"))?;
    }
    Ok(())
}

async fn recover(ctx: &Ctx, req: &RecoverRequest<'_>) -> Result<Option<Value>, Diagnostic> {
    let ec2 = &ctx.clients.ec2;
    let fail = |doing: &'static str| move |e: AwsError| e.diagnostic(req.address, doing);
    let fleets = fleet::describe_by_token(ec2, req.token).await.map_err(fail("look for the fleet"))?;
    let Some(found) = fleets.first() else {
        fleet::delete_templates_by_token(ec2, req.token).await.map_err(fail("clean up an interrupted create"))?;
        network::delete_by_token(ec2, req.token).await.map_err(fail("clean up an interrupted create"))?;
        return Ok(None);
    };
    let nodes = instances::describe_by_token(ec2, req.token).await.map_err(fail("read the fleet's instances"))?;
    let templates = ec2.describe_launch_templates().filters(network::filter(&format!("tag:{TAG_TOKEN}"), &[req.token])).send().await;
    let template_id = templates
        .map_err(|e| AwsError::from_sdk(e).diagnostic(req.address, "find the launch template"))?
        .launch_templates()
        .first()
        .and_then(|t| t.launch_template_id())
        .unwrap_or_default()
        .to_string();
    let mut base = attrs(req.planned);
    base.insert("fleet_id".into(), found.id.as_str().into());
    base.insert("launch_template_id".into(), template_id.into());
    base.insert("token".into(), req.token.into());
    base.insert("on_demand_target".into(), num(found.on_demand));
    base.insert("ssh_private_key".into(), "".into());
    let planned = Value::Map(base.clone());
    view::set_created_at(&mut base, &planned, found.created.as_deref());
    if let Some(n) = nodes.first() {
        base.insert("security_group_ids".into(), strings(&n.security_group_ids));
        base.insert("key_name".into(), n.key_name.as_str().into());
    }
    Ok(Some(view(&Value::Map(base), &nodes)))
}

fn read_item(item: &ReadItem<'_>, fleets: &[fleet::FleetInfo], nodes: &[Node]) -> ReadResult {
    let id = str_attr(item.state, "fleet_id").unwrap_or_default();
    let Some(f) = fleets.iter().find(|f| f.id == id && f.active) else { return ReadResult::gone() };
    let token = str_attr(item.state, "token").unwrap_or_default();
    let mine: Vec<Node> = nodes.iter().filter(|n| n.token.as_deref() == Some(token)).cloned().collect();
    let mut base = attrs(item.state);
    base.insert("capacity".into(), num(f.total));
    base.insert("on_demand_target".into(), num(f.on_demand));
    // A state written before kiln recorded it takes the fleet's creation time (else, where the
    // service does not say, its first instance's launch time).
    let first_launch = mine.iter().filter_map(|n| n.launched.as_deref()).min();
    view::set_created_at(&mut base, item.state, f.created.as_deref().or(first_launch));
    ReadResult::found(view(&Value::Map(base), &mine))
}

#[async_trait]
impl Kind<Ctx, AllInstances> for SpotPool {
    fn name(&self) -> &'static str {
        "spot_pool"
    }

    fn schema(&self) -> KindSchema {
        KindSchema::new("An EC2 Fleet (maintain) of spot and on-demand instances across types and zones", crate::schema::spot_pool())
    }

    fn validate(&self, config: &Value) -> Diagnostics {
        let mut d = Pool::parse(config).err().map(invalid).unwrap_or_default();
        let requested = ["accelerators", "cpus", "memory"].iter().any(|k| set(config, k).is_some());
        if set(config, "instance_types").is_some() && requested {
            d.push(Diagnostic::error(
                "E-AWS-SPOT-POOL",
                "set either `instance_types` or resource requests (accelerators, cpus, memory), not both",
            ));
        }
        d
    }

    async fn plan(&self, ctx: &Ctx, req: &PlanRequest<'_>) -> Outcome<PlanResponse> {
        let planned = plan(ctx, req).await?;
        Ok(PlanResponse { diagnostics: crate::cluster::spec::ssh_warning(req.address, &planned), planned, requires_replace: Vec::new() })
    }

    async fn create(&self, ctx: &Ctx, req: &CreateRequest<'_>) -> Outcome<ApplyResponse> {
        Ok(ApplyResponse::ok(create(ctx, req).await?))
    }

    async fn update(&self, ctx: &Ctx, req: &UpdateRequest<'_>) -> Outcome<ApplyResponse> {
        Ok(ApplyResponse::ok(update(ctx, req).await?))
    }

    async fn delete(&self, ctx: &Ctx, req: &DeleteRequest<'_>) -> Outcome<Diagnostics> {
        delete(ctx, req).await?;
        Ok(Diagnostics::new())
    }

    async fn read(&self, ctx: &Ctx, items: &[&ReadItem<'_>], all: &instances::AllInstances) -> Outcome<Vec<ReadResult>> {
        let ids: Vec<String> = items.iter().filter_map(|i| str_attr(i.state, "fleet_id").map(str::to_string)).collect();
        let ec2 = &ctx.clients.ec2;
        let both = async { Ok::<_, AwsError>((fleet::describe(ec2, &ids).await?, all.get(ec2).await?)) };
        Ok(match both.await {
            Ok((fleets, nodes)) => items.iter().map(|i| read_item(i, &fleets, nodes)).collect(),
            Err(e) => items
                .iter()
                .map(|i| ReadResult { state: Some(i.state.clone()), diagnostics: e.diagnostic(i.address, "describe fleets").into() })
                .collect(),
        })
    }

    async fn recover(&self, ctx: &Ctx, req: &RecoverRequest<'_>) -> Outcome<ReadResult> {
        Ok(recover(ctx, req).await?.map_or_else(ReadResult::gone, ReadResult::found))
    }

    async fn import(&self, _ctx: &Ctx, req: &ImportRequest<'_>) -> Outcome<ReadResult> {
        Err(error("E-AWS-IMPORT", req.address, "importing an aws spot_pool is not supported yet")
            .hint("declare the pool and run `kiln apply`")
            .into())
    }
}
