//! A render's output on its way into a `FileStore`: `StoreOutput` is the `Output` a renderer
//! writes to, and hands on to a `FileWriter` without ever holding the file whole.
//!
//! Renderers that write front to back (CSV, JSON, PDF) go straight into the sealing writer; a
//! renderer may ask where it is but not seek elsewhere. Zip-based formats (DOCX, XLSX) seek back
//! to finish their archives, so they write into a spool: an anonymous temporary file, encrypted
//! with AES-256-CTR under a key that lives only in memory (CTR lets any byte be rewritten in
//! place), which is then read back, decrypted, into the sealing writer. No plaintext of ours
//! reaches the disk, and a crash leaves nothing: the spool has no name.

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};

use aes_gcm::aead::OsRng;
use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aes::Aes256;
use ctr::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
use export_domain::ExportFormat;

use super::{FileWriter, StorageError, from_io};

type SpoolCipher = ctr::Ctr128BE<Aes256>;

/// Bytes of a spool buffered before they are encrypted and written.
const SPOOL_BUFFER: usize = 256 * 1024;

/// Whether the renderer of `format` seeks back in its output (the zip-based formats do).
pub fn format_seeks(format: ExportFormat) -> bool {
    matches!(format, ExportFormat::Docx | ExportFormat::Xlsx)
}

/// Where a renderer writes a file bound for a `FileStore` (see the module docs).
#[derive(Debug)]
pub struct StoreOutput {
    writer: Box<dyn FileWriter>,
    position: u64,
    spool: Option<BufWriter<Spool>>,
    /// The first write the store (or the spool) refused, as its kind and message.
    failed: Option<(io::ErrorKind, String)>,
}

impl StoreOutput {
    /// Output into `writer`, through a spool when `seeks` (see `format_seeks`).
    pub fn new(writer: Box<dyn FileWriter>, seeks: bool) -> Result<StoreOutput, StorageError> {
        let spool = if seeks {
            Some(BufWriter::with_capacity(SPOOL_BUFFER, Spool::new()?))
        } else {
            None
        };
        Ok(StoreOutput {
            writer,
            position: 0,
            spool,
            failed: None,
        })
    }

    /// The output for a file of `format`.
    pub fn for_format(
        writer: Box<dyn FileWriter>,
        format: ExportFormat,
    ) -> Result<StoreOutput, StorageError> {
        StoreOutput::new(writer, format_seeks(format))
    }

    /// The storage error behind a failed render, when a write into the store or the spool is
    /// what failed (the renderer reports it as its own output error).
    pub fn failure(&self) -> Option<StorageError> {
        self.failed
            .as_ref()
            .map(|(kind, message)| StorageError::Io(io::Error::new(*kind, message.clone())))
    }

    fn noted<T>(&mut self, result: io::Result<T>) -> io::Result<T> {
        if let Err(err) = &result
            && self.failed.is_none()
        {
            self.failed = Some((err.kind(), err.to_string()));
        }
        result
    }

    /// Everything written so far in the file writer, not yet finished: the caller decides
    /// whether the file is kept (`FileWriter::finish`) or abandoned (dropped).
    pub fn into_writer(self) -> Result<Box<dyn FileWriter>, StorageError> {
        let StoreOutput {
            mut writer, spool, ..
        } = self;
        if let Some(spool) = spool {
            let mut spool = spool
                .into_inner()
                .map_err(|err| from_io(err.into_error()))?;
            spool.rewind()?;
            let mut buffer = vec![0u8; SPOOL_BUFFER];
            loop {
                let read = spool.read(&mut buffer)?;
                if read == 0 {
                    break;
                }
                writer.write_all(&buffer[..read]).map_err(from_io)?;
            }
        }
        Ok(writer)
    }
}

impl Write for StoreOutput {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let written = match &mut self.spool {
            Some(spool) => spool.write(bytes),
            None => self.writer.write(bytes).inspect(|written| {
                self.position += *written as u64;
            }),
        };
        self.noted(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        let flushed = match &mut self.spool {
            Some(spool) => spool.flush(),
            None => self.writer.flush(),
        };
        self.noted(flushed)
    }
}

impl Seek for StoreOutput {
    /// Through a spool, anywhere; straight into the store, only to where it already is.
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        if let Some(spool) = &mut self.spool {
            return spool.seek(to);
        }
        let here = self.position;
        let target = match to {
            SeekFrom::Start(at) => Some(at),
            SeekFrom::Current(by) | SeekFrom::End(by) => here.checked_add_signed(by),
        };
        if target == Some(here) {
            Ok(here)
        } else {
            Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "this output is written front to back and cannot seek",
            ))
        }
    }
}

/// An anonymous temporary file whose bytes are encrypted with AES-256-CTR at their offset, so
/// it can be written, overwritten and read anywhere, like a plain file.
struct Spool {
    file: File,
    cipher: SpoolCipher,
    position: u64,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool")
            .field("position", &self.position)
            .finish_non_exhaustive()
    }
}

impl Spool {
    fn new() -> io::Result<Spool> {
        let mut key = [0u8; 32];
        let mut nonce = [0u8; 16];
        OsRng.fill_bytes(&mut key);
        OsRng.fill_bytes(&mut nonce[..8]); // the low half counts blocks
        Ok(Spool {
            file: tempfile::tempfile()?,
            cipher: SpoolCipher::new(&key.into(), &nonce.into()),
            position: 0,
            scratch: Vec::new(),
        })
    }

    /// XORs `bytes` with the key stream at `at`.
    fn apply(&mut self, at: u64, bytes: &mut [u8]) {
        self.cipher.seek(at);
        self.cipher.apply_keystream(bytes);
    }
}

impl Write for Spool {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        scratch.extend_from_slice(bytes);
        self.apply(self.position, &mut scratch);
        let written = self.file.write(&scratch);
        self.scratch = scratch;
        let written = written?;
        self.position += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for Spool {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let read = self.file.read(out)?;
        self.apply(self.position, &mut out[..read]);
        self.position += read as u64;
        Ok(read)
    }
}

impl Seek for Spool {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.position = self.file.seek(to)?;
        Ok(self.position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spool_reads_back_what_was_written_and_overwritten() {
        let mut spool = Spool::new().unwrap();
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        spool.write_all(&data).unwrap();
        spool.seek(SeekFrom::Start(100_003)).unwrap();
        spool.write_all(b"patched").unwrap();
        spool.seek(SeekFrom::End(0)).unwrap();
        spool.write_all(b"tail").unwrap();
        let mut expected = data.clone();
        expected[100_003..100_010].copy_from_slice(b"patched");
        expected.extend_from_slice(b"tail");

        let mut raw = Vec::new();
        let mut file = spool.file.try_clone().unwrap();
        file.rewind().unwrap();
        file.read_to_end(&mut raw).unwrap();
        assert_eq!(raw.len(), expected.len());
        assert_ne!(raw, expected, "the spool on disk is encrypted");

        spool.rewind().unwrap();
        let mut back = Vec::new();
        spool.read_to_end(&mut back).unwrap();
        assert_eq!(back, expected);
    }
}
