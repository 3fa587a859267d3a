//! Export files in a local directory: sealed into a temporary file beside the target, fsynced and
//! renamed into place, so a reader never sees half a file.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::PathBuf;

use super::crypt::{self, DecryptingReader};
use super::{FileKey, FileStore, MasterKey, StorageError, StoredFile};

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
    fn put(&self, key: &FileKey, content: &mut dyn Read) -> Result<StoredFile, StorageError> {
        let mut partial = tempfile::Builder::new()
            .prefix(".partial-")
            .tempfile_in(self.root.join("exports"))?;
        let stored = crypt::seal(&self.master, key, content, &mut |sealed| {
            Ok(partial.as_file_mut().write_all(sealed)?)
        })?;
        partial.as_file_mut().sync_all()?;
        partial
            .persist(self.path(key))
            .map_err(|err| StorageError::Io(err.error))?;
        Ok(stored)
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
}
