//! The local file store: files round-trip, are encrypted on disk, refuse a wrong key, a changed
//! byte or a cut; failed writes leave nothing; keys never reach outside the storage root.

use std::io::Read;

use export_core::storage::{FileKey, FileStore, LocalFileStore, MasterKey, StorageError};
use export_domain::ExportFormat;
use export_store::testing::FailingSource;
use sha2::{Digest, Sha256};
use uuid::Uuid;

fn store() -> (tempfile::TempDir, LocalFileStore) {
    let root = tempfile::tempdir().unwrap();
    let store = LocalFileStore::new(root.path(), MasterKey::generate()).unwrap();
    (root, store)
}

fn content(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

fn read_all(store: &LocalFileStore, key: &FileKey, wrapped: &str) -> Result<Vec<u8>, String> {
    let mut reader = store.open(key, wrapped).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    reader.read_to_end(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

#[test]
fn files_of_every_size_round_trip_with_size_and_digest() {
    let (_root, store) = store();
    // Empty, one byte, exactly one chunk, a chunk and a bit, several chunks.
    for len in [0, 1, 65_536, 65_537, 300_000] {
        let key = FileKey::for_job(Uuid::new_v4(), ExportFormat::Csv);
        let data = content(len);
        let stored = store.put(&key, &mut data.as_slice()).unwrap();
        assert_eq!(stored.size_bytes, len as u64);
        let digest: String = Sha256::digest(&data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(stored.sha256, digest);
        assert_eq!(
            read_all(&store, &key, &stored.wrapped_key).unwrap(),
            data,
            "{len} bytes"
        );
    }
}

#[test]
fn the_file_on_disk_is_ciphertext() {
    let (root, store) = store();
    let key = FileKey::for_job(Uuid::new_v4(), ExportFormat::Json);
    let secret = b"{\"patient\": \"Noa Cohen\", \"note\": \"panic attacks at work\"}".repeat(100);
    store.put(&key, &mut secret.as_slice()).unwrap();
    let on_disk = std::fs::read(root.path().join(key.as_str())).unwrap();
    assert!(on_disk.starts_with(b"EXPENC01"));
    assert!(!on_disk.windows(9).any(|w| w == b"Noa Cohen"));
}

#[test]
fn a_wrong_key_a_changed_byte_or_a_cut_is_refused() {
    let (root, store) = store();
    let key = FileKey::for_job(Uuid::new_v4(), ExportFormat::Pdf);
    let data = content(200_000);
    let stored = store.put(&key, &mut data.as_slice()).unwrap();
    let corrupt = format!(
        "file {} cannot be decrypted: it was altered, cut short, or its key is wrong",
        key.as_str()
    );

    // Another master key cannot unwrap the file key.
    let other = LocalFileStore::new(root.path(), MasterKey::generate()).unwrap();
    assert_eq!(
        read_all(&other, &key, &stored.wrapped_key).unwrap_err(),
        corrupt
    );
    // A wrapped key is bound to its file: it does not open another.
    let second = FileKey::for_job(Uuid::new_v4(), ExportFormat::Pdf);
    store.put(&second, &mut data.as_slice()).unwrap();
    assert_eq!(
        read_all(&store, &second, &stored.wrapped_key).unwrap_err(),
        corrupt.replace(key.as_str(), second.as_str())
    );

    let path = root.path().join(key.as_str());
    let original = std::fs::read(&path).unwrap();
    let mut flipped = original.clone();
    flipped[100_000] ^= 1;
    std::fs::write(&path, &flipped).unwrap();
    assert_eq!(
        read_all(&store, &key, &stored.wrapped_key).unwrap_err(),
        corrupt
    );
    // Cut at a chunk boundary: header + two full sealed chunks.
    std::fs::write(&path, &original[..16 + 2 * (65_536 + 16)]).unwrap();
    assert_eq!(
        read_all(&store, &key, &stored.wrapped_key).unwrap_err(),
        corrupt
    );
    std::fs::write(&path, &original).unwrap();
    assert_eq!(read_all(&store, &key, &stored.wrapped_key).unwrap(), data);
}

#[test]
fn a_failed_write_leaves_no_file_and_keeps_the_previous_one() {
    let (root, store) = store();
    let key = FileKey::for_job(Uuid::new_v4(), ExportFormat::Xlsx);
    assert!(store.put(&key, &mut FailingSource(150_000)).is_err());
    assert!(!root.path().join(key.as_str()).exists());
    assert_eq!(
        std::fs::read_dir(root.path().join("exports"))
            .unwrap()
            .count(),
        0,
        "no partial file left"
    );

    let stored = store.put(&key, &mut b"complete".as_slice()).unwrap();
    assert!(store.put(&key, &mut FailingSource(10)).is_err());
    assert_eq!(
        read_all(&store, &key, &stored.wrapped_key).unwrap(),
        b"complete"
    );
    assert!(store.delete(&key).unwrap());
    assert!(!store.delete(&key).unwrap());
    assert!(matches!(
        store.open(&key, &stored.wrapped_key),
        Err(StorageError::NotFound(_))
    ));
}

#[test]
fn keys_never_reach_outside_the_storage_root() {
    let id = Uuid::from_u128(0x1234);
    let good = format!("exports/{}.pdf", id.hyphenated());
    assert_eq!(
        FileKey::parse(&good).unwrap(),
        FileKey::for_job(id, ExportFormat::Pdf)
    );
    let attempt = format!("exports/{}.2-00c0ffee.pdf", id.hyphenated());
    assert_eq!(
        FileKey::parse(&attempt).unwrap(),
        FileKey::for_attempt(id, 2, 0xc0ffee, ExportFormat::Pdf)
    );
    // Keys stored before attempts drew a claim number still read back.
    let legacy = format!("exports/{}.2.pdf", id.hyphenated());
    assert_eq!(FileKey::parse(&legacy).unwrap().as_str(), legacy);
    for bad in [
        "exports/00000000-0000-0000-0000-000000001234.02.pdf",
        "exports/00000000-0000-0000-0000-000000001234.2-C0FFEE00.pdf",
        "exports/00000000-0000-0000-0000-000000001234.2-c0ffee.pdf",
        "exports/00000000-0000-0000-0000-000000001234.2-.pdf",
        "exports/00000000-0000-0000-0000-000000001234.2-+c0ffee0.pdf",
        "exports/00000000-0000-0000-0000-000000001234.-1.pdf",
        "exports/00000000-0000-0000-0000-000000001234.1.2.pdf",
        "exports/00000000-0000-0000-0000-000000001234..pdf",
        "exports/00000000-0000-0000-0000-000000001234.1/../../x.pdf",
        "exports/00000000-0000-0000-0000-000000001234.%2e.pdf",
        "../etc/passwd",
        "/etc/passwd",
        "exports/../../etc/passwd.pdf",
        "exports/..%2F..%2Fetc%2Fpasswd.pdf",
        "exports/%2e%2e/x.pdf",
        "exports/00000000-0000-0000-0000-000000001234.pdf\0.txt",
        "exports/00000000-0000-0000-0000-000000001234.pdf/../../x",
        "exports/00000000-0000-0000-0000-000000001234.exe",
        "exports/00000000000000000000000000001234.pdf",
        "exports/00000000-0000-0000-0000-000000001234.PDF",
        "exports//00000000-0000-0000-0000-000000001234.pdf",
        "exports\\..\\x.pdf",
        "",
    ] {
        assert!(FileKey::parse(bad).is_err(), "{bad:?} was accepted");
    }
}

#[test]
fn master_keys_come_from_64_hex_digits_and_never_print() {
    let key = MasterKey::generate();
    assert_eq!(
        MasterKey::from_hex(&key.to_hex()).unwrap().to_hex(),
        key.to_hex()
    );
    assert_eq!(format!("{key:?}"), "MasterKey(..)");
    let upper = key.to_hex().to_uppercase();
    assert_eq!(MasterKey::from_hex(&upper).unwrap().to_hex(), key.to_hex());
    assert!(MasterKey::from_hex(&format!(" {}\n", key.to_hex())).is_ok());
}

#[test]
fn master_key_with_sign_digits_is_refused() {
    // `u8::from_str_radix("+f", 16)` is 15: pair by pair, "+f+f…" once made a key of 0x0f bytes.
    let digits = "the master key must be 64 hex digits (32 bytes): it holds a character other than 0-9, a-f and A-F";
    let length = "the master key must be 64 hex digits (32 bytes): it is not 64 digits long";
    let check = |text: &str, expect: &str| match MasterKey::from_hex(text) {
        Err(err @ StorageError::InvalidMasterKey(_)) => {
            assert_eq!(err.to_string(), expect, "{text:?}")
        }
        other => panic!("{text:?}: {other:?}"),
    };
    for (text, expect) in [
        ("+f".repeat(32), digits),
        (format!("+{}", "0".repeat(63)), digits),
        (format!("-{}", "0".repeat(63)), digits),
        ("g".repeat(64), digits),
        (format!("{} {}", "a".repeat(32), "a".repeat(31)), digits),
        (format!("0x{}", "a".repeat(62)), digits),
        ("\u{ff10}".repeat(64), digits),
        (String::new(), length),
        ("abc".into(), length),
        ("a".repeat(62), length),
        ("a".repeat(66), length),
    ] {
        check(&text, expect);
    }
}
