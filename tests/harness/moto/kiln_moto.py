"""kiln's AWS test server: moto's WSGI app plus test-control endpoints under /_testbed/.

Usage: python kiln_moto.py --port 0 [--host 127.0.0.1] [--port-file PATH]
  --port 0 picks a free loopback port; the port is printed as "listening on PORT" and written to
  --port-file when given. The server exits when its parent process goes away (checked every
  second), so an aborted test run leaves no server behind; --stay keeps it running.

AWS requests reach moto unchanged. Control endpoints (JSON in and out, never passed to moto):
  GET    /_testbed/health
  POST   /_testbed/spot-interrupt {"instance_id": "i-..", "action": "terminate"|"stop"|"notice",
                                   "region": "us-east-1", "account": "123456789012"}
         terminate/stop the instance the way EC2 reclaims spot capacity: state reason
         Server.SpotInstanceTermination, its spot request closed (or disabled for stop).
         "notice" only marks the spot request for termination (the two-minute warning).
         From a notice on (or from a terminate/stop without one), the instance's metadata
         serves the interruption notice at spot/instance-action (see below).
  POST   /_testbed/faults {"action": "RunInstances", "match": "p4d.24xlarge",
                           "code": "InsufficientInstanceCapacity", "status": 400, "count": 1,
                           "message": "..."}
         the next `count` query-API calls (EC2) with that Action whose body contains `match`
         get that error instead of reaching moto.
  GET    /_testbed/faults   the rules and how many hits each has left
  DELETE /_testbed/faults   drop every rule
  PUT|GET /_testbed/imds/REGION/INSTANCE_ID/latest/...
         the instance metadata service as that instance sees it (IMDSv2 token, instance-id,
         local-ipv4, tags/instance[/KEY] from moto's tags, and role credentials `test`/`test`
         under iam/security-credentials/): tests run an instance's user data (the kiln agent)
         as a local process pointed here. meta-data/spot/instance-action answers 404 (as on
         EC2) until a spot-interrupt notice, terminate or stop for the instance, then EC2's
         interruption notice {"action": "terminate"|"stop", "time": "<RFC 3339, two minutes
         after the notice>"}: the action is the spot request's interruption behaviour after a
         notice (terminate without a spot request), the one done after a terminate or stop.
moto's own POST /moto-api/reset wipes all emulated state; it also drops the fault rules and the
interruption notices here.

Where moto answers differently from AWS in a way the Rust SDK rejects, the answer is corrected
here (and only that): GetBucketVersioning's root element is <VersioningConfiguration> on AWS,
<GetBucketVersioningResponse> in moto 5.2.5.

moto checks S3's conditional writes (`If-None-Match: *`, `If-Match`) and then writes, without a
lock, while this server answers on several threads: two conditional PUTs of the same key that
arrive together can both succeed, which S3 never allows (two kiln processes would both get the
state lock). Every S3 write (PUT, DELETE, POST ?delete) is therefore applied one at a time here.

moto answers DescribeInstanceTypes (its ~900 types, unpaginated: several MB of XML) in 4-6 s of
CPU, and every kiln plan and apply against a region reads it once; its answer never changes (it is
moto's bundled data, untouched by a reset), so each distinct request is answered once and its
answer replayed (injected faults still come first).

DescribeSpotInstanceRequests is answered here: moto makes no spot request for a spot instance that
RunInstances launches (EC2 does: a one-time request, fulfilled), so such instances get one here,
marked-for-termination (or marked-for-stop) after a notice and closed after a terminate or stop,
beside moto's own requests. Filters emulated: instance-id, state, status-code; any other is
refused with InvalidParameterValue rather than ignored.

ModifyFleet, which moto 5.2.5 answers with a 500, is emulated here for `maintain` fleets: the
new total and on-demand target capacities are recorded, missing capacity is launched (on-demand
up to the on-demand target, spot for the rest) and excess capacity terminated.
"""
import argparse
import io
import json
import os
import threading
import time
import urllib.parse
import uuid

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server

DEFAULT_ACCOUNT = "123456789012"
# EC2 actions whose answer is moto's bundled data: the same for the same request, reset or not.
STATIC = ("DescribeInstanceTypes", "DescribeInstanceTypeOfferings")


class Faults:
    """Error rules for upcoming calls, shared by the server's threads."""

    def __init__(self):
        self.rules = []
        self.lock = threading.Lock()

    def add(self, rule):
        rule = dict(rule)
        rule["count"] = int(rule.get("count", 1))
        with self.lock:
            self.rules.append(rule)

    def clear(self):
        with self.lock:
            self.rules.clear()

    def snapshot(self):
        with self.lock:
            return [dict(r) for r in self.rules]

    def take(self, action, body):
        """The first live rule matching this call, with one hit used up; None if none."""
        with self.lock:
            for rule in self.rules:
                if rule["count"] > 0 and rule.get("action") == action and rule.get("match", "") in body:
                    rule["count"] -= 1
                    return dict(rule)
        return None


def modify_fleet(params, region, account=DEFAULT_ACCOUNT):
    """ModifyFleet for a maintain fleet: new target capacities, then launch or terminate."""
    from moto.ec2.models import ec2_backends

    fleet = ec2_backends[account][region].fleets[params["FleetId"]]
    total = params.get("TargetCapacitySpecification.TotalTargetCapacity")
    on_demand = params.get("TargetCapacitySpecification.OnDemandTargetCapacity")
    if on_demand is not None:
        fleet.on_demand_target_capacity = int(on_demand)
    if total is not None:
        fleet.target_capacity = int(total)
    fleet.spot_target_capacity = max(0, fleet.target_capacity - fleet.on_demand_target_capacity)
    # DescribeFleets answers from the specification, not from the attributes above.
    spec = fleet.target_capacity_specification
    spec["TotalTargetCapacity"] = fleet.target_capacity
    spec["OnDemandTargetCapacity"] = fleet.on_demand_target_capacity
    spec["SpotTargetCapacity"] = fleet.spot_target_capacity
    live = lambda: [i for i in fleet_instances(fleet) if i.state not in ("terminated", "shutting-down")]
    on_demand_live = sum(1 for i in live() if not getattr(i, "lifecycle", None))
    if fleet.on_demand_target_capacity > on_demand_live:
        fleet.create_on_demand_requests(fleet.on_demand_target_capacity - on_demand_live)
    missing = fleet.target_capacity - len(live())
    if missing > 0:
        fleet.create_spot_requests(missing)
    fleet.fulfilled_capacity = float(len(live()))
    if len(live()) > fleet.target_capacity:
        fleet.terminate_instances()
        fleet.fulfilled_capacity = float(len(live()))
    return "<ModifyFleetResponse><requestId>kiln-testbed</requestId><return>true</return></ModifyFleetResponse>"


def fleet_instances(fleet):
    out = [r.instance for r in fleet.spot_requests if getattr(r, "instance", None) is not None]
    out += [r["instance"] for r in fleet.on_demand_instances]
    return out


def region_of(environ):
    """The region a SigV4-signed request names in its credential scope."""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    scope = auth.split("Credential=", 1)[1].split(",", 1)[0] if "Credential=" in auth else ""
    parts = scope.split("/")
    return parts[2] if len(parts) > 2 else "us-east-1"


def reply_json(start_response, status, obj):
    body = json.dumps(obj, default=str).encode()
    start_response(f"{status} TESTBED", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def reply_ec2_error(start_response, rule):
    code = rule.get("code", "InsufficientInstanceCapacity")
    message = rule.get("message", f"injected by the kiln test harness: {code}")
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors>"
        f"<RequestID>{uuid.uuid4()}</RequestID></Response>"
    ).encode()
    status = int(rule.get("status", 400))
    start_response(f"{status} FAULT", [("Content-Type", "text/xml"), ("Content-Length", str(len(body)))])
    return [body]


# Interruption notices served at spot/instance-action: (account, region, instance id) ->
# {"action": ..., "time": ...}; the first notice of an instance stays (as on EC2).
NOTICES = {}
NOTICES_LOCK = threading.Lock()
# Status of the spot requests of instances RunInstances launched on spot (moto makes none):
# (account, region, instance id) -> (state, status code); fulfilled until a spot-interrupt.
RUN_SPOT_STATUS = {}
# How long EC2 gives between the notice and the interruption.
NOTICE_LEAD_SECONDS = 120


def notify(key, action):
    """Records an interruption notice for the instance `key`, unless it has one."""
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + NOTICE_LEAD_SECONDS))
    with NOTICES_LOCK:
        NOTICES.setdefault(key, {"action": action, "time": at})


def spot_interrupt(req):
    """Reclaims a spot instance as EC2 does, answering what was done."""
    from moto.ec2.models import ec2_backends
    from moto.ec2.models.instances import StateReason

    backend = ec2_backends[req.get("account", DEFAULT_ACCOUNT)][req.get("region", "us-east-1")]
    instance_id = req["instance_id"]
    action = req.get("action", "terminate")
    instance = backend.get_instance(instance_id)
    requests = [r for r in backend.spot_instance_requests.values() if getattr(r, "instance", None) is instance]
    key = (req.get("account", DEFAULT_ACCOUNT), req.get("region", "us-east-1"), instance_id)
    if action == "notice":
        for r in requests:
            r._status_code, r.status_message = "marked-for-termination", "Spot Instance marked for termination"
        behaviour = next((getattr(r, "instance_interruption_behaviour", None) for r in requests), None)
        notify(key, "stop" if behaviour == "stop" else "terminate")
        with NOTICES_LOCK:
            RUN_SPOT_STATUS[key] = ("active", "marked-for-stop" if behaviour == "stop" else "marked-for-termination")
    elif action in ("terminate", "stop"):
        notify(key, action)
        if action == "stop":
            backend.stop_instances([instance_id])
            request_state, status = "disabled", "instance-stopped-by-price"
        else:
            backend.terminate_instances([instance_id])
            request_state, status = "closed", "instance-terminated-by-price"
        instance._reason = ""
        instance.state_reason = StateReason(
            "Server.SpotInstanceTermination: Spot instance termination", "Server.SpotInstanceTermination"
        )
        for r in requests:
            r.state, r._status_code, r.status_message = request_state, status, "Spot instance interrupted"
        with NOTICES_LOCK:
            RUN_SPOT_STATUS[key] = (request_state, status)
    else:
        raise ValueError(f"unknown action {action!r}: use terminate, stop or notice")
    return {"instance_id": instance_id, "state": instance._state.name, "spot_requests": [r.id for r in requests]}


def query_filters(params):
    """{name: [values]} of an EC2 query's Filter.N.Name / Filter.N.Value.M parameters."""
    out = {}
    for k, name in params.items():
        parts = k.split(".")
        if len(parts) == 3 and parts[0] == "Filter" and parts[2] == "Name":
            prefix = f"Filter.{parts[1]}.Value."
            out[name] = [v for vk, v in params.items() if vk.startswith(prefix)]
    return out


def describe_spot_instance_requests(params, region):
    """EC2's DescribeSpotInstanceRequests answer (XML): moto's requests, and one per spot instance
    that RunInstances launched (see RUN_SPOT_STATUS)."""
    from moto.ec2.models import ec2_backends

    backend = ec2_backends[DEFAULT_ACCOUNT][region]
    rows = []
    owned = set()
    for r in backend.spot_instance_requests.values():
        instance = getattr(r, "instance", None)
        owned.add(getattr(instance, "id", None))
        rows.append({"id": r.id, "state": r.state, "code": r._status_code, "instance": getattr(instance, "id", ""),
                     "behaviour": r.instance_interruption_behaviour})
    for instance in backend.all_instances():
        if getattr(instance, "lifecycle", None) != "spot" or instance.id in owned:
            continue
        with NOTICES_LOCK:
            state, code = RUN_SPOT_STATUS.get((DEFAULT_ACCOUNT, region, instance.id), ("active", "fulfilled"))
        if (state, code) == ("active", "fulfilled") and instance._state.name in ("shutting-down", "terminated"):
            state, code = "closed", "instance-terminated-by-user"
        rows.append({"id": "sir-" + instance.id.removeprefix("i-")[:8], "state": state, "code": code, "instance": instance.id,
                     "behaviour": "terminate"})
    filters = query_filters(params)
    columns = {"instance-id": "instance", "state": "state", "status-code": "code"}
    unknown = sorted(set(filters) - set(columns))
    if unknown:
        raise ValueError(f"the harness does not emulate the filter {unknown[0]!r} of DescribeSpotInstanceRequests")
    rows = [r for r in rows if all(r[columns[f]] in values for f, values in filters.items())]
    wanted = [v for k, v in params.items() if k.startswith("SpotInstanceRequestId.")]
    if wanted:
        rows = [r for r in rows if r["id"] in wanted]
    items = "".join(
        f"<item><spotInstanceRequestId>{r['id']}</spotInstanceRequestId><type>one-time</type><state>{r['state']}</state>"
        f"<status><code>{r['code']}</code><updateTime>{time.strftime('%Y-%m-%dT%H:%M:%S.000Z', time.gmtime())}</updateTime></status>"
        f"<instanceId>{r['instance']}</instanceId><instanceInterruptionBehavior>{r['behaviour']}</instanceInterruptionBehavior>"
        f"<productDescription>Linux/UNIX</productDescription></item>"
        for r in rows
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<DescribeSpotInstanceRequestsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
        f"<requestId>{uuid.uuid4()}</requestId><spotInstanceRequestSet>{items}</spotInstanceRequestSet>"
        "</DescribeSpotInstanceRequestsResponse>"
    )


class TestbedApp:
    """WSGI middleware: control endpoints and fault injection in front of moto."""

    def __init__(self, moto_app):
        self.moto_app = moto_app
        self.faults = Faults()
        self.s3_writes = threading.Lock()
        self.replies = {}  # (region, body) of a STATIC action -> (status, headers, body)
        self.replies_lock = threading.Lock()

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        method = environ["REQUEST_METHOD"]
        if path.startswith("/_testbed/"):
            return self.control(path, method, environ, start_response)
        if path == "/moto-api/reset" and method == "POST":
            self.faults.clear()
            with NOTICES_LOCK:
                NOTICES.clear()
                RUN_SPOT_STATUS.clear()
        if method == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length) if length else b""
            environ["wsgi.input"] = io.BytesIO(body)  # moto reads it again
            text = body.decode("utf-8", "replace")
            params = {k: v[0] for k, v in urllib.parse.parse_qs(text).items()}
            action = params.get("Action", "")
            rule = self.faults.take(action, text) if action else None
            if rule is not None:
                return reply_ec2_error(start_response, rule)
            if action == "DescribeSpotInstanceRequests":
                try:
                    xml = describe_spot_instance_requests(params, region_of(environ)).encode()
                except ValueError as e:
                    return reply_ec2_error(start_response, {"code": "InvalidParameterValue", "message": str(e)})
                start_response("200 OK", [("Content-Type", "text/xml"), ("Content-Length", str(len(xml)))])
                return [xml]
            if action == "ModifyFleet":
                try:
                    xml = modify_fleet(params, region_of(environ)).encode()
                except KeyError as e:
                    return reply_ec2_error(start_response, {"code": "InvalidFleetId.NotFound", "message": f"no fleet {e}"})
                start_response("200 OK", [("Content-Type", "text/xml"), ("Content-Length", str(len(xml)))])
                return [xml]
            if action in STATIC:
                return self.replayed((region_of(environ), text), environ, start_response)
        if method == "GET" and "versioning" in urllib.parse.parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True):
            return self.rewritten(environ, start_response, b"GetBucketVersioningResponse", b"VersioningConfiguration")
        if method in ("PUT", "DELETE") or (method == "POST" and "delete" in environ.get("QUERY_STRING", "")):
            with self.s3_writes:  # a condition checked and the write made as one step, as on S3
                return list(self.moto_app(environ, start_response))
        return self.moto_app(environ, start_response)

    def replayed(self, key, environ, start_response):
        """moto's answer to a request whose answer never changes: asked once, then replayed."""
        with self.replies_lock:
            hit = self.replies.get(key)
        if hit is None:
            seen = {}

            def capture(status, headers, exc_info=None):
                seen["status"], seen["headers"] = status, headers
                return lambda data: None

            body = b"".join(self.moto_app(environ, capture))
            hit = (seen["status"], seen["headers"], body)
            if seen["status"].startswith("200"):
                with self.replies_lock:
                    self.replies[key] = hit
        start_response(hit[0], list(hit[1]))
        return [hit[2]]

    def rewritten(self, environ, start_response, old, new):
        """moto's answer with `old` replaced by `new` in its body."""
        seen = {}

        def capture(status, headers, exc_info=None):
            seen["status"], seen["headers"] = status, headers
            return lambda data: None

        body = b"".join(self.moto_app(environ, capture)).replace(old, new)
        headers = [(k, str(len(body)) if k.lower() == "content-length" else v) for k, v in seen["headers"]]
        start_response(seen["status"], headers)
        return [body]

    def control(self, path, method, environ, start_response):
        if path.startswith("/_testbed/imds/"):
            try:
                status, text = imds(path.removeprefix("/_testbed/imds/"), method)
            except Exception as e:  # an unknown instance, as a terminated one is
                status, text = 404, repr(e)
            body = text.encode()
            start_response(f"{status} IMDS", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
            return [body]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        try:
            req = json.loads(raw) if raw else {}
            if path == "/_testbed/health":
                return reply_json(start_response, 200, {"ok": True})
            if path == "/_testbed/spot-interrupt" and method == "POST":
                return reply_json(start_response, 200, spot_interrupt(req))
            if path == "/_testbed/faults":
                if method == "POST":
                    self.faults.add(req)
                elif method == "DELETE":
                    self.faults.clear()
                return reply_json(start_response, 200, {"faults": self.faults.snapshot()})
            return reply_json(start_response, 404, {"error": f"no testbed endpoint {method} {path}"})
        except Exception as e:  # the test reads the error
            return reply_json(start_response, 400, {"error": repr(e)})


def imds(path, method):
    """(status, text) of an instance metadata request: path is REGION/INSTANCE_ID/latest/..."""
    from moto.ec2.models import ec2_backends

    region, instance_id, rest = path.split("/", 2)
    if rest == "latest/api/token" and method == "PUT":
        return 200, "kiln-testbed-token"
    backend = ec2_backends[DEFAULT_ACCOUNT][region]
    instance = backend.get_instance(instance_id)
    tags = backend.tags.get(instance_id, {})
    meta = rest.removeprefix("latest/meta-data/")
    if meta == "instance-id":
        return 200, instance.id
    if meta == "local-ipv4":
        return 200, instance.private_ip
    if meta == "tags/instance":
        return 200, "\n".join(sorted(tags))
    if meta.startswith("tags/instance/"):
        key = meta.removeprefix("tags/instance/")
        return (200, tags[key]) if key in tags else (404, "not found")
    if meta == "spot/instance-action":
        with NOTICES_LOCK:
            notice = NOTICES.get((DEFAULT_ACCOUNT, region, instance.id))
        return (200, json.dumps(notice)) if notice else (404, "not found")
    if meta == "iam/security-credentials/":
        return 200, "kiln-testbed-role"
    if meta == "iam/security-credentials/kiln-testbed-role":
        creds = {"Code": "Success", "AccessKeyId": "test", "SecretAccessKey": "test", "Token": "", "Expiration": "2100-01-01T00:00:00Z"}
        return 200, json.dumps(creds, indent=2)
    return 404, "not found"


def exit_with_parent(parent):
    """Ends this process once the process that started it is gone."""
    while True:
        time.sleep(1)
        if os.getppid() != parent:
            os._exit(0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--stay", action="store_true", help="keep running after the parent process exits")
    args = ap.parse_args()
    app = TestbedApp(DomainDispatcherApplication(create_backend_app))
    server = make_server(args.host, args.port, app, threaded=True)
    port = server.server_port
    if args.port_file:
        tmp = f"{args.port_file}.tmp"
        with open(tmp, "w") as f:
            f.write(str(port))
        os.replace(tmp, args.port_file)
    print(f"listening on {port}", flush=True)
    if not args.stay:
        threading.Thread(target=exit_with_parent, args=(os.getppid(),), daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
