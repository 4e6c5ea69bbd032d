"""What the head's setup reads from AWS, with the head's own instance profile (boto3, IMDSv2).

    python cluster/head_aws.py ssh-sources              # who may reach port 22 of this node
    python cluster/head_aws.py ssh-sources --rules F    # ...of the rules in F (no AWS call)
    python cluster/head_aws.py parameter NAME           # an SSM parameter, decrypted

`ssh-sources` prints one CIDR a line (canonical, so the world is exactly `0.0.0.0/0` or `::/0`);
cluster/ssh-guard.sh decides what to do with them. F is a JSON list of IpPermissions, or
`aws ec2 describe-security-groups` output, so a group can be checked from a laptop first.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import urllib.request

IMDS = "http://169.254.169.254/latest"


def imds(path: str) -> str:
    """One instance-metadata value, the IMDSv2 way (a session token first)."""
    token_request = urllib.request.Request(
        f"{IMDS}/api/token",
        method="PUT",
        headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"},
    )
    with urllib.request.urlopen(token_request, timeout=5) as response:
        token = response.read().decode()
    request = urllib.request.Request(
        f"{IMDS}/meta-data/{path}", headers={"X-aws-ec2-metadata-token": token}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.read().decode().strip()


def ssh_sources(permissions: list[dict]) -> list[str]:
    """The CIDRs (and prefix lists) that these inbound rules let reach TCP port 22."""
    sources = []
    for rule in permissions:
        protocol = str(rule.get("IpProtocol", ""))
        if protocol not in ("tcp", "6", "-1"):
            continue
        low, high = rule.get("FromPort", -1), rule.get("ToPort", -1)
        if protocol != "-1" and low != -1 and not low <= 22 <= high:
            continue
        cidrs = [r["CidrIp"] for r in rule.get("IpRanges", [])]
        cidrs += [r["CidrIpv6"] for r in rule.get("Ipv6Ranges", [])]
        sources += [str(ipaddress.ip_network(c, strict=False)) for c in cidrs]
        sources += [f"prefix-list:{p['PrefixListId']}" for p in rule.get("PrefixListIds", [])]
    return sources


def this_nodes_rules() -> list[dict]:
    """The inbound rules of every security group of this instance's network interfaces."""
    import boto3

    group_ids: set[str] = set()
    for mac in imds("network/interfaces/macs/").split():
        mac = mac.rstrip("/")
        group_ids.update(imds(f"network/interfaces/macs/{mac}/security-group-ids").split())
    ec2 = boto3.client("ec2", region_name=imds("placement/region"))
    groups = ec2.describe_security_groups(GroupIds=sorted(group_ids))["SecurityGroups"]
    return [rule for group in groups for rule in group["IpPermissions"]]


def _rules_from_file(path: str) -> list[dict]:
    with open(path) as f:
        data = json.load(f)
    if isinstance(data, dict):  # `aws ec2 describe-security-groups` output
        return [rule for group in data["SecurityGroups"] for rule in group["IpPermissions"]]
    return data


def parameter(name: str) -> str:
    import boto3

    ssm = boto3.client("ssm", region_name=imds("placement/region"))
    return ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    ssh = commands.add_parser("ssh-sources")
    ssh.add_argument("--rules", help="a JSON file of rules instead of this node's groups")
    commands.add_parser("parameter").add_argument("name")
    args = parser.parse_args(argv)
    if args.command == "ssh-sources":
        rules = _rules_from_file(args.rules) if args.rules else this_nodes_rules()
        for source in ssh_sources(rules):
            print(source)
    else:
        print(parameter(args.name))


if __name__ == "__main__":
    main()
