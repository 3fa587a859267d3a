//! The sealed format every store writes, and its reader: one AES-256-GCM key per file, wrapped
//! by the master key and bound to the file's key.
//!
//! Layout: `EXPENC01`, an 8-byte random nonce prefix, then chunks of up to 64 KiB of plaintext,
//! each sealed with nonce = prefix ‖ chunk number and the associated data "last chunk or not".
//! Every file ends with a short (possibly empty) last chunk, so cutting a file at a chunk
//! boundary is detected, as is any changed byte.
//!
//! The wrapped key is hex of nonce ‖ ciphertext of the file key, sealed with the file key's
//! `FileKey` as associated data: it opens that file only.

use std::io::{self, Read};

use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::{AeadCore, Aes256Gcm, Key, Nonce};
use export_domain::to_hex;
use sha2::{Digest, Sha256};

use super::{FileKey, MasterKey, StorageError, StoredFile, decode_hex};

const MAGIC: &[u8; 8] = b"EXPENC01";
/// Plaintext bytes per chunk.
pub(super) const CHUNK: usize = 64 * 1024;
/// Bytes the cipher adds to each chunk.
pub(super) const TAG: usize = 16;
/// Magic and nonce prefix.
pub(super) const HEADER: usize = 16;

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

/// Seals everything `content` yields for the file `key` under a fresh file key, handing the
/// sealed bytes to `out` in order (the header, then one sealed chunk at a time), and returns the
/// plaintext's size and digest with the wrapped file key.
pub(super) fn seal(
    master: &MasterKey,
    key: &FileKey,
    content: &mut dyn Read,
    out: &mut dyn FnMut(&[u8]) -> Result<(), StorageError>,
) -> Result<StoredFile, StorageError> {
    let corrupt = || StorageError::Corrupt(key.as_str().to_owned());
    let file_key = Aes256Gcm::generate_key(OsRng);
    let cipher = Aes256Gcm::new(&file_key);
    let wrap_nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    let wrapped = master
        .cipher()
        .encrypt(
            &wrap_nonce,
            Payload {
                msg: file_key.as_slice(),
                aad: key.as_str().as_bytes(),
            },
        )
        .map_err(|_| corrupt())?;
    let mut prefix = [0u8; 8];
    prefix.copy_from_slice(&Aes256Gcm::generate_nonce(&mut OsRng)[..8]);

    let mut header = [0u8; HEADER];
    header[..8].copy_from_slice(MAGIC);
    header[8..].copy_from_slice(&prefix);
    out(&header)?;

    let mut hasher = Sha256::new();
    let mut size = 0u64;
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
            .map_err(|_| corrupt())?;
        out(&sealed)?;
        if last {
            break;
        }
        index = index
            .checked_add(1)
            .ok_or(StorageError::InvalidKey("file too large"))?;
    }

    let mut wrapped_key = wrap_nonce.to_vec();
    wrapped_key.extend_from_slice(&wrapped);
    Ok(StoredFile {
        size_bytes: size,
        sha256: to_hex(&hasher.finalize()),
        wrapped_key: to_hex(&wrapped_key),
    })
}

/// The file key inside `wrapped_key`, if the master key wrapped it for this very file.
pub(super) fn unwrap_file_key(
    master: &MasterKey,
    key: &FileKey,
    wrapped_key: &str,
) -> Result<Aes256Gcm, StorageError> {
    let corrupt = || StorageError::Corrupt(key.as_str().to_owned());
    let wrapped = decode_hex(wrapped_key)
        .filter(|w| w.len() == 12 + 32 + TAG)
        .ok_or_else(corrupt)?;
    let file_key = master
        .cipher()
        .decrypt(
            Nonce::from_slice(&wrapped[..12]),
            Payload {
                msg: &wrapped[12..],
                aad: key.as_str().as_bytes(),
            },
        )
        .map_err(|_| corrupt())?;
    Ok(Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&file_key)))
}

/// Decrypts a sealed file chunk by chunk as it is read; a changed byte or a cut surfaces as an
/// `InvalidData` error carrying `StorageError::Corrupt`.
pub(super) struct DecryptingReader<R> {
    source: R,
    cipher: Aes256Gcm,
    prefix: [u8; 8],
    index: u32,
    sealed: Vec<u8>,
    plain: Vec<u8>,
    position: usize,
    finished: bool,
    name: String,
}

impl<R: Read> DecryptingReader<R> {
    /// Reads and checks the header; the chunks are read as the plaintext is.
    pub(super) fn new(
        mut source: R,
        cipher: Aes256Gcm,
        key: &FileKey,
    ) -> Result<DecryptingReader<R>, StorageError> {
        let mut header = [0u8; HEADER];
        if fill(&mut source, &mut header)? != HEADER || &header[..8] != MAGIC {
            return Err(StorageError::Corrupt(key.as_str().to_owned()));
        }
        let mut prefix = [0u8; 8];
        prefix.copy_from_slice(&header[8..]);
        Ok(DecryptingReader {
            source,
            cipher,
            prefix,
            index: 0,
            sealed: vec![0u8; CHUNK + TAG],
            plain: Vec::new(),
            position: 0,
            finished: false,
            name: key.as_str().to_owned(),
        })
    }

    fn next_chunk(&mut self) -> io::Result<()> {
        let corrupt = |name: &str| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                StorageError::Corrupt(name.to_owned()),
            )
        };
        let read = fill(&mut self.source, &mut self.sealed)?;
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
                    msg: &self.sealed[..read],
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

impl<R: Read> Read for DecryptingReader<R> {
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
