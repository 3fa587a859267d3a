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

use std::io::{self, Read, Write};

use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::{AeadCore, Aes256Gcm, Key, Nonce};
use export_domain::to_hex;
use sha2::{Digest, Sha256};

use super::{FileKey, FileWriter, MasterKey, StorageError, StoredFile, decode_hex};

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

/// Where a `SealingWriter` hands the sealed bytes, in order; `commit` makes them the file.
/// Dropping a sink that was not committed abandons it: nothing appears under the final key.
pub(super) trait SealedSink: Send {
    fn write_sealed(&mut self, sealed: &[u8]) -> Result<(), StorageError>;
    fn commit(self) -> Result<(), StorageError>;
}

/// Seals plaintext as it is written, under a fresh file key, one 64 KiB chunk at a time, handing
/// each sealed chunk to its sink; `finish` seals the last (short, possibly empty) chunk, commits
/// the sink and returns the plaintext's size and digest with the wrapped file key. At most one
/// chunk of plaintext is held. After a failed write every later write and `finish` fail too.
pub(super) struct SealingWriter<S> {
    sink: S,
    chunks: ChunkSealer,
    hasher: Sha256,
    size: u64,
    buffer: Vec<u8>,
    wrapped_key: String,
    failed: bool,
}

/// Seals a file's chunks in order: the file key, the nonce prefix and the next chunk's number.
struct ChunkSealer {
    cipher: Aes256Gcm,
    prefix: [u8; 8],
    index: u32,
    name: String,
}

impl ChunkSealer {
    /// Seals `plain` as the next chunk and hands it to `sink`.
    fn seal(
        &mut self,
        sink: &mut impl SealedSink,
        plain: &[u8],
        last: bool,
    ) -> Result<(), StorageError> {
        let nonce = chunk_nonce(&self.prefix, self.index);
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: &[u8::from(last)],
                },
            )
            .map_err(|_| StorageError::Corrupt(self.name.clone()))?;
        sink.write_sealed(&sealed)?;
        self.index = self
            .index
            .checked_add(1)
            .ok_or(StorageError::InvalidKey("file too large"))?;
        Ok(())
    }
}

impl<S: SealedSink> SealingWriter<S> {
    /// Wraps a fresh file key for `key` and writes the header to `sink`.
    pub(super) fn new(
        master: &MasterKey,
        key: &FileKey,
        mut sink: S,
    ) -> Result<SealingWriter<S>, StorageError> {
        let corrupt = || StorageError::Corrupt(key.as_str().to_owned());
        let file_key = Aes256Gcm::generate_key(OsRng);
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
        let mut wrapped_key = wrap_nonce.to_vec();
        wrapped_key.extend_from_slice(&wrapped);
        let mut prefix = [0u8; 8];
        prefix.copy_from_slice(&Aes256Gcm::generate_nonce(&mut OsRng)[..8]);

        let mut header = [0u8; HEADER];
        header[..8].copy_from_slice(MAGIC);
        header[8..].copy_from_slice(&prefix);
        sink.write_sealed(&header)?;
        Ok(SealingWriter {
            sink,
            chunks: ChunkSealer {
                cipher: Aes256Gcm::new(&file_key),
                prefix,
                index: 0,
                name: key.as_str().to_owned(),
            },
            hasher: Sha256::new(),
            size: 0,
            buffer: Vec::with_capacity(CHUNK),
            wrapped_key: to_hex(&wrapped_key),
            failed: false,
        })
    }

    fn take(&mut self, mut plain: &[u8]) -> Result<(), StorageError> {
        if self.failed {
            return Err(StorageError::Io(io::Error::other(
                "an earlier write to this file failed",
            )));
        }
        self.hasher.update(plain);
        self.size += plain.len() as u64;
        while !plain.is_empty() {
            // A full chunk is never the last one: the file always ends with a short chunk.
            if self.buffer.is_empty() && plain.len() >= CHUNK {
                let (chunk, rest) = plain.split_at(CHUNK);
                self.chunks.seal(&mut self.sink, chunk, false)?;
                plain = rest;
                continue;
            }
            let n = plain.len().min(CHUNK - self.buffer.len());
            self.buffer.extend_from_slice(&plain[..n]);
            plain = &plain[n..];
            if self.buffer.len() == CHUNK {
                self.chunks.seal(&mut self.sink, &self.buffer, false)?;
                self.buffer.clear();
            }
        }
        Ok(())
    }

    /// Seals the last chunk and commits the sink.
    pub(super) fn finish(mut self) -> Result<StoredFile, StorageError> {
        if self.failed {
            return Err(StorageError::Io(io::Error::other(
                "an earlier write to this file failed",
            )));
        }
        self.chunks.seal(&mut self.sink, &self.buffer, true)?;
        self.sink.commit()?;
        Ok(StoredFile {
            size_bytes: self.size,
            sha256: to_hex(&self.hasher.finalize()),
            wrapped_key: self.wrapped_key,
        })
    }
}

impl<S: SealedSink> Write for SealingWriter<S> {
    fn write(&mut self, plain: &[u8]) -> io::Result<usize> {
        match self.take(plain) {
            Ok(()) => Ok(plain.len()),
            Err(err) => {
                self.failed = true;
                Err(into_io(err))
            }
        }
    }

    /// Sealed chunks go to the sink as they fill; a partial chunk waits for more or for
    /// `finish`, since sealing it now would end the file.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<S: SealedSink> FileWriter for SealingWriter<S> {
    fn finish(self: Box<Self>) -> Result<StoredFile, StorageError> {
        SealingWriter::finish(*self)
    }
}

/// A storage error carried through `io::Write`; `from_io` takes it out again.
pub(super) fn into_io(err: StorageError) -> io::Error {
    match err {
        StorageError::Io(err) => err,
        other => io::Error::other(other),
    }
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
