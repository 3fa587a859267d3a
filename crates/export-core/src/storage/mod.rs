//! Export files at rest: the `FileStore` trait, keys built from job ids only, the master key, and
//! the stores: a local directory (`local`) and, with the `s3` feature, S3-compatible object storage
//! (`object`). Both write atomically (a reader never sees half a file) and seal every file in the
//! same format (`crypt`) with its own AES-256-GCM key.
//!
//! The per-file key is wrapped (encrypted) with the configured master key and handed back to be
//! kept with the job, not in the file: a copy of the storage alone decrypts nothing, and deleting
//! the wrapped key destroys the file in every backup of the storage.

mod crypt;
mod local;
#[cfg(feature = "s3")]
mod object;
mod stream;

use std::io::{self, Read, Write};

use aes_gcm::aead::{KeyInit, OsRng};
use aes_gcm::{Aes256Gcm, Key};
use chrono::{DateTime, Utc};
use export_domain::{ExportFormat, to_hex};
use uuid::Uuid;

pub use local::LocalFileStore;
#[cfg(feature = "s3")]
pub use object::{ObjectFileStore, S3Config};
pub use stream::{StoreOutput, format_seeks};

/// Why a file could not be stored or read. Never names the content.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("not a valid file key: {0}")]
    InvalidKey(&'static str),
    #[error("the master key must be 64 hex digits (32 bytes): {0}")]
    InvalidMasterKey(&'static str),
    #[error("file {0} does not exist")]
    NotFound(String),
    #[error("file {0} cannot be decrypted: it was altered, cut short, or its key is wrong")]
    Corrupt(String),
    #[error("storage input/output failed: {0}")]
    Io(#[from] io::Error),
    /// Settings of the object store that cannot work (a bad key prefix, a missing bucket…).
    #[cfg(feature = "s3")]
    #[error("invalid object storage settings: {0}")]
    InvalidSettings(&'static str),
    /// The object store refused or failed a request; the message names keys, never contents.
    #[cfg(feature = "s3")]
    #[error("object storage failed: {0}")]
    ObjectStore(#[from] object_store::Error),
}

/// Where an export's file lives: `exports/<job id>.<extension>`, made from a job id and never from
/// user input; keys read back from the database are checked against that exact shape.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileKey(String);

impl FileKey {
    /// The key of a job's file.
    pub fn for_job(job_id: Uuid, format: ExportFormat) -> FileKey {
        FileKey(format!(
            "exports/{}.{}",
            job_id.hyphenated(),
            format.as_str()
        ))
    }

    /// The key of the file one attempt at a job writes:
    /// `exports/<job id>.<attempt>-<claim>.<format>`, where `claim` is drawn at random when the
    /// attempt starts. No two attempts share a key, even when a released attempt and the one that
    /// took its place carry the same number: each writes beside the other, never over its file,
    /// and removes only its own when the job turns out not to be its.
    pub fn for_attempt(job_id: Uuid, attempt: i32, claim: u32, format: ExportFormat) -> FileKey {
        FileKey(format!(
            "exports/{}.{}-{claim:08x}.{}",
            job_id.hyphenated(),
            attempt.max(0),
            format.as_str()
        ))
    }

    /// Accepts only `exports/<lower-case hyphenated UUID>[.<attempt>[-<claim>]].<format>`: no `..`, no
    /// separators, no encoded or control characters, nothing absolute.
    pub fn parse(text: &str) -> Result<FileKey, StorageError> {
        let name = text
            .strip_prefix("exports/")
            .ok_or(StorageError::InvalidKey("it must start with exports/"))?;
        let (id, rest) = name
            .split_once('.')
            .ok_or(StorageError::InvalidKey("it has no extension"))?;
        let job_id = Uuid::try_parse(id)
            .map_err(|_| StorageError::InvalidKey("the name is not a job id"))?;
        // Keys written before attempts drew a claim number name the attempt alone.
        let (attempt, extension) = match rest.split_once('.') {
            Some((attempt, extension)) => {
                let (number, claim) = attempt.split_once('-').unwrap_or((attempt, ""));
                let number = number
                    .parse::<i32>()
                    .map_err(|_| StorageError::InvalidKey("the attempt is not a number"))?;
                let claim = match claim {
                    "" => None,
                    hex => Some(
                        u32::from_str_radix(hex, 16)
                            .map_err(|_| StorageError::InvalidKey("the claim is not hex"))?,
                    ),
                };
                (Some((number, claim)), extension)
            }
            None => (None, rest),
        };
        let format: ExportFormat = extension
            .parse()
            .map_err(|_| StorageError::InvalidKey("unknown extension"))?;
        let key = match attempt {
            Some((attempt, Some(claim))) => FileKey::for_attempt(job_id, attempt, claim, format),
            Some((attempt, None)) => FileKey(format!(
                "exports/{}.{}.{}",
                job_id.hyphenated(),
                attempt.max(0),
                format.as_str()
            )),
            None => FileKey::for_job(job_id, format),
        };
        if key.0 != text {
            return Err(StorageError::InvalidKey(
                "the name is not in canonical form",
            ));
        }
        Ok(key)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The key that wraps every file key. Its `Debug` never shows it.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// From 64 hex digits (`0-9`, `a-f`, `A-F`; white space around them is ignored), as
    /// configuration holds it. The error says what is wrong, never which character.
    pub fn from_hex(text: &str) -> Result<MasterKey, StorageError> {
        let text = text.trim();
        if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(StorageError::InvalidMasterKey(
                "it holds a character other than 0-9, a-f and A-F",
            ));
        }
        let mut key = [0; 32];
        hex::decode_to_slice(text, &mut key)
            .map_err(|_| StorageError::InvalidMasterKey("it is not 64 digits long"))?;
        Ok(MasterKey(key))
    }

    /// A fresh random key, for first start-up and tests.
    pub fn generate() -> MasterKey {
        MasterKey(Aes256Gcm::generate_key(OsRng).into())
    }

    /// The key as 64 hex digits, to write into configuration once.
    pub fn to_hex(&self) -> String {
        to_hex(&self.0)
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&self.0))
    }
}

/// What storing a file produced; the wrapped key belongs with the job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFile {
    /// Plaintext size.
    pub size_bytes: u64,
    /// Lower-case hex SHA-256 of the plaintext, as the client downloads it.
    pub sha256: String,
    /// The file's own key, encrypted with the master key (hex: nonce ‖ ciphertext).
    pub wrapped_key: String,
}

/// Where export files are kept.
pub trait FileStore: Send + Sync {
    /// Starts the file `key`: what is written to the returned writer is sealed and stored as it
    /// comes, and becomes the file under `key` (replacing any there) only when the writer is
    /// finished. A writer dropped unfinished, or one whose write failed, leaves nothing under
    /// `key`; at most a `.partial` temporary of the local store survives a crash.
    fn create(&self, key: &FileKey) -> Result<Box<dyn FileWriter>, StorageError>;
    /// Stores everything `content` yields under `key`, replacing any file there, atomically.
    fn put(&self, key: &FileKey, content: &mut dyn Read) -> Result<StoredFile, StorageError> {
        let mut writer = self.create(key)?;
        io::copy(content, &mut writer).map_err(from_io)?;
        writer.finish()
    }
    /// Opens the file for reading its plaintext.
    fn open(&self, key: &FileKey, wrapped_key: &str) -> Result<Box<dyn Read + Send>, StorageError>;
    /// Removes the file; false when there was none.
    fn delete(&self, key: &FileKey) -> Result<bool, StorageError>;
    /// What the store holds under `exports/`, for the expiry pass's sweep of leftovers: every
    /// file under a key of the canonical shape and every temporary a writer left behind, with
    /// when each was last written. Names of any other shape are not this engine's and are left
    /// out. A store that cannot list (the default) holds nothing to sweep.
    fn list(&self) -> Result<Vec<Listed>, StorageError> {
        Ok(Vec::new())
    }
    /// Removes a temporary that `list` named; false when it was gone.
    fn remove_partial(&self, _name: &str) -> Result<bool, StorageError> {
        Ok(false)
    }
}

/// Something under `exports/`, as `FileStore::list` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// A finished file.
    File(FileKey),
    /// A temporary of an unfinished write (`.partial-…` in the local store), by its name.
    Partial(String),
}

impl std::fmt::Display for Stored {
    /// Its name under `exports/`: a key, or a temporary's name. Ids only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stored::File(key) => f.write_str(key.as_str()),
            Stored::Partial(name) => write!(f, "exports/{name}"),
        }
    }
}

/// One entry of `FileStore::list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub stored: Stored,
    /// When it was last written.
    pub modified: DateTime<Utc>,
}

/// A file on its way into a `FileStore` (see `FileStore::create`). Only `finish` makes it
/// visible; dropping it abandons it.
pub trait FileWriter: Write + Send {
    /// Seals the end of the file and puts it in place under its key; returns the plaintext's
    /// size and digest, exactly as written, and the wrapped key.
    fn finish(self: Box<Self>) -> Result<StoredFile, StorageError>;
}

impl std::fmt::Debug for dyn FileWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FileWriter")
    }
}

/// The storage error an `io::Error` from a `FileWriter` carries, or the error itself as `Io`.
pub fn from_io(err: io::Error) -> StorageError {
    if !err
        .get_ref()
        .is_some_and(|inner| inner.is::<StorageError>())
    {
        return StorageError::Io(err);
    }
    match err
        .into_inner()
        .map(|inner| inner.downcast::<StorageError>())
    {
        Some(Ok(inner)) => *inner,
        Some(Err(other)) => StorageError::Io(io::Error::other(other)),
        None => StorageError::Io(io::Error::other("storage input/output failed")),
    }
}

/// The bytes of lower-case or upper-case hex digits; `None` for anything else, a sign (`+f`), a
/// space or an odd count of digits included. (The `hex` crate; `u8::from_str_radix`, which this
/// once used pair by pair, takes `+f` for 15.)
pub(crate) fn decode_hex(text: &str) -> Option<Vec<u8>> {
    hex::decode(text).ok()
}
