//! Configuration loading tests, one fixture directory per scenario under `testdata/`: syntax
//! errors with exact file:line:column, unknown blocks with suggestions, duplicates with both
//! spans, labels, meta-arguments, module sources and cycles, providers with aliases, lifecycle,
//! variable types, depends_on, and that every error of a file is reported, not only the first.

use std::path::Path;

use kiln_config::{load, parse_file, Config, Module};
use kiln_diag::{Diagnostic, Diagnostics, FileId, Sources, Span};
use kiln_value::{Type, Value};

fn fixture(name: &str) -> (Config, Diagnostics) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata").join(name);
    let (config, diags) = load(&dir);
    (config.expect("load always returns a configuration"), diags)
}

/// `file.kiln.hcl:LINE:COLUMN` of a span's start (file name only).
fn at(c: &Config, span: &Span) -> String {
    let loc = c.sources.location(span.file, span.range.start);
    let name = c.sources.path(span.file).file_name().unwrap().to_string_lossy().to_string();
    let line_col = loc.rsplitn(3, ':').take(2).collect::<Vec<_>>();
    format!("{name}:{}:{}", line_col[1], line_col[0])
}

fn text<'c>(c: &'c Config, span: &Span) -> &'c str {
    &c.sources.text(span.file)[span.range.clone()]
}

/// `CODE at file:line:col "text"` for each diagnostic, for readable assertions.
fn list(c: &Config, d: &Diagnostics) -> Vec<String> {
    d.iter()
        .map(|x| match &x.primary {
            Some(l) => format!("{} at {} {:?}", x.code, at(c, &l.span), text(c, &l.span)),
            None => x.code.to_string(),
        })
        .collect()
}

#[track_caller]
fn find<'d>(c: &Config, d: &'d Diagnostics, code: &str, message: &str) -> &'d Diagnostic {
    d.iter()
        .find(|x| x.code == code && x.summary.contains(message))
        .unwrap_or_else(|| panic!("no {code} containing {message:?} in:\n{}", list(c, d).join("\n")))
}

/// The primary label of `d` as `file:line:col "text"`.
fn primary(c: &Config, d: &Diagnostic) -> String {
    let l = d.primary.as_ref().expect("diagnostic has a span");
    format!("{} {:?}", at(c, &l.span), text(c, &l.span))
}

fn secondary(c: &Config, d: &Diagnostic) -> Vec<String> {
    d.secondary.iter().map(|l| format!("{} {:?}", at(c, &l.span), text(c, &l.span))).collect()
}

fn resource<'m>(m: &'m Module, kind: &str, name: &str) -> &'m kiln_config::Resource {
    m.resources
        .iter()
        .find(|r| r.kind == kind && r.name == name && r.mode == kiln_addrs::Mode::Managed)
        .unwrap_or_else(|| panic!("no resource {kind}.{name}"))
}

// ----- syntax errors -----

#[test]
fn syntax_error_location() {
    let (c, d) = fixture("syntax_error");
    assert_eq!(list(&c, &d), [r#"E-SYNTAX at main.kiln.hcl:5:11 "=""#]);
    let span = &d.iter().next().unwrap().primary.as_ref().unwrap().span;
    let full = c.sources.location(span.file, span.range.start);
    assert!(full.ends_with("testdata/syntax_error/main.kiln.hcl:5:11"), "{full}");
    assert!(d.iter().next().unwrap().hint.is_some());
}

#[test]
fn syntax_error_column_counts_characters() {
    // `"héllo wörld"` holds two 2-byte characters before the error.
    let (c, d) = fixture("syntax_error_utf8");
    assert_eq!(list(&c, &d), [r#"E-SYNTAX at main.kiln.hcl:2:28 "]""#]);
}

#[test]
fn syntax_error_span_ends_on_a_character_boundary() {
    let mut sources = Sources::new();
    let text = "locals {\n  a = 1 é\n}\n".to_string();
    let file = sources.add("x.kiln.hcl", text);
    let mut module = Module::default();
    let mut diags = Diagnostics::new();
    parse_file(file, sources.text(file), &mut module, &mut diags);
    let span = &diags.iter().next().unwrap().primary.as_ref().unwrap().span;
    assert_eq!(&sources.text(file)[span.range.clone()], "é");
}

#[test]
fn errors_in_every_file_are_reported() {
    let (c, d) = fixture("errors_in_two_files");
    assert_eq!(
        list(&c, &d),
        [r#"E-SYNTAX at a.kiln.hcl:3:1 "}""#, r#"E-UNKNOWN-BLOCK at b.kiln.hcl:1:1 "resorce \"record\" \"b\"""#]
    );
}

// ----- structure errors -----

#[test]
fn unknown_blocks_suggest_the_closest_keyword() {
    let (c, d) = fixture("unknown_block");
    assert_eq!(d.len(), 4, "{:#?}", list(&c, &d));
    for (word, suggestion, line) in [("resorce", "resource", 1), ("varible", "variable", 5), ("outputs", "output", 7)] {
        let x = find(&c, &d, "E-UNKNOWN-BLOCK", &format!("`{word}`"));
        assert_eq!(x.hint.as_deref(), Some(format!("did you mean `{suggestion}`?").as_str()));
        assert!(primary(&c, x).starts_with(&format!("main.kiln.hcl:{line}:1 ")), "{}", primary(&c, x));
    }
    let x = find(&c, &d, "E-TOPLEVEL-ATTR", "`region`");
    assert_eq!(primary(&c, x), r#"main.kiln.hcl:15:1 "region""#);
    // The valid block is still loaded, the misspelt ones are not.
    let m = &c.root.module;
    assert_eq!(m.resources.len(), 1);
    resource(m, "record", "ok");
    assert!(m.variables.is_empty() && m.outputs.is_empty());
}

#[test]
fn duplicates_report_both_spans() {
    let (c, d) = fixture("duplicates");
    assert_eq!(d.len(), 6, "{:#?}", list(&c, &d));
    let x = find(&c, &d, "E-DUPLICATE", "resource `record.a` is declared twice");
    assert_eq!(primary(&c, x), r#"b.kiln.hcl:1:1 "resource \"record\" \"a\"""#);
    assert_eq!(secondary(&c, x), [r#"a.kiln.hcl:1:1 "resource \"record\" \"a\"""#]);
    let x = find(&c, &d, "E-DUPLICATE", "variable `v`");
    assert_eq!(primary(&c, x), r#"a.kiln.hcl:6:1 "variable \"v\"""#);
    assert_eq!(secondary(&c, x), [r#"a.kiln.hcl:5:1 "variable \"v\"""#]);
    let x = find(&c, &d, "E-DUPLICATE", "local value `l`");
    assert_eq!((primary(&c, x), secondary(&c, x)), (r#"b.kiln.hcl:7:3 "l""#.into(), vec![r#"a.kiln.hcl:9:3 "l""#.to_string()]));
    let x = find(&c, &d, "E-DUPLICATE", "output `o`");
    assert_eq!(secondary(&c, x), [r#"a.kiln.hcl:12:1 "output \"o\"""#]);
    let x = find(&c, &d, "E-DUPLICATE", "provider `kiln`");
    assert_eq!(secondary(&c, x), [r#"a.kiln.hcl:16:1 "provider \"kiln\"""#]);
    // hcl-edit rejects an attribute set twice as a syntax error; it is reported as a duplicate
    // and the rest of the file is still read.
    let x = find(&c, &d, "E-DUPLICATE", "attribute `input` is set twice");
    assert_eq!(primary(&c, x), r#"b.kiln.hcl:3:3 "input""#);
    assert_eq!(secondary(&c, x), [r#"b.kiln.hcl:2:3 "input""#]);
    // The first declaration wins; a data source may share a managed resource's name.
    let m = &c.root.module;
    assert_eq!(m.resources.len(), 2);
    let first = resource(m, "record", "a").body.attr("input").unwrap();
    assert_eq!(text(&c, &first.expr.span().unwrap()), r#""first""#);
}

#[test]
fn attribute_duplicates_inside_nested_blocks_are_recovered() {
    let mut sources = Sources::new();
    let text = "resource \"record\" \"a\" {\n  tags {\n    k = 1\n    k = 2\n  }\n  k = 3\n}\nresorce \"x\" \"y\" {}\n";
    let file = sources.add("x.kiln.hcl", text.to_string());
    let mut module = Module::default();
    let mut diags = Diagnostics::new();
    parse_file(file, sources.text(file), &mut module, &mut diags);
    let codes: Vec<&str> = diags.iter().map(|d| d.code).collect();
    assert_eq!(codes, ["E-DUPLICATE", "E-UNKNOWN-BLOCK"]);
    let dup = diags.iter().next().unwrap();
    let t = |s: &Span| &text[s.range.clone()];
    assert_eq!(dup.primary.as_ref().map(|l| l.span.range.start), Some(text.find("k = 2").unwrap()));
    // The first value is the one in the same block, not the `k` outside it.
    assert_eq!(dup.secondary.iter().map(|l| l.span.range.start).collect::<Vec<_>>(), [text.find("k = 1").unwrap()]);
    assert_eq!(dup.secondary.iter().map(|l| t(&l.span)).collect::<Vec<_>>(), ["k"]);
    assert_eq!(module.resources.len(), 1);
}

#[test]
fn a_multi_line_duplicate_attribute_stays_a_syntax_error() {
    let mut sources = Sources::new();
    let text = "locals {\n  a = 1\n  a = [\n    2,\n  ]\n}\n";
    let file = sources.add("x.kiln.hcl", text.to_string());
    let mut module = Module::default();
    let mut diags = Diagnostics::new();
    parse_file(file, sources.text(file), &mut module, &mut diags);
    assert_eq!(diags.iter().map(|d| d.code).collect::<Vec<_>>(), ["E-SYNTAX"]);
}

#[test]
fn missing_and_extra_labels() {
    let (c, d) = fixture("labels");
    assert_eq!(
        list(&c, &d),
        [
            r#"E-BLOCK-LABELS at main.kiln.hcl:1:1 "resource \"record\"""#,
            r#"E-BLOCK-LABELS at main.kiln.hcl:5:1 "variable""#,
            r#"E-BLOCK-LABELS at main.kiln.hcl:7:1 "data \"record\"""#,
            r#"E-BLOCK-LABELS at main.kiln.hcl:9:1 "module""#,
            r#"E-BLOCK-LABELS at main.kiln.hcl:13:8 "\"named\"""#,
            r#"E-BLOCK-LABELS at main.kiln.hcl:17:1 "resource \"record\" \"a\" \"extra\"""#,
            r#"E-NAME at main.kiln.hcl:19:1 "resource \"record\" \"1bad\"""#,
            r#"E-BLOCK-LABELS at main.kiln.hcl:21:1 "output""#,
        ]
    );
    let x = find(&c, &d, "E-BLOCK-LABELS", "a `resource` block needs 2 label(s), found 1");
    assert_eq!(x.hint.as_deref(), Some(r#"write `resource "KIND" "NAME" { ... }`"#));
    find(&c, &d, "E-BLOCK-LABELS", "an `output` block needs 1 label(s), found 0");
    find(&c, &d, "E-BLOCK-LABELS", "a `locals` block takes no labels, found 1");
}

#[test]
fn count_and_for_each_together() {
    let (c, d) = fixture("count_for_each");
    assert_eq!(d.len(), 1, "{:#?}", list(&c, &d));
    let x = find(&c, &d, "E-COUNT-FOREACH", "cannot be used together");
    assert_eq!(primary(&c, x), r#"main.kiln.hcl:2:14 "2""#);
    assert_eq!(secondary(&c, x), [r#"main.kiln.hcl:3:14 "toset([\"a\", \"b\"])""#]);
    assert_eq!(x.address.as_deref(), Some("record.both"));
    let m = &c.root.module;
    assert!(resource(m, "record", "counted").count.is_some() && resource(m, "record", "counted").for_each.is_none());
    assert!(resource(m, "record", "each").for_each.is_some() && resource(m, "record", "each").count.is_none());
    // Meta-arguments are not part of the body.
    assert!(resource(m, "record", "both").body.attr("count").is_none());
    assert!(resource(m, "record", "both").body.attr("input").is_some());
}

// ----- modules -----

#[test]
fn module_source_problems() {
    let (c, d) = fixture("module_source");
    assert_eq!(d.len(), 4, "{:#?}", list(&c, &d));
    let x = find(&c, &d, "E-MODULE-SOURCE", "module `no_source` has no `source`");
    assert_eq!(primary(&c, x), r#"main.kiln.hcl:1:1 "module \"no_source\"""#);
    let x = find(&c, &d, "E-MODULE-SOURCE", "module `missing_dir`: directory");
    assert_eq!(primary(&c, x), r#"main.kiln.hcl:6:12 "\"./does-not-exist\"""#);
    assert!(x.summary.contains("module_source/does-not-exist"), "path is cleaned: {}", x.summary);
    let x = find(&c, &d, "E-MODULE-SOURCE", "must be a literal string");
    assert_eq!(primary(&c, x), r#"main.kiln.hcl:10:12 "\"./${var.dir}\"""#);
    let x = find(&c, &d, "E-MODULE-META", "`count` on module calls");
    assert_eq!(primary(&c, x), r#"main.kiln.hcl:15:3 "count""#);
    // The valid call is loaded with its inputs and its module.
    let ok = &c.root.module.module_calls["ok"];
    assert_eq!(ok.source, "./mod");
    assert_eq!(ok.inputs.keys().collect::<Vec<_>>(), ["name"]);
    assert!(c.root.children["ok"].module.variables.contains_key("name"));
    assert_eq!(c.root.children["ok"].path, ["ok"]);
}

#[test]
fn module_cycle_is_reported_where_it_closes() {
    let (c, d) = fixture("module_cycle");
    assert_eq!(d.len(), 1, "{:#?}", list(&c, &d));
    let x = find(&c, &d, "E-MODULE-CYCLE", "module `back_to_a` calls itself through `../a`");
    assert_eq!(primary(&c, x), r#"main.kiln.hcl:2:12 "\"../a\"""#);
    let path = c.sources.path(x.primary.as_ref().unwrap().span.file).to_string_lossy().to_string();
    assert!(path.ends_with("testdata/module_cycle/modules/b/main.kiln.hcl"), "clean path: {path}");
    assert_eq!(x.address.as_deref(), Some("module.a.module.b.module.back_to_a"));
    assert!(x.hint.is_some());
    // The tree stops where the cycle closes.
    let b = c.root.find(&["a".to_string(), "b".to_string()]).expect("module.a.module.b");
    assert!(b.children.is_empty());
    assert_eq!(c.root.walk().len(), 3);
}

#[test]
fn a_module_calling_its_own_directory_is_a_cycle() {
    let (c, d) = fixture("module_self");
    assert_eq!(list(&c, &d), [r#"E-MODULE-CYCLE at main.kiln.hcl:2:12 "\"./\"""#]);
}

// ----- providers -----

#[test]
fn provider_blocks_with_alias() {
    let (c, d) = fixture("providers");
    assert_eq!(d.len(), 4, "{:#?}", list(&c, &d));
    let m = &c.root.module;
    let keys: Vec<String> = m.providers.iter().map(|p| p.key()).collect();
    assert_eq!(keys, ["kiln", "kiln.west"]);
    let west = &m.providers[1];
    assert_eq!((west.name.as_str(), west.alias.as_deref()), ("kiln", Some("west")));
    assert!(west.body.attr("alias").is_none(), "alias is not a provider setting");
    assert!(west.body.attr("region").is_some());
    let key = |name: &str| resource(m, "record", name).provider.as_ref().map(|p| p.key());
    assert_eq!(key("default"), None);
    assert_eq!(key("aliased").as_deref(), Some("kiln.west"));
    assert_eq!(key("quoted").as_deref(), Some("kiln.west"));
    let aliased = resource(m, "record", "aliased").provider.clone().unwrap();
    assert_eq!(text(&c, &aliased.span), "kiln.west");
    assert!(resource(m, "record", "aliased").body.attr("provider").is_none());
    let data = m.resources.iter().find(|r| r.name == "d").unwrap();
    assert_eq!(data.provider.as_ref().map(|p| p.key()).as_deref(), Some("kiln"));

    let x = find(&c, &d, "E-PROVIDER-REF", "must name a provider");
    assert_eq!(primary(&c, x), r#"main.kiln.hcl:28:14 "kiln.a.b""#);
    let x = find(&c, &d, "E-LITERAL", "`alias` must be a literal string");
    assert_eq!(primary(&c, x), r#"main.kiln.hcl:32:11 "var.name""#);
    let x = find(&c, &d, "E-DUPLICATE", "provider `kiln.west` is configured twice");
    assert_eq!(primary(&c, x), r#"main.kiln.hcl:35:1 "provider \"kiln\"""#);
    assert_eq!(secondary(&c, x), [r#"main.kiln.hcl:5:1 "provider \"kiln\"""#]);
    find(&c, &d, "E-DUPLICATE", "provider `kiln` is configured twice");
}

// ----- lifecycle -----

#[test]
fn lifecycle_settings() {
    let (c, d) = fixture("lifecycle");
    let m = &c.root.module;
    let all = &resource(m, "record", "all").lifecycle;
    assert!(all.prevent_destroy && all.create_before_destroy && !all.ignore_all_changes);
    assert_eq!(all.ignore_changes, ["input", "tags"]);
    assert!(resource(m, "record", "all").body.blocks.is_empty(), "lifecycle is not part of the body");
    let every = &resource(m, "record", "everything_ignored").lifecycle;
    assert!(every.ignore_all_changes && every.ignore_changes.is_empty());
    let def = &resource(m, "record", "defaults").lifecycle;
    assert!(!def.prevent_destroy && !def.create_before_destroy && !def.ignore_all_changes && def.ignore_changes.is_empty());

    assert_eq!(d.len(), 6, "{:#?}", list(&c, &d));
    let x = find(&c, &d, "E-LITERAL", "`prevent_destroy` must be true or false");
    assert_eq!(primary(&c, x), r#"main.kiln.hcl:21:23 "\"yes\"""#);
    let x = find(&c, &d, "E-UNKNOWN-ATTR", "`prevent_destory`");
    assert_eq!(x.hint.as_deref(), Some("did you mean `prevent_destroy`?"));
    assert_eq!(x.address.as_deref(), Some("record.bad"));
    let x = find(&c, &d, "E-IGNORE-CHANGES", "lists attribute names");
    assert_eq!(primary(&c, x), r#"main.kiln.hcl:23:24 "tags.name""#);
    find(&c, &d, "E-UNKNOWN-BLOCK", "`precondition` blocks in `lifecycle` are not supported");
    let x = find(&c, &d, "E-DUPLICATE", "more than one `lifecycle` block");
    assert_eq!((primary(&c, x), secondary(&c, x)), (r#"main.kiln.hcl:29:3 "lifecycle""#.into(), vec![r#"main.kiln.hcl:20:3 "lifecycle""#.into()]));
    let x = find(&c, &d, "E-IGNORE-CHANGES", "must be a list of attribute names or `all`");
    assert_eq!(primary(&c, x), r#"main.kiln.hcl:36:22 "\"input\"""#);
    assert!(x.hint.is_some());
}

// ----- variables -----

#[test]
fn variable_type_constraints() {
    let (c, d) = fixture("variable_types");
    let v = &c.root.module.variables;
    let Type::Object(attrs) = &v["obj"].ty else { panic!("obj: {:?}", v["obj"].ty) };
    assert_eq!(attrs.keys().collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!((&attrs["a"].ty, attrs["a"].optional, &attrs["a"].default), (&Type::String, false, &None));
    assert_eq!((&attrs["b"].ty, attrs["b"].optional), (&Type::Number, true));
    assert_eq!(attrs["b"].default, Some(Value::from(1i64)));
    assert_eq!(v["nested"].ty, Type::List(Box::new(Type::Map(Box::new(Type::String)))));
    assert_eq!(v["legacy"].ty, Type::String);
    assert_eq!(v["legacy_list"].ty, Type::List(Box::new(Type::Any)));
    assert_eq!(v["tuple"].ty, Type::Tuple(vec![Type::String, Type::Number, Type::Bool]));
    assert_eq!(v["set_any"].ty, Type::Set(Box::new(Type::Any)));
    assert_eq!(v["untyped"].ty, Type::Any);

    let s = &v["settings"];
    assert_eq!(s.ty, Type::Bool);
    assert!(s.sensitive && !s.nullable);
    assert_eq!(s.description.as_deref(), Some("a flag"));
    assert!(s.default.is_some());
    assert_eq!(s.validations.len(), 1);
    assert_eq!(text(&c, &s.validations[0].condition.span().unwrap()), "var.settings != null");

    assert_eq!(d.len(), 5, "{:#?}", list(&c, &d));
    let x = find(&c, &d, "E-TYPE-SYNTAX", "unknown type `strng`");
    assert_eq!(primary(&c, x), r#"main.kiln.hcl:30:15 "strng""#);
    assert_eq!(x.hint.as_deref(), Some("did you mean `string`?"));
    assert_eq!(x.address.as_deref(), Some("var.typo"));
    let x = find(&c, &d, "E-TYPE-SYNTAX", "`optional(...)` is only allowed for an attribute");
    assert_eq!(primary(&c, x), r#"main.kiln.hcl:34:10 "optional(string)""#);
    let x = find(&c, &d, "E-TYPE-DEFAULT", "`var.other` cannot be used in a type default");
    assert_eq!(primary(&c, x), r#"main.kiln.hcl:38:40 "var.other""#);
    find(&c, &d, "E-TYPE-SYNTAX", "`map(...)` takes one element type");
    let x = find(&c, &d, "E-UNKNOWN-BLOCK", "`validaton`");
    assert_eq!(x.hint.as_deref(), Some("did you mean `validation`?"));
}

// ----- depends_on -----

#[test]
fn depends_on_lists() {
    let (c, d) = fixture("depends_on");
    let m = &c.root.module;
    let deps = &resource(m, "record", "b").depends_on;
    assert_eq!(deps.iter().map(|x| x.target.as_str()).collect::<Vec<_>>(), ["record.a", "module.m", "data.record.d"]);
    assert_eq!(deps.iter().map(|x| text(&c, &x.span)).collect::<Vec<_>>(), ["record.a", "module.m", "data.record.d"]);
    assert_eq!(m.outputs["o"].depends_on.iter().map(|x| x.target.as_str()).collect::<Vec<_>>(), ["record.b"]);
    assert_eq!(m.module_calls["m"].depends_on.iter().map(|x| x.target.as_str()).collect::<Vec<_>>(), ["record.a"]);
    assert!(!m.module_calls["m"].inputs.contains_key("depends_on"));

    assert_eq!(d.len(), 3, "{:#?}", list(&c, &d));
    let x = find(&c, &d, "E-DEPENDS-ON", "must be a list");
    assert_eq!(primary(&c, x), r#"main.kiln.hcl:20:16 "record.a""#);
    assert_eq!(x.address.as_deref(), Some("record.not_a_list"));
    let quoted = d.iter().find(|x| x.address.as_deref() == Some("record.quoted")).unwrap();
    assert_eq!(primary(&c, quoted), r#"main.kiln.hcl:24:17 "\"record.a\"""#);
    assert_eq!(quoted.hint.as_deref(), Some("write the address without quotes"));
    let indexed = d.iter().find(|x| x.address.as_deref() == Some("record.indexed")).unwrap();
    assert_eq!(primary(&c, indexed), r#"main.kiln.hcl:28:17 "record.a[0]""#);
    assert!(indexed.hint.as_deref().unwrap().contains("whole resources"));
}

// ----- all errors -----

#[test]
fn every_error_of_a_file_is_reported() {
    let (c, d) = fixture("many_errors");
    assert_eq!(
        list(&c, &d),
        [
            r#"E-DUPLICATE at main.kiln.hcl:21:3 "x""#,
            r#"E-UNKNOWN-BLOCK at main.kiln.hcl:1:1 "resorce \"record\" \"a\"""#,
            r#"E-TYPE-SYNTAX at main.kiln.hcl:4:13 "lst(string)""#,
            r#"E-UNKNOWN-ATTR at main.kiln.hcl:5:3 "defualt""#,
            r#"E-OUTPUT-VALUE at main.kiln.hcl:8:1 "output \"no_value\"""#,
            r#"E-COUNT-FOREACH at main.kiln.hcl:13:14 "1""#,
            r#"E-MODULE-SOURCE at main.kiln.hcl:17:1 "module \"m\"""#,
        ]
    );
    assert_eq!(find(&c, &d, "E-TYPE-SYNTAX", "lst").hint.as_deref(), Some("did you mean `list`?"));
    assert!(d.iter().all(|x| x.hint.is_some()), "every diagnostic has a hint");
}

#[test]
fn an_empty_directory_is_an_error() {
    let (_, d) = fixture("empty");
    assert_eq!(d.iter().map(|x| x.code).collect::<Vec<_>>(), ["E-CONFIG-EMPTY"]);
}

// ----- a valid configuration -----

#[test]
fn a_valid_configuration_loads_completely() {
    let (c, d) = fixture("valid");
    assert!(d.is_empty(), "{:#?}", list(&c, &d));
    let m = &c.root.module;
    let settings = m.settings.as_ref().unwrap();
    assert_eq!(settings.required_version.as_ref().map(|(v, _)| v.as_str()), Some(">= 0.1"));
    let backend = settings.backend.as_ref().unwrap();
    assert_eq!(backend.kind, "local");
    assert!(backend.body.attr("path").is_some());
    assert_eq!(m.variables["name"].ty, Type::String);
    assert_eq!(m.variables["name"].description.as_deref(), Some("the name"));
    assert_eq!(text(&c, &m.locals["full"].expr.span().unwrap()), r#""${var.name}-app""#);
    let a = resource(m, "record", "a");
    assert_eq!(a.body.attrs.iter().map(|x| x.name.as_str()).collect::<Vec<_>>(), ["input"]);
    assert_eq!(a.body.blocks.iter().map(|b| b.ident.as_str()).collect::<Vec<_>>(), ["tags"]);
    assert_eq!(text(&c, &a.span), r#"resource "record" "a""#);
    assert!(m.resources.iter().any(|r| r.mode == kiln_addrs::Mode::Data && r.name == "lookup"));
    assert!(m.outputs["id"].sensitive);
    assert_eq!(m.module_calls["net"].inputs.keys().collect::<Vec<_>>(), ["cidr"]);
    let net = c.root.find(&["net".to_string()]).unwrap();
    assert!(net.module.variables.contains_key("cidr") && net.module.outputs.contains_key("cidr"));
    assert!(net.module.dir.ends_with("valid/modules/net"));
    assert_eq!(c.root.walk().iter().map(|n| n.path.join(".")).collect::<Vec<_>>(), ["", "net"]);
}

// ----- expressions keep what the evaluator needs -----

#[test]
fn heredocs_in_configuration_are_dedented_like_terraform() {
    struct NoScope;
    impl kiln_eval::Scope for NoScope {
        fn resolve(&self, r: &kiln_eval::Ref) -> Result<Value, Diagnostic> {
            Err(Diagnostic::error("E-TEST", format!("no {r}")))
        }
        fn base_dir(&self) -> &Path {
            Path::new(".")
        }
    }
    let (c, d) = fixture("heredoc");
    assert!(d.is_empty(), "{:#?}", list(&c, &d));
    let local = |n: &str| kiln_eval::eval(&c.root.module.locals[n].expr, &NoScope).unwrap();
    // The whitespace-only line is neither counted nor trimmed; `%{if}` bodies are dedented too.
    assert_eq!(local("script"), Value::from("#!/bin/sh\n  echo \"indented\"\n  \n\ndone\n\n"));
    assert_eq!(local("plain"), Value::from("  keep\n"));
    assert_eq!(local("stripped"), Value::from("a b c"));
}

#[test]
fn parse_file_reads_one_file_into_a_module() {
    let mut sources = Sources::new();
    let file = sources.add("one.kiln.hcl", "variable \"x\" {\n  default = 0.1\n}\n".to_string());
    let mut module = Module::default();
    let mut diags = Diagnostics::new();
    parse_file(file, sources.text(file), &mut module, &mut diags);
    assert!(diags.is_empty());
    assert_eq!(module.variables["x"].span.file, FileId(0));
}
