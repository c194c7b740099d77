//! The S3 backend against moto's S3 server: the backend conformance suite (with and without
//! bucket versioning), conditional writes between racing clients, and journal durability.

// moto's server, shared by the whole binary: tests never share a bucket, so they need no reset and run in parallel.
use kiln_testkit::moto;

use std::sync::Arc;

use kiln_state::conformance::{self, sample_state};
use kiln_state::{Codec, LockError, LockInfo, Mutation, StateBackend, StateError};
use kiln_state_s3::{ensure_bucket, S3Backend, S3Settings};

fn settings(bucket: &str) -> S3Settings {
    S3Settings {
        bucket: bucket.to_string(),
        key: "team/kiln.json".into(),
        region: Some("us-east-1".into()),
        endpoint: Some(moto::server().endpoint()),
        access_key: Some("test".into()),
        secret_key: Some("test".into()),
        ..S3Settings::default()
    }
}

fn unique(name: &str) -> String {
    format!("{name}-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

async fn versioned_bucket(name: &str) -> S3Settings {
    let s = settings(&unique(name));
    assert!(ensure_bucket(&s).await.expect("create bucket"), "a new bucket is created");
    assert!(!ensure_bucket(&s).await.expect("bucket again"), "an existing bucket is left alone");
    s
}

#[tokio::test]
async fn s3_backend_conforms_with_versioning() {
    let s = versioned_bucket("conf-v").await;
    conformance::run(&|ws, codec: Arc<dyn Codec>| {
        Box::new(S3Backend::new(s.clone()).with_workspace(ws).with_codec(codec)) as Box<dyn StateBackend>
    })
    .await;
}

#[tokio::test]
async fn s3_backend_conforms_without_versioning() {
    let s = settings(&unique("conf-plain"));
    // A plain bucket, as someone may have created it by hand.
    ensure_unversioned(&s).await;
    conformance::run(&|ws, codec: Arc<dyn Codec>| {
        Box::new(S3Backend::new(s.clone()).with_workspace(ws).with_codec(codec)) as Box<dyn StateBackend>
    })
    .await;
    // Each write kept the previous snapshot as `.backup`.
    let vs = S3Backend::new(s.clone()).versions().await.unwrap();
    assert_eq!(vs.iter().map(|v| v.id.as_str()).collect::<Vec<_>>(), ["current", "backup"], "{vs:?}");
}

async fn ensure_unversioned(s: &S3Settings) {
    // ensure_bucket enables versioning; create the bucket through the SDK directly instead.
    let conf = aws_sdk_s3_conf(s).await;
    conf.create_bucket().bucket(&s.bucket).send().await.expect("create bucket");
}

async fn aws_sdk_s3_conf(s: &S3Settings) -> aws_sdk_s3::Client {
    let creds = aws_sdk_s3::config::Credentials::new("test", "test", None, None, "test");
    let conf = aws_sdk_s3::config::Builder::new()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .endpoint_url(s.endpoint.clone().expect("endpoint"))
        .credentials_provider(creds)
        .force_path_style(true)
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

#[tokio::test]
async fn a_writer_with_a_stale_view_fails_instead_of_overwriting() {
    let s = versioned_bucket("stale").await;
    let a = S3Backend::new(s.clone());
    let b = S3Backend::new(s.clone());
    a.write(&sample_state("l", 1)).await.unwrap();
    // Both read serial 1; both try to write serial 2. Exactly one wins.
    // Different contents: a writer whose own retried request landed first is told apart by its
    // bytes, so identical documents would both count as written (harmlessly).
    let s2a = sample_state("l", 2);
    let mut s2b = sample_state("l", 2);
    s2b.outputs.clear();
    let (ra, rb) = tokio::join!(a.write(&s2a), b.write(&s2b));
    let wins = [&ra, &rb].iter().filter(|r| r.is_ok()).count();
    assert_eq!(wins, 1, "exactly one of two racing writers wins: {ra:?} {rb:?}");
    let loser = if ra.is_ok() { rb } else { ra };
    assert!(matches!(loser, Err(StateError::Conflict { .. })), "{loser:?}");
    assert_eq!(S3Backend::new(s).read().await.unwrap().unwrap().serial, 2);
}

#[tokio::test]
async fn twenty_racing_lockers_one_wins_and_the_rest_name_it() {
    let s = versioned_bucket("race").await;
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let c = S3Backend::new(s.clone());
        let info = LockInfo::new("apply");
        set.spawn(async move { (c.lock(&info).await, info) });
    }
    let results: Vec<_> = set.join_all().await;
    let winners: Vec<&LockInfo> = results.iter().filter(|(r, _)| r.is_ok()).map(|(_, i)| i).collect();
    assert_eq!(winners.len(), 1, "exactly one of 20 racing lockers wins: {results:?}");
    for (r, _) in results.iter().filter(|(r, _)| r.is_err()) {
        match r {
            Err(LockError::Held { holder, stale: false, .. }) => assert_eq!(holder, winners[0]),
            other => panic!("expected Held naming the winner, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_released_lock_goes_to_exactly_one_of_the_waiting_lockers() {
    let s = versioned_bucket("handover").await;
    let mut holder = LockInfo::new("apply");
    S3Backend::new(s.clone()).lock(&holder).await.unwrap();
    for round in 0..10 {
        // Twenty lockers retry while the holder lets go; each stops once it wins or sees a new
        // holder. Exactly one wins, and the others name it.
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let c = S3Backend::new(s.clone());
            let (info, old) = (LockInfo::new("apply"), holder.id.clone());
            set.spawn(async move {
                loop {
                    match c.lock(&info).await {
                        Err(LockError::Held { holder, .. }) if holder.id == old => {
                            tokio::time::sleep(std::time::Duration::from_millis(2)).await
                        }
                        Err(LockError::Held { holder, .. }) => return (false, info, holder.id),
                        Ok(()) => return (true, info.clone(), info.id),
                        Err(e) => panic!("{e:?}"),
                    }
                }
            });
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        S3Backend::new(s.clone()).unlock(&holder.id).await.unwrap();
        let results = set.join_all().await;
        let winners: Vec<&LockInfo> = results.iter().filter(|r| r.0).map(|r| &r.1).collect();
        assert_eq!(winners.len(), 1, "round {round}: exactly one waiting locker got the lock");
        let stored = S3Backend::new(s.clone()).lock_info().await.unwrap().unwrap();
        assert_eq!(&stored, winners[0], "round {round}: the winner's lock is the one stored");
        assert!(results.iter().all(|r| r.2 == stored.id), "round {round}: the others name the winner");
        holder = stored;
    }
}

#[tokio::test]
async fn journal_entries_survive_a_lost_client_and_old_ones_are_removed() {
    let s = versioned_bucket("journal").await;
    let a = S3Backend::new(s.clone());
    let st = sample_state("l", 1);
    a.write(&st).await.unwrap();
    let addrs: Vec<_> = st.resources.keys().cloned().collect();
    a.append(&[Mutation::Remove { address: addrs[0].clone() }]).await.unwrap();
    a.append(&[Mutation::Remove { address: addrs[1].clone() }]).await.unwrap();
    drop(a); // the process dies: nothing more is written
    let b = S3Backend::new(s.clone());
    let got = b.read().await.unwrap().unwrap();
    assert_eq!(got.serial, 3);
    assert!(!got.resources.contains_key(&addrs[0]) && !got.resources.contains_key(&addrs[1]));
    let mut next = got.clone();
    next.serial = 4;
    b.write(&next).await.unwrap();
    let client = aws_sdk_s3_conf(&s).await;
    let listed = client.list_objects_v2().bucket(&s.bucket).prefix("team/kiln.json.journal/").send().await.unwrap();
    assert!(listed.contents().is_empty(), "a write removes the journal it folded in: {:?}", listed.contents());
    // Versions: serial 4 current, serial 1 before it.
    let vs = b.versions().await.unwrap();
    assert_eq!(vs.iter().map(|v| v.serial).collect::<Vec<_>>(), [Some(4), Some(1)], "{vs:?}");
}

#[tokio::test]
async fn unreachable_endpoint_is_a_clear_error() {
    let mut s = settings("nowhere");
    s.endpoint = Some("http://127.0.0.1:9".into());
    let err = S3Backend::new(s).read().await.unwrap_err().to_string();
    assert!(err.contains("s3://nowhere/team/kiln.json") && err.contains("endpoint"), "{err}");
}

#[tokio::test]
async fn a_crash_between_the_snapshot_and_the_journal_cleanup_loses_nothing() {
    let s = versioned_bucket("crash").await;
    let a = S3Backend::new(s.clone());
    let st = sample_state("l", 1);
    a.write(&st).await.unwrap();
    let addr = st.resources.keys().next().unwrap().clone();
    a.append(&[Mutation::Remove { address: addr.clone() }]).await.unwrap();
    let journal = "team/kiln.json.journal/l/00000000000000000001/00000001";
    let client = aws_sdk_s3_conf(&s).await;
    let entry = client.get_object().bucket(&s.bucket).key(journal).send().await.unwrap().body.collect().await.unwrap().into_bytes();
    // The write stored serial 3 and died before removing the journal of serial 1.
    let mut folded = a.read().await.unwrap().unwrap();
    folded.serial = 3;
    a.write(&folded).await.unwrap();
    client.put_object().bucket(&s.bucket).key(journal).body(entry.to_vec().into()).send().await.unwrap();
    let b = S3Backend::new(s.clone());
    assert_eq!(b.read().await.unwrap().as_ref(), Some(&folded), "entries of an older snapshot are not replayed");
    // The next write removes them.
    let mut next = folded.clone();
    next.serial = 4;
    b.write(&next).await.unwrap();
    let listed = client.list_objects_v2().bucket(&s.bucket).prefix("team/kiln.json.journal/").send().await.unwrap();
    assert!(listed.contents().is_empty(), "{:?}", listed.contents());
}

/// Issue 10, defect 4 for S3: the state object deleted out of band while bucket versions of it
/// remain is refused with how to restore it (the version to copy back), never started afresh
/// (the next apply would create everything again and forget what exists); restored as told, it
/// reads again with its journal.
#[tokio::test]
async fn a_deleted_state_object_with_versions_is_refused_with_how_to_restore_it() {
    let s = versioned_bucket("missing-v").await;
    let a = S3Backend::new(s.clone());
    let st = sample_state("l", 1);
    a.write(&st).await.unwrap();
    a.write(&sample_state("l", 2)).await.unwrap();
    let addr = st.resources.keys().next().unwrap().clone();
    a.append(&[Mutation::Remove { address: addr }]).await.unwrap();
    let before = a.read().await.unwrap().unwrap();
    let client = aws_sdk_s3_conf(&s).await;
    let vs = client.list_object_versions().bucket(&s.bucket).prefix("team/kiln.json").send().await.unwrap();
    let newest = vs.versions().iter().find(|v| v.key() == Some("team/kiln.json") && v.is_latest() == Some(true)).unwrap();
    let newest = newest.version_id().unwrap().to_string();
    client.delete_object().bucket(&s.bucket).key("team/kiln.json").send().await.unwrap();

    let b = S3Backend::new(s.clone());
    let err = b.read().await.unwrap_err();
    assert!(matches!(err, StateError::Missing { .. }), "{err:?}");
    let msg = err.to_string();
    for want in [
        "s3://".to_string(),
        format!("--copy-source '{}/team/kiln.json?versionId={newest}'", s.bucket),
        "aws s3api copy-object".to_string(),
        "kiln state versions".to_string(),
        "serial 2".to_string(),
    ] {
        assert!(msg.contains(&want), "missing `{want}` in: {msg}");
    }
    // A first write of a new state is refused too, and puts nothing over the history.
    assert!(matches!(b.write(&sample_state("new", 1)).await, Err(StateError::Missing { .. })));
    assert!(client.head_object().bucket(&s.bucket).key("team/kiln.json").send().await.is_err(), "nothing was written");
    // The versions are still listed for `kiln state versions`.
    let listed = b.versions().await.unwrap();
    assert_eq!(listed.iter().map(|v| v.serial).collect::<Vec<_>>(), [Some(2), Some(1)], "{listed:?}");
    // Restored as the message says, it reads again, journal included.
    client
        .copy_object()
        .bucket(&s.bucket)
        .key("team/kiln.json")
        .copy_source(format!("{}/team/kiln.json?versionId={newest}", s.bucket))
        .send()
        .await
        .unwrap();
    assert_eq!(b.read().await.unwrap().as_ref(), Some(&before));
}

/// Without bucket versioning, the `.backup` object and the journal entries show that a state
/// existed: a deleted state object beside them is refused too, and the backup is kept.
#[tokio::test]
async fn a_deleted_state_object_beside_its_backup_or_journal_is_refused() {
    let s = settings(&unique("missing-plain"));
    ensure_unversioned(&s).await;
    let client = aws_sdk_s3_conf(&s).await;
    let a = S3Backend::new(s.clone());
    let st = sample_state("l", 1);
    a.write(&st).await.unwrap();
    // Journal entries only (no backup yet: one write so far).
    let addr = st.resources.keys().next().unwrap().clone();
    a.append(&[Mutation::Remove { address: addr }]).await.unwrap();
    client.delete_object().bucket(&s.bucket).key("team/kiln.json").send().await.unwrap();
    let err = S3Backend::new(s.clone()).read().await.unwrap_err();
    assert!(matches!(err, StateError::Missing { .. }), "{err:?}");
    assert!(err.to_string().contains("team/kiln.json.journal/"), "{err}");
    assert!(matches!(S3Backend::new(s.clone()).write(&sample_state("new", 1)).await, Err(StateError::Missing { .. })));

    // A backup.
    let s = settings(&unique("missing-backup"));
    ensure_unversioned(&s).await;
    let a = S3Backend::new(s.clone());
    a.write(&sample_state("l", 1)).await.unwrap();
    a.write(&sample_state("l", 2)).await.unwrap();
    client.delete_object().bucket(&s.bucket).key("team/kiln.json").send().await.unwrap();
    let b = S3Backend::new(s.clone());
    let err = b.read().await.unwrap_err();
    assert!(matches!(err, StateError::Missing { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&format!("--copy-source '{}/team/kiln.json.backup'", s.bucket)), "{msg}");
    assert!(matches!(b.write(&sample_state("new", 1)).await, Err(StateError::Missing { .. })));
    let backup = client.get_object().bucket(&s.bucket).key("team/kiln.json.backup").send().await.unwrap();
    assert_eq!(backup.metadata().and_then(|m| m.get("kiln-serial")).map(String::as_str), Some("1"), "the backup is kept");
}

/// What is normal stays normal: a new workspace (a lock alone, no versions, no journal) starts
/// fresh, and so does one deleted deliberately (`kiln workspace delete`) even though the bucket
/// keeps its versions; after that new start, an out-of-band deletion is refused again.
#[tokio::test]
async fn a_new_or_deliberately_deleted_workspace_starts_fresh() {
    let s = versioned_bucket("fresh").await;
    let a = S3Backend::new(s.clone());
    let lock = LockInfo::new("apply");
    a.lock(&lock).await.unwrap();
    assert_eq!(a.read().await.unwrap(), None, "a lock alone is a first apply under way");
    a.write(&sample_state("l", 1)).await.unwrap();
    a.write(&sample_state("l", 2)).await.unwrap();
    a.unlock(&lock.id).await.unwrap();
    a.delete_state().await.unwrap();
    let b = S3Backend::new(s.clone());
    assert_eq!(b.read().await.unwrap(), None, "a deliberately deleted state starts fresh");
    b.write(&sample_state("again", 1)).await.unwrap();
    assert_eq!(b.read().await.unwrap().unwrap().lineage, "again");
    let client = aws_sdk_s3_conf(&s).await;
    client.delete_object().bucket(&s.bucket).key("team/kiln.json").send().await.unwrap();
    assert!(matches!(S3Backend::new(s.clone()).read().await, Err(StateError::Missing { .. })));

    // A tombstone that a first write did not remove (killed right after storing its snapshot)
    // does not cover what was stored after it. The pause only puts the two in different
    // seconds (S3 times have whole seconds); nothing is timed.
    let s = versioned_bucket("tombstone").await;
    let a = S3Backend::new(s.clone());
    a.write(&sample_state("l", 1)).await.unwrap();
    a.delete_state().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let body = client.list_object_versions().bucket(&s.bucket).prefix("team/kiln.json").send().await.unwrap();
    assert!(body.versions().iter().any(|v| v.key() == Some("team/kiln.json.deleted")), "delete_state leaves a tombstone");
    let doc = kiln_state::format::encode(&sample_state("new", 1));
    client.put_object().bucket(&s.bucket).key("team/kiln.json").body(doc.into()).send().await.unwrap();
    assert_eq!(a.read().await.unwrap().unwrap().lineage, "new");
    client.delete_object().bucket(&s.bucket).key("team/kiln.json").send().await.unwrap();
    assert!(matches!(S3Backend::new(s.clone()).read().await, Err(StateError::Missing { .. })), "a stale tombstone excuses nothing");
}
