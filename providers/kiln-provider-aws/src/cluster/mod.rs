//! `cluster`: `nodes` EC2 instances of one type, each tagged `kiln:address`, `kiln:token` and
//! `kiln:node` (its rank).
//!
//! Plan resolves what can be known before launching: the instance type (given, or the first
//! candidate for the resource requests; a prior type that still fits is kept, so a fallback
//! chosen at launch does not cause a replacement), the image (given, or the newest Amazon
//! Linux 2023), the subnet (given, or a default subnet in the first zone offering the type).
//! Create makes a security group and a key pair unless given, then launches every node in one
//! RunInstances call, moving on to the next candidate type on InsufficientInstanceCapacity.
//! Changing `nodes` updates in place: the missing ranks are launched, the ranks beyond `nodes`
//! terminated. Read reports nodes lost since the last apply (`lost`, `state = "degraded"`), and
//! plan then asks for an update that launches replacements for the lost ranks. A spot node with
//! an interruption notice (its spot request `marked-for-termination`) counts as lost from the
//! notice on, two minutes before EC2 takes it back.
//!
//! `spot = "auto"` within one job: a create launches every candidate type on spot, then
//! on-demand. A lost node's replacement is launched the same way, beside the healthy nodes it
//! keeps, so while spot is short it runs on-demand and `market` says `mixed` (the plan cannot
//! tell the market of what apply launches: the engine prices such a launch at the dearer,
//! on-demand). A cluster that lost nothing plans no change whatever its market, so a running
//! job is never stopped to move it back to spot. The next update that replaces lost nodes is
//! the job's next restart (it lost a node, so all its ranks are relaunched): its on-demand
//! nodes then go back to spot in one spot launch with the lost ranks, and are terminated once
//! their replacements run; where spot is still short they are kept (`launch_missing`).

pub(crate) mod catalog;
pub(crate) mod instances;
pub(crate) mod network;
pub(crate) mod spec;
pub(crate) mod view;

use kiln_diag::{Diagnostic, Diagnostics};
use kiln_provider::{
    async_trait, ApplyResponse, CreateRequest, DeleteRequest, ImportRequest, PlanRequest, PlanResponse, ReadItem, ReadResult,
    RecoverRequest, UpdateRequest,
};
use kiln_value::{Map, Value};

use crate::error::AwsError;
use crate::util::{attrs, error, made_up_name, str_attr, str_list, u64_attr, TAG_ADDRESS, TAG_TOKEN};
use crate::{AllInstances, Ctx, Kind, KindSchema, Outcome};
use catalog::Catalog;
use instances::{Launch, LaunchError, Node};
use spec::{Market, Spec};
use view::{lost_entry, recorded_ids, taken_by_aws, view};

pub(crate) struct Cluster;

/// Attributes known only once instances exist; unknown in a plan that launches or terminates.
const DYNAMIC: [&str; 5] = ["instance_ids", "private_ips", "public_ips", "state", "lost"];
/// Computed attributes taken from prior state when a plan request lacks them.
const COMPUTED: [&str; 14] = [
    "instance_type",
    "instance_type_candidates",
    "image",
    "subnet_id",
    "security_group_ids",
    "key_name",
    "zone",
    "instance_ids",
    "private_ips",
    "public_ips",
    "state",
    "lost",
    "ssh_private_key",
    "market",
];

fn invalid(errs: Vec<spec::Problem>) -> Diagnostics {
    errs.into_iter()
        .map(|e| {
            e.diagnostic(
                "E-AWS-CLUSTER",
                "write instance_type = \"g5.xlarge\", or accelerators = \"A100:8\", cpus = \"8+\", memory = \"64+\"",
            )
        })
        .collect()
}

fn parse(address: &str, v: &Value) -> Result<Spec, Diagnostic> {
    Spec::parse(v).map_err(|e| invalid(e).with_address(address).into_vec().remove(0))
}

impl Ctx {
    pub(crate) async fn catalog(&self) -> Result<&Catalog, AwsError> {
        self.catalog.get_or_try_init(|| Catalog::load(&self.clients.ec2)).await
    }

    pub(crate) async fn image(&self) -> Result<Option<String>, AwsError> {
        let found = self
            .default_image
            .get_or_try_init(|| async { network::default_image(&self.clients.ec2).await.map(Option::unwrap_or_default) })
            .await?;
        Ok(Some(found.clone()).filter(|s| !s.is_empty()))
    }
}

/// `proposed` with computed attributes it lacks taken from `prior`.
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

/// The instance type: given in config, else the prior one while it fits (or while the request
/// is unchanged: a state written before the shared grammar keeps the type its meaning chose),
/// else the first candidate.
fn choose_type(address: &str, catalog: &Catalog, config: &Value, spec: &Spec, same_request: bool) -> Result<String, Diagnostic> {
    if let Some(t) = str_attr(config, "instance_type") {
        return match catalog.get(t) {
            Some(_) => Ok(t.to_string()),
            None => Err(error("E-AWS-CLUSTER-TYPE", address, format!("{address}: instance type `{t}` does not exist in this region"))
                .hint("see `aws ec2 describe-instance-types`, or ask for resources with accelerators, cpus and memory")),
        };
    }
    let candidates = catalog.candidates(&spec.needs);
    let keep = |t: &&String| candidates.contains(t) || (same_request && catalog.get(t).is_some());
    match spec.instance_type.as_ref().filter(keep) {
        Some(t) => Ok(t.clone()),
        None => candidates.into_iter().next().ok_or_else(|| no_type(address, catalog, spec)),
    }
}

fn no_type(address: &str, catalog: &Catalog, spec: &Spec) -> Diagnostic {
    let gpus = catalog.gpu_names().join(", ");
    error("E-AWS-CLUSTER-TYPE", address, format!("{address}: no instance type in this region has {}", spec.needs.describe()))
        .hint(format!("ask for less, or for GPUs this region has: {gpus}"))
}

/// Subnet and zone: the prior pair while the subnet is unchanged, else looked up.
async fn placement(
    ctx: &Ctx,
    address: &str,
    spec: &Spec,
    prior: Option<&Value>,
    instance_type: &str,
) -> Result<(String, String), Diagnostic> {
    let ec2 = &ctx.clients.ec2;
    if let Some(subnet) = &spec.subnet_id {
        let prior_zone = prior.filter(|p| str_attr(p, "subnet_id") == Some(subnet)).and_then(|p| str_attr(p, "zone"));
        if let Some(zone) = prior_zone {
            return Ok((subnet.clone(), zone.to_string()));
        }
        let (_, zone) = network::subnet_info(ec2, subnet).await.map_err(|e| e.diagnostic(address, &format!("find subnet {subnet}")))?;
        return Ok((subnet.clone(), zone));
    }
    network::default_subnet(ec2, instance_type).await.map_err(|e| e.diagnostic(address, "find a default subnet"))?.ok_or_else(|| {
        error("E-AWS-CLUSTER-SUBNET", address, format!("{address}: no default subnet offers {instance_type} in {}", ctx.clients.region))
            .hint("set `subnet_id`, or create a default VPC (`aws ec2 create-default-vpc`)")
    })
}

/// Whether the instances differ from what the plan wants: lost nodes, or a new node count.
fn needs_instances(prior: &Value, nodes: u64) -> bool {
    str_attr(prior, "state") == Some("degraded") || recorded_ids(prior).len() as u64 != nodes
}

async fn plan(ctx: &Ctx, req: &PlanRequest<'_>) -> Result<Value, Diagnostic> {
    let proposed = with_prior(req.proposed, req.prior);
    let spec = parse(req.address, &proposed)?;
    if let Some(msg) = spec::conflicts(req.config) {
        return Err(error("E-AWS-CLUSTER", req.address, format!("{}: {msg}", req.address)));
    }
    let catalog = ctx.catalog().await.map_err(|e| e.diagnostic(req.address, "list instance types"))?;
    let same_request = req.prior.is_some_and(|p| kiln_provider::portable::request::unchanged(p, req.config));
    let instance_type = choose_type(req.address, catalog, req.config, &spec, same_request)?;
    let image = match &spec.image {
        Some(i) => i.clone(),
        None => ctx.image().await.map_err(|e| e.diagnostic(req.address, "find the default image"))?.ok_or_else(|| {
            error(
                "E-AWS-CLUSTER-IMAGE",
                req.address,
                format!("{}: no image named {} in this region", req.address, network::DEFAULT_IMAGE_NAME),
            )
            .hint("set `image` to an AMI ID")
        })?,
    };
    let configured = spec::candidates(req.config).map_err(|e| invalid(vec![e]).with_address(req.address).into_vec().remove(0))?;
    if let spec::Candidates::Given(types) = &configured {
        check_types(req.address, catalog, types)?;
    }
    let (subnet, zone) = placement(ctx, req.address, &spec, req.prior, &instance_type).await?;
    let (planned_type, tried) = tried(req, catalog, &spec, configured, instance_type.clone());
    let mut m: Map = attrs(&proposed);
    m.insert("nodes".into(), crate::util::num(spec.nodes));
    // A fallback may have other GPUs: known when every type tried has the same.
    let gpus: Vec<u64> = tried.iter().flatten().map(|t| catalog.gpus(t)).collect();
    let gpus = match &planned_type {
        Some(t) => Some(catalog.gpus(t)),
        None => gpus.first().copied().filter(|g| gpus.iter().all(|x| x == g)),
    };
    m.insert("gpus_per_node".into(), gpus.map_or(Value::Unknown, crate::util::num));
    m.insert("instance_type".into(), planned_type.map_or(Value::Unknown, Value::from));
    m.insert("instance_type_candidates".into(), tried.map_or(Value::Unknown, |t| crate::util::strings(&t)));
    m.insert("image".into(), image.into());
    m.insert("subnet_id".into(), subnet.into());
    m.insert("zone".into(), zone.into());
    m.insert("ssh_cidr".into(), spec.ssh_cidr.as_deref().unwrap_or("").into());
    m.entry("spot".into()).or_insert(false.into());
    for k in ["security_group_ids", "key_name"] {
        if m.get(k).is_none_or(Value::is_null) {
            m.insert(k.into(), Value::Unknown);
        }
    }
    let key_given = str_attr(req.config, "key_name").is_some();
    if key_given {
        m.insert("ssh_private_key".into(), Value::from(""));
    } else if m.get("ssh_private_key").is_none_or(Value::is_null) {
        m.insert("ssh_private_key".into(), Value::Unknown);
    }
    let relaunch = req.prior.is_none_or(|p| needs_instances(p, spec.nodes));
    if relaunch {
        for k in DYNAMIC {
            m.insert(k.into(), Value::Unknown);
        }
    }
    view::plan_created_at(&mut m, req.prior);
    view::plan_market(&mut m, req.prior, spec.market, relaunch);
    Ok(Value::Map(m))
}

/// Every configured candidate is a type of the region.
fn check_types(address: &str, catalog: &Catalog, types: &[String]) -> Result<(), Diagnostic> {
    match types.iter().find(|t| catalog.get(t).is_none()) {
        None => Ok(()),
        Some(t) => Err(error(
            "E-AWS-CLUSTER-TYPE",
            address,
            format!("{address}: `instance_type_candidates` names `{t}`, an instance type this region does not have"),
        )
        .attribute("instance_type_candidates")
        .hint("see `aws ec2 describe-instance-types`, or leave it out to try `instance_type` only")),
    }
}

/// The planned instance type (`None`: chosen at apply) and what a create tries, in order
/// (`None`: unknown until apply). Apply takes the first type with capacity, so with more
/// than one to try the plan cannot name it; a type kept from prior state keeps the list it was
/// chosen from.
fn tried(
    req: &PlanRequest<'_>,
    catalog: &Catalog,
    spec: &Spec,
    configured: spec::Candidates,
    instance_type: String,
) -> (Option<String>, Option<Vec<String>>) {
    let pinned = str_attr(req.config, "instance_type").is_some();
    let prior_type = req.prior.and_then(|p| str_attr(p, "instance_type"));
    let prior_list = req.prior.map(|p| str_list(p, "instance_type_candidates")).filter(|l| !l.is_empty());
    let kept = prior_type == Some(instance_type.as_str());
    match configured {
        spec::Candidates::Unknown => (None, None),
        spec::Candidates::Given(list) => {
            // A cluster keeps the type it runs while it is the first choice, or while the list
            // it was launched from is unchanged (it runs a fallback of the same list).
            let running = prior_type.filter(|t| kept || (prior_list.as_ref() == Some(&list) && list.iter().any(|x| x == t)));
            match running {
                Some(t) => (Some(t.to_string()), Some(prior_list.unwrap_or(list))),
                None if list.len() == 1 => (Some(instance_type), Some(list)),
                None => (None, Some(list)),
            }
        }
        spec::Candidates::Computed => {
            let tried = match prior_list {
                _ if pinned => vec![instance_type.clone()],
                Some(prior) if kept => prior,
                _ if kept => vec![instance_type.clone()],
                _ => candidates(catalog, spec, &instance_type),
            };
            let known = pinned || kept || tried.len() == 1;
            (known.then_some(instance_type), Some(tried))
        }
    }
}

/// The candidate types, the first choice first.
fn candidates(catalog: &Catalog, spec: &Spec, planned_type: &str) -> Vec<String> {
    let all = catalog.candidates(&spec.needs);
    if !all.iter().any(|t| t == planned_type) {
        return vec![planned_type.to_string()];
    }
    let mut out = vec![planned_type.to_string()];
    out.extend(all.into_iter().filter(|t| t != planned_type));
    out
}

fn no_capacity(address: &str, tried: &[(String, String)]) -> Diagnostic {
    let list: Vec<String> = tried.iter().map(|(t, m)| format!("{t} (InsufficientInstanceCapacity: {m})")).collect();
    error("E-AWS-CAPACITY", address, format!("{address}: AWS has no capacity for any candidate instance type; tried {}", list.join(", ")))
        .hint("try again later, in another zone (`subnet_id`) or region, or widen the request (cpus = \"8+\") so more types qualify")
}

fn launch_error(address: &str, e: LaunchError) -> Diagnostic {
    match e {
        LaunchError::NoCapacity(tried) => no_capacity(address, &tried),
        LaunchError::Aws(e) => e.diagnostic(address, "launch instances"),
    }
}

/// What create made before launching, for the state and for cleanup.
pub(crate) struct Made {
    pub security_group_ids: Vec<String>,
    pub key_name: String,
    pub private_key: String,
}

pub(crate) async fn make_network(ctx: &Ctx, address: &str, token: &str, kind: &str, spec: &Spec, subnet: &str) -> Result<Made, Diagnostic> {
    let ec2 = &ctx.clients.ec2;
    let mut tags = vec![(TAG_ADDRESS.to_string(), address.to_string()), (TAG_TOKEN.to_string(), token.to_string())];
    tags.extend(spec.tags.iter().cloned());
    let name = made_up_name(address, kind, token, 63);
    let security_group_ids = match &spec.security_group_ids {
        Some(ids) => ids.clone(),
        None => {
            let (vpc, _) = network::subnet_info(ec2, subnet).await.map_err(|e| e.diagnostic(address, &format!("find subnet {subnet}")))?;
            let id = network::create_security_group(ec2, &name, &vpc, spec.ssh_cidr.as_deref(), &tags).await;
            vec![id.map_err(|e| e.diagnostic(address, "create a security group"))?]
        }
    };
    let (key_name, private_key) = match &spec.key_name {
        Some(k) => (k.clone(), String::new()),
        None => {
            let key = network::create_key_pair(ec2, &name, &tags).await.map_err(|e| e.diagnostic(address, "create a key pair"))?;
            (name, key)
        }
    };
    Ok(Made { security_group_ids, key_name, private_key })
}

async fn create(ctx: &Ctx, req: &CreateRequest<'_>) -> Result<Value, Diagnostic> {
    let spec = parse(req.address, req.planned)?;
    let ec2 = &ctx.clients.ec2;
    // The plan's candidates; a plan from before kiln recorded them names one type.
    let mut tried = str_list(req.planned, "instance_type_candidates");
    if tried.is_empty() {
        tried.extend(spec.instance_type.clone());
    }
    let (false, Some(image), Some(subnet)) = (tried.is_empty(), spec.image.clone(), spec.subnet_id.clone()) else {
        return Err(error("E-AWS-CLUSTER", req.address, format!("{}: instance type, image or subnet is still unknown", req.address)));
    };
    let made = make_network(ctx, req.address, req.token, "cluster", &spec, &subnet).await;
    let made = match made {
        Ok(m) => m,
        Err(d) => {
            let _ = network::delete_by_token(ec2, req.token).await;
            return Err(d);
        }
    };
    let disk = match spec.disk_gb {
        Some(gb) => Some((network::root_device(ec2, &image).await.map_err(|e| e.diagnostic(req.address, "read the image"))?, gb)),
        None => None,
    };
    let ranks: Vec<u64> = (0..spec.nodes).collect();
    let launch = Launch {
        address: req.address,
        token: req.token,
        client_token: Some(req.token),
        image: &image,
        subnet_id: &subnet,
        security_group_ids: &made.security_group_ids,
        key_name: &made.key_name,
        market: spec.market,
        disk,
        user_tags: &spec.tags,
        ranks: &ranks,
        instance_profile: spec.instance_profile.as_deref(),
        user_data: &crate::job::user_data(&ctx.clients.region, ctx.clients.endpoint.as_deref()),
    };
    let (launched, nodes) = if ranks.is_empty() {
        (None, Vec::new())
    } else {
        match launch.launch(ec2, &tried).await {
            Ok((t, nodes)) => (Some(t), nodes),
            Err(e) => {
                let _ = network::delete_by_token(ec2, req.token).await;
                return Err(launch_error(req.address, e));
            }
        }
    };
    let ids: Vec<String> = nodes.iter().map(|n| n.id.clone()).collect();
    let nodes = if ids.is_empty() {
        nodes
    } else {
        instances::wait_started(ec2, &ids).await.map_err(|e| e.diagnostic(req.address, "wait for instances"))?
    };
    let mut base = attrs(req.planned);
    if let (Some(t), true) = (&launched, req.planned.get("gpus_per_node").is_none_or(Value::is_unknown)) {
        // The plan could not tell which type (and so how many GPUs) the create would get; the
        // catalog is the one the apply's plan read.
        if let Ok(catalog) = ctx.catalog().await {
            base.insert("gpus_per_node".into(), crate::util::num(catalog.gpus(t)));
        }
    }
    base.insert("security_group_ids".into(), crate::util::strings(&made.security_group_ids));
    base.insert("key_name".into(), made.key_name.into());
    base.insert("ssh_private_key".into(), Value::from(made.private_key));
    base.insert("lost".into(), Value::List(Vec::new()));
    Ok(view(&Value::Map(base), &nodes, Vec::new()))
}

/// Ranks of live nodes; nodes without a rank tag get the lowest free ranks, in launch order.
async fn settle_ranks(ctx: &Ctx, address: &str, nodes: &mut [Node]) -> Result<(), Diagnostic> {
    let mut taken: Vec<u64> = nodes.iter().filter_map(|n| n.rank).collect();
    nodes.sort_by_key(|n| (n.rank.is_none(), n.rank, n.launch_index));
    for n in nodes.iter_mut().filter(|n| n.rank.is_none()) {
        let free = (0..).find(|r| !taken.contains(r)).unwrap_or(0);
        instances::tag_rank(&ctx.clients.ec2, &n.id, free).await.map_err(|e| e.diagnostic(address, "tag an instance with its rank"))?;
        n.rank = Some(free);
        taken.push(free);
    }
    Ok(())
}

async fn update(ctx: &Ctx, req: &UpdateRequest<'_>) -> Result<Value, Diagnostic> {
    let planned = parse(req.address, req.planned)?;
    let ec2 = &ctx.clients.ec2;
    let fail = |doing: &'static str| move |e: AwsError| e.diagnostic(req.address, doing);
    let mut live: Vec<Node> = instances::describe_ids(ec2, &recorded_ids(req.prior)).await.map_err(fail("read instances"))?;
    live.retain(Node::live);
    settle_ranks(ctx, req.address, &mut live).await?;
    let (keep, extra): (Vec<Node>, Vec<Node>) = live.into_iter().partition(|n| n.rank.is_some_and(|r| r < planned.nodes));
    instances::terminate(ec2, &extra.iter().map(|n| n.id.clone()).collect::<Vec<_>>()).await.map_err(fail("terminate instances"))?;
    let missing: Vec<u64> = (0..planned.nodes).filter(|r| !keep.iter().any(|n| n.rank == Some(*r))).collect();
    let token = keep.iter().find_map(|n| n.token.clone()).unwrap_or_else(|| "update".into());
    let nodes = if missing.is_empty() { keep } else { launch_missing(ctx, req, &planned, &token, &missing, keep).await? };
    retag(ctx, req, &planned, &nodes).await?;
    let ids: Vec<String> = nodes.iter().map(|n| n.id.clone()).collect();
    let nodes = if ids.is_empty() { nodes } else { instances::wait_started(ec2, &ids).await.map_err(fail("wait for instances"))? };
    let mut base = attrs(req.planned);
    for k in ["security_group_ids", "key_name", "ssh_private_key", "instance_type", "image", "subnet_id", "zone"] {
        if let Some(v) = req.prior.get(k) {
            base.insert(k.into(), v.clone());
        }
    }
    Ok(view(&Value::Map(base), &nodes, Vec::new()))
}

/// The nodes after launching the `missing` ranks beside `keep` (the live nodes kept).
///
/// Under `spot = "auto"`, an update that replaces lost nodes is the restart of any job on the
/// cluster (it lost a node, so it is relaunched on all of them anyway): the on-demand nodes go
/// back to spot then, in one spot launch with the missing ranks, and are terminated once their
/// spot replacements run. Where spot is still short they are kept, and the missing ranks launch
/// as `spot` says (spot, then on-demand). No other update moves a node to another market, so a
/// running job is never stopped for spot.
async fn launch_missing(
    ctx: &Ctx,
    req: &UpdateRequest<'_>,
    planned: &Spec,
    token: &str,
    missing: &[u64],
    mut keep: Vec<Node>,
) -> Result<Vec<Node>, Diagnostic> {
    let like = Like::prior(ctx, req).await?;
    let healing = str_attr(req.prior, "state") == Some("degraded");
    let on_demand: Vec<u64> = keep.iter().filter(|n| !n.spot).filter_map(|n| n.rank).collect();
    if like.market == Market::Auto && healing && !on_demand.is_empty() {
        let mut ranks: Vec<u64> = missing.iter().chain(&on_demand).copied().collect();
        ranks.sort_unstable();
        match like.launch(ctx, req.address, planned, token, &ranks, Market::Spot).await {
            Ok(spot) => {
                let (moved, mut nodes): (Vec<Node>, Vec<Node>) = keep.into_iter().partition(|n| !n.spot);
                let ids: Vec<String> = moved.into_iter().map(|n| n.id).collect();
                instances::terminate(&ctx.clients.ec2, &ids)
                    .await
                    .map_err(|e| e.diagnostic(req.address, "terminate the on-demand nodes moved back to spot"))?;
                nodes.extend(spot);
                return Ok(nodes);
            }
            Err(LaunchError::NoCapacity(_)) => {}
            Err(e) => return Err(launch_error(req.address, e)),
        }
    }
    let more = like.launch(ctx, req.address, planned, token, missing, like.market).await;
    keep.extend(more.map_err(|e| launch_error(req.address, e))?);
    Ok(keep)
}

/// What new nodes of a cluster in state are launched like (same type: a cluster stays uniform).
struct Like {
    instance_type: String,
    image: String,
    subnet_id: String,
    disk: Option<(String, u64)>,
    security_group_ids: Vec<String>,
    key_name: String,
    instance_profile: Option<String>,
    market: Market,
}

impl Like {
    async fn prior(ctx: &Ctx, req: &UpdateRequest<'_>) -> Result<Like, Diagnostic> {
        let prior = parse(req.address, req.prior)?;
        let (Some(instance_type), Some(image), Some(subnet_id)) = (prior.instance_type, prior.image, prior.subnet_id) else {
            return Err(error(
                "E-AWS-CLUSTER",
                req.address,
                format!("{}: the cluster in state lacks its type, image or subnet", req.address),
            ));
        };
        let disk = match prior.disk_gb {
            Some(gb) => {
                let device =
                    network::root_device(&ctx.clients.ec2, &image).await.map_err(|e| e.diagnostic(req.address, "read the image"))?;
                Some((device, gb))
            }
            None => None,
        };
        Ok(Like {
            instance_type,
            image,
            subnet_id,
            disk,
            security_group_ids: str_list(req.prior, "security_group_ids"),
            key_name: str_attr(req.prior, "key_name").unwrap_or_default().to_string(),
            instance_profile: prior.instance_profile,
            market: prior.market,
        })
    }

    /// Launches `ranks` in `market`.
    async fn launch(
        &self,
        ctx: &Ctx,
        address: &str,
        planned: &Spec,
        token: &str,
        ranks: &[u64],
        market: Market,
    ) -> Result<Vec<Node>, LaunchError> {
        let launch = Launch {
            address,
            token,
            client_token: None,
            image: &self.image,
            subnet_id: &self.subnet_id,
            security_group_ids: &self.security_group_ids,
            key_name: &self.key_name,
            market,
            disk: self.disk.clone(),
            user_tags: &planned.tags,
            ranks,
            instance_profile: self.instance_profile.as_deref(),
            user_data: &crate::job::user_data(&ctx.clients.region, ctx.clients.endpoint.as_deref()),
        };
        launch.launch(&ctx.clients.ec2, std::slice::from_ref(&self.instance_type)).await.map(|(_, n)| n)
    }
}

/// Writes the user's tags on every instance when they changed, removing dropped keys.
async fn retag(ctx: &Ctx, req: &UpdateRequest<'_>, planned: &Spec, nodes: &[Node]) -> Result<(), Diagnostic> {
    let prior = crate::util::str_map(req.prior, "tags");
    if prior == planned.tags || nodes.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = nodes.iter().map(|n| n.id.clone()).collect();
    let ec2 = &ctx.clients.ec2;
    let dropped: Vec<aws_sdk_ec2::types::Tag> = prior
        .iter()
        .filter(|(k, _)| !planned.tags.iter().any(|(p, _)| p == k))
        .map(|(k, _)| aws_sdk_ec2::types::Tag::builder().key(k).build())
        .collect();
    if !dropped.is_empty() {
        ec2.delete_tags()
            .set_resources(Some(ids.clone()))
            .set_tags(Some(dropped))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(e).diagnostic(req.address, "remove tags"))?;
    }
    if !planned.tags.is_empty() {
        let tags = planned.tags.iter().map(|(k, v)| network::tag(k, v)).collect();
        ec2.create_tags()
            .set_resources(Some(ids))
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(e).diagnostic(req.address, "write tags"))?;
    }
    Ok(())
}

async fn delete(ctx: &Ctx, req: &DeleteRequest<'_>) -> Result<(), Diagnostic> {
    let ec2 = &ctx.clients.ec2;
    let ids = recorded_ids(req.prior);
    instances::terminate(ec2, &ids).await.map_err(|e| e.diagnostic(req.address, "terminate instances"))?;
    if !ids.is_empty() {
        instances::wait(ec2, &ids, |n| n.state == "terminated").await.map_err(|e| e.diagnostic(req.address, "wait for termination"))?;
    }
    let sgs = str_list(req.prior, "security_group_ids");
    network::delete_own_security_groups(ec2, req.address, &sgs)
        .await
        .map_err(|e| e.diagnostic(req.address, "delete the security group"))?;
    if let Some(key) = str_attr(req.prior, "key_name").filter(|k| !k.is_empty()) {
        network::delete_own_key_pair(ec2, req.address, key).await.map_err(|e| e.diagnostic(req.address, "delete the key pair"))?;
    }
    Ok(())
}

/// One item of a batched read, against every kiln instance of the region.
fn read_item(item: &ReadItem<'_>, all: &std::collections::HashMap<&str, &Node>) -> ReadResult {
    let ids = recorded_ids(item.state);
    let mut lost: Vec<Value> = item.state.get("lost").and_then(Value::as_list).map(<[Value]>::to_vec).unwrap_or_default();
    let mut live = Vec::new();
    for id in &ids {
        match all.get(id.as_str()) {
            Some(n) if n.live() => match &n.notice {
                // EC2 takes it back in about two minutes: replaced now, so that a job restarted
                // meanwhile does not start on it (its agent would stop it at once, for the same
                // notice). EC2 terminates it; a job still on it writes its last checkpoint.
                Some(code) => lost.push(lost_entry(n.rank, id, code)),
                None => live.push((*n).clone()),
            },
            Some(n) => lost.push(lost_entry(n.rank, id, &n.reason)),
            None => lost.push(lost_entry(None, id, "gone")),
        }
    }
    let wanted = u64_attr(item.state, "nodes").unwrap_or(1);
    if live.is_empty() && wanted > 0 && !lost.iter().any(taken_by_aws) {
        return ReadResult::gone();
    }
    ReadResult::found(view(item.state, &live, lost))
}

async fn recover(ctx: &Ctx, req: &RecoverRequest<'_>) -> Result<Option<Value>, Diagnostic> {
    let ec2 = &ctx.clients.ec2;
    let mut nodes = instances::describe_by_token(ec2, req.token).await.map_err(|e| e.diagnostic(req.address, "look for instances"))?;
    if nodes.is_empty() {
        network::delete_by_token(ec2, req.token).await.map_err(|e| e.diagnostic(req.address, "clean up an interrupted create"))?;
        return Ok(None);
    }
    settle_ranks(ctx, req.address, &mut nodes).await?;
    let ids: Vec<String> = nodes.iter().map(|n| n.id.clone()).collect();
    let nodes = instances::wait_started(ec2, &ids).await.map_err(|e| e.diagnostic(req.address, "wait for instances"))?;
    let mut base = attrs(req.planned);
    // The private key of a key pair kiln made was only ever in the lost create's answer.
    base.insert("ssh_private_key".into(), Value::from(""));
    Ok(Some(view(&Value::Map(base), &nodes, Vec::new())))
}

#[async_trait]
impl Kind<Ctx, AllInstances> for Cluster {
    fn name(&self) -> &'static str {
        "cluster"
    }

    fn schema(&self) -> KindSchema {
        KindSchema::new("EC2 instances, one per node", crate::schema::cluster())
    }

    fn validate(&self, config: &Value) -> Diagnostics {
        let mut d = Spec::parse(config).err().map(invalid).unwrap_or_default();
        if let Some(msg) = spec::conflicts(config) {
            d.push(Diagnostic::error("E-AWS-CLUSTER", msg));
        }
        if let Err(e) = spec::candidates(config) {
            d.extend(invalid(vec![e]));
        }
        d
    }

    async fn plan(&self, ctx: &Ctx, req: &PlanRequest<'_>) -> Outcome<PlanResponse> {
        let planned = plan(ctx, req).await?;
        Ok(PlanResponse { diagnostics: spec::ssh_warning(req.address, &planned), planned, requires_replace: Vec::new() })
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

    /// One DescribeInstances call per 1,000 kiln instances in the region, whatever the number
    /// of clusters.
    async fn read(&self, ctx: &Ctx, items: &[&ReadItem<'_>], all: &instances::AllInstances) -> Outcome<Vec<ReadResult>> {
        if items.iter().all(|i| recorded_ids(i.state).is_empty()) {
            return Ok(items.iter().map(|i| ReadResult::found(i.state.clone())).collect());
        }
        Ok(match all.get(&ctx.clients.ec2).await {
            Ok(nodes) => {
                let by_id = nodes.iter().map(|n| (n.id.as_str(), n)).collect();
                items.iter().map(|i| read_item(i, &by_id)).collect()
            }
            Err(e) => items
                .iter()
                .map(|i| ReadResult { state: Some(i.state.clone()), diagnostics: e.diagnostic(i.address, "describe instances").into() })
                .collect(),
        })
    }

    async fn recover(&self, ctx: &Ctx, req: &RecoverRequest<'_>) -> Outcome<ReadResult> {
        Ok(recover(ctx, req).await?.map_or_else(ReadResult::gone, ReadResult::found))
    }

    async fn shell(&self, ctx: &Ctx, req: &kiln_provider::ShellRequest<'_>) -> Outcome<kiln_provider::ShellAccess> {
        Ok(crate::ssh::shell(ctx, req).await?)
    }

    async fn import(&self, _ctx: &Ctx, req: &ImportRequest<'_>) -> Outcome<ReadResult> {
        Err(error("E-AWS-IMPORT", req.address, "importing an aws cluster is not supported yet")
            .hint("declare the cluster and run `kiln apply`; terminate the old instances yourself")
            .into())
    }
}
