"""What an AWS endpoint holds, as JSON on stdout: the e2e tests' view through the AWS API itself
(boto3, from the moto venv), independent of kiln's state and of kiln's SDK.

Usage: python aws_inspect.py ENDPOINT [REGION]

{"instances": [{"id", "state", "type", "lifecycle", "reason", "tags": {..}}],   # terminated too
 "fleets": [{"id", "state", "type", "total", "on_demand", "tags": {..}}],          # deleted too
 "buckets": [{"name", "tags": {..}, "versioning"}],
 "launch_templates": [{"id", "name", "tags": {..}}],
 "security_groups": [{"id", "name", "tags": {..}}],                             # not "default"
 "key_pairs": [{"name", "tags": {..}}]}
"""
import json
import sys

import boto3
from botocore.exceptions import ClientError


def tags(items):
    return {t["Key"]: t["Value"] for t in items or []}


def pages(client, op, key, **kw):
    out = []
    for page in client.get_paginator(op).paginate(**kw):
        out.extend(page.get(key, []))
    return out


def main():
    endpoint = sys.argv[1]
    region = sys.argv[2] if len(sys.argv) > 2 else "us-east-1"
    kw = dict(endpoint_url=endpoint, region_name=region, aws_access_key_id="test", aws_secret_access_key="test")
    ec2 = boto3.client("ec2", **kw)
    s3 = boto3.client("s3", **kw)

    instances = []
    for r in pages(ec2, "describe_instances", "Reservations"):
        for i in r["Instances"]:
            instances.append({
                "id": i["InstanceId"],
                "state": i["State"]["Name"],
                "type": i["InstanceType"],
                "lifecycle": i.get("InstanceLifecycle"),
                "reason": (i.get("StateReason") or {}).get("Code"),
                "tags": tags(i.get("Tags")),
            })

    fleets = []
    for f in ec2.describe_fleets()["Fleets"]:
        spec = f.get("TargetCapacitySpecification", {})
        fleets.append({
            "id": f["FleetId"],
            "state": f.get("FleetState"),
            "type": f.get("Type"),
            "total": spec.get("TotalTargetCapacity"),
            "on_demand": spec.get("OnDemandTargetCapacity"),
            "tags": tags(f.get("Tags")),
        })

    buckets = []
    for b in s3.list_buckets().get("Buckets", []):
        name = b["Name"]
        try:
            btags = tags(s3.get_bucket_tagging(Bucket=name).get("TagSet"))
        except ClientError:
            btags = {}
        versioning = s3.get_bucket_versioning(Bucket=name).get("Status")
        buckets.append({"name": name, "tags": btags, "versioning": versioning})

    templates = [
        {"id": t["LaunchTemplateId"], "name": t["LaunchTemplateName"], "tags": tags(t.get("Tags"))}
        for t in ec2.describe_launch_templates()["LaunchTemplates"]
    ]
    groups = [
        {"id": g["GroupId"], "name": g["GroupName"], "tags": tags(g.get("Tags"))}
        for g in ec2.describe_security_groups()["SecurityGroups"]
        if g["GroupName"] != "default"
    ]
    keys = [{"name": k["KeyName"], "tags": tags(k.get("Tags"))} for k in ec2.describe_key_pairs()["KeyPairs"]]

    json.dump({
        "instances": instances,
        "fleets": fleets,
        "buckets": buckets,
        "launch_templates": templates,
        "security_groups": groups,
        "key_pairs": keys,
    }, sys.stdout, default=str)


if __name__ == "__main__":
    main()
