//! Data gravity (issue 14): a job says where its data lives, one block per bucket it reads,
//!
//! ```hcl
//! data {
//!   bucket  = bucket.corpus
//!   size_gb = 800
//! }
//! ```
//!
//! and the placed cluster it runs on is placed with the cost of moving that data to each
//! candidate ([`kiln_place::Data`], priced by the egress table the catalog ships).
//!
//! The block is the engine's, as `placement` is: checked here, never part of the body the job's
//! provider sees ([`provider_body`]). The graph records, for each placed cluster or spot pool,
//! the data blocks of the jobs whose `cluster` refers to it, following it or not
//! (`Graph::data`), with the provider block each bucket uses; the placed block depends on that
//! provider and on what `size_gb` refers to, never on the bucket itself. A bucket named in a
//! `data` block keeps its own provider: it never follows the placed cluster. At plan
//! (`plan_placed.rs`) `size_gb` is evaluated in the job's module, the bucket's place is its
//! provider's answer to `offerings` (a cloud's region; owned hardware; the embedded `local`
//! provider: this machine), and the data joins the request's digest ([`join`]), so a changed
//! `size_gb` decides again. A job's data counts once, whatever its `count`; several jobs or
//! blocks are summed.

use kiln_addrs::{Mode, ResourceAddr};
use kiln_config::{Body, ModuleNode, Resource};
use kiln_diag::{Diagnostic, Diagnostics};
use kiln_eval::{Expr, Ref, Scope};
use kiln_place::{Data, Origin};
use kiln_value::{Decimal, Value};
use sha2::Digest;

use super::Meta;

/// The nested block of a `job` that says where its data lives.
pub const BLOCK: &str = "data";
const CODE: &str = "E-DATA";
const ATTRS: [&str; 2] = ["bucket", "size_gb"];
const EXAMPLE: &str = "data {\n  bucket  = bucket.corpus\n  size_gb = 800\n}";

/// One `data` block as written: the bucket it names and its size.
#[derive(Debug, Clone)]
pub struct Written {
    pub bucket: ResourceAddr,
    pub size_gb: Expr,
}

/// One data block of a job on a placed block, as the graph records it.
#[derive(Debug, Clone)]
pub struct Source {
    pub job: ResourceAddr,
    pub bucket: ResourceAddr,
    /// The provider block the bucket uses (`aws`, `local`).
    pub provider: String,
    pub size_gb: Expr,
}

/// A job's body as its provider sees it: without `data` blocks.
pub fn provider_body(body: &Body) -> Body {
    Body { attrs: body.attrs.clone(), blocks: body.blocks.iter().filter(|b| (PROVIDER_PART.block)(&b.ident)).cloned().collect() }
}

/// [`provider_body`] as a part of the job's body, read in place.
pub(crate) const PROVIDER_PART: crate::instance::Part = crate::instance::Part { attr: |_| true, block: |n| n != BLOCK };

/// Whether `r` is a job with `data` blocks.
pub fn has_data(r: &Resource) -> bool {
    r.kind == "job" && r.body.blocks.iter().any(|b| b.ident == BLOCK)
}

/// The `data` blocks of job `r` in module `m`, checked: no label or nested block, `bucket` a
/// reference to a bucket of the module, `size_gb` present (and above 0 when it refers to
/// nothing). Errors point at the attribute (file:line:col). A reference to an undeclared
/// bucket is the graph's to report (as any other reference).
pub fn written(m: &ModuleNode, r: &Resource) -> (Vec<Written>, Diagnostics) {
    let mut out = Vec::new();
    let mut diags = Diagnostics::new();
    if r.kind != "job" {
        return (out, diags);
    }
    for b in r.body.blocks.iter().filter(|b| b.ident == BLOCK) {
        if !b.labels.is_empty() {
            diags.push(
                Diagnostic::error(CODE, "a `data` block takes no label").at(b.span.clone(), "here").hint(format!("write:\n{EXAMPLE}")),
            );
        }
        for nb in &b.body.blocks {
            diags.push(
                Diagnostic::error(CODE, format!("unsupported block `data.{}`", nb.ident))
                    .at(nb.span.clone(), "not in a `data` block")
                    .hint("a `data` block takes `bucket` and `size_gb`"),
            );
        }
        for a in b.body.attrs.iter().filter(|a| !ATTRS.contains(&a.name.as_str())) {
            diags.push(
                Diagnostic::error(CODE, format!("unsupported attribute `data.{}`", a.name))
                    .at(a.name_span.clone(), "not in a `data` block")
                    .hint(kiln_config::suggest(&a.name, &ATTRS)),
            );
        }
        let missing = |name: &str, what: &str| {
            Diagnostic::error(CODE, format!("missing `data.{name}`"))
                .at(b.span.clone(), "in this block")
                .hint(format!("add `{name} = ...` ({what}):\n{EXAMPLE}"))
        };
        let bucket = match b.body.attr("bucket") {
            None => {
                diags.push(missing("bucket", "the bucket the data is in"));
                None
            }
            Some(a) => match bucket_ref(m, a) {
                Ok(addr) => addr,
                Err(d) => {
                    diags.push(d);
                    None
                }
            },
        };
        let size = match b.body.attr("size_gb") {
            None => {
                diags.push(missing("size_gb", "how many GB the job reads from it"));
                None
            }
            Some(a) if kiln_eval::references(&a.expr).is_empty() => match kiln_eval::eval(&a.expr, &Nothing) {
                Ok(v) => match size_of(&v, &a.expr) {
                    Ok(_) => Some(a.expr.clone()),
                    Err(d) => {
                        diags.push(d);
                        None
                    }
                },
                // A function that needs more than literals (`file`) is evaluated at plan.
                Err(_) => Some(a.expr.clone()),
            },
            Some(a) => Some(a.expr.clone()),
        };
        if let (Some(bucket), Some(size_gb)) = (bucket, size) {
            out.push(Written { bucket, size_gb });
        }
    }
    let addr = ResourceAddr { module: m.path.clone(), mode: Mode::Managed, kind: r.kind.clone(), name: r.name.clone() };
    (out, diags.with_address(&addr.to_string()))
}

/// The bucket `data.bucket` refers to; `Ok(None)` for an undeclared one (the graph reports it).
fn bucket_ref(m: &ModuleNode, a: &kiln_config::Attr) -> Result<Option<ResourceAddr>, Diagnostic> {
    let at = a.expr.span().unwrap_or(a.name_span.clone());
    let wrong = |what: String| {
        Diagnostic::error(CODE, format!("`data.bucket` must refer to a bucket, such as `bucket.corpus`; {what}"))
            .at(at.clone(), "not a bucket")
            .hint("name the bucket resource the job reads, as a whole: `bucket = bucket.corpus`")
    };
    let Some(text) = kiln_eval::whole_reference(&a.expr) else {
        return Err(wrong("this is not a reference to a resource".into()));
    };
    let base = text.split('[').next().unwrap_or_default();
    match base.split_once('.') {
        Some(("bucket", name)) if !name.contains('.') => Ok(m.module.resource(Mode::Managed, "bucket", name).map(|_| ResourceAddr {
            module: m.path.clone(),
            mode: Mode::Managed,
            kind: "bucket".into(),
            name: name.to_string(),
        })),
        _ => Err(wrong(format!("`{text}` is not one"))),
    }
}

/// `size_gb`'s value as a size: a number above 0, known.
fn size_of(v: &Value, expr: &Expr) -> Result<Decimal, Diagnostic> {
    let at = |d: Diagnostic| d.or_at(expr.span());
    if v.contains_unknown() {
        return Err(at(Diagnostic::error(CODE, "`data.size_gb` must be known at plan time"))
            .hint("use a number, or variables and locals known at plan time: placement weighs it before anything is created"));
    }
    match v.unmarked() {
        Value::Number(n) if *n > Decimal::ZERO => Ok(*n),
        other => Err(at(Diagnostic::error(
            CODE,
            format!(
                "`data.size_gb` must be a number of GB above 0, got {}",
                other.to_template_string().unwrap_or_else(|| other.type_name().to_string())
            ),
        ))
        .hint("write the size of the data the job reads, in GB: `size_gb = 800`")),
    }
}

/// The size of one source, evaluated in its job's module (`scope`). Errors name the job.
pub fn size_gb(s: &Source, scope: &dyn Scope) -> Result<Decimal, Diagnostics> {
    let job = s.job.to_string();
    let v = kiln_eval::eval(&s.size_gb, scope).map_err(|d| d.with_address(&job))?;
    size_of(&v, &s.size_gb).map_err(|d| Diagnostics::from(d.or_address(job)))
}

/// The need and the request's description and digest, with the data of the jobs on the placed
/// block. Without data they are unchanged, so a state recorded before data gravity keeps its
/// decision.
pub fn join(meta: &mut Meta, mut data: Vec<Data>) {
    if data.is_empty() {
        return;
    }
    data.sort_by(|a, b| a.name.cmp(&b.name).then(a.size_gb.cmp(&b.size_gb)));
    let mut h = sha2::Sha256::new();
    h.update(meta.digest.as_bytes());
    for d in &data {
        meta.describe.push_str(&format!(", data = {} GB of {} ({})", d.size_gb.normalize(), d.name, d.origin));
        let origin = match &d.origin {
            Origin::Cloud { cloud, region } => format!("cloud:{cloud}:{}", region.as_deref().unwrap_or("")),
            Origin::Owned { provider } => format!("owned:{provider}"),
            Origin::ThisMachine => "this-machine".into(),
        };
        h.update(format!("\ndata:{}:{origin}:{}", d.name, d.size_gb.normalize()).as_bytes());
    }
    meta.digest = hex::encode(h.finalize());
    meta.need.data = data;
}

/// A scope with no names: `size_gb` written as a literal (or a function of literals) is checked
/// when the configuration is read.
struct Nothing;

impl Scope for Nothing {
    fn resolve(&self, r: &Ref) -> Result<Value, Diagnostic> {
        Err(Diagnostic::error(CODE, format!("`{r}` has no value here")))
    }

    fn base_dir(&self) -> &std::path::Path {
        std::path::Path::new(".")
    }
}

#[cfg(test)]
mod tests {
    use kiln_place::Need;
    use kiln_provider::portable::request::Request;

    use super::*;

    fn meta() -> Meta {
        let request = Request::parse(&Value::Map([("accelerators".to_string(), Value::from("T4:1"))].into())).unwrap();
        Meta { need: Need::new(request), describe: "T4:1, nodes = 1".into(), digest: "d0".into() }
    }

    fn data(name: &str, origin: Origin, gb: i64) -> Data {
        Data { name: name.into(), origin, size_gb: Decimal::from(gb) }
    }

    #[test]
    fn without_data_the_request_is_unchanged() {
        let mut m = meta();
        join(&mut m, Vec::new());
        assert_eq!(
            (m.digest.as_str(), m.describe.as_str()),
            ("d0", "T4:1, nodes = 1"),
            "a state recorded before data gravity keeps its decision"
        );
        assert!(m.need.data.is_empty());
    }

    #[test]
    fn the_need_gets_every_source_in_a_stable_order_and_the_digest_covers_them() {
        let east = || Origin::Cloud { cloud: "aws".into(), region: Some("us-east-1".into()) };
        let mut a = meta();
        join(&mut a, vec![data("bucket.eval", Origin::ThisMachine, 5), data("bucket.corpus", east(), 800)]);
        assert_eq!(a.need.data, vec![data("bucket.corpus", east(), 800), data("bucket.eval", Origin::ThisMachine, 5)]);
        assert_eq!(
            a.describe,
            "T4:1, nodes = 1, data = 800 GB of bucket.corpus (aws us-east-1), data = 5 GB of bucket.eval (this machine)"
        );
        let mut b = meta();
        join(&mut b, vec![data("bucket.corpus", east(), 800), data("bucket.eval", Origin::ThisMachine, 5)]);
        assert_eq!(a.digest, b.digest, "the order the jobs come in does not matter");
        for other in [
            vec![data("bucket.corpus", east(), 801), data("bucket.eval", Origin::ThisMachine, 5)],
            vec![data("bucket.corpus", Origin::Owned { provider: "aws".into() }, 800), data("bucket.eval", Origin::ThisMachine, 5)],
            vec![data("bucket.corpus", east(), 800)],
        ] {
            let mut c = meta();
            join(&mut c, other.clone());
            assert_ne!(c.digest, a.digest, "{other:?}");
        }
    }
}
