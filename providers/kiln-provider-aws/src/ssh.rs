//! `kiln ssh` on aws ([`kiln_provider::Provider::shell`]): a node of a cluster (or of a job,
//! through the instances it runs on) is its instance's public IP, as its image's user
//! (`ec2-user` on the default Amazon Linux, `ubuntu` on Ubuntu...), with the private key of the
//! key pair kiln created for the cluster (else the user's own key for `key_name`). It works
//! only when the instance has a key pair, a public IP and a security group that lets SSH
//! (tcp 22) in from somewhere; otherwise the error says what to set. EC2 publishes no host key
//! kiln could pin before the first connection, so the key the instance presents first is kept
//! in `.kiln/ssh/known_hosts` and any other refused afterwards.

use aws_sdk_ec2::types::IpPermission;
use kiln_diag::Diagnostic;
use kiln_provider::{ShellAccess, ShellHost, ShellHostKey, ShellRequest};

use crate::cluster::instances;
use crate::cluster::network::filter;
use crate::error::AwsError;
use crate::util::{error, set, str_attr, str_list};
use crate::Ctx;

/// The login user of the default image (Amazon Linux 2023) and of images kiln cannot tell.
pub const USER: &str = "ec2-user";

/// The login user of an image, from its name and description as the distributions publish
/// them (`ubuntu` on Ubuntu, Deep Learning AMIs on Ubuntu included; `admin` on Debian, ...).
pub fn user_of_image(name_and_description: &str) -> &'static str {
    let text = name_and_description.to_ascii_lowercase();
    [("ubuntu", "ubuntu"), ("debian", "admin"), ("centos", "centos"), ("rocky", "rocky"), ("fedora", "fedora")]
        .iter()
        .find(|(word, _)| text.contains(word))
        .map_or(USER, |(_, user)| user)
}

/// The login user of image `id` (the default user when the image cannot be described).
async fn login_user(ctx: &Ctx, id: &str) -> &'static str {
    if id.is_empty() {
        return USER;
    }
    match ctx.clients.ec2.describe_images().image_ids(id).send().await {
        Ok(out) => out
            .images()
            .first()
            .map_or(USER, |i| user_of_image(&format!("{} {}", i.name().unwrap_or_default(), i.description().unwrap_or_default()))),
        Err(_) => USER,
    }
}

/// Whether a rule lets tcp port 22 in from an address range (not only from other groups).
pub fn allows_ssh(p: &IpPermission) -> bool {
    let protocol = p.ip_protocol().unwrap_or_default();
    let port = match protocol {
        "-1" | "all" => true,
        "tcp" | "6" => p.from_port().unwrap_or(0) <= 22 && p.to_port().unwrap_or(65535) >= 22,
        _ => false,
    };
    port && (!p.ip_ranges().is_empty() || !p.ipv6_ranges().is_empty() || !p.prefix_list_ids().is_empty())
}

pub async fn shell(ctx: &Ctx, req: &ShellRequest<'_>) -> Result<ShellAccess, Diagnostic> {
    let a = req.address;
    let cluster = if req.kind == "job" { set(req.state, "cluster").unwrap_or(req.state) } else { req.state };
    let ids = str_list(req.state, "instance_ids");
    let Some(id) = ids.get(req.node) else {
        return Err(error("E-SSH-NODE", a, format!("{a}: there is no node {} (it has {})", req.node, ids.len()))
            .hint(format!("give --node a rank from 0 to {}", ids.len().saturating_sub(1))));
    };
    let ec2 = &ctx.clients.ec2;
    let nodes =
        instances::describe_ids(ec2, std::slice::from_ref(id)).await.map_err(|e| e.diagnostic(a, "describe the node's instance"))?;
    let Some(n) = nodes.into_iter().find(|n| &n.id == id && n.state != "terminated") else {
        return Err(error("E-SSH-NODE", a, format!("{a}: node {} (instance {id}) is gone", req.node))
            .hint("run `kiln plan` to see what replaces it, then `kiln apply`"));
    };
    if n.key_name.is_empty() {
        return Err(error("E-SSH-AWS-KEY", a, format!("{a}: instance {id} has no key pair, so nothing can log in over SSH"))
            .hint("give the cluster a key pair (key_name = aws_key_pair.NAME.key_name, or leave key_name unset so kiln creates one); changing it replaces the instances"));
    }
    let groups = if n.security_group_ids.is_empty() {
        Vec::new()
    } else {
        let ids: Vec<&str> = n.security_group_ids.iter().map(String::as_str).collect();
        let out = ec2.describe_security_groups().filters(filter("group-id", &ids)).send().await;
        out.map_err(AwsError::from_sdk).map_err(|e| e.diagnostic(a, "describe the node's security groups"))?.security_groups().to_vec()
    };
    if !groups.iter().any(|g| g.ip_permissions().iter().any(allows_ssh)) {
        return Err(error(
            "E-SSH-AWS-PORT",
            a,
            format!("{a}: the security groups of instance {id} ({}) let no SSH (tcp 22) in", n.security_group_ids.join(", ")),
        )
        .hint("on a cluster with kiln's own security group, set ssh_cidr = \"YOUR.IP.ADDRESS/32\" (replaces the instances); with your own aws_security_group, add ingress { protocol = \"tcp\", from_port = 22, to_port = 22, cidr_blocks = [\"YOUR.IP.ADDRESS/32\"] }"));
    }
    if n.public_ip.is_empty() {
        return Err(error("E-SSH-AWS-IP", a, format!("{a}: instance {id} has no public IP (private {})", n.private_ip))
            .hint("put the cluster in a subnet that gives instances public IPs (map_public_ip_on_launch), or reach its private IP through a host of that network"));
    }
    let private_key = str_attr(cluster, "ssh_private_key").filter(|k| !k.is_empty()).map(str::to_string);
    let key = match &private_key {
        Some(_) => format!("the private key of key pair {} that kiln created", n.key_name),
        None => format!("your own key of key pair {} (ssh-agent or ~/.ssh)", n.key_name),
    };
    let user = login_user(ctx, &n.image).await;
    let note = format!(
        "node {} of {a} is instance {id} at {}; logging in as {user} (the user of its image {}) with {key}. EC2 publishes no host key ahead: the key it presents now is kept in .kiln/ssh/known_hosts and a different one refused later",
        req.node, n.public_ip, n.image
    );
    let host = ShellHost {
        name: id.clone(),
        address: n.public_ip,
        port: 22,
        user: Some(user.to_string()),
        identity_file: None,
        private_key,
        proxy_jump: None,
        host_key: ShellHostKey::FirstUse,
    };
    Ok(ShellAccess { hosts: vec![host], wrapper: Vec::new(), note: Some(note) })
}

#[cfg(test)]
mod tests {
    use aws_sdk_ec2::types::{IpRange, UserIdGroupPair};

    use super::*;

    fn rule(protocol: &str, from: i32, to: i32) -> aws_sdk_ec2::types::builders::IpPermissionBuilder {
        IpPermission::builder().ip_protocol(protocol).from_port(from).to_port(to)
    }

    #[test]
    fn the_login_user_follows_the_image() {
        assert_eq!(user_of_image("al2023-ami-2023.6.20250115.0-kernel-6.1-x86_64 Amazon Linux 2023 AMI"), "ec2-user");
        assert_eq!(user_of_image("Deep Learning OSS Nvidia Driver AMI GPU PyTorch 2.5 (Ubuntu 22.04)"), "ubuntu");
        assert_eq!(user_of_image("debian-12-amd64-20250112-1990"), "admin");
        assert_eq!(user_of_image(""), "ec2-user");
    }

    #[test]
    fn ssh_is_allowed_by_a_range_that_covers_port_22() {
        let world = IpRange::builder().cidr_ip("203.0.113.7/32").build();
        assert!(allows_ssh(&rule("tcp", 22, 22).ip_ranges(world.clone()).build()));
        assert!(allows_ssh(&rule("tcp", 0, 65535).ip_ranges(world.clone()).build()));
        assert!(allows_ssh(&rule("-1", -1, -1).ip_ranges(world.clone()).build()));
        assert!(!allows_ssh(&rule("tcp", 80, 443).ip_ranges(world.clone()).build()));
        assert!(!allows_ssh(&rule("udp", 22, 22).ip_ranges(world).build()));
        let peers = UserIdGroupPair::builder().group_id("sg-1").build();
        assert!(!allows_ssh(&rule("-1", -1, -1).user_id_group_pairs(peers).build()), "traffic between the nodes is not SSH from outside");
    }
}
