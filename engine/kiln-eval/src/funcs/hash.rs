//! Hash and UUID functions: md5, sha1, sha256, sha512 (hex), base64sha256, base64sha512, their
//! file* variants reading a file (filemd5, filesha1, filesha256, filesha512, filebase64sha256,
//! filebase64sha512), uuid and uuidv5.
//!
//! `uuid` is impure (a new value each run), so it returns an unknown value: Terraform shows it as
//! known after apply.

use base64::Engine;
use kiln_value::Value;
use md5::Digest;

use super::encoding::BASE64;
use super::file::read_bytes;
use super::{arg_err, arg_string, FuncCtx, Result, Spec};

type HashFn = fn(&[u8]) -> Vec<u8>;

fn md5(b: &[u8]) -> Vec<u8> {
    md5::Md5::digest(b).to_vec()
}
fn sha1(b: &[u8]) -> Vec<u8> {
    sha1::Sha1::digest(b).to_vec()
}
fn sha256(b: &[u8]) -> Vec<u8> {
    sha2::Sha256::digest(b).to_vec()
}
fn sha512(b: &[u8]) -> Vec<u8> {
    sha2::Sha512::digest(b).to_vec()
}

fn hex_of(a: &[Value], f: HashFn) -> Result<Value> {
    Ok(Value::String(hex::encode(f(arg_string(a, 0)?.as_bytes()))))
}

fn base64_of(a: &[Value], f: HashFn) -> Result<Value> {
    Ok(Value::String(BASE64.encode(f(arg_string(a, 0)?.as_bytes()))))
}

fn file_hex(a: &[Value], ctx: &FuncCtx, f: HashFn) -> Result<Value> {
    Ok(Value::String(hex::encode(f(&read_bytes(a, ctx)?))))
}

fn file_base64(a: &[Value], ctx: &FuncCtx, f: HashFn) -> Result<Value> {
    Ok(Value::String(BASE64.encode(f(&read_bytes(a, ctx)?))))
}

pub(super) const FUNCS: &[Spec] = &[
    Spec::new("md5", &["str"], |a| hex_of(a, md5)),
    Spec::new("sha1", &["str"], |a| hex_of(a, sha1)),
    Spec::new("sha256", &["str"], |a| hex_of(a, sha256)),
    Spec::new("sha512", &["str"], |a| hex_of(a, sha512)),
    Spec::new("base64sha256", &["str"], |a| base64_of(a, sha256)),
    Spec::new("base64sha512", &["str"], |a| base64_of(a, sha512)),
    Spec::with_ctx("filemd5", &["path"], |a, c| file_hex(a, c, md5)),
    Spec::with_ctx("filesha1", &["path"], |a, c| file_hex(a, c, sha1)),
    Spec::with_ctx("filesha256", &["path"], |a, c| file_hex(a, c, sha256)),
    Spec::with_ctx("filesha512", &["path"], |a, c| file_hex(a, c, sha512)),
    Spec::with_ctx("filebase64sha256", &["path"], |a, c| file_base64(a, c, sha256)),
    Spec::with_ctx("filebase64sha512", &["path"], |a, c| file_base64(a, c, sha512)),
    Spec::new("uuid", &[], |_| Ok(Value::Unknown)),
    Spec::new("uuidv5", &["namespace", "name"], uuidv5),
];

/// A name-based (SHA-1) UUID in a well-known or given namespace.
fn uuidv5(a: &[Value]) -> Result<Value> {
    let ns = arg_string(a, 0)?;
    let name = arg_string(a, 1)?;
    let namespace = match ns.as_str() {
        "dns" => uuid::Uuid::from_u128(0x6ba7b810_9dad_11d1_80b4_00c04fd430c8),
        "url" => uuid::Uuid::from_u128(0x6ba7b811_9dad_11d1_80b4_00c04fd430c8),
        "oid" => uuid::Uuid::from_u128(0x6ba7b812_9dad_11d1_80b4_00c04fd430c8),
        "x500" => uuid::Uuid::from_u128(0x6ba7b814_9dad_11d1_80b4_00c04fd430c8),
        other => uuid::Uuid::parse_str(other).map_err(|e| arg_err(0, format!("uuidv5() doesn't support namespace {other} ({e})")))?,
    };
    let mut input = namespace.as_bytes().to_vec();
    input.extend_from_slice(name.as_bytes());
    let mut b: [u8; 16] = sha1(&input)[..16].try_into().expect("sha1 is 20 bytes");
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    Ok(Value::String(uuid::Uuid::from_bytes(b).hyphenated().to_string()))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::{call, FuncCtx};
    use kiln_value::Value;

    #[test]
    fn digests_of_hello_world() {
        let hw = || vec![s("hello world")];
        assert_eq!(ok("md5", hw()), s("5eb63bbbe01eeed093cb22bb8f5acdc3"));
        assert_eq!(ok("sha1", hw()), s("2aae6c35c94fcfb415dbe95f408b9ce91ee846ed"));
        assert_eq!(ok("sha256", hw()), s("b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"));
        assert_eq!(
            ok("sha512", hw()),
            s("309ecc489c12d6eb4cc40f50c902f2b4d0ed77ee511a7c7a9bcd3ca86d4cd86f989dd35bc5ff499670da34255b45b0cfd830e81f605dcf7dc5542e93ae9cd76f")
        );
        assert_eq!(ok("base64sha256", hw()), s("uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek="));
        assert_eq!(ok("base64sha512", hw()), s("MJ7MSJwS1utMxA9QyQLytNDtd+5RGnx6m808qG1M2G+YndNbxf9JlnDaNCVbRbDP2DDoH2Bdz33FVC6TrpzXbw=="));
    }

    #[test]
    fn file_digests() {
        let dir = std::env::temp_dir().join(format!("kiln-hash-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("hw.txt"), "hello world").unwrap();
        let ctx = FuncCtx { base_dir: dir.clone() };
        let call1 = |f: &str| call(f, vec![s("hw.txt")], &ctx).unwrap();
        assert_eq!(call1("filemd5"), s("5eb63bbbe01eeed093cb22bb8f5acdc3"));
        assert_eq!(call1("filesha1"), s("2aae6c35c94fcfb415dbe95f408b9ce91ee846ed"));
        assert_eq!(call1("filebase64sha256"), s("uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek="));
        assert!(call("filesha256", vec![s("missing.txt")], &ctx).unwrap_err().message.contains("no file exists at"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn uuids() {
        assert_eq!(ok("uuid", vec![]), Value::Unknown);
        assert_eq!(ok("uuidv5", vec![s("dns"), s("www.terraform.io")]), s("a5008fae-b28c-5ba5-96cd-82b4c53552d6"));
        assert_eq!(ok("uuidv5", vec![s("url"), s("https://www.terraform.io/")]), s("9db6f67c-dd95-5ea0-aa5b-e70e5c5f7cf5"));
        assert_eq!(ok("uuidv5", vec![s("oid"), s("1.3.6.1.4")]), s("af9d40a5-7a36-5c07-b23a-851cd99fbfa5"));
        assert_eq!(ok("uuidv5", vec![s("x500"), s("CN=Example,C=GB")]), s("84e09961-4aa4-57f8-95b7-03edb1073253"));
        assert_eq!(
            ok("uuidv5", vec![s("6ba7b810-9dad-11d1-80b4-00c04fd430c8"), s("www.terraform.io")]),
            s("a5008fae-b28c-5ba5-96cd-82b4c53552d6")
        );
        assert!(fails("uuidv5", vec![s("nope"), s("x")]).contains("uuidv5() doesn't support namespace nope"));
    }
}
