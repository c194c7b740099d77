//! The EC2 calls behind `spot_pool`: a launch template carrying the image, network and kiln's
//! instance tags, and an EC2 Fleet of type `maintain` over instance types × subnets.

use aws_sdk_ec2::types::{
    DefaultTargetCapacityType, FleetLaunchTemplateConfigRequest, FleetLaunchTemplateOverridesRequest,
    FleetLaunchTemplateSpecificationRequest, FleetStateCode, FleetType, InstanceType, LaunchTemplateBlockDeviceMappingRequest,
    LaunchTemplateEbsBlockDeviceRequest, LaunchTemplateTagSpecificationRequest, RequestLaunchTemplateData, ResourceType,
    SpotAllocationStrategy, SpotOptionsRequest, TargetCapacitySpecificationRequest, VolumeType,
};
use aws_sdk_ec2::Client;

use crate::cluster::network::{filter, tag, tag_spec};
use crate::error::AwsError;
use crate::util::TAG_TOKEN;

/// What the launch template holds.
pub struct Template<'a> {
    pub name: &'a str,
    pub image: &'a str,
    pub security_group_ids: &'a [String],
    pub key_name: &'a str,
    pub disk: Option<(String, u64)>,
    /// kiln's and the user's tags, for the template and the instances and volumes it launches.
    pub tags: &'a [(String, String)],
    pub instance_profile: Option<&'a str>,
    /// The user data script (starts the kiln agent), not yet base64-encoded.
    pub user_data: &'a str,
}

/// The fleet's shape.
pub struct Shape<'a> {
    pub instance_types: &'a [String],
    pub subnet_ids: &'a [String],
    pub capacity: u64,
    pub on_demand: u64,
    pub allocation_strategy: &'a str,
    pub max_price: Option<&'a str>,
}

fn instance_tags(kind: ResourceType, tags: &[(String, String)]) -> LaunchTemplateTagSpecificationRequest {
    LaunchTemplateTagSpecificationRequest::builder()
        .resource_type(kind)
        .set_tags(Some(tags.iter().map(|(k, v)| tag(k, v)).collect()))
        .build()
}

pub async fn create_template(ec2: &Client, t: &Template<'_>) -> Result<String, AwsError> {
    let mut data = RequestLaunchTemplateData::builder()
        .image_id(t.image)
        .set_security_group_ids(Some(t.security_group_ids.to_vec()))
        .tag_specifications(instance_tags(ResourceType::Instance, t.tags))
        .tag_specifications(instance_tags(ResourceType::Volume, t.tags))
        .user_data(crate::job::encode_user_data(t.user_data))
        .metadata_options(
            aws_sdk_ec2::types::LaunchTemplateInstanceMetadataOptionsRequest::builder()
                .http_tokens(aws_sdk_ec2::types::LaunchTemplateHttpTokensState::Required)
                .instance_metadata_tags(aws_sdk_ec2::types::LaunchTemplateInstanceMetadataTagsState::Enabled)
                .build(),
        );
    if let Some(p) = t.instance_profile {
        let b = aws_sdk_ec2::types::LaunchTemplateIamInstanceProfileSpecificationRequest::builder();
        data = data.iam_instance_profile(if p.starts_with("arn:") { b.arn(p) } else { b.name(p) }.build());
    }
    if !t.key_name.is_empty() {
        data = data.key_name(t.key_name);
    }
    if let Some((device, gb)) = &t.disk {
        let ebs = LaunchTemplateEbsBlockDeviceRequest::builder()
            .volume_size(*gb as i32)
            .volume_type(VolumeType::Gp3)
            .delete_on_termination(true)
            .build();
        data = data.block_device_mappings(LaunchTemplateBlockDeviceMappingRequest::builder().device_name(device).ebs(ebs).build());
    }
    let out = ec2
        .create_launch_template()
        .launch_template_name(t.name)
        .launch_template_data(data.build())
        .tag_specifications(tag_spec(ResourceType::LaunchTemplate, t.tags))
        .send()
        .await
        .map_err(AwsError::from_sdk)?;
    Ok(out.launch_template().and_then(|l| l.launch_template_id()).unwrap_or_default().to_string())
}

fn capacity(total: u64, on_demand: u64) -> TargetCapacitySpecificationRequest {
    TargetCapacitySpecificationRequest::builder()
        .total_target_capacity(total as i32)
        .on_demand_target_capacity(on_demand as i32)
        .default_target_capacity_type(DefaultTargetCapacityType::Spot)
        .build()
}

pub async fn create_fleet(
    ec2: &Client,
    template_id: &str,
    shape: &Shape<'_>,
    token: &str,
    tags: &[(String, String)],
) -> Result<String, AwsError> {
    let overrides: Vec<FleetLaunchTemplateOverridesRequest> = shape
        .instance_types
        .iter()
        .flat_map(|t| shape.subnet_ids.iter().map(move |s| (t, s)))
        .map(|(t, s)| {
            FleetLaunchTemplateOverridesRequest::builder()
                .instance_type(InstanceType::from(t.as_str()))
                .subnet_id(s)
                .set_max_price(shape.max_price.map(str::to_string))
                .build()
        })
        .collect();
    let spec = FleetLaunchTemplateSpecificationRequest::builder().launch_template_id(template_id).version("$Latest").build();
    let config = FleetLaunchTemplateConfigRequest::builder().launch_template_specification(spec).set_overrides(Some(overrides)).build();
    let out = ec2
        .create_fleet()
        .r#type(FleetType::Maintain)
        .client_token(token)
        .launch_template_configs(config)
        .target_capacity_specification(capacity(shape.capacity, shape.on_demand))
        .spot_options(SpotOptionsRequest::builder().allocation_strategy(SpotAllocationStrategy::from(shape.allocation_strategy)).build())
        .tag_specifications(tag_spec(ResourceType::Fleet, tags))
        .send()
        .await
        .map_err(AwsError::from_sdk)?;
    match out.fleet_id() {
        Some(id) => Ok(id.to_string()),
        None => Err(AwsError { code: None, message: format!("CreateFleet answered no fleet ID: {:?}", out.errors()) }),
    }
}

pub async fn modify_fleet(ec2: &Client, fleet_id: &str, total: u64, on_demand: u64) -> Result<(), AwsError> {
    ec2.modify_fleet()
        .fleet_id(fleet_id)
        .target_capacity_specification(capacity(total, on_demand))
        .send()
        .await
        .map(|_| ())
        .map_err(AwsError::from_sdk)
}

/// A fleet as kiln reads it.
#[derive(Debug, Clone)]
pub struct FleetInfo {
    pub id: String,
    pub active: bool,
    pub total: u64,
    pub on_demand: u64,
    /// When the fleet was created (RFC 3339).
    pub created: Option<String>,
}

fn info(f: &aws_sdk_ec2::types::FleetData) -> FleetInfo {
    let gone = matches!(
        f.fleet_state(),
        Some(
            FleetStateCode::Deleted | FleetStateCode::DeletedRunning | FleetStateCode::DeletedTerminatingInstances | FleetStateCode::Failed
        )
    );
    let t = f.target_capacity_specification();
    FleetInfo {
        id: f.fleet_id().unwrap_or_default().to_string(),
        active: !gone,
        total: t.and_then(|t| t.total_target_capacity()).unwrap_or(0).max(0) as u64,
        on_demand: t.and_then(|t| t.on_demand_target_capacity()).unwrap_or(0).max(0) as u64,
        created: f.create_time().map(crate::cluster::view::rfc3339),
    }
}

/// The fleets with these IDs (one call per 100 IDs).
pub async fn describe(ec2: &Client, ids: &[String]) -> Result<Vec<FleetInfo>, AwsError> {
    let mut out = Vec::new();
    for chunk in ids.chunks(100) {
        let r = ec2.describe_fleets().set_fleet_ids(Some(chunk.to_vec())).send().await.map_err(AwsError::from_sdk)?;
        out.extend(r.fleets().iter().map(info));
    }
    Ok(out)
}

pub async fn describe_by_token(ec2: &Client, token: &str) -> Result<Vec<FleetInfo>, AwsError> {
    let r = ec2.describe_fleets().filters(filter(&format!("tag:{TAG_TOKEN}"), &[token])).send().await.map_err(AwsError::from_sdk)?;
    // Checked here too: not every AWS-compatible server filters fleets by tag.
    let ours = r.fleets().iter().filter(|f| f.tags().iter().any(|t| t.key() == Some(TAG_TOKEN) && t.value() == Some(token)));
    Ok(ours.map(info).filter(|f| f.active).collect())
}

pub async fn delete_fleet(ec2: &Client, id: &str) -> Result<(), AwsError> {
    match ec2.delete_fleets().fleet_ids(id).terminate_instances(true).send().await {
        Ok(_) => Ok(()),
        Err(e) => match AwsError::from_sdk(e) {
            e if e.is("InvalidFleetId.NotFound") => Ok(()),
            e => Err(e),
        },
    }
}

pub async fn delete_template(ec2: &Client, id: &str) -> Result<(), AwsError> {
    match ec2.delete_launch_template().launch_template_id(id).send().await {
        Ok(_) => Ok(()),
        Err(e) => match AwsError::from_sdk(e) {
            e if e.is("InvalidLaunchTemplateId.NotFound") => Ok(()),
            e => Err(e),
        },
    }
}

/// Deletes the launch templates a create with `token` made.
pub async fn delete_templates_by_token(ec2: &Client, token: &str) -> Result<(), AwsError> {
    let r =
        ec2.describe_launch_templates().filters(filter(&format!("tag:{TAG_TOKEN}"), &[token])).send().await.map_err(AwsError::from_sdk)?;
    for t in r.launch_templates() {
        delete_template(ec2, t.launch_template_id().unwrap_or_default()).await?;
    }
    Ok(())
}
