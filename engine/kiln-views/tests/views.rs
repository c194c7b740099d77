//! Views built from constructed plans and states, checked against their JSON Schemas in
//! `schemas/json/`, and the markers that must never be confused with user data.

use std::collections::BTreeMap;

use kiln_addrs::InstanceAddr;
use kiln_plan::{Action, Drift, Mode, OutputChange, Plan, PlannedChange, Reason};
use kiln_state::{DeposedObject, OutputState, ResourceState, State};
use kiln_value::Value;
use kiln_views::{render, Format, Output, Outputs, Validation, View};
use serde_json::json;

/// Checks `instance` against `schemas/json/NAME`, failing with every error.
fn conforms(name: &str, instance: &serde_json::Value) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas/json/");
    let text = std::fs::read_to_string(format!("{path}{name}")).expect("schema file");
    let schema: serde_json::Value = serde_json::from_str(&text).expect("schema is JSON");
    let v = jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{name} is not a valid schema: {e}"));
    let errors: Vec<String> = v.iter_errors(instance).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "{name}: {errors:#?}\n{instance:#}");
}

/// The errors of `instance` against `schemas/json/NAME`.
fn errors(name: &str, instance: &serde_json::Value) -> usize {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas/json/");
    let schema: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(format!("{path}{name}")).unwrap()).unwrap();
    jsonschema::validator_for(&schema).unwrap().iter_errors(instance).count()
}

fn addr(s: &str) -> InstanceAddr {
    s.parse().expect("address")
}

fn map(pairs: &[(&str, Value)]) -> Value {
    Value::Map(pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect())
}

fn change(address: &str, action: Action, before: Option<Value>, after: Option<Value>) -> PlannedChange {
    PlannedChange {
        address: addr(address),
        provider: "kiln".into(),
        kind: addr(address).resource.kind,
        action,
        before,
        after,
        reason: None,
        create_before_destroy: false,
        sensitive: vec![],
        dependencies: vec![],
        deposed: None,
        references: Default::default(),
        cost: None,
    }
}

/// A plan with every kind of change, an unknown, secrets, user data shaped like markers,
/// drift and outputs.
fn plan() -> Plan {
    let marker = map(&[("unknown", Value::Bool(true))]);
    let mut secret = change(
        "record.secret",
        Action::Update,
        Some(map(&[("id", Value::string("i-1")), ("input", Value::string("old-hunter2"))])),
        Some(map(&[("id", Value::string("i-1")), ("input", Value::string("new-hunter2"))])),
    );
    secret.sensitive = vec!["input".into()];
    let mut replaced = change(
        "module.net.record.r[\"k\"]",
        Action::Replace,
        Some(map(&[("id", Value::string("i-2")), ("triggers_replace", Value::string("v1"))])),
        Some(map(&[("id", Value::Unknown), ("triggers_replace", Value::string("v2"))])),
    );
    replaced.reason = Some(Reason::AttributesForceNew { attributes: vec!["triggers_replace".into()] });
    replaced.create_before_destroy = true;
    let mut deposed = change("record.old[0]", Action::Delete, Some(map(&[("id", Value::string("i-3"))])), None);
    deposed.deposed = Some("abcd1234".into());
    deposed.reason = Some(Reason::Deposed);
    Plan {
        format_version: kiln_plan::FORMAT_VERSION,
        kiln_version: "0.1.0".into(),
        mode: Mode::Normal,
        lineage: Some("l".into()),
        serial: Some(3),
        changes: vec![
            change(
                "record.user",
                Action::Create,
                None,
                Some(map(&[
                    ("id", Value::Unknown),
                    ("input", marker.clone()),
                    ("list", Value::List(vec![Value::string("a"), Value::string("list-hunter2").sensitive(), Value::Unknown])),
                ])),
            ),
            secret,
            replaced,
            deposed,
            change("record.same", Action::NoOp, Some(map(&[("id", Value::string("i-4"))])), Some(map(&[("id", Value::string("i-4"))]))),
            change("data.machine.m", Action::Read, None, Some(map(&[("cpus", Value::Unknown)]))),
        ],
        drift: vec![
            Drift {
                address: addr("record.same"),
                before: map(&[("id", Value::string("i-4")), ("input", Value::string("x"))]),
                after: Some(map(&[("id", Value::string("i-4")), ("input", Value::string("y"))])),
                sensitive: vec![],
            },
            Drift { address: addr("record.lost"), before: map(&[("id", Value::string("i-9"))]), after: None, sensitive: vec![] },
        ],
        outputs: BTreeMap::from([
            ("marker".into(), OutputChange { before: None, after: Some(marker), sensitive: false }),
            ("pending".into(), OutputChange { before: None, after: Some(Value::Unknown), sensitive: false }),
            (
                "token".into(),
                OutputChange { before: Some(Value::string("out-hunter2")), after: Some(Value::string("out2-hunter2")), sensitive: true },
            ),
            ("gone".into(), OutputChange { before: Some(Value::number(1)), after: None, sensitive: false }),
        ]),
        variables: BTreeMap::new(),
        config_digest: "d".into(),
        targets: vec![],
        excludes: vec![],
        refresh: true,
        pending: vec![],
        cost: None,
        placements: Vec::new(),
        policies: Vec::new(),
        git_commit: None,
    }
}

fn state() -> State {
    let res = |kind: &str, attrs: Value, sensitive: &[&str]| ResourceState {
        provider: "kiln".into(),
        kind: kind.into(),
        attributes: attrs,
        sensitive: sensitive.iter().map(|s| s.to_string()).collect(),
        dependencies: vec![],
        tainted: false,
        create_before_destroy: false,
        billing: None,
        released: None,
    };
    let mut s = State { lineage: "lin".into(), serial: 7, ..State::default() };
    s.resources.insert(
        addr("record.a"),
        res("record", map(&[("id", Value::string("i-1")), ("input", map(&[("sensitive", Value::Bool(true))]))]), &[]),
    );
    s.resources.insert(
        addr("record.secret"),
        res("record", map(&[("id", Value::string("i-2")), ("input", Value::string("state-hunter2"))]), &["input"]),
    );
    s.resources.insert(addr("module.m.record.c[1]"), res("record", map(&[("id", Value::string("i-3"))]), &[]));
    s.deposed.insert(
        "k1".into(),
        DeposedObject { key: "k1".into(), address: addr("record.a"), resource: res("record", map(&[("id", Value::string("i-0"))]), &[]) },
    );
    s.outputs.insert("b".into(), OutputState { value: Value::string("alpha"), sensitive: false });
    s.outputs.insert("token".into(), OutputState { value: Value::string("out-hunter2"), sensitive: true });
    s
}

#[test]
fn plan_view_conforms_and_marks_beside_the_values() {
    let p = plan();
    let v = p.json();
    conforms("plan-view.schema.json", &v);
    assert_eq!(v["format_version"], "1.0");
    let rc = |a: &str| v["resource_changes"].as_array().unwrap().iter().find(|c| c["address"] == a).cloned().unwrap();
    // The user's own `{unknown = true}` is data: in `after`, not in `after_unknown`.
    let user = rc("record.user");
    assert_eq!(user["change"]["after"]["input"], json!({"unknown": true}));
    assert_eq!(user["change"]["after_unknown"], json!({"id": true, "list": [false, false, true]}));
    assert_eq!(user["change"]["after"]["id"], json!(null));
    assert_eq!(user["change"]["after"]["list"], json!(["a", null, null]));
    assert_eq!(user["change"]["after_sensitive"], json!({"list": [false, true, false]}));
    assert_eq!((user["change"]["actions"].clone(), user["change"]["before_sensitive"].clone()), (json!(["create"]), json!(false)));
    let secret = rc("record.secret");
    assert_eq!(secret["change"]["before"], json!({"id": "i-1", "input": null}));
    assert_eq!(secret["change"]["before_sensitive"], json!({"input": true}));
    assert_eq!(secret["change"]["after_sensitive"], json!({"input": true}));
    let r = rc("module.net.record.r[\"k\"]");
    assert_eq!(r["change"]["actions"], json!(["create", "delete"]), "create_before_destroy replace");
    assert_eq!((r["module_address"].clone(), r["index"].clone(), r["type"].clone()), (json!("module.net"), json!("k"), json!("record")));
    assert_eq!(rc("record.old[0]")["deposed"], "abcd1234");
    assert_eq!(rc("record.old[0]")["index"], 0);
    // Outputs: the marker-shaped value and the unknown are told apart.
    let o = &v["output_changes"];
    assert_eq!((o["marker"]["after"].clone(), o["marker"]["after_unknown"].clone()), (json!({"unknown": true}), json!({})));
    assert_eq!((o["pending"]["after"].clone(), o["pending"]["after_unknown"].clone()), (json!(null), json!(true)));
    assert_eq!(o["token"]["after_sensitive"], true);
    assert_eq!(o["token"]["actions"], json!(["update"]));
    assert_eq!(o["gone"]["actions"], json!(["delete"]));
    assert_eq!(v["resource_drift"][0]["change"]["actions"], json!(["update"]));
    assert_eq!((&v["resource_drift"][1]["deleted"], &v["resource_drift"][1]["change"]["actions"]), (&json!(true), &json!(["delete"])));
    let data = rc("data.machine.m");
    assert_eq!(
        (&data["mode"], &data["change"]["actions"], &data["change"]["after_unknown"]),
        (&json!("data"), &json!(["read"]), &json!({"cpus": true}))
    );
    assert!(!v.to_string().contains("hunter2"), "{v}");
}

#[test]
fn plan_markdown_is_a_summary_with_a_table() {
    let md = render(&plan(), Format::Markdown, false);
    assert!(md.starts_with("### kiln plan: 2 to add, 1 to change, 2 to destroy\n"), "{md}");
    assert!(md.contains("| Action | Address | Kind | Provider | Reason |\n| --- | --- | --- | --- | --- |\n"), "{md}");
    assert!(md.contains("| create | `record.user` | record | kiln |  |"), "{md}");
    assert!(
        md.contains(
            "| replace (create before destroy) | `module.net.record.r[\"k\"]` | record | kiln | `triggers_replace` forces replacement |"
        ),
        "{md}"
    );
    assert!(
        md.contains(
            "| delete | `record.old[0]` (deposed abcd1234) | record | kiln | the old object of a create_before_destroy replacement |"
        ),
        "{md}"
    );
    assert!(md.contains("| `token` | update | (sensitive value) → (sensitive value) |"), "{md}");
    assert!(md.contains("| `gone` | delete |  |") && md.contains("| `marker` | create | `{unknown = true}` |"), "{md}");
    assert!(!md.contains("record.same` |"), "no-ops are left out: {md}");
    assert!(md.contains("- `record.same` has changed"), "{md}");
    assert!(md.contains("- `record.lost` has been deleted") && md.contains("| read | `data.machine.m` | machine | kiln |  |"), "{md}");
    assert!(!md.contains("hunter2"), "{md}");
}

#[test]
fn plan_human_uses_the_one_marker() {
    let text = render(&plan(), Format::Human, false);
    assert!(text.contains("~ input = (sensitive value) -> (sensitive value)"), "{text}");
    assert!(text.contains("+ token = ") || text.contains("~ token = (sensitive value) -> (sensitive value)"), "{text}");
    assert!(!text.contains("hunter2") && !text.contains("<sensitive>"), "{text}");
    let painted = render(&plan(), Format::Human, true);
    assert!(painted.contains('\u{1b}'), "a terminal gets colours");
}

#[test]
fn state_view_conforms_and_keeps_user_data() {
    let s = state();
    let v = s.json();
    conforms("state-view.schema.json", &v);
    let r = &v["resources"];
    let addrs: Vec<&str> = r.as_array().unwrap().iter().map(|r| r["address"].as_str().unwrap()).collect();
    assert_eq!(addrs, ["record.a", "record.secret", "module.m.record.c[1]", "record.a"], "resources, then deposed objects");
    assert_eq!(r[0]["values"]["input"], json!({"sensitive": true}), "user data shaped as a marker is data");
    assert_eq!(r[0]["sensitive_values"], json!({}));
    assert_eq!(r[1]["values"], json!({"id": "i-2", "input": null}));
    assert_eq!(r[1]["sensitive_values"], json!({"input": true}));
    assert_eq!((r[2]["module_address"].clone(), r[2]["index"].clone()), (json!("module.m"), json!(1)));
    assert_eq!(r[3]["deposed"], "k1");
    assert_eq!(v["outputs"]["token"], json!({"sensitive": true, "value": null}));
    assert_eq!((v["serial"].clone(), v["lineage"].clone()), (json!(7), json!("lin")));
    for f in [Format::Human, Format::Json, Format::Markdown] {
        let text = render(&s, f, false);
        assert!(!text.contains("hunter2"), "{f}: {text}");
    }
    let human = s.human();
    assert!(
        human.contains("    input = (sensitive value)\n") && human.contains("# record.a (deposed object k1, to be destroyed):"),
        "{human}"
    );
    assert!(human.ends_with("\nOutputs:\n\nb = \"alpha\"\ntoken = (sensitive value)\n"), "{human}");
    let md = s.markdown();
    assert!(md.contains("| `record.secret` | record | kiln |") && md.contains("| `token` | (sensitive value) |"), "{md}");
}

#[test]
fn output_views_conform() {
    let s = state();
    conforms("output-view.schema.json", &Outputs(&s.outputs).json());
    let one = Output { name: "b", output: &s.outputs["b"] };
    conforms("output-view.schema.json", &one.json());
    assert_eq!(one.json(), json!({"format_version": "1.0", "name": "b", "sensitive": false, "value": "alpha"}));
}

#[test]
fn validate_view_conforms() {
    let mut sources = kiln_diag::Sources::new();
    let f = sources.add("main.kiln.hcl", "resource \"record\" \"a\" {\n  nonsense = 1\n}\n".into());
    let mut diags = kiln_diag::Diagnostics::new();
    diags.push(
        kiln_diag::Diagnostic::error("E-ATTR-UNKNOWN", "unknown attribute `nonsense`")
            .at(kiln_diag::Span::new(f, 26..34), "here")
            .address("record.a")
            .hint("did you mean `input`?"),
    );
    diags.push(kiln_diag::Diagnostic::warning("W-X", "a warning without a place"));
    let v = Validation { sources: &sources, diagnostics: &diags };
    let j = v.json();
    conforms("validate-view.schema.json", &j);
    assert_eq!((j["valid"].clone(), j["error_count"].clone(), j["warning_count"].clone()), (json!(false), json!(1), json!(1)));
    assert_eq!(
        j["diagnostics"][0]["range"],
        json!({"filename": "main.kiln.hcl", "start": {"line": 2, "column": 3, "byte": 26}, "end": {"line": 2, "column": 11, "byte": 34}})
    );
    assert_eq!(j["diagnostics"][1]["range"], json!(null));
    let md = v.markdown();
    assert!(md.starts_with("### kiln validate: 1 error\n"), "{md}");
    assert!(
        md.contains("- **Error** `E-ATTR-UNKNOWN` at `main.kiln.hcl:2:3`: unknown attribute `nonsense`\n  - hint: did you mean `input`?"),
        "{md}"
    );
    let empty = kiln_diag::Diagnostics::new();
    let ok = Validation { sources: &sources, diagnostics: &empty };
    conforms("validate-view.schema.json", &ok.json());
    assert_eq!(ok.human(), "Success! The configuration is valid.\n");
}

#[test]
fn format_names_parse() {
    for n in Format::NAMES {
        assert_eq!(n.parse::<Format>().unwrap().to_string(), n);
    }
    assert!("yaml".parse::<Format>().unwrap_err().contains("human, json, markdown"));
}

#[test]
fn schemas_reject_what_they_do_not_describe() {
    let mut v = plan().json();
    v["resource_changes"][0]["change"]["after_unknown"] = json!("yes");
    assert!(errors("plan-view.schema.json", &v) > 0);
    let mut v = state().json();
    v["outputs"]["token"]["value"] = json!("leaked");
    assert!(errors("state-view.schema.json", &v) > 0, "a sensitive output's value must be null");
    let mut v = state().json();
    v["extra"] = json!(1);
    assert!(errors("state-view.schema.json", &v) > 0);
    assert!(errors("output-view.schema.json", &json!({"b": {"sensitive": false, "value": 1}})) > 0, "no format_version");
}

/// `kiln jobs --json` and `kiln status --json`: jobs of every shape (finished with exit codes,
/// running, gone, Slurm's one exit code) and clusters of each provider conform to their schemas.
#[test]
fn jobs_and_status_views_conform() {
    use kiln_views::{ClusterView, JobView, Jobs, Status};
    let now = "2026-01-02T03:00:00Z".parse().unwrap();
    let finished = map(&[
        ("status", Value::from("failed")),
        ("job_id", Value::from("j-1")),
        ("nodes", Value::from(2i64)),
        ("started_at", Value::from("2026-01-02T02:00:00Z")),
        ("finished_at", Value::from("2026-01-02T02:30:00Z")),
        ("restarts", Value::from(0i64)),
        ("exit_codes", Value::List(vec![Value::from(0i64), Value::Null])),
    ]);
    let slurm = map(&[("status", Value::from("succeeded")), ("exit_code", Value::from(0i64))]);
    let jobs = vec![
        JobView::new("job.a", "local", Some(&finished), now),
        JobView::new("job.b", "aws.west", None, now),
        JobView::new("job.c", "slurm", Some(&slurm), now),
    ];
    let v = Jobs(jobs.clone()).json();
    conforms("jobs-view.schema.json", &v);
    assert_eq!(v["jobs"][0]["duration_seconds"], 1800);
    assert_eq!(v["jobs"][0]["exit_codes"], json!([0, null]));
    assert_eq!(v["jobs"][1]["status"], "gone");
    let cluster = map(&[
        ("state", Value::from("running")),
        ("accelerators", Value::from("A100:8")),
        ("gpus_per_node", Value::from(8i64)),
        ("instance_ids", Value::List(vec![Value::from("i-1"), Value::from("i-2")])),
        ("private_ips", Value::List(vec![Value::from("10.0.0.1"), Value::from("10.0.0.2")])),
    ]);
    let s = Status {
        clusters: vec![
            ClusterView::new("cluster.a", "aws", "cluster", Some(&cluster), now),
            ClusterView::new("spot_pool.p", "aws", "spot_pool", None, now),
        ],
        jobs,
    };
    let v = s.json();
    conforms("status-view.schema.json", &v);
    assert_eq!((v["clusters"][0]["nodes"].clone(), v["clusters"][0]["gpus"].clone()), (json!(2), json!(16)));
    let mut bad = v.clone();
    bad["clusters"][0]["price_per_hour"] = json!(1.5);
    assert!(errors("status-view.schema.json", &bad) > 0, "no invented fields");
    let mut bad = Jobs(vec![]).json();
    bad["jobs"] = json!([{"address": "job.x"}]);
    assert!(errors("jobs-view.schema.json", &bad) > 0);
}

#[test]
fn spend_lists_objects_applied_before_prices_were_kept_as_unknown_never_as_free() {
    use kiln_views::cost::{Spend, SpendLine};
    let old_cloud = SpendLine::unrecorded("cluster.gpu".into(), "aws", "cluster", false);
    let old_local = SpendLine::unrecorded("cluster.dev".into(), "local", "cluster", true);
    let view = Spend::new([old_cloud, old_local]);
    let human = view.human();
    let gpu = human.lines().find(|l| l.starts_with("cluster.gpu")).expect("the old cloud object is listed");
    assert!(gpu.contains("no price recorded") && gpu.contains("unknown") && !gpu.contains("$0.00"), "{human}");
    let dev = human.lines().find(|l| l.starts_with("cluster.dev")).expect("the old local object is listed");
    assert!(dev.contains("this machine") && dev.contains("$0.00"), "{human}");
    assert!(human.contains("aws: $0.00/h, $0.00 so far (1 unknown, not counted)"), "{human}");
    assert!(human.contains("Total: $0.00/h, $0.00 so far (1 unknown, not counted)"), "{human}");
    let json = view.json();
    assert_eq!(json["resources"][1]["hourly"], serde_json::Value::Null, "sorted by address, cluster.gpu second: {json}");
    assert_eq!(json["total"]["unknown"], 1, "{json}");
}
