//! Export files at rest: the `FileStore` trait, keys built from job ids only, and the local
//! directory store, which writes atomically (a reader never sees half a file) and encrypts every
//! file with its own AES-256-GCM key.
//!
//! The per-file key is wrapped (encrypted) with the configured master key and handed back to be
//! kept with the job, not in the file: a copy of the storage directory alone decrypts nothing,
//! and deleting the wrapped key destroys the file in every backup of the directory.
//!
//! File layout: `EXPENC01`, an 8-byte random nonce prefix, then chunks of up to 64 KiB of
//! plaintext, each sealed with nonce = prefix ‖ chunk number and the associated data "last chunk
//! or not". Every file ends with a short (possibly empty) last chunk, so cutting a file at a chunk
//! boundary is detected, as is any changed byte.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::PathBuf;

use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::{AeadCore, Aes256Gcm, Key, Nonce};
use export_domain::{ExportFormat, to_hex};
use sha2::{Digest, Sha256};
use uuid::Uuid;

const MAGIC: &[u8; 8] = b"EXPENC01";
const CHUNK: usize = 64 * 1024;
const TAG: usize = 16;

/// Why a file could not be stored or read. Never names the content.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    #[error("not a valid file key: {0}")]
    InvalidKey(&'static str),
    #[error("the master key must be 64 hex digits (32 bytes)")]
    InvalidMasterKey,
    #[error("file {0} does not exist")]
    NotFound(String),
    #[error("file {0} cannot be decrypted: it was altered, cut short, or its key is wrong")]
    Corrupt(String),
    #[error("storage input/output failed: {0}")]
    Io(#[from] io::Error),
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

    /// Accepts only `exports/<lower-case hyphenated UUID>.<format>`: no `..`, no separators, no
    /// encoded or control characters, nothing absolute.
    pub fn parse(text: &str) -> Result<FileKey, StorageError> {
        let name = text
            .strip_prefix("exports/")
            .ok_or(StorageError::InvalidKey("it must start with exports/"))?;
        let (id, extension) = name
            .split_once('.')
            .ok_or(StorageError::InvalidKey("it has no extension"))?;
        let format: ExportFormat = extension
            .parse()
            .map_err(|_| StorageError::InvalidKey("unknown extension"))?;
        let job_id = Uuid::try_parse(id)
            .map_err(|_| StorageError::InvalidKey("the name is not a job id"))?;
        let key = FileKey::for_job(job_id, format);
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
    /// From 64 hex digits, as configuration holds it.
    pub fn from_hex(text: &str) -> Result<MasterKey, StorageError> {
        let bytes = decode_hex(text.trim()).ok_or(StorageError::InvalidMasterKey)?;
        Ok(MasterKey(
            bytes
                .try_into()
                .map_err(|_| StorageError::InvalidMasterKey)?,
        ))
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
    /// Stores everything `content` yields under `key`, replacing any file there, atomically.
    fn put(&self, key: &FileKey, content: &mut dyn Read) -> Result<StoredFile, StorageError>;
    /// Opens the file for reading its plaintext.
    fn open(&self, key: &FileKey, wrapped_key: &str) -> Result<Box<dyn Read + Send>, StorageError>;
    /// Removes the file; false when there was none.
    fn delete(&self, key: &FileKey) -> Result<bool, StorageError>;
}

/// Files in a local directory.
#[derive(Debug, Clone)]
pub struct LocalFileStore {
    root: PathBuf,
    master: MasterKey,
}

impl LocalFileStore {
    /// A store under `root` (created if missing).
    pub fn new(
        root: impl Into<PathBuf>,
        master: MasterKey,
    ) -> Result<LocalFileStore, StorageError> {
        let root = root.into();
        fs::create_dir_all(root.join("exports"))?;
        Ok(LocalFileStore { root, master })
    }

    fn path(&self, key: &FileKey) -> PathBuf {
        // FileKey is exports/<uuid>.<ext> by construction: it cannot climb out of the root.
        self.root.join(key.as_str())
    }
}

fn chunk_nonce(prefix: &[u8; 8], index: u32) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[..8].copy_from_slice(prefix);
    nonce[8..].copy_from_slice(&index.to_be_bytes());
    nonce
}

/// Reads until `buffer` is full or the input ends; returns how much was read.
fn fill(input: &mut dyn Read, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match input.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(filled)
}

impl FileStore for LocalFileStore {
    fn put(&self, key: &FileKey, content: &mut dyn Read) -> Result<StoredFile, StorageError> {
        let file_key = Aes256Gcm::generate_key(OsRng);
        let cipher = Aes256Gcm::new(&file_key);
        let wrap_nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let wrapped = self
            .master
            .cipher()
            .encrypt(
                &wrap_nonce,
                Payload {
                    msg: file_key.as_slice(),
                    aad: key.as_str().as_bytes(),
                },
            )
            .map_err(|_| StorageError::Corrupt(key.as_str().to_owned()))?;
        let mut prefix = [0u8; 8];
        prefix.copy_from_slice(&Aes256Gcm::generate_nonce(&mut OsRng)[..8]);

        let target = self.path(key);
        let mut partial = tempfile::Builder::new()
            .prefix(".partial-")
            .tempfile_in(self.root.join("exports"))?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        {
            let out = partial.as_file_mut();
            out.write_all(MAGIC)?;
            out.write_all(&prefix)?;
            let mut buffer = vec![0u8; CHUNK];
            let mut index = 0u32;
            loop {
                let read = fill(content, &mut buffer)?;
                hasher.update(&buffer[..read]);
                size += read as u64;
                let last = read < CHUNK;
                let nonce = chunk_nonce(&prefix, index);
                let sealed = cipher
                    .encrypt(
                        Nonce::from_slice(&nonce),
                        Payload {
                            msg: &buffer[..read],
                            aad: &[u8::from(last)],
                        },
                    )
                    .map_err(|_| StorageError::Corrupt(key.as_str().to_owned()))?;
                out.write_all(&sealed)?;
                if last {
                    break;
                }
                index = index
                    .checked_add(1)
                    .ok_or(StorageError::InvalidKey("file too large"))?;
            }
            out.sync_all()?;
        }
        partial
            .persist(&target)
            .map_err(|err| StorageError::Io(err.error))?;
        let mut wrapped_key = wrap_nonce.to_vec();
        wrapped_key.extend_from_slice(&wrapped);
        Ok(StoredFile {
            size_bytes: size,
            sha256: to_hex(&hasher.finalize()),
            wrapped_key: to_hex(&wrapped_key),
        })
    }

    fn open(&self, key: &FileKey, wrapped_key: &str) -> Result<Box<dyn Read + Send>, StorageError> {
        let corrupt = || StorageError::Corrupt(key.as_str().to_owned());
        let wrapped = decode_hex(wrapped_key)
            .filter(|w| w.len() == 12 + 32 + TAG)
            .ok_or_else(corrupt)?;
        let file_key = self
            .master
            .cipher()
            .decrypt(
                Nonce::from_slice(&wrapped[..12]),
                Payload {
                    msg: &wrapped[12..],
                    aad: key.as_str().as_bytes(),
                },
            )
            .map_err(|_| corrupt())?;
        let mut file = match File::open(self.path(key)) {
            Ok(file) => file,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                return Err(StorageError::NotFound(key.as_str().to_owned()));
            }
            Err(err) => return Err(err.into()),
        };
        let mut header = [0u8; 16];
        if fill(&mut file, &mut header)? != 16 || &header[..8] != MAGIC {
            return Err(corrupt());
        }
        let mut prefix = [0u8; 8];
        prefix.copy_from_slice(&header[8..]);
        Ok(Box::new(DecryptingReader {
            file,
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&file_key)),
            prefix,
            index: 0,
            plain: Vec::new(),
            position: 0,
            finished: false,
            name: key.as_str().to_owned(),
        }))
    }

    fn delete(&self, key: &FileKey) -> Result<bool, StorageError> {
        match fs::remove_file(self.path(key)) {
            Ok(()) => Ok(true),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(err) => Err(err.into()),
        }
    }
}

/// Decrypts a stored file chunk by chunk.
struct DecryptingReader {
    file: File,
    cipher: Aes256Gcm,
    prefix: [u8; 8],
    index: u32,
    plain: Vec<u8>,
    position: usize,
    finished: bool,
    name: String,
}

impl DecryptingReader {
    fn next_chunk(&mut self) -> io::Result<()> {
        let corrupt = |name: &str| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                StorageError::Corrupt(name.to_owned()),
            )
        };
        let mut sealed = vec![0u8; CHUNK + TAG];
        let read = fill(&mut self.file, &mut sealed)?;
        if read < TAG {
            return Err(corrupt(&self.name)); // cut short
        }
        let last = read < CHUNK + TAG;
        let nonce = chunk_nonce(&self.prefix, self.index);
        self.plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &sealed[..read],
                    aad: &[u8::from(last)],
                },
            )
            .map_err(|_| corrupt(&self.name))?;
        self.position = 0;
        self.index += 1;
        self.finished = last;
        Ok(())
    }
}

impl Read for DecryptingReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.position == self.plain.len() {
            if self.finished {
                return Ok(0);
            }
            self.next_chunk()?;
        }
        let n = out.len().min(self.plain.len() - self.position);
        out[..n].copy_from_slice(&self.plain[self.position..self.position + n]);
        self.position += n;
        Ok(n)
    }
}

/// The bytes of lower-case or upper-case hex; `None` for anything else.
pub(crate) fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}
