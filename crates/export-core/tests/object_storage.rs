//! The object store: over object_store's in-memory store, files of every size round-trip through
//! single puts and multipart uploads, are ciphertext at rest, refuse a wrong key, a changed byte or
//! a cut, and leave nothing behind when a write fails; the store works from any thread, inside
//! another tokio runtime too. Against a real S3-compatible server (`scripts/start-s3`, named by
//! `EXPORT_TEST_S3_URL`) the same holds, multipart uploads included; without the variable those
//! tests say they were skipped.
#![cfg(feature = "s3")]

use std::future::Future;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use export_core::storage::{
    FileKey, FileStore, LocalFileStore, MasterKey, ObjectFileStore, S3Config, StorageError,
    StoredFile,
};
use export_domain::ExportFormat;
use export_store::testing::FailingSource;
use object_store::aws::AmazonS3Builder;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Small parts keep the in-memory tests fast; S3 wants 5 MiB at least.
const PART: usize = 256 * 1024;
const MIB: usize = 1024 * 1024;

/// Runs `future` on a throwaway runtime, for the tests' own look at the objects at rest.
fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

fn memory_store() -> (Arc<InMemory>, ObjectFileStore) {
    let memory = Arc::new(InMemory::new());
    let store = ObjectFileStore::new(memory.clone(), MasterKey::generate())
        .unwrap()
        .with_part_size(PART);
    (memory, store)
}

fn content(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

fn hex_sha256(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The size of a sealed file: header, every chunk with its tag, and a short last chunk.
fn sealed_len(plain: usize) -> usize {
    16 + plain + 16 * (plain / 65_536 + 1)
}

/// The plaintext, or the `StorageError` a failed read carries.
fn read_all(
    store: &ObjectFileStore,
    key: &FileKey,
    wrapped: &str,
) -> Result<Vec<u8>, StorageError> {
    let mut reader = store.open(key, wrapped)?;
    let mut out = Vec::new();
    match reader.read_to_end(&mut out) {
        Ok(_) => Ok(out),
        Err(err) => match err.get_ref().and_then(|e| e.downcast_ref::<StorageError>()) {
            Some(StorageError::Corrupt(name)) => Err(StorageError::Corrupt(name.clone())),
            _ => Err(StorageError::Io(err)),
        },
    }
}

fn raw(store: &dyn ObjectStore, location: &str) -> Option<Vec<u8>> {
    block_on(async {
        match store.get(&Path::from(location)).await {
            Ok(result) => Some(result.bytes().await.unwrap().to_vec()),
            Err(object_store::Error::NotFound { .. }) => None,
            Err(err) => panic!("reading {location}: {err}"),
        }
    })
}

fn replace_raw(store: &dyn ObjectStore, location: &str, bytes: Vec<u8>) {
    block_on(store.put(&Path::from(location), PutPayload::from(bytes))).unwrap();
}

/// Stores `len` bytes, checks size, digest and the object's length, and reads them back.
fn round_trip(store: &ObjectFileStore, len: usize) -> (FileKey, StoredFile) {
    let key = FileKey::for_job(Uuid::new_v4(), ExportFormat::Csv);
    let data = content(len);
    let stored = store.put(&key, &mut data.as_slice()).unwrap();
    assert_eq!(stored.size_bytes, len as u64, "{len} bytes");
    assert_eq!(stored.sha256, hex_sha256(&data), "{len} bytes");
    assert!(
        read_all(store, &key, &stored.wrapped_key).unwrap() == data,
        "{len} bytes did not read back"
    );
    (key, stored)
}

#[test]
fn files_of_every_size_round_trip_through_single_and_multipart_uploads() {
    let (memory, store) = memory_store();
    // The plaintext whose sealed form is exactly one part: still a single put; one byte more
    // makes a part and a one-byte last part.
    let one_part = (0..PART).find(|&n| sealed_len(n) == PART).unwrap();
    for len in [0, 1, 65_536, 65_537, one_part, one_part + 1, 3 * MIB + 7] {
        let (key, _) = round_trip(&store, len);
        let at_rest = raw(memory.as_ref(), key.as_str()).unwrap();
        assert_eq!(at_rest.len(), sealed_len(len), "{len} bytes");
        assert!(at_rest.starts_with(b"EXPENC01"));
    }
}

#[test]
fn the_object_at_rest_is_ciphertext_in_the_local_stores_format() {
    let memory = Arc::new(InMemory::new());
    let master = MasterKey::generate();
    let store = ObjectFileStore::new(memory.clone(), master.clone())
        .unwrap()
        .with_part_size(PART);
    let secret =
        b"{\"patient\": \"Noa Cohen\", \"note\": \"panic attacks at work\"}".repeat(20_000);
    assert!(secret.len() > 4 * PART);
    let key = FileKey::for_job(Uuid::new_v4(), ExportFormat::Json);
    let stored = store.put(&key, &mut secret.as_slice()).unwrap();
    let at_rest = raw(memory.as_ref(), key.as_str()).unwrap();
    assert!(!at_rest.windows(9).any(|w| w == b"Noa Cohen"));

    // One format, one wrapped key: the local store with the same master key opens the object.
    let folder = tempfile::tempdir().unwrap();
    let local = LocalFileStore::new(folder.path(), master).unwrap();
    std::fs::write(folder.path().join(key.as_str()), at_rest).unwrap();
    let mut plain = Vec::new();
    local
        .open(&key, &stored.wrapped_key)
        .unwrap()
        .read_to_end(&mut plain)
        .unwrap();
    assert!(plain == secret);
}

#[test]
fn a_wrong_key_a_changed_byte_or_a_cut_is_refused() {
    let (memory, store) = memory_store();
    let key = FileKey::for_job(Uuid::new_v4(), ExportFormat::Pdf);
    let data = content(700_000);
    let stored = store.put(&key, &mut data.as_slice()).unwrap();
    let is_corrupt = |result: Result<Vec<u8>, StorageError>| matches!(&result, Err(StorageError::Corrupt(name)) if name == key.as_str());

    // Another master key cannot unwrap the file key.
    let other = ObjectFileStore::new(memory.clone(), MasterKey::generate()).unwrap();
    assert!(is_corrupt(read_all(&other, &key, &stored.wrapped_key)));
    // Neither does a wrapped key of another file, nor one that is not hex of the right length.
    let second = FileKey::for_job(Uuid::new_v4(), ExportFormat::Pdf);
    let second_stored = store.put(&second, &mut data.as_slice()).unwrap();
    assert!(is_corrupt(read_all(
        &store,
        &key,
        &second_stored.wrapped_key
    )));
    assert!(is_corrupt(read_all(&store, &key, "00ff")));
    assert!(is_corrupt(read_all(&store, &key, "not hex")));

    let original = raw(memory.as_ref(), key.as_str()).unwrap();
    // A changed byte in the third part.
    let mut flipped = original.clone();
    flipped[2 * PART + 100] ^= 1;
    replace_raw(memory.as_ref(), key.as_str(), flipped);
    assert!(is_corrupt(read_all(&store, &key, &stored.wrapped_key)));
    // Cut at a chunk boundary (header + three sealed chunks), inside the header, to nothing.
    for cut in [16 + 3 * (65_536 + 16), 10, 0] {
        replace_raw(memory.as_ref(), key.as_str(), original[..cut].to_vec());
        assert!(
            is_corrupt(read_all(&store, &key, &stored.wrapped_key)),
            "cut at {cut}"
        );
    }
    replace_raw(memory.as_ref(), key.as_str(), original);
    assert!(read_all(&store, &key, &stored.wrapped_key).unwrap() == data);
}

#[test]
fn delete_says_whether_there_was_a_file() {
    let (memory, store) = memory_store();
    let (key, stored) = round_trip(&store, 1_000);
    assert!(store.delete(&key).unwrap());
    assert!(raw(memory.as_ref(), key.as_str()).is_none());
    assert!(!store.delete(&key).unwrap());
    assert!(matches!(
        store.open(&key, &stored.wrapped_key),
        Err(StorageError::NotFound(name)) if name == key.as_str()
    ));
}

#[test]
fn a_failed_write_leaves_no_object_and_keeps_the_previous_one() {
    let (memory, store) = memory_store();
    let key = FileKey::for_job(Uuid::new_v4(), ExportFormat::Xlsx);
    // Failing within the first part (a single put never starts) and after several parts (a
    // multipart upload is aborted).
    for fail_after in [10, 150_000, 5 * PART + 3] {
        let err = store.put(&key, &mut FailingSource(fail_after)).unwrap_err();
        assert!(matches!(err, StorageError::Io(_)), "{err}");
        assert!(raw(memory.as_ref(), key.as_str()).is_none());
    }
    let listed = block_on(memory.list_with_delimiter(Some(&Path::from("exports")))).unwrap();
    assert!(listed.objects.is_empty(), "{:?}", listed.objects);

    let stored = store.put(&key, &mut b"complete".as_slice()).unwrap();
    assert!(store.put(&key, &mut FailingSource(5 * PART + 3)).is_err());
    assert_eq!(
        read_all(&store, &key, &stored.wrapped_key).unwrap(),
        b"complete"
    );
}

#[test]
fn the_store_works_from_any_thread_and_inside_another_tokio_runtime() {
    let (memory, store) = memory_store();
    let store = Arc::new(store);

    // Plain threads at once.
    std::thread::scope(|scope| {
        for len in [10, 300_000, 900_000] {
            let store = &store;
            scope.spawn(move || round_trip(store, len));
        }
    });

    // Inside a tokio runtime: directly on its thread, as a careless async handler would call it,
    // and on a blocking thread, as actix's web::block does. Neither may panic with "cannot start
    // a runtime from within a runtime" or "cannot drop a runtime in an async context".
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        round_trip(&store, 100_000);
        let (key, stored) = round_trip(&store, 3 * PART);
        let mut reader = store.open(&key, &stored.wrapped_key).unwrap();
        let mut start = [0u8; 10];
        reader.read_exact(&mut start).unwrap();

        let on_blocking_thread = Arc::clone(&store);
        tokio::task::spawn_blocking(move || round_trip(&on_blocking_thread, 700_000))
            .await
            .unwrap();

        // A store made, used and dropped in here, with a reader outliving it.
        let inner = ObjectFileStore::new(memory.clone(), MasterKey::generate()).unwrap();
        let (key, stored) = round_trip(&inner, 5_000);
        let outliving = inner.open(&key, &stored.wrapped_key).unwrap();
        drop(inner);
        drop(outliving);
        drop(reader);
    });
    // The last reference, dropped inside the runtime.
    runtime.block_on(async move { drop(store) });
}

#[test]
fn key_prefixes_are_folders_and_nothing_else() {
    let memory = Arc::new(InMemory::new());
    let store = ObjectFileStore::new(memory.clone(), MasterKey::generate())
        .unwrap()
        .with_prefix("clinic-a/prod_1.x/")
        .unwrap();
    let (key, _) = round_trip(&store, 100);
    assert!(raw(memory.as_ref(), key.as_str()).is_none());
    assert!(
        raw(
            memory.as_ref(),
            &format!("clinic-a/prod_1.x/{}", key.as_str())
        )
        .is_some()
    );

    for good in ["", "a", "a/b", "a/b/", "tenant_1.v-2"] {
        assert!(
            ObjectFileStore::new(memory.clone(), MasterKey::generate())
                .unwrap()
                .with_prefix(good)
                .is_ok(),
            "{good:?} was refused"
        );
    }
    for bad in [
        "/a", "..", "../a", "a/../b", "a/..", "a/./b", ".", "a//b", "//", "a b", "a\\b", "%2e%2e",
        "a/b\n", "é",
    ] {
        assert!(
            matches!(
                ObjectFileStore::new(memory.clone(), MasterKey::generate())
                    .unwrap()
                    .with_prefix(bad),
                Err(StorageError::InvalidSettings(_))
            ),
            "{bad:?} was accepted"
        );
    }
}

fn s3_config(endpoint: &str, bucket: &str) -> S3Config {
    S3Config {
        bucket: bucket.to_owned(),
        endpoint: Some(endpoint.to_owned()),
        region: "us-east-1".to_owned(),
        access_key_id: "export-test".to_owned(),
        secret_access_key: "export-test-secret".to_owned(),
        allow_http: true,
        key_prefix: Some("ci/files".to_owned()),
    }
}

#[test]
fn s3_settings_never_print_the_secret_and_must_be_complete() {
    let config = s3_config("http://127.0.0.1:1", "bucket");
    let printed = format!("{config:?}");
    assert!(!printed.contains("export-test-secret"), "{printed}");
    assert!(printed.contains("bucket") && printed.contains("export-test"));
    let store = ObjectFileStore::s3(&config, MasterKey::generate()).unwrap();
    assert!(!format!("{store:?}").contains("export-test-secret"));

    for broken in [
        S3Config {
            bucket: String::new(),
            ..config.clone()
        },
        S3Config {
            secret_access_key: String::new(),
            ..config.clone()
        },
        S3Config {
            key_prefix: Some("../up".to_owned()),
            ..config.clone()
        },
    ] {
        assert!(matches!(
            ObjectFileStore::s3(&broken, MasterKey::generate()),
            Err(StorageError::InvalidSettings(_))
        ));
    }
}

// ---- against a real S3-compatible server --------------------------------------------------

/// The test server's URL, or `None` after saying loudly that the test is skipped (straight to
/// stderr, past the test harness's capture).
fn s3_url(test: &str) -> Option<String> {
    match std::env::var("EXPORT_TEST_S3_URL") {
        Ok(url) if !url.is_empty() => Some(url.trim_end_matches('/').to_owned()),
        _ => {
            let _ = writeln!(
                io::stderr(),
                "#### SKIPPED {test}: S3 test, set EXPORT_TEST_S3_URL (scripts/start-s3 serves \
                 http://127.0.0.1:9000) to run it ####"
            );
            None
        }
    }
}

/// One unsigned HTTP/1.1 request to the test server (it accepts them); status and body.
fn http(url: &str, method: &str, target: &str) -> (u16, String) {
    let address = url
        .strip_prefix("http://")
        .expect("EXPORT_TEST_S3_URL must be http://host:port");
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "{method} {target} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map_or("", |(_, body)| body)
        .to_owned();
    (status, body)
}

/// A fresh bucket (object_store cannot make one), the store in it, and a raw view of the bucket.
fn s3_bucket(url: &str) -> (String, ObjectFileStore, Arc<dyn ObjectStore>) {
    let bucket = format!("export-test-{}", Uuid::new_v4().simple());
    let (status, body) = http(url, "PUT", &format!("/{bucket}"));
    assert_eq!(status, 200, "creating bucket {bucket}: {body}");
    let config = s3_config(url, &bucket);
    let store = ObjectFileStore::s3(&config, MasterKey::generate())
        .unwrap()
        .with_part_size(5 * MIB);
    let raw: Arc<dyn ObjectStore> = Arc::new(
        AmazonS3Builder::new()
            .with_bucket_name(&bucket)
            .with_endpoint(url)
            .with_region("us-east-1")
            .with_access_key_id("export-test")
            .with_secret_access_key("export-test-secret")
            .with_allow_http(true)
            .build()
            .unwrap(),
    );
    (bucket, store, raw)
}

#[test]
fn s3_round_trip_ciphertext_at_rest_and_delete() {
    let Some(url) = s3_url("s3_round_trip_ciphertext_at_rest_and_delete") else {
        return;
    };
    let (_bucket, store, raw_store) = s3_bucket(&url);
    for len in [0, 1, 65_537, 300_000] {
        let (key, _) = round_trip(&store, len);
        let at_rest = raw(raw_store.as_ref(), &format!("ci/files/{}", key.as_str())).unwrap();
        assert_eq!(at_rest.len(), sealed_len(len));
    }

    let key = FileKey::for_job(Uuid::new_v4(), ExportFormat::Json);
    let secret = b"{\"patient\": \"Noa Cohen\", \"note\": \"panic attacks at work\"}".repeat(1_000);
    let stored = store.put(&key, &mut secret.as_slice()).unwrap();
    let location = format!("ci/files/{}", key.as_str());
    let at_rest = raw(raw_store.as_ref(), &location).unwrap();
    assert!(at_rest.starts_with(b"EXPENC01"));
    assert!(!at_rest.windows(9).any(|w| w == b"Noa Cohen"));

    let mut flipped = at_rest.clone();
    flipped[1_000] ^= 1;
    replace_raw(raw_store.as_ref(), &location, flipped);
    assert!(matches!(
        read_all(&store, &key, &stored.wrapped_key),
        Err(StorageError::Corrupt(_))
    ));
    replace_raw(raw_store.as_ref(), &location, at_rest);
    assert!(read_all(&store, &key, &stored.wrapped_key).unwrap() == secret);

    assert!(store.delete(&key).unwrap());
    assert!(raw(raw_store.as_ref(), &location).is_none());
    assert!(!store.delete(&key).unwrap());
    assert!(matches!(
        store.open(&key, &stored.wrapped_key),
        Err(StorageError::NotFound(_))
    ));
}

#[test]
fn s3_large_files_go_up_in_several_parts_and_a_failed_upload_leaves_nothing() {
    let Some(url) =
        s3_url("s3_large_files_go_up_in_several_parts_and_a_failed_upload_leaves_nothing")
    else {
        return;
    };
    let (bucket, store, raw_store) = s3_bucket(&url);
    // Sealed, 11 MiB and a bit is three parts of 5 MiB, 5 MiB and the rest.
    let (key, _) = round_trip(&store, 11 * MIB);
    let location = format!("ci/files/{}", key.as_str());
    let meta = block_on(raw_store.head(&Path::from(location.as_str()))).unwrap();
    assert_eq!(meta.size, sealed_len(11 * MIB) as u64);
    let e_tag = meta.e_tag.unwrap_or_default();
    assert!(
        e_tag.trim_matches('"').ends_with("-3"),
        "not a three-part upload: {e_tag}"
    );

    // Failing in the second part: the first part was sent, then the upload is aborted.
    let failing = FileKey::for_job(Uuid::new_v4(), ExportFormat::Pdf);
    assert!(store.put(&failing, &mut FailingSource(7 * MIB)).is_err());
    assert!(
        raw(
            raw_store.as_ref(),
            &format!("ci/files/{}", failing.as_str())
        )
        .is_none()
    );
    let (status, uploads) = http(&url, "GET", &format!("/{bucket}?uploads"));
    assert_eq!(status, 200, "{uploads}");
    assert!(
        !uploads.contains("<UploadId>"),
        "an upload was left open: {uploads}"
    );
    // A failure while replacing a file keeps the previous one.
    let stored = store.put(&failing, &mut b"complete".as_slice()).unwrap();
    assert!(store.put(&failing, &mut FailingSource(6 * MIB)).is_err());
    assert_eq!(
        read_all(&store, &failing, &stored.wrapped_key).unwrap(),
        b"complete"
    );
}

#[test]
fn s3_from_inside_another_tokio_runtime() {
    let Some(url) = s3_url("s3_from_inside_another_tokio_runtime") else {
        return;
    };
    let (_bucket, store, _raw) = s3_bucket(&url);
    let store = Arc::new(store);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (key, _) = round_trip(&store, 200_000);
        assert!(store.delete(&key).unwrap());
        let on_blocking_thread = Arc::clone(&store);
        tokio::task::spawn_blocking(move || round_trip(&on_blocking_thread, 6 * MIB))
            .await
            .unwrap();
    });
    runtime.block_on(async move { drop(store) });
}

#[test]
fn list_names_the_files_under_the_prefix_and_nothing_else() {
    use export_core::storage::Stored;

    let memory = Arc::new(InMemory::new());
    let store = ObjectFileStore::new(memory.clone(), MasterKey::generate())
        .unwrap()
        .with_prefix("clinic-a")
        .unwrap();
    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    let (first, _) = round_trip(&store, 100);
    let (second, _) = round_trip(&store, 3 * PART);
    // Not this store's: another prefix, a name of another shape, a folder deeper down.
    replace_raw(memory.as_ref(), first.as_str(), b"unprefixed".to_vec());
    replace_raw(memory.as_ref(), "clinic-a/exports/notes.txt", b"x".to_vec());
    replace_raw(
        memory.as_ref(),
        &format!(
            "clinic-a/exports/deeper/{}",
            first.as_str().trim_start_matches("exports/")
        ),
        b"x".to_vec(),
    );
    let listed = store.list().unwrap();
    let mut keys: Vec<&str> = listed
        .iter()
        .map(|entry| match &entry.stored {
            Stored::File(key) => key.as_str(),
            Stored::Partial(name) => panic!("an object store has no temporaries: {name}"),
        })
        .collect();
    keys.sort();
    let mut expected = vec![first.as_str(), second.as_str()];
    expected.sort();
    assert_eq!(keys, expected);
    assert!(listed.iter().all(|entry| entry.modified >= before));
}
