//! Export files in a local directory: sealed into a temporary file beside the target, fsynced and
//! renamed into place, so a reader never sees half a file.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::PathBuf;

use super::crypt::{self, DecryptingReader, SealedSink, SealingWriter};
use super::{FileKey, FileStore, FileWriter, Listed, MasterKey, StorageError, Stored};

/// How the temporaries of unfinished writes are named.
const PARTIAL: &str = ".partial-";

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

impl FileStore for LocalFileStore {
    fn create(&self, key: &FileKey) -> Result<Box<dyn FileWriter>, StorageError> {
        let partial = tempfile::Builder::new()
            .prefix(PARTIAL)
            .tempfile_in(self.root.join("exports"))?;
        let sink = PartialFile {
            partial,
            target: self.path(key),
        };
        Ok(Box::new(SealingWriter::new(&self.master, key, sink)?))
    }

    fn open(&self, key: &FileKey, wrapped_key: &str) -> Result<Box<dyn Read + Send>, StorageError> {
        let cipher = crypt::unwrap_file_key(&self.master, key, wrapped_key)?;
        let file = match File::open(self.path(key)) {
            Ok(file) => file,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                return Err(StorageError::NotFound(key.as_str().to_owned()));
            }
            Err(err) => return Err(err.into()),
        };
        Ok(Box::new(DecryptingReader::new(file, cipher, key)?))
    }

    fn delete(&self, key: &FileKey) -> Result<bool, StorageError> {
        match fs::remove_file(self.path(key)) {
            Ok(()) => Ok(true),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(err) => Err(err.into()),
        }
    }

    fn list(&self) -> Result<Vec<Listed>, StorageError> {
        let mut listed = Vec::new();
        for entry in fs::read_dir(self.root.join("exports"))? {
            let entry = entry?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let stored = if name.starts_with(PARTIAL) {
                Stored::Partial(name)
            } else if let Ok(key) = FileKey::parse(&format!("exports/{name}")) {
                Stored::File(key)
            } else {
                continue;
            };
            let modified = match entry.metadata().and_then(|m| m.modified()) {
                Ok(at) => at.into(),
                // Gone since the directory was read.
                Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                Err(err) => return Err(err.into()),
            };
            listed.push(Listed { stored, modified });
        }
        Ok(listed)
    }

    fn remove_partial(&self, name: &str) -> Result<bool, StorageError> {
        let valid = name.len() > PARTIAL.len()
            && name.starts_with(PARTIAL)
            && name[PARTIAL.len()..]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid {
            return Err(StorageError::InvalidKey("not the name of a temporary"));
        }
        match fs::remove_file(self.root.join("exports").join(name)) {
            Ok(()) => Ok(true),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(err) => Err(err.into()),
        }
    }
}

/// A file being written: a `.partial-…` temporary beside the target, removed when dropped
/// unfinished, fsynced and renamed over the target on commit.
struct PartialFile {
    partial: tempfile::NamedTempFile,
    target: PathBuf,
}

impl SealedSink for PartialFile {
    fn write_sealed(&mut self, sealed: &[u8]) -> Result<(), StorageError> {
        Ok(self.partial.as_file_mut().write_all(sealed)?)
    }

    fn commit(self) -> Result<(), StorageError> {
        self.partial.as_file().sync_all()?;
        self.partial
            .persist(&self.target)
            .map_err(|err| StorageError::Io(err.error))?;
        Ok(())
    }
}
