//! What a `bucket` block asks for, parsed from config or planned state, and the state value of
//! a bucket: the block's settings plus `uri`, `arn` and `region`.

use kiln_value::{Map, Value};

use crate::util::{bool_attr, is_unknown, map, num, set, str_attr, str_map, u64_attr};

/// The settings of one bucket, as configured or as read back from S3.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Spec {
    /// `None` when left out (kiln makes one up at create).
    pub name: Option<String>,
    pub versioning: bool,
    pub expire_days: Option<u64>,
    pub noncurrent_expire_days: Option<u64>,
    pub encryption: String,
    pub block_public_access: bool,
    /// User tags (kiln's own are added on write and dropped on read).
    pub tags: Vec<(String, String)>,
    /// Whether the block wrote `tags` at all (`{}` and null both mean none).
    pub tags_set: bool,
    pub force_destroy: bool,
}

pub(crate) const ENCRYPTIONS: [&str; 2] = ["AES256", "aws:kms"];

/// S3's naming rules for general purpose buckets (dots allowed but not next to each other).
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    let ok_chars = name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    let ends = name.starts_with(|c: char| c.is_ascii_alphanumeric()) && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !(3..=63).contains(&name.len()) || !ok_chars || !ends || name.contains("..") {
        return Err(format!(
            "invalid bucket name `{name}`: S3 names are 3 to 63 lower-case letters, digits, `-` and `.`, starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

fn days(v: &Value, name: &str, errs: &mut Vec<String>) -> Option<u64> {
    set(v, name)?;
    let d = u64_attr(v, name).filter(|d| *d >= 1);
    if d.is_none() {
        errs.push(format!("`{name}` must be a whole number of days, at least 1"));
    }
    d
}

impl Spec {
    /// `Err` lists every malformed setting. An unknown name parses as `None`.
    pub fn parse(v: &Value) -> Result<Spec, Vec<String>> {
        let mut errs = Vec::new();
        let name = if is_unknown(v, "name") { None } else { str_attr(v, "name").map(str::to_string) };
        if let Some(Err(e)) = name.as_deref().map(check_name) {
            errs.push(e);
        }
        let encryption = str_attr(v, "encryption").unwrap_or("AES256").to_string();
        if !ENCRYPTIONS.contains(&encryption.as_str()) {
            errs.push(format!("`encryption` must be \"AES256\" (SSE-S3) or \"aws:kms\", got \"{encryption}\""));
        }
        let expire_days = days(v, "expire_days", &mut errs);
        let noncurrent_expire_days = days(v, "noncurrent_expire_days", &mut errs);
        let tags = str_map(v, "tags");
        if let Some((k, _)) = tags.iter().find(|(k, _)| k.starts_with("kiln:")) {
            errs.push(format!("tag `{k}`: tags starting with `kiln:` are kiln's own"));
        }
        let spec = Spec {
            name,
            versioning: bool_attr(v, "versioning").unwrap_or(false),
            expire_days,
            noncurrent_expire_days,
            encryption,
            block_public_access: bool_attr(v, "block_public_access").unwrap_or(true),
            tags_set: set(v, "tags").is_some(),
            tags,
            force_destroy: bool_attr(v, "force_destroy").unwrap_or(false),
        };
        if errs.is_empty() {
            Ok(spec)
        } else {
            Err(errs)
        }
    }

    fn tags_value(&self) -> Value {
        if self.tags.is_empty() && !self.tags_set {
            return Value::Null;
        }
        Value::Map(self.tags.iter().map(|(k, v)| (k.clone(), Value::from(v.as_str()))).collect())
    }

    /// The state value (`name` and the computed attributes unknown while the name is).
    pub fn state(&self, region: &str) -> Value {
        let opt = |d: Option<u64>| d.map_or(Value::Null, num);
        let mut m: Map = map([
            ("versioning", self.versioning.into()),
            ("expire_days", opt(self.expire_days)),
            ("noncurrent_expire_days", opt(self.noncurrent_expire_days)),
            ("encryption", self.encryption.as_str().into()),
            ("block_public_access", self.block_public_access.into()),
            ("tags", self.tags_value()),
            ("force_destroy", self.force_destroy.into()),
            ("region", region.into()),
        ]);
        let (name, uri, arn) = match &self.name {
            Some(n) => (n.as_str().into(), format!("s3://{n}").into(), format!("arn:aws:s3:::{n}").into()),
            None => (Value::Unknown, Value::Unknown, Value::Unknown),
        };
        m.extend([("name".to_string(), name), ("uri".to_string(), uri), ("arn".to_string(), arn)]);
        Value::Map(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_name("kiln-ckpt-1234abcd").is_ok());
        assert!(check_name("My_Bucket").is_err());
        assert!(check_name("ab").is_err());
        assert!(check_name("a..b").is_err());
        assert!(check_name("-ab").is_err());
    }

    #[test]
    fn defaults_and_state() {
        let spec = Spec::parse(&Value::Map(Map::new())).unwrap();
        assert!(!spec.versioning && spec.block_public_access && spec.encryption == "AES256");
        let state = spec.state("us-east-1");
        assert!(state.get("name").is_some_and(Value::is_unknown));
        let named = Spec { name: Some("data".into()), ..spec };
        assert_eq!(named.state("eu-west-1").get("uri"), Some(&Value::from("s3://data")));
    }

    #[test]
    fn errors_are_listed() {
        let v = Value::Map(map([("encryption", "rot13".into()), ("expire_days", 0i64.into()), ("name", "UPPER".into())]));
        assert_eq!(Spec::parse(&v).unwrap_err().len(), 3);
    }
}
