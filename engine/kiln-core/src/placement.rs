//! Placement in the walk (issue 14): blocks that opt in are placed by the optimizer
//! (`kiln-place`) among the configured providers at plan time; apply uses the plan's decision.
//!
//! A `cluster` or `spot_pool` opts in with a `placement { providers, regions, exclude }` block
//! or `provider = auto`; a block with neither keeps its meaning (the `local` default), so
//! configuring a cloud never moves a cluster onto paid capacity by surprise. The candidates are
//! the configured provider blocks whose provider serves the kind (never `local` or `kiln`). A
//! job without `provider` whose `cluster` is a placed cluster follows it, and so does a bucket
//! without `provider` that only its jobs use (other than as `data`) while it does not exist yet.
//!
//! The request (`accelerators`, `cpus`, `memory`, `nodes` or `capacity`, `spot` = true |
//! false | "auto", `max_price`) and the `placement` block are evaluated apart from the body
//! the provider sees: that body has no `placement` block, and `spot` and `max_price` reach it
//! only where its schema has them, as the decision says (`spot`: the chosen market). Where the
//! schema has `instance_type` (aws's `cluster`) it is set to the chosen type, in place of the
//! request it resolves; `instance_types` (aws's `spot_pool`) and `instance_type_candidates`
//! (aws's `cluster`: what a create tries after `instance_type`) to the chosen type and its
//! fallbacks. A provider with neither launches what its request finds (owned hardware), and
//! the plan lists fallbacks only where the provider can launch them.
//!
//! A decision is recorded in state with the object (`Billing::placement`, with a digest of the
//! request): a later plan keeps it while the request is unchanged, whatever prices do;
//! `--replan-placement` asks for a new one. The data of the jobs on a placed block (their
//! `data` blocks, [`data`]) joins its request and digest.

pub mod data;

use kiln_config::{Body, Resource};
use kiln_diag::{Diagnostic, Diagnostics};
use kiln_plan::PlacedOffering;
use kiln_provider::portable::request::Request;
use kiln_schema::{Attribute, Block, Body as SchemaBody, KindSchema, Nesting};
use kiln_value::{Decimal, Type, Value};
use sha2::Digest;

use crate::instance::Part;
use crate::providers::ProviderRegistry;

/// The nested block that opts a block into placement.
pub const BLOCK: &str = "placement";
/// Attributes the walk reads for placement and passes on only where the provider has them.
const TAKEN: [&str; 2] = ["spot", "max_price"];
/// The kinds placement serves.
pub const KINDS: [&str; 2] = ["cluster", "spot_pool"];

/// Whether a resource block opts into placement.
pub fn opts_in(r: &Resource) -> bool {
    r.provider.as_ref().is_some_and(|p| p.name == "auto" && p.alias.is_none()) || r.body.blocks.iter().any(|b| b.ident == BLOCK)
}

/// The provider blocks a placed block of `kind` may land on: configured providers that serve
/// the kind, except the embedded ones.
pub fn candidates(config: &kiln_config::Config, registry: &ProviderRegistry, kind: &str) -> Vec<String> {
    let mut keys: Vec<String> = config
        .root
        .module
        .providers
        .iter()
        .filter(|p| !["local", "kiln"].contains(&p.name.as_str()))
        .filter(|p| registry.schema(&p.name).is_some_and(|s| s.kinds.contains_key(kind)))
        .map(|p| p.key())
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// The part of the body the chosen provider sees: without the `placement` block and the
/// attributes placement takes (set again from the decision by [`apply_choice`]).
pub(crate) const PROVIDER_PART: Part = Part { attr: |n| !TAKEN.contains(&n), block: |n| n != BLOCK };

/// The attributes placement reads.
const META_ATTRS: [&str; 7] = ["accelerators", "cpus", "memory", "nodes", "capacity", "spot", "max_price"];

/// The part of the body placement reads (its schema: [`meta_schema`]).
pub(crate) const META_PART: Part = Part { attr: |n| META_ATTRS.contains(&n), block: |n| n == BLOCK };

/// [`META_PART`] of `body` as a body of its own.
pub fn meta_body(body: &Body) -> Body {
    Body {
        attrs: body.attrs.iter().filter(|a| (META_PART.attr)(&a.name)).cloned().collect(),
        blocks: body.blocks.iter().filter(|b| (META_PART.block)(&b.ident)).cloned().collect(),
    }
}

pub fn meta_schema() -> &'static SchemaBody {
    static SCHEMA: std::sync::LazyLock<SchemaBody> = std::sync::LazyLock::new(build_meta_schema);
    &SCHEMA
}

fn build_meta_schema() -> SchemaBody {
    let strings = || Type::List(Box::new(Type::String));
    let placement = SchemaBody::new()
        .attr(
            "providers",
            Attribute::optional(strings(), "Provider blocks (or clouds) it may use, such as [\"aws\", \"aws.west\"]; the cheapest wins"),
        )
        .attr(
            "prefer",
            Attribute::optional(
                strings(),
                "Provider blocks (or clouds) it may use, in order of preference: an earlier one wins over a cheaper later one",
            ),
        )
        .attr("regions", Attribute::optional(strings(), "Regions it may use; rows without a region (RunPod's) pass"))
        .attr("exclude", Attribute::optional(strings(), "Instance types, regions, clouds or providers to leave out"));
    SchemaBody::new()
        .attr("accelerators", Attribute::optional(Type::Any, kiln_provider::portable::request::ACCELERATORS_DOC))
        .attr("cpus", Attribute::optional(Type::Any, kiln_provider::portable::request::CPUS_DOC))
        .attr("memory", Attribute::optional(Type::Any, kiln_provider::portable::request::MEMORY_DOC))
        .attr("nodes", Attribute::optional(Type::Number, "Nodes"))
        .attr("capacity", Attribute::optional(Type::Number, "Instances of a spot pool"))
        .attr("spot", Attribute::optional(Type::Any, "true, false, or \"auto\" (spot first, on-demand when none)"))
        .attr("max_price", Attribute::optional(Type::Number, "Highest price per node-hour, in USD"))
        .block(
            BLOCK,
            Block {
                nesting: Nesting::Single,
                body: placement,
                min_items: 0,
                max_items: Some(1),
                force_new: false,
                description: "Where the optimizer may place it",
            },
        )
}

/// What placement reads of one instance: the optimizer's input, how the request reads, and
/// its digest (a recorded decision stands while the digest is the same).
#[derive(Clone)]
pub struct Meta {
    pub need: kiln_place::Need,
    pub describe: String,
    pub digest: String,
}

/// What an instance's request reads as (the evaluated [`META_PART`] of its block, of `kind`;
/// errors name the attribute), once per distinct request in a plan: the instances whose
/// evaluated request is the same (the same kind, the same JSON) share one [`Meta`],
/// so its parse, description and digest are not made again for each of them.
#[derive(Default)]
pub struct Metas(std::collections::HashMap<Vec<u8>, std::sync::Arc<Meta>>);

impl Metas {
    /// The reading of `v`, made once per distinct request.
    pub fn read(&mut self, v: &Value, kind: &str) -> Result<std::sync::Arc<Meta>, Diagnostics> {
        known(v)?;
        let json = request_json(v);
        let mut key = Vec::with_capacity(kind.len() + 1 + json.len());
        key.extend_from_slice(kind.as_bytes());
        key.push(0);
        key.extend_from_slice(&json);
        if let Some(m) = self.0.get(&key) {
            return Ok(m.clone());
        }
        let m = std::sync::Arc::new(read_meta(v, kind, &json)?);
        self.0.insert(key, m.clone());
        Ok(m)
    }
}

/// The request's JSON, as its digest reads it: marks are not part of the request (the same
/// JSON as the unmarked value's).
fn request_json(v: &Value) -> Vec<u8> {
    let json = match v.contains_sensitive() {
        true => serde_json::to_vec(&v.clone().unmark_deep().0),
        false => serde_json::to_vec(v),
    };
    json.unwrap_or_default()
}

/// An error unless the request is known at plan time.
fn known(v: &Value) -> Result<(), Diagnostics> {
    if Request::is_unknown(v)
        || ["nodes", "capacity", "spot", "max_price", BLOCK].iter().any(|k| v.get(k).is_some_and(Value::contains_unknown))
    {
        let mut diags = Diagnostics::new();
        diags.push(Diagnostic::error("E-PLACEMENT", "placement needs the request known at plan time").hint(
            "use variables or locals known at plan time in `accelerators`, `cpus`, `memory`, `nodes`, `spot`, `max_price` and `placement`",
        ));
        return Err(diags);
    }
    Ok(())
}

/// The reading of a known request of `kind` whose JSON is `json`.
fn read_meta(v: &Value, kind: &str, json: &[u8]) -> Result<Meta, Diagnostics> {
    let code = "E-PLACEMENT";
    let mut diags = Diagnostics::new();
    let request = match Request::parse(v) {
        Ok(r) => r,
        Err(errs) => return Err(kiln_provider::portable::request::diagnostics(&errs, code)),
    };
    let count_attr = if kind == "spot_pool" { "capacity" } else { "nodes" };
    let nodes = match v.get(count_attr).map(Value::unmarked) {
        None | Some(Value::Null) => 1,
        Some(Value::Number(n)) if *n >= Decimal::ONE && n.fract().is_zero() => n.to_string().parse::<u64>().unwrap_or(1),
        Some(other) => {
            diags.push(
                Diagnostic::error(code, format!("`{count_attr}` must be a whole number of at least 1, got {}", other.type_name()))
                    .attribute(count_attr),
            );
            1
        }
    };
    let spot = match v.get("spot").map(Value::unmarked) {
        None | Some(Value::Null) | Some(Value::Bool(false)) => kiln_place::SpotMode::Never,
        Some(Value::Bool(true)) => kiln_place::SpotMode::Always,
        Some(Value::String(s)) if s == "auto" => kiln_place::SpotMode::Auto,
        Some(other) => {
            diags.push(
                Diagnostic::error(
                    code,
                    format!(
                        "`spot` must be true, false or \"auto\", got {}",
                        other.to_template_string().unwrap_or_else(|| other.type_name().to_string())
                    ),
                )
                .attribute("spot")
                .hint("spot = \"auto\" launches spot where it is offered and on-demand where it is not"),
            );
            kiln_place::SpotMode::Never
        }
    };
    let max_price = match v.get("max_price").map(Value::unmarked) {
        Some(Value::Number(n)) if *n > Decimal::ZERO => Some(*n),
        None | Some(Value::Null) => None,
        Some(_) => {
            diags.push(Diagnostic::error(code, "`max_price` must be a price per node-hour above 0, in USD").attribute("max_price"));
            None
        }
    };
    let block = v.get(BLOCK).map(Value::unmarked).filter(|b| !matches!(b, Value::Null));
    let list = |name: &str| -> Option<Vec<String>> {
        let l = block?.get(name)?.as_list()?;
        Some(l.iter().filter_map(|x| x.unmarked().as_str().map(str::to_string)).collect())
    };
    if diags.has_errors() {
        return Err(diags);
    }
    if list("providers").is_some() && list("prefer").is_some() {
        diags.push(
            Diagnostic::error(code, "`placement` takes `providers` (cheapest wins) or `prefer` (first wins), not both")
                .attribute(BLOCK)
                .hint("keep one of them"),
        );
        return Err(diags);
    }
    let need = kiln_place::Need {
        request: request.clone(),
        nodes,
        spot,
        max_price,
        providers: list("prefer").or_else(|| list("providers")),
        prefer_order: list("prefer").is_some(),
        regions: list("regions"),
        exclude: list("exclude").unwrap_or_default(),
        data: Vec::new(),
        avoid: Vec::new(),
    };
    let mut describe = vec![request.describe()];
    describe.push(format!("{count_attr} = {nodes}"));
    match spot {
        kiln_place::SpotMode::Always => describe.push("spot = true".into()),
        kiln_place::SpotMode::Auto => describe.push("spot = \"auto\"".into()),
        kiln_place::SpotMode::Never => {}
    }
    if let Some(m) = max_price {
        describe.push(format!("max_price = {m}"));
    }
    describe.retain(|s| !s.is_empty());
    let mut h = sha2::Sha256::new();
    h.update(kind.as_bytes());
    h.update(json);
    Ok(Meta { need, describe: describe.join(", "), digest: hex::encode(h.finalize()) })
}

/// Sets what the decision means in the provider's own attributes (see the module docs).
pub fn apply_choice(config: &mut Value, meta: &Value, chosen: &PlacedOffering, fallbacks: &[PlacedOffering], schema: &KindSchema) {
    let Value::Map(m) = config else { return };
    let has = |k: &str| schema.body.attributes.contains_key(k);
    if has("spot") {
        m.insert("spot".into(), Value::Bool(chosen.spot));
    }
    if has("on_demand_base") && !has("spot") && !chosen.spot {
        // A pool priced on-demand launches on-demand: all of its capacity.
        if let Some(n) = meta.get("capacity").or_else(|| m.get("capacity")).filter(|n| n.unmarked().as_number().is_some()) {
            m.insert("on_demand_base".into(), n.clone());
        }
    } else if has("on_demand_fallback") && meta.get("spot").and_then(|v| v.unmarked().as_str()) == Some("auto") {
        // One vocabulary: `spot = "auto"` is a pool's on-demand fallback.
        m.insert("on_demand_fallback".into(), Value::Bool(true));
    }
    if has("max_price") {
        if let Some(p) = meta.get("max_price").filter(|p| !matches!(p, Value::Null)) {
            m.insert("max_price".into(), p.clone());
        }
    }
    if has("instance_type") {
        // The type is the request resolved: a provider that takes either refuses both.
        for k in kiln_provider::portable::request::ATTRIBUTES {
            m.remove(k);
        }
        m.insert("instance_type".into(), Value::from(chosen.instance_type.as_str()));
    }
    // The chosen type and its fallbacks of the same market, in order: a pool's types, or what
    // a cluster's create tries after `instance_type` (aws's `instance_type_candidates`).
    for k in ["instance_types", "instance_type_candidates"].into_iter().filter(|k| has(k)) {
        let mut types = vec![chosen.instance_type.clone()];
        for f in fallbacks.iter().filter(|f| f.spot == chosen.spot) {
            if !types.contains(&f.instance_type) {
                types.push(f.instance_type.clone());
            }
        }
        m.insert(k.into(), Value::List(types.into_iter().map(Value::from).collect()));
    }
}

/// A decision as state records it.
pub fn to_value(p: &PlacedOffering) -> Value {
    serde_json::to_value(p).map(|j| Value::from_json(&j)).unwrap_or(Value::Null)
}

/// A decision state recorded.
pub fn from_value(v: &Value) -> Option<PlacedOffering> {
    serde_json::from_value(v.to_json()).ok()
}

/// An instance's decision as the walk uses it: the offering and its fallbacks (shared by the
/// instances of one decision), and the request values it was made from.
#[derive(Debug, Clone)]
pub struct Chosen {
    pub choice: std::sync::Arc<Choice>,
    pub meta: Value,
}

/// The offering a decision chose and its fallbacks.
#[derive(Debug)]
pub struct Choice {
    pub offering: PlacedOffering,
    pub fallbacks: Vec<PlacedOffering>,
}

impl Chosen {
    pub fn new(offering: PlacedOffering, fallbacks: Vec<PlacedOffering>, meta: Value) -> Self {
        Chosen { choice: std::sync::Arc::new(Choice { offering, fallbacks }), meta }
    }
}

/// The provider `key` a job following a placed cluster goes to: the one provider its
/// instances went to (`None`: none was placed, such as when its planning failed).
pub fn followed_provider(
    placed: &std::collections::HashMap<kiln_addrs::InstanceAddr, Chosen>,
    cluster: &kiln_addrs::ResourceAddr,
) -> Result<Option<String>, Diagnostic> {
    let keys: std::collections::BTreeSet<&str> =
        placed.iter().filter(|(a, _)| &a.resource == cluster).map(|(_, c)| c.choice.offering.provider.as_str()).collect();
    match keys.len() {
        0 => Ok(None),
        1 => Ok(keys.into_iter().next().map(str::to_string)),
        _ => Err(Diagnostic::error(
            "E-PLACEMENT-FOLLOW",
            format!(
                "the instances of `{cluster}` were placed on different providers ({})",
                keys.into_iter().collect::<Vec<_>>().join(", ")
            ),
        )
        .hint("give the job `provider = NAME`, or restrict the cluster's placement to one provider")),
    }
}

#[cfg(test)]
mod choice_tests {
    use super::*;

    fn offering(instance_type: &str, spot: bool) -> PlacedOffering {
        PlacedOffering {
            provider: "aws".into(),
            cloud: "aws".into(),
            instance_type: instance_type.into(),
            region: Some("us-east-1".into()),
            zone: None,
            spot,
            accelerators: Some("T4:1".into()),
            vcpus: 4,
            memory_gib: Decimal::from(16),
            price_hourly: Decimal::ONE,
            nodes: 1,
            egress_usd: None,
        }
    }

    /// A cluster that lists what its create tries (aws's `instance_type_candidates`) gets the
    /// chosen type first, then the fallbacks of the same market, in order.
    #[test]
    fn a_cluster_tries_the_chosen_type_then_its_fallbacks_of_the_same_market() {
        let body = SchemaBody::new()
            .attr("instance_type", Attribute::optional_computed(Type::String, "type"))
            .attr("instance_type_candidates", Attribute::optional_computed(Type::List(Box::new(Type::String)), "tried"))
            .attr("spot", Attribute::optional(Type::Any, "spot"))
            .attr("accelerators", Attribute::optional(Type::Any, "request"));
        let schema = KindSchema::new("a cluster", body);
        let mut config = Value::from_json(&serde_json::json!({ "accelerators": "T4:1" }));
        let meta = Value::from_json(&serde_json::json!({ "spot": "auto" }));
        let fallbacks = [offering("b", true), offering("a", false), offering("c", true)];
        apply_choice(&mut config, &meta, &offering("a", true), &fallbacks, &schema);
        assert_eq!(
            config.to_json(),
            serde_json::json!({ "instance_type": "a", "instance_type_candidates": ["a", "b", "c"], "spot": true })
        );
    }

    /// A spot pool (aws's: spot unless `on_demand_base` says otherwise) launches in the market
    /// the decision priced: all of it on-demand when on-demand was chosen, spot with an
    /// on-demand fallback for `spot = "auto"` when spot was.
    #[test]
    fn a_pool_launches_in_the_market_it_was_priced_in() {
        let body = SchemaBody::new()
            .attr("capacity", Attribute::required(Type::Number, "instances"))
            .attr("on_demand_base", Attribute::optional(Type::Number, "on-demand instances"))
            .attr("on_demand_fallback", Attribute::optional(Type::Bool, "fill with on-demand"))
            .attr("instance_types", Attribute::optional_computed(Type::List(Box::new(Type::String)), "types"));
        let schema = KindSchema::new("a pool", body);
        let chosen_in = |spot: &str, chosen_spot: bool| {
            let mut config = Value::from_json(&serde_json::json!({ "capacity": 4 }));
            let meta =
                Value::from_json(&serde_json::json!({ "capacity": 4, "spot": serde_json::from_str::<serde_json::Value>(spot).unwrap() }));
            apply_choice(&mut config, &meta, &offering("a", chosen_spot), &[], &schema);
            config.to_json()
        };
        assert_eq!(
            chosen_in("false", false),
            serde_json::json!({ "capacity": 4, "on_demand_base": 4, "instance_types": ["a"] }),
            "priced on-demand: every instance on-demand"
        );
        assert_eq!(chosen_in("\"auto\"", false)["on_demand_base"], 4, "auto, on-demand cheaper");
        assert_eq!(chosen_in("\"auto\"", true), serde_json::json!({ "capacity": 4, "on_demand_fallback": true, "instance_types": ["a"] }));
        assert_eq!(chosen_in("true", true), serde_json::json!({ "capacity": 4, "instance_types": ["a"] }));
    }
}
