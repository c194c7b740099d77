//! The EC2 instances of clusters: launching (falling back through candidate types when AWS has
//! no capacity), naming their ranks, describing them in pages of 1,000, terminating them, and
//! waiting for a state.

use std::time::{Duration, Instant};

use aws_sdk_ec2::types::{
    BlockDeviceMapping, EbsBlockDevice, Instance, InstanceInterruptionBehavior, InstanceMarketOptionsRequest, InstanceStateName,
    InstanceType, MarketType, ResourceType, SpotInstanceType, SpotMarketOptions, VolumeType,
};
use aws_sdk_ec2::Client;

use super::network::{filter, tag, tag_spec};
use super::spec::Market;
use crate::error::AwsError;
use crate::util::{TAG_ADDRESS, TAG_NODE, TAG_TOKEN};

/// Instance states in which a node still exists.
pub const LIVE: [&str; 4] = ["pending", "running", "stopping", "stopped"];

/// One instance, as kiln sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub id: String,
    pub rank: Option<u64>,
    pub address: Option<String>,
    pub token: Option<String>,
    pub state: String,
    /// State reason code, such as `Server.SpotInstanceTermination`.
    pub reason: String,
    pub instance_type: String,
    pub image: String,
    pub subnet_id: String,
    pub zone: String,
    pub security_group_ids: Vec<String>,
    pub key_name: String,
    pub private_ip: String,
    pub public_ip: String,
    pub launch_index: i32,
    /// A spot instance (else on-demand).
    pub spot: bool,
    /// When it was launched (RFC 3339).
    pub launched: Option<String>,
    /// When it last changed state by EC2's word (RFC 3339), where its state transition reason
    /// gives a time: "User initiated (2026-12-07 20:06:43 GMT)" after a stop or termination.
    pub transitioned_at: Option<String>,
    /// EC2 gave it a spot interruption notice: its spot request's status code
    /// (`marked-for-termination`, `marked-for-stop`, `marked-for-hibernation`). It still runs
    /// for about two minutes; read by [`describe_all`] only.
    pub notice: Option<String>,
}

impl Node {
    pub fn from_sdk(i: &Instance) -> Node {
        let tag_of = |k: &str| i.tags().iter().find(|t| t.key() == Some(k)).and_then(|t| t.value()).map(str::to_string);
        Node {
            id: i.instance_id().unwrap_or_default().to_string(),
            rank: tag_of(TAG_NODE).and_then(|r| r.parse().ok()),
            address: tag_of(TAG_ADDRESS),
            token: tag_of(TAG_TOKEN),
            state: i.state().and_then(|s| s.name()).map_or("unknown", InstanceStateName::as_str).to_string(),
            reason: i.state_reason().and_then(|r| r.code()).unwrap_or_default().to_string(),
            instance_type: i.instance_type().map_or("", InstanceType::as_str).to_string(),
            image: i.image_id().unwrap_or_default().to_string(),
            subnet_id: i.subnet_id().unwrap_or_default().to_string(),
            zone: i.placement().and_then(|p| p.availability_zone()).unwrap_or_default().to_string(),
            security_group_ids: i.security_groups().iter().filter_map(|g| g.group_id().map(str::to_string)).collect(),
            key_name: i.key_name().unwrap_or_default().to_string(),
            private_ip: i.private_ip_address().unwrap_or_default().to_string(),
            public_ip: i.public_ip_address().unwrap_or_default().to_string(),
            launch_index: i.ami_launch_index().unwrap_or(0),
            spot: i.instance_lifecycle().is_some_and(|l| l.as_str() == "spot"),
            launched: i.launch_time().map(super::view::rfc3339),
            transitioned_at: i.state_transition_reason().and_then(transition_time),
            notice: None,
        }
    }

    pub fn live(&self) -> bool {
        LIVE.contains(&self.state.as_str())
    }
}

/// The time in a state transition reason, `... (YYYY-MM-DD HH:MM:SS GMT)` (or `UTC`), as RFC
/// 3339; `None` for a reason without one.
fn transition_time(reason: &str) -> Option<String> {
    let inner = reason.rsplit_once('(')?.1.strip_suffix(')')?;
    let t = inner.strip_suffix(" GMT").or_else(|| inner.strip_suffix(" UTC"))?;
    let shape: String = t.chars().map(|c| if c.is_ascii_digit() { '9' } else { c }).collect();
    (shape == "9999-99-99 99:99:99").then(|| format!("{}Z", t.replacen(' ', "T", 1)))
}

/// Everything one RunInstances call needs, but the type.
pub struct Launch<'a> {
    pub address: &'a str,
    /// Written as `kiln:token` on every instance and volume.
    pub token: &'a str,
    /// Sent as ClientToken (suffixed per call); `None` for launches outside a create.
    pub client_token: Option<&'a str>,
    pub image: &'a str,
    pub subnet_id: &'a str,
    pub security_group_ids: &'a [String],
    pub key_name: &'a str,
    /// Spot, on-demand, or spot and then on-demand ("auto").
    pub market: Market,
    /// Root device and size in GiB.
    pub disk: Option<(String, u64)>,
    pub user_tags: &'a [(String, String)],
    /// Ranks of the nodes to launch, one instance each.
    pub ranks: &'a [u64],
    /// Instance profile (name or ARN), if any.
    pub instance_profile: Option<&'a str>,
    /// The user data script (starts the kiln agent), as it runs (see [`crate::job::encode_user_data`]).
    pub user_data: &'a str,
}

/// An instance profile given by name or by ARN.
pub fn profile_spec(profile: &str) -> aws_sdk_ec2::types::IamInstanceProfileSpecification {
    let b = aws_sdk_ec2::types::IamInstanceProfileSpecification::builder();
    if profile.starts_with("arn:") { b.arn(profile) } else { b.name(profile) }.build()
}

/// Metadata options of kiln's instances: IMDSv2 only, tags readable (the agent reads `kiln:job`).
pub fn metadata_options() -> aws_sdk_ec2::types::InstanceMetadataOptionsRequest {
    aws_sdk_ec2::types::InstanceMetadataOptionsRequest::builder()
        .http_tokens(aws_sdk_ec2::types::HttpTokensState::Required)
        .instance_metadata_tags(aws_sdk_ec2::types::InstanceMetadataTagsState::Enabled)
        .build()
}

/// Why no candidate type launched.
#[derive(Debug)]
pub enum LaunchError {
    /// Every candidate answered InsufficientInstanceCapacity: `(type, message)` of each (the
    /// type followed by its market when a launch tries both).
    NoCapacity(Vec<(String, String)>),
    Aws(AwsError),
}

impl Launch<'_> {
    fn tags(&self) -> Vec<(String, String)> {
        let mut tags = vec![(TAG_ADDRESS.to_string(), self.address.to_string()), (TAG_TOKEN.to_string(), self.token.to_string())];
        if !self.user_tags.iter().any(|(k, _)| k == "Name") {
            tags.push(("Name".to_string(), self.address.to_string()));
        }
        tags.extend(self.user_tags.iter().cloned());
        tags
    }

    async fn run(&self, ec2: &Client, instance_type: &str, spot: bool, attempt: usize) -> Result<Vec<Instance>, AwsError> {
        let n = self.ranks.len() as i32;
        let tags = self.tags();
        let mut req = ec2
            .run_instances()
            .image_id(self.image)
            .instance_type(InstanceType::from(instance_type))
            .min_count(n)
            .max_count(n)
            .subnet_id(self.subnet_id)
            .set_security_group_ids(Some(self.security_group_ids.to_vec()))
            .tag_specifications(tag_spec(ResourceType::Instance, &tags))
            .tag_specifications(tag_spec(ResourceType::Volume, &tags))
            .user_data(crate::job::encode_user_data(self.user_data))
            .metadata_options(metadata_options())
            .set_iam_instance_profile(self.instance_profile.map(profile_spec));
        if !self.key_name.is_empty() {
            req = req.key_name(self.key_name);
        }
        if let Some(t) = self.client_token {
            // One token per distinct request: AWS refuses a token reused with other parameters.
            req = req.client_token(format!("{t}-{attempt}"));
        }
        if spot {
            let spot = SpotMarketOptions::builder()
                .spot_instance_type(SpotInstanceType::OneTime)
                .instance_interruption_behavior(InstanceInterruptionBehavior::Terminate)
                .build();
            req = req
                .instance_market_options(InstanceMarketOptionsRequest::builder().market_type(MarketType::Spot).spot_options(spot).build());
        }
        if let Some((device, gb)) = &self.disk {
            let ebs = EbsBlockDevice::builder().volume_size(*gb as i32).volume_type(VolumeType::Gp3).delete_on_termination(true).build();
            req = req.block_device_mappings(BlockDeviceMapping::builder().device_name(device).ebs(ebs).build());
        }
        let out = req.send().await.map_err(AwsError::from_sdk)?;
        Ok(out.instances().to_vec())
    }

    /// Launches all ranks with the first candidate type that has capacity, in each market in
    /// turn (`"auto"`: every candidate on spot, then every candidate on-demand); the type used
    /// and the nodes, tagged with their ranks (each node says its market).
    pub async fn launch(&self, ec2: &Client, candidates: &[String]) -> Result<(String, Vec<Node>), LaunchError> {
        let mut tried = Vec::new();
        let markets = self.market.tries();
        let attempts: Vec<(&String, bool)> = markets.iter().flat_map(|spot| candidates.iter().map(move |t| (t, *spot))).collect();
        for (attempt, (t, spot)) in attempts.into_iter().enumerate() {
            match self.run(ec2, t, spot, attempt).await {
                Ok(instances) => {
                    let nodes = self.name_ranks(ec2, &instances).await.map_err(LaunchError::Aws)?;
                    return Ok((t.clone(), nodes));
                }
                Err(e) if e.is("InsufficientInstanceCapacity") => {
                    let what = match markets.len() {
                        1 => t.clone(),
                        _ => format!("{t} {}", if spot { super::spec::SPOT } else { super::spec::ON_DEMAND }),
                    };
                    tried.push((what, e.message));
                }
                Err(e) => return Err(LaunchError::Aws(e)),
            }
        }
        Err(LaunchError::NoCapacity(tried))
    }

    /// Tags each instance with its rank, in launch-index order (one CreateTags call per
    /// instance, as the values differ; RANK_TAGGERS at a time).
    async fn name_ranks(&self, ec2: &Client, instances: &[Instance]) -> Result<Vec<Node>, AwsError> {
        use futures_util::stream::{self, StreamExt, TryStreamExt};
        let mut nodes: Vec<Node> = instances.iter().map(Node::from_sdk).collect();
        nodes.sort_by_key(|n| n.launch_index);
        let pairs: Vec<(String, u64)> = nodes.iter().zip(self.ranks).map(|(n, r)| (n.id.clone(), *r)).collect();
        stream::iter(pairs)
            .map(Ok)
            .try_for_each_concurrent(RANK_TAGGERS, |(id, rank)| async move { tag_rank(ec2, &id, rank).await })
            .await?;
        for (node, rank) in nodes.iter_mut().zip(self.ranks) {
            node.rank = Some(*rank);
        }
        Ok(nodes)
    }
}

/// Rank tags written at once by one launch.
const RANK_TAGGERS: usize = 16;

pub async fn tag_rank(ec2: &Client, id: &str, rank: u64) -> Result<(), AwsError> {
    ec2.create_tags().resources(id).tags(tag(TAG_NODE, &rank.to_string())).send().await.map(|_| ()).map_err(AwsError::from_sdk)
}

/// Every kiln instance of the region, described at most once per refresh: clusters and spot
/// pools read their instances from the same answer.
#[derive(Default)]
pub struct AllInstances(tokio::sync::OnceCell<Result<Vec<Node>, AwsError>>);

impl AllInstances {
    pub async fn get(&self, ec2: &Client) -> Result<&[Node], AwsError> {
        self.0.get_or_init(|| describe_all(ec2)).await.as_deref().map_err(Clone::clone)
    }
}

/// Every instance carrying a `kiln:address` tag, one DescribeInstances call per 1,000, with the
/// spot interruption notices of the live spot ones (one more call, where there are any).
pub async fn describe_all(ec2: &Client) -> Result<Vec<Node>, AwsError> {
    let mut nodes = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let out = ec2
            .describe_instances()
            .filters(filter("tag-key", &[TAG_ADDRESS]))
            .max_results(1000)
            .set_next_token(next)
            .send()
            .await
            .map_err(AwsError::from_sdk)?;
        nodes.extend(out.reservations().iter().flat_map(|r| r.instances()).map(Node::from_sdk));
        next = out.next_token().filter(|t| !t.is_empty()).map(str::to_string);
        if next.is_none() {
            break;
        }
    }
    if nodes.iter().any(|n| n.spot && n.live()) {
        let noticed = noticed(ec2).await?;
        for n in &mut nodes {
            n.notice = noticed.get(&n.id).cloned();
        }
    }
    Ok(nodes)
}

/// Spot request status codes of an interruption notice: EC2 takes the instance back in about
/// two minutes (the same notice the instance's metadata serves its agent).
pub const NOTICE_CODES: [&str; 3] = ["marked-for-termination", "marked-for-stop", "marked-for-hibernation"];

/// Instance ID -> status code, of every spot instance of the region with an interruption notice.
async fn noticed(ec2: &Client) -> Result<std::collections::HashMap<String, String>, AwsError> {
    let mut out = std::collections::HashMap::new();
    let mut next: Option<String> = None;
    loop {
        let page = ec2
            .describe_spot_instance_requests()
            .filters(filter("status-code", &NOTICE_CODES))
            .max_results(1000)
            .set_next_token(next)
            .send()
            .await
            .map_err(AwsError::from_sdk)?;
        for r in page.spot_instance_requests() {
            if let (Some(id), Some(code)) = (r.instance_id(), r.status().and_then(|s| s.code())) {
                out.insert(id.to_string(), code.to_string());
            }
        }
        next = page.next_token().filter(|t| !t.is_empty()).map(str::to_string);
        if next.is_none() {
            return Ok(out);
        }
    }
}

/// Instances matching the filters, every page.
async fn describe_filtered(ec2: &Client, filters: Vec<aws_sdk_ec2::types::Filter>) -> Result<Vec<Node>, AwsError> {
    let mut nodes = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let out = ec2.describe_instances().set_filters(Some(filters.clone())).max_results(1000).set_next_token(next).send().await;
        let out = out.map_err(AwsError::from_sdk)?;
        nodes.extend(out.reservations().iter().flat_map(|r| r.instances()).map(Node::from_sdk));
        next = out.next_token().filter(|t| !t.is_empty()).map(str::to_string);
        if next.is_none() {
            return Ok(nodes);
        }
    }
}

/// The live instances a create with `token` launched.
pub async fn describe_by_token(ec2: &Client, token: &str) -> Result<Vec<Node>, AwsError> {
    describe_filtered(ec2, vec![filter(&format!("tag:{TAG_TOKEN}"), &[token]), filter("instance-state-name", &LIVE)]).await
}

/// The instances with these IDs that still exist (200 IDs per filter).
pub async fn describe_ids(ec2: &Client, ids: &[String]) -> Result<Vec<Node>, AwsError> {
    let mut nodes = Vec::new();
    for chunk in ids.chunks(200) {
        let ids: Vec<&str> = chunk.iter().map(String::as_str).collect();
        nodes.extend(describe_filtered(ec2, vec![filter("instance-id", &ids)]).await?);
    }
    Ok(nodes)
}

pub async fn terminate(ec2: &Client, ids: &[String]) -> Result<(), AwsError> {
    for chunk in ids.chunks(1000) {
        match ec2.terminate_instances().set_instance_ids(Some(chunk.to_vec())).send().await {
            Ok(_) => {}
            Err(e) => match AwsError::from_sdk(e) {
                e if e.is("InvalidInstanceID.NotFound") => {}
                e => return Err(e),
            },
        }
    }
    Ok(())
}

/// Polls until every instance satisfies `done` (15 minutes at most): the nodes then.
pub async fn wait(ec2: &Client, ids: &[String], done: impl Fn(&Node) -> bool) -> Result<Vec<Node>, AwsError> {
    let deadline = Instant::now() + Duration::from_secs(15 * 60);
    let mut pause = Duration::from_millis(200);
    loop {
        let nodes = describe_ids(ec2, ids).await?;
        let all = ids.iter().all(|id| nodes.iter().any(|n| &n.id == id && done(n)));
        if all {
            return Ok(nodes);
        }
        if Instant::now() > deadline {
            let stuck: Vec<String> = nodes.iter().filter(|n| !done(n)).map(|n| format!("{} ({})", n.id, n.state)).collect();
            return Err(AwsError { code: None, message: format!("timed out after 15 minutes waiting for {}", stuck.join(", ")) });
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

/// Waits until no instance is pending, so that IPs are known.
pub async fn wait_started(ec2: &Client, ids: &[String]) -> Result<Vec<Node>, AwsError> {
    wait(ec2, ids, |n| n.state != "pending").await
}

#[cfg(test)]
mod tests {
    use super::transition_time;

    #[test]
    fn the_time_of_a_state_transition_reason() {
        assert_eq!(transition_time("User initiated (2026-12-07 20:06:43 GMT)").as_deref(), Some("2026-12-07T20:06:43Z"));
        assert_eq!(transition_time("User initiated (2026-12-07 20:06:43 UTC)").as_deref(), Some("2026-12-07T20:06:43Z"));
        for none in ["", "Server.SpotInstanceTermination", "User initiated", "x (soon GMT)", "x (2026-12-07 20:06:43 CET)"] {
            assert_eq!(transition_time(none), None, "{none}");
        }
    }
}
