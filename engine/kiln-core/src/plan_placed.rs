//! The planner's side of placement (`crate::placement`): each instance of a placed resource is
//! placed (or keeps the decision state recorded), then planned by the provider it went to.

use std::sync::Arc;

use kiln_addrs::{InstanceAddr, ResourceAddr};
use kiln_diag::Diagnostic;
use kiln_plan::{Action, ChangeCost, Cost, PlacedOffering, Placement, PlanCost, PlannedChange};
use kiln_provider::offerings::Offerings;
use kiln_value::{Decimal, Value};

use super::Planner;
use crate::instance::eval_part;
use crate::placement::{self, Choice, Chosen};

impl Planner<'_> {
    /// A resource that opts into placement: every instance placed, then planned by the chosen
    /// provider.
    pub(super) async fn placed_resource(&mut self, addr: &ResourceAddr) {
        let r = self.cx.resource(addr);
        let Some(deps) = self.planned_dependencies(addr) else { return };
        let Some(keys) = self.checked_instance_keys(addr) else { return };
        let mut values = Vec::new();
        let mut insts = Vec::new();
        let mut failed = false;
        for (ik, rep) in keys {
            let iaddr = addr.instance(ik.clone());
            self.visited.insert(iaddr.clone());
            insts.push(iaddr.clone());
            let value = match self.place_instance(&iaddr, rep.clone()).await {
                Some((key, provider, schema)) => self.plan_instance(r, &iaddr, rep, &schema, &key, provider.as_ref(), &deps).await,
                None => None,
            };
            values.push((
                ik,
                value.unwrap_or_else(|| {
                    failed = true;
                    Value::Unknown
                }),
            ));
        }
        self.planned_resource(addr, values, insts, failed);
    }

    /// Places one instance: the decision state recorded while its request is unchanged (and
    /// `--replan-placement` was not given), else the optimizer's. The provider it goes to.
    async fn place_instance(
        &mut self,
        iaddr: &InstanceAddr,
        rep: crate::scope::Repetition,
    ) -> Option<(String, Arc<dyn kiln_provider::Provider>, kiln_schema::KindSchema)> {
        let r = self.cx.resource(&iaddr.resource);
        let at = |d: Diagnostic| crate::instance::locate(d, r).or_at(Some(r.span.clone())).or_address(iaddr.to_string());
        let scope = self.cx.scope(&iaddr.resource.module, rep);
        let meta_v = match eval_part(&r.body, placement::META_PART, placement::meta_schema(), &scope, &r.span) {
            Ok(v) => v,
            Err(d) => {
                self.cx.diags.extend(d.with_address(&iaddr.to_string()));
                return None;
            }
        };
        let meta = match self.metas.read(&meta_v, &r.kind) {
            Ok(m) => m,
            Err(d) => {
                self.cx.diags.extend(d.into_iter().map(at));
                return None;
            }
        };
        let data = self.data_of(&iaddr.resource).await?;
        let avoid = self.options.avoid.iter().find(|(a, _)| a == iaddr).map(|(_, v)| v.clone()).unwrap_or_default();
        let meta = match data.is_empty() && avoid.is_empty() {
            true => meta,
            false => {
                let mut m = placement::Meta::clone(&meta);
                placement::data::join(&mut m, data);
                m.need.avoid = avoid;
                Arc::new(m)
            }
        };
        let candidates = self.cx.graph.placed.get(&iaddr.resource).cloned().unwrap_or_default();
        let prior = self.state.resources.get(iaddr);
        if let Some(p) = prior {
            // Its object is where state says, whatever the configuration allows now.
            self.ensure_provider(&p.provider).await;
        }
        let recorded: Option<(PlacedOffering, Vec<PlacedOffering>)> = prior
            .and_then(|p| p.billing.as_ref().map(|b| (p, b)))
            .filter(|(p, b)| b.request_digest == meta.digest && candidates.contains(&p.provider))
            .and_then(|(p, b)| {
                let chosen = b.placement.as_ref().and_then(placement::from_value).filter(|c| c.provider == p.provider)?;
                Some((chosen, b.fallbacks.iter().filter_map(placement::from_value).collect()))
            });
        let (mut decision, shared) = match recorded {
            Some((rec, fallbacks)) if !self.options.replan && meta.need.avoid.is_empty() => (
                Placement {
                    address: iaddr.clone(),
                    request: meta.describe.clone(),
                    chosen: rec,
                    fallbacks,
                    alternatives: Vec::new(),
                    notes: vec!["kept: the request is unchanged (`--replan-placement` asks for a new decision)".into()],
                    kept: true,
                    moved_from: None,
                    request_digest: meta.digest.clone(),
                },
                None,
            ),
            recorded => {
                self.ask_offers(&candidates).await;
                // One decision per distinct request (the digest covers the kind, the request and
                // the placement block; the candidates are the kind's, the same all plan long):
                // the instances of a `count` share it, fitted to its provider once.
                let mut decided_key = match r.mode {
                    kiln_addrs::Mode::Data => format!("{}\0data", meta.digest),
                    _ => meta.digest.clone(),
                };
                for a in &meta.need.avoid {
                    decided_key.push_str(&format!("\0avoid {a}"));
                }
                if !self.decided.contains_key(&decided_key) {
                    // Borrowed from the plan's offerings: copying them for every instance was
                    // most of a placed plan's time beside the decision (bench_placement).
                    let mut cands: Vec<kiln_place::Candidate<'_>> =
                        Vec::with_capacity(candidates.iter().map(|k| self.offers[k].len()).sum());
                    for k in &candidates {
                        cands.extend(self.offers[k].iter().map(|(o, m)| kiln_place::Candidate { provider: k, offering: o, model: *m }));
                    }
                    let d = kiln_place::decide(&meta.need, &cands).map(|mut d| {
                        let key = d.chosen.provider.clone();
                        if let Some(schema) = self.cx.kind_schema_ref(&key, r) {
                            fit_to_provider(&key, schema, &d.chosen, &mut d.fallbacks, &mut d.notes);
                        }
                        let choice = Arc::new(Choice { offering: d.chosen.clone(), fallbacks: d.fallbacks.clone() });
                        (d, choice)
                    });
                    self.decided.insert(decided_key.clone(), d);
                }
                match &self.decided[&decided_key] {
                    Ok((d, choice)) => {
                        let moved_from = recorded.map(|(rec, _)| rec).filter(|rec| !same_offering(rec, &d.chosen));
                        let placement = Placement {
                            address: iaddr.clone(),
                            request: meta.describe.clone(),
                            chosen: d.chosen.clone(),
                            fallbacks: d.fallbacks.clone(),
                            alternatives: d.alternatives.clone(),
                            notes: d.notes.clone(),
                            kept: false,
                            moved_from,
                            request_digest: meta.digest.clone(),
                        };
                        (placement, Some(choice.clone()))
                    }
                    Err(e) => {
                        self.cx.diags.push(at(e.diagnostic()));
                        return None;
                    }
                }
            }
        };
        let key = decision.chosen.provider.clone();
        let provider = self.ensure_provider(&key).await?;
        let Some(schema) = self.cx.kind_schema(&key, r) else {
            self.cx.unknown_kind(&key, r, &iaddr.resource);
            return None;
        };
        let choice = match shared {
            Some(c) => c,
            None => {
                fit_to_provider(&key, &schema, &decision.chosen, &mut decision.fallbacks, &mut decision.notes);
                Arc::new(Choice { offering: decision.chosen.clone(), fallbacks: decision.fallbacks.clone() })
            }
        };
        self.cx.placed.insert(iaddr.clone(), Chosen { choice, meta: meta_v });
        self.placements.push(decision);
        Some((key, provider, schema))
    }

    /// What provider `key` offers, asked once per plan (placement and cost lines share the
    /// answer: an owned provider's is a scan of its hardware); `None` when it is not configured.
    async fn offerings_of(&mut self, key: &str) -> Option<&Offerings> {
        if !self.answers.contains_key(key) {
            let answer = match self.ensure_provider(key).await {
                Some(p) => {
                    let resp = p.offerings().await;
                    self.cx.diags.extend(resp.diagnostics.with_address(&format!("provider[\"{key}\"]")));
                    Some(resp.offerings)
                }
                None => None,
            };
            self.answers.insert(key.to_string(), answer);
        }
        self.answers[key].as_ref()
    }

    /// Each candidate provider's offerings as rows, once per plan (into `self.offers`).
    async fn ask_offers(&mut self, keys: &[String]) {
        for k in keys {
            if !self.offers.contains_key(k) {
                let rows = match self.offerings_of(k).await.cloned() {
                    None | Some(Offerings::None) => Vec::new(),
                    Some(Offerings::Owned(rows)) => rows,
                    Some(Offerings::Catalog { cloud, regions }) => self
                        .catalog()
                        .cloud(&cloud)
                        .filter(|o| regions.as_ref().is_none_or(|rs| o.region.as_ref().is_none_or(|r| rs.contains(r))))
                        .cloned()
                        .collect(),
                };
                let rows = rows
                    .into_iter()
                    .map(|o| {
                        let model = kiln_catalog::matching::model_of(&o);
                        (o, model)
                    })
                    .collect();
                self.offers.insert(k.clone(), rows);
            }
        }
    }

    /// The catalog of this plan: the command's, or the one kiln ships.
    pub(super) fn catalog(&self) -> &kiln_catalog::Catalog {
        self.options.catalog.as_deref().unwrap_or_else(|| kiln_catalog::Catalog::shipped())
    }

    /// The data the jobs on placed resource `addr` read (`Graph::data`): each `size_gb`
    /// evaluated in its job's module, each bucket where its provider keeps it. `None`
    /// (reported) when a size is not a known number above 0.
    async fn data_of(&mut self, addr: &ResourceAddr) -> Option<Vec<kiln_place::Data>> {
        let sources = self.cx.graph.data.get(addr).cloned().unwrap_or_default();
        let mut out = Vec::new();
        let mut failed = false;
        for s in &sources {
            match placement::data::size_gb(s, &self.cx.scope(&s.job.module, crate::scope::Repetition::None)) {
                Ok(size_gb) => {
                    let origin = self.origin_of(&s.provider).await;
                    out.push(kiln_place::Data { name: s.bucket.to_string(), origin, size_gb });
                }
                Err(d) => {
                    self.cx.diags.extend(d);
                    failed = true;
                }
            }
        }
        (!failed).then_some(out)
    }

    /// Where provider `key` keeps data: the embedded `local` provider on this machine; a cloud
    /// in its region (its offerings' answer); anything else on its own hardware.
    async fn origin_of(&mut self, key: &str) -> kiln_place::Origin {
        if crate::is_this_machine(key) {
            return kiln_place::Origin::ThisMachine;
        }
        match self.offerings_of(key).await {
            Some(Offerings::Catalog { cloud, regions }) => {
                kiln_place::Origin::Cloud { cloud: cloud.clone(), region: regions.as_ref().and_then(|r| r.first().cloned()) }
            }
            _ => kiln_place::Origin::Owned { provider: key.to_string() },
        }
    }

    /// The provider a job or bucket following a placed cluster goes to. A bucket goes there
    /// only where that provider has buckets, and only when it is created: one that exists stays
    /// where it is (its data is not moved because its cluster was).
    pub(super) fn followed(&mut self, addr: &ResourceAddr) -> Option<String> {
        let cluster = self.cx.graph.follows.get(addr)?;
        if addr.kind == "bucket" {
            if let Some(s) = self.state.resources.iter().find(|(a, _)| &a.resource == addr).map(|(_, s)| s) {
                return Some(s.provider.clone());
            }
        }
        match placement::followed_provider(&self.cx.placed, cluster) {
            Ok(Some(k)) if addr.kind == "bucket" => {
                let r = self.cx.resource(addr);
                self.cx.kind_schema(&k, r).map(|_| k)
            }
            Ok(k) => k,
            Err(d) => {
                self.cx.diags.push(d.or_address(addr.to_string()));
                None
            }
        }
    }
}

/// A decision fitted to the provider it chose (its `schema` of the kind): apply runs what the
/// plan lists, so no fallback the provider cannot launch, and a cluster's create tries its
/// candidates in the chosen market only.
fn fit_to_provider(
    key: &str,
    schema: &kiln_schema::KindSchema,
    chosen: &PlacedOffering,
    fallbacks: &mut Vec<PlacedOffering>,
    notes: &mut Vec<String>,
) {
    let has = |k: &str| schema.body.attributes.contains_key(k);
    if !has("instance_types") && !has("instance_type_candidates") && !fallbacks.is_empty() {
        fallbacks.clear();
        notes.push(format!("`{key}` launches the chosen offering only: no fallbacks"));
    }
    if !has("instance_types") && fallbacks.iter().any(|f| f.spot != chosen.spot) {
        fallbacks.retain(|f| f.spot == chosen.spot);
        notes.push(format!("`{key}` falls back within the chosen market only"));
    }
}

/// Whether two decisions launch the same thing (prices aside).
fn same_offering(a: &PlacedOffering, b: &PlacedOffering) -> bool {
    a.provider == b.provider && a.instance_type == b.instance_type && a.spot == b.spot && a.region == b.region && a.nodes == b.nodes
}

impl Planner<'_> {
    /// Prices every change before and after (`kiln_plan::Cost`; unknown with a reason where
    /// kiln cannot tell, never $0) and totals them.
    pub(super) async fn price(&mut self, changes: &mut [PlannedChange]) -> PlanCost {
        let mut total = PlanCost::default();
        // A placed object costs the dearest offering apply may launch (looked up per change).
        let placed: std::collections::HashMap<InstanceAddr, Decimal> =
            self.placements.iter().map(|p| (p.address.clone(), p.dearest_hourly())).collect();
        for c in changes.iter_mut() {
            let recorded = self.state.resources.get(&c.address).filter(|_| c.deposed.is_none()).and_then(|s| s.billing.as_ref());
            let before = match (&c.before, recorded) {
                (None, _) => None,
                (Some(_), Some(b)) => Some(match b.hourly {
                    Some(usd) => Cost::Hourly { usd },
                    None => Cost::Unknown { reason: "its price was unknown when it was applied".into() },
                }),
                (Some(v), None) => Some(self.cost_of(&c.provider, &c.kind, v).await),
            };
            let after = match &c.after {
                None => None,
                // Unchanged: what it costs now is what was recorded.
                Some(_) if c.action == Action::NoOp && before.is_some() => before.clone(),
                Some(_) if placed.contains_key(&c.address) && placement::KINDS.contains(&c.kind.as_str()) => {
                    Some(Cost::Hourly { usd: placed[&c.address] })
                }
                Some(v) => Some(self.cost_of(&c.provider, &c.kind, v).await),
            };
            for (side, cost) in [(&mut total.before, &before), (&mut total.after, &after)] {
                match cost {
                    Some(Cost::Hourly { usd }) => side.usd += *usd,
                    Some(Cost::Unknown { .. }) => side.unknown.push(c.address.to_string()),
                    Some(Cost::None) | None => {}
                }
            }
            c.cost = Some(ChangeCost { before, after });
        }
        total
    }

    /// The hourly cost of one object of `kind` on provider `key`.
    async fn cost_of(&mut self, key: &str, kind: &str, v: &Value) -> Cost {
        if !placement::KINDS.contains(&kind) {
            return Cost::None;
        }
        if crate::is_this_machine(key) {
            // This machine: nothing to pay by the hour.
            return Cost::Hourly { usd: Decimal::ZERO };
        }
        // Owned hardware prices its objects itself (the hosts or nodes they hold, at the
        // configured prices), without a scan of its capacity.
        if let Some(price) = self.ensure_provider(key).await.and_then(|p| p.hourly_price(kind, v)) {
            return match price {
                Ok(usd) => Cost::Hourly { usd },
                Err(reason) => Cost::Unknown { reason },
            };
        }
        match self.offerings_of(key).await {
            Some(Offerings::Catalog { cloud, regions }) => {
                let (cloud, regions) = (cloud.clone(), regions.clone());
                catalog_cost(self.catalog(), &cloud, regions.as_deref(), kind, v)
            }
            Some(Offerings::Owned(_)) => Cost::Unknown { reason: format!("`{key}` prices owned hardware only when it places a cluster") },
            Some(Offerings::None) => Cost::Unknown { reason: format!("provider `{key}` publishes no prices") },
            None => Cost::Unknown { reason: format!("provider `{key}` is not configured") },
        }
    }
}

/// A cloud object priced from the catalog: a cluster's `instance_type` (or, chosen at apply,
/// the dearest of its `instance_type_candidates`) × `nodes` (spot or on-demand as its recorded
/// `market` says, else spot only with `spot = true`); a spot pool's `capacity`, its `on_demand_base` (and with
/// `on_demand_fallback` all of it) at the dearest on-demand price of its `instance_types`, the
/// rest at their dearest spot price.
fn catalog_cost(catalog: &kiln_catalog::Catalog, cloud: &str, regions: Option<&[String]>, kind: &str, v: &Value) -> Cost {
    let region = regions.and_then(|r| r.first()).map(String::as_str);
    let price = |ty: &str, spot: bool| -> Result<Decimal, String> {
        let row = catalog.cloud(cloud).find(|o| o.instance_type == ty && (region.is_none() || o.region.as_deref() == region));
        let Some(row) = row else {
            return Err(format!("the catalog has no `{ty}` row{}", region.map(|r| format!(" in {r}")).unwrap_or_default()));
        };
        row.price(spot).ok_or_else(|| format!("the catalog has no {} price for `{ty}`", if spot { "spot" } else { "on-demand" }))
    };
    let number = |k: &str| v.get(k).and_then(|n| n.unmarked().as_number());
    let flag = |k: &str| v.get(k).and_then(|b| b.unmarked().as_bool()).unwrap_or(false);
    let result = match kind {
        "cluster" => {
            // The market it runs on where recorded (aws's `market`); else spot only with
            // `spot = true`: "auto" may launch on-demand, the dearer.
            let spot = match v.get("market").and_then(|m| m.unmarked().as_str()) {
                Some(m) => m == "spot",
                None => flag("spot"),
            };
            // A type chosen at apply costs the dearest it may launch.
            let types: Vec<&str> = match v.get("instance_type").map(Value::unmarked) {
                Some(Value::String(t)) => vec![t.as_str()],
                _ => v
                    .get("instance_type_candidates")
                    .and_then(|l| l.unmarked().as_list())
                    .map(|l| l.iter().filter_map(|t| t.unmarked().as_str()).collect())
                    .unwrap_or_default(),
            };
            if types.is_empty() {
                Err("its instance type is chosen at apply".into())
            } else {
                let prices = types.iter().map(|t| price(t, spot)).collect::<Result<Vec<_>, _>>();
                prices.map(|ps| ps.into_iter().max().unwrap_or_default() * number("nodes").unwrap_or(Decimal::ONE))
            }
        }
        _ => {
            let types: Vec<&str> = v
                .get("instance_types")
                .and_then(|l| l.unmarked().as_list())
                .map(|l| l.iter().filter_map(|t| t.unmarked().as_str()).collect())
                .unwrap_or_default();
            if types.is_empty() {
                Err("its instance types are chosen at apply".to_string())
            } else {
                let dearest = |spot: bool| {
                    types.iter().map(|t| price(t, spot)).collect::<Result<Vec<_>, _>>().map(|ps| ps.into_iter().max().unwrap_or_default())
                };
                let capacity = number("capacity").unwrap_or(Decimal::ONE);
                let base = if flag("on_demand_fallback") { capacity } else { number("on_demand_base").unwrap_or_default().min(capacity) };
                let od = if base > Decimal::ZERO { dearest(false).map(|p| p * base) } else { Ok(Decimal::ZERO) };
                let sp = if capacity > base { dearest(true).map(|p| p * (capacity - base)) } else { Ok(Decimal::ZERO) };
                od.and_then(|a| sp.map(|b| a + b))
            }
        }
    };
    match result {
        Ok(usd) => Cost::Hourly { usd },
        Err(reason) => Cost::Unknown { reason },
    }
}

#[cfg(test)]
mod cluster_cost_tests {
    use super::*;

    fn cost(v: serde_json::Value) -> Cost {
        let regions = ["us-east-2".to_string()];
        catalog_cost(kiln_catalog::Catalog::shipped(), "aws", Some(&regions), "cluster", &Value::from_json(&v))
    }

    fn usd(s: &str) -> Cost {
        Cost::Hourly { usd: s.parse().unwrap() }
    }

    /// A cluster is priced as it may launch: `spot = "auto"` on-demand (the dearer) until a
    /// recorded `market` says which, a type chosen at apply the dearest of its candidates.
    #[test]
    fn a_cluster_costs_the_dearest_it_may_launch() {
        assert_eq!(cost(serde_json::json!({ "instance_type": "g4dn.xlarge", "spot": true, "nodes": 2 })), usd("0.4044"));
        assert_eq!(cost(serde_json::json!({ "instance_type": "g4dn.xlarge", "spot": "auto" })), usd("0.526"));
        assert_eq!(cost(serde_json::json!({ "instance_type": "g4dn.xlarge", "spot": "auto", "market": "spot" })), usd("0.2022"));
        let candidates = serde_json::json!({ "instance_type_candidates": ["g4dn.xlarge", "g4dn.2xlarge"], "spot": true });
        assert_eq!(cost(candidates), usd("0.2649"));
        assert!(matches!(cost(serde_json::json!({ "spot": true })), Cost::Unknown { .. }));
    }
}
