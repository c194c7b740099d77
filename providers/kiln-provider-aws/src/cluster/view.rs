//! The state of a cluster from its instances: IDs and IPs by rank, the resolved placement, the
//! overall state, and the nodes lost since the last apply (spot interruptions among them).

use kiln_value::{Map, Value};

use super::instances::Node;
use crate::util::{attrs, map, num, str_list, strings, u64_attr};

/// The computed creation time, for `kiln status`'s uptime.
pub const CREATED_AT: &str = "created_at";

/// An AWS time as RFC 3339, in whole seconds (UTC).
pub fn rfc3339(t: &aws_sdk_ec2::primitives::DateTime) -> String {
    let secs = std::time::Duration::from_secs(t.secs().max(0) as u64);
    kiln_provider::util::rfc3339(std::time::UNIX_EPOCH + secs)
}

/// `created_at` in a plan: the prior's, or none when the prior has none (a state written
/// before kiln recorded it plans no change; refresh reads it); unknown for a create.
pub fn plan_created_at(m: &mut Map, prior: Option<&Value>) {
    match prior.map(|p| p.get(CREATED_AT).filter(|v| v.as_str().is_some())) {
        Some(Some(t)) => m.insert(CREATED_AT.into(), t.clone()),
        Some(None) => m.remove(CREATED_AT),
        None => m.insert(CREATED_AT.into(), Value::Unknown),
    };
}

/// `created_at` in a state: `base`'s once recorded (it never moves), else what AWS says.
pub fn set_created_at(m: &mut Map, base: &Value, found: Option<&str>) {
    match (base.get(CREATED_AT).filter(|v| v.as_str().is_some()), found) {
        (Some(t), _) => m.insert(CREATED_AT.into(), t.clone()),
        (None, Some(t)) => m.insert(CREATED_AT.into(), t.into()),
        (None, None) => m.remove(CREATED_AT),
    };
}

/// The computed market the instances run on: "spot", "on-demand", or "mixed".
pub const MARKET: &str = "market";

/// `market` in a plan: the prior's while its instances stay; none when the prior has none (a
/// state written before kiln recorded it plans no change; refresh reads it); else what `spot`
/// says, unknown for "auto" (apply tells).
pub fn plan_market(m: &mut Map, prior: Option<&Value>, market: super::spec::Market, relaunch: bool) {
    let recorded = prior.map(|p| p.get(MARKET).filter(|v| v.as_str().is_some()));
    match (recorded, market.planned()) {
        (Some(None), _) => m.remove(MARKET),
        (Some(Some(v)), _) if !relaunch => m.insert(MARKET.into(), v.clone()),
        (_, Some(known)) => m.insert(MARKET.into(), known.into()),
        (_, None) => m.insert(MARKET.into(), Value::Unknown),
    };
}

/// The market of live nodes; `None` without any.
fn market(live: &[&Node]) -> Option<&'static str> {
    let spot = live.iter().filter(|n| n.spot).count();
    match (live.len(), spot) {
        (0, _) => None,
        (n, s) if s == n => Some(super::spec::SPOT),
        (_, 0) => Some(super::spec::ON_DEMAND),
        _ => Some(super::spec::MIXED),
    }
}

/// A node that was in state and is no more: terminated (with its reason) or gone entirely.
pub fn lost_entry(rank: Option<u64>, id: &str, reason: &str) -> Value {
    let node = rank.map_or(Value::Null, num);
    Value::Map(map([("node", node), ("instance_id", id.into()), ("reason", reason.into())]))
}

/// Whether a lost node was taken by AWS (spot interruption or its notice, hardware) rather than
/// by a person.
pub fn taken_by_aws(lost: &Value) -> bool {
    lost.get("reason").and_then(Value::as_str).is_some_and(|r| r.starts_with("Server.") || super::instances::NOTICE_CODES.contains(&r))
}

fn overall(live: &[Node], wanted: u64) -> &'static str {
    if (live.len() as u64) < wanted {
        "degraded"
    } else if live.iter().any(|n| n.state == "pending") {
        "pending"
    } else if live.iter().any(|n| n.state != "running") {
        "stopped"
    } else {
        "running"
    }
}

/// `base` (planned or prior state) with everything the instances tell.
pub fn view(base: &Value, live: &[Node], lost: Vec<Value>) -> Value {
    let wanted = u64_attr(base, "nodes").unwrap_or(1);
    let mut live: Vec<&Node> = live.iter().collect();
    live.sort_by_key(|n| (n.rank.unwrap_or(u64::MAX), n.launch_index));
    let mut m: Map = attrs(base);
    let owned: Vec<Node> = live.iter().map(|n| (*n).clone()).collect();
    m.insert("instance_ids".into(), strings(live.iter().map(|n| n.id.as_str())));
    m.insert("private_ips".into(), strings(live.iter().map(|n| n.private_ip.as_str())));
    m.insert("public_ips".into(), strings(live.iter().map(|n| n.public_ip.as_str())));
    m.insert("state".into(), overall(&owned, wanted).into());
    m.insert("lost".into(), Value::List(lost));
    if let Some(first) = live.first() {
        m.insert("instance_type".into(), first.instance_type.as_str().into());
        m.insert("image".into(), first.image.as_str().into());
        m.insert("subnet_id".into(), first.subnet_id.as_str().into());
        m.insert("zone".into(), first.zone.as_str().into());
        m.insert("security_group_ids".into(), strings(&first.security_group_ids));
        if !first.key_name.is_empty() {
            m.insert("key_name".into(), first.key_name.as_str().into());
        }
    }
    match market(&live) {
        Some(v) => m.insert(MARKET.into(), v.into()),
        // No instance tells: what the plan knew stays, nothing unknown is recorded.
        None if m.get(MARKET).is_some_and(Value::is_unknown) => m.remove(MARKET),
        None => None,
    };
    // When the first of its instances was launched (a node launched later to heal does not
    // move it: a recorded time is kept).
    set_created_at(&mut m, base, live.iter().filter_map(|n| n.launched.as_deref()).min());
    Value::Map(m)
}

/// Instance IDs recorded in a state value.
pub fn recorded_ids(state: &Value) -> Vec<String> {
    str_list(state, "instance_ids")
}
