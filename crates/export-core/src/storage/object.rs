//! Export files in object storage: S3 or anything else `object_store` speaks (its in-memory and
//! local-filesystem stores serve the tests), sealed exactly as the local store seals them.
//!
//! Uploads become visible only when complete: a file of at most one part is sent with a single
//! put, a larger one as a multipart upload of equal parts (all but the last) that is completed at
//! the end and aborted on any failure. At most two parts are in memory: the one being uploaded and
//! the one being sealed. Reads fetch the object in ranged requests of `READ_WINDOW` bytes, the
//! next one already on its way while the current one is decrypted.
//!
//! `FileStore` is synchronous and `object_store` is async: every store owns a small tokio runtime
//! on a thread of its own and hands it each request, waiting on a std channel. A caller may be any
//! thread, including one inside another tokio runtime (the server calls the engine from
//! `web::block`), since nothing here enters a runtime or blocks on one.

use std::fmt;
use std::future::Future;
use std::io::{self, Read};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;

use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{MultipartUpload, ObjectStore, ObjectStoreExt, PutPayload};

use super::crypt::{self, CHUNK, DecryptingReader, SealedSink, SealingWriter, TAG};
use super::{FileKey, FileStore, FileWriter, Listed, MasterKey, StorageError, Stored};

/// Bytes fetched per ranged read.
const READ_WINDOW: u64 = 4 * 1024 * 1024;

/// How to reach an S3-compatible bucket. Its `Debug` never shows the secret key.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Config {
    pub bucket: String,
    /// The service's URL (`https://s3.example.net`, `http://127.0.0.1:9000`); `None` for AWS
    /// itself, reached in `region`. Buckets are addressed by path (`<endpoint>/<bucket>/<key>`).
    pub endpoint: Option<String>,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Allow a plain `http://` endpoint (a local test server); refused otherwise.
    pub allow_http: bool,
    /// Folders in front of every key (`clinic-a/prod` gives `clinic-a/prod/exports/<id>.pdf`):
    /// segments of letters, digits, `-`, `_` and `.`, no `.` or `..`, no leading `/`.
    pub key_prefix: Option<String>,
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"..")
            .field("allow_http", &self.allow_http)
            .field("key_prefix", &self.key_prefix)
            .finish()
    }
}

/// Files in an object store, under an optional key prefix. Clones share the runtime thread.
#[derive(Clone)]
pub struct ObjectFileStore {
    store: Arc<dyn ObjectStore>,
    prefix: Option<String>,
    master: MasterKey,
    part_size: usize,
    bridge: Arc<Bridge>,
}

impl fmt::Debug for ObjectFileStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The store's `Display` names the kind and bucket only; its `Debug` is longer than useful.
        f.debug_struct("ObjectFileStore")
            .field("store", &format_args!("{}", self.store))
            .field("prefix", &self.prefix)
            .field("part_size", &self.part_size)
            .finish_non_exhaustive()
    }
}

impl ObjectFileStore {
    /// Size of each uploaded part but the last: 8 MiB (S3 wants at least 5 MiB).
    pub const DEFAULT_PART_SIZE: usize = 8 * 1024 * 1024;

    /// A store over any object store, keys at its root. Starts the runtime thread (named
    /// `export-object-store`) that runs its requests.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        master: MasterKey,
    ) -> Result<ObjectFileStore, StorageError> {
        Ok(ObjectFileStore {
            store,
            prefix: None,
            master,
            part_size: Self::DEFAULT_PART_SIZE,
            bridge: Arc::new(Bridge::start()?),
        })
    }

    /// A store in an S3-compatible bucket, which must exist; nothing is sent until first use.
    pub fn s3(config: &S3Config, master: MasterKey) -> Result<ObjectFileStore, StorageError> {
        if config.bucket.is_empty() {
            return Err(StorageError::InvalidSettings("the bucket is missing"));
        }
        // Without both keys object_store would look for credentials elsewhere (environment,
        // instance metadata); we use exactly what was configured.
        if config.access_key_id.is_empty() || config.secret_access_key.is_empty() {
            return Err(StorageError::InvalidSettings(
                "the access key id and the secret access key are both required",
            ));
        }
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&config.bucket)
            .with_region(&config.region)
            .with_access_key_id(&config.access_key_id)
            .with_secret_access_key(&config.secret_access_key)
            .with_allow_http(config.allow_http);
        if let Some(endpoint) = &config.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        let store = ObjectFileStore::new(Arc::new(builder.build()?), master)?;
        match &config.key_prefix {
            Some(prefix) => store.with_prefix(prefix),
            None => Ok(store),
        }
    }

    /// Keeps every file under `prefix` (see `S3Config::key_prefix`); an empty prefix is none.
    pub fn with_prefix(mut self, prefix: &str) -> Result<ObjectFileStore, StorageError> {
        self.prefix = checked_prefix(prefix)?;
        Ok(self)
    }

    /// Sets the part size of multipart uploads (at least 1 KiB). Only the default, or anything
    /// from 5 MiB up, is accepted by S3; smaller parts are for tests over other stores.
    pub fn with_part_size(mut self, bytes: usize) -> ObjectFileStore {
        self.part_size = bytes.max(1024);
        self
    }

    fn location(&self, key: &FileKey) -> Result<Path, StorageError> {
        let text = match &self.prefix {
            Some(prefix) => format!("{prefix}/{}", key.as_str()),
            None => key.as_str().to_owned(),
        };
        Path::parse(text).map_err(|_| StorageError::InvalidKey("not a valid object path"))
    }

    /// Whether the object exists. A file absent here is `NotFound`; other failures pass through.
    fn size_of(&self, key: &FileKey, location: &Path) -> Result<Option<u64>, StorageError> {
        let store = Arc::clone(&self.store);
        let location = location.clone();
        match self
            .bridge
            .run(async move { store.head(&location).await })?
        {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(err) => Err(not_found_or(key, err)),
        }
    }
}

/// A key prefix checked segment by segment, without a trailing `/`; `None` when empty.
fn checked_prefix(prefix: &str) -> Result<Option<String>, StorageError> {
    if prefix.is_empty() {
        return Ok(None);
    }
    if prefix.starts_with('/') {
        return Err(StorageError::InvalidSettings(
            "the key prefix must not start with /",
        ));
    }
    let trimmed = prefix.strip_suffix('/').unwrap_or(prefix);
    let segment_ok = |segment: &str| {
        !segment.is_empty()
            && segment != "."
            && segment != ".."
            && segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    };
    if !trimmed.split('/').all(segment_ok) {
        return Err(StorageError::InvalidSettings(
            "the key prefix must be folders of letters, digits, '-', '_' and '.', without '.' or '..'",
        ));
    }
    Ok(Some(trimmed.to_owned()))
}

fn not_found_or(key: &FileKey, err: object_store::Error) -> StorageError {
    match err {
        object_store::Error::NotFound { .. } => StorageError::NotFound(key.as_str().to_owned()),
        other => StorageError::ObjectStore(other),
    }
}

impl FileStore for ObjectFileStore {
    fn create(&self, key: &FileKey) -> Result<Box<dyn FileWriter>, StorageError> {
        let upload = Upload {
            location: self.location(key)?,
            buffer: Vec::with_capacity(self.part_size + CHUNK + TAG),
            multipart: None,
            in_flight: None,
            store: self.clone(),
        };
        Ok(Box::new(SealingWriter::new(&self.master, key, upload)?))
    }

    fn open(&self, key: &FileKey, wrapped_key: &str) -> Result<Box<dyn Read + Send>, StorageError> {
        let cipher = crypt::unwrap_file_key(&self.master, key, wrapped_key)?;
        let location = self.location(key)?;
        let size = self
            .size_of(key, &location)?
            .ok_or_else(|| StorageError::NotFound(key.as_str().to_owned()))?;
        let body = ObjectBody {
            store: Arc::clone(&self.store),
            bridge: Arc::clone(&self.bridge),
            location,
            size,
            requested: 0,
            window: Vec::new(),
            position: 0,
            next: None,
        };
        Ok(Box::new(DecryptingReader::new(body, cipher, key)?))
    }

    /// Object stores delete absent objects without complaint, so this asks first; a file deleted
    /// by someone else in between still counts as deleted here.
    fn delete(&self, key: &FileKey) -> Result<bool, StorageError> {
        let location = self.location(key)?;
        if self.size_of(key, &location)?.is_none() {
            return Ok(false);
        }
        let store = Arc::clone(&self.store);
        self.bridge
            .run(async move { store.delete(&location).await })?
            .map_err(|err| not_found_or(key, err))?;
        Ok(true)
    }

    /// The objects under `exports/`. An upload that never finished is not an object: this store
    /// aborts it when its writer is dropped, and one a crash cut short is ended by the bucket's
    /// lifecycle rule for incomplete multipart uploads (see ARCHITECTURE.md).
    fn list(&self) -> Result<Vec<Listed>, StorageError> {
        use futures_util::TryStreamExt;
        let folder = match &self.prefix {
            Some(prefix) => format!("{prefix}/exports"),
            None => "exports".to_owned(),
        };
        let folder =
            Path::parse(folder).map_err(|_| StorageError::InvalidKey("not a valid object path"))?;
        let store = Arc::clone(&self.store);
        let objects = self
            .bridge
            .run(async move { store.list(Some(&folder)).try_collect::<Vec<_>>().await })??;
        Ok(objects
            .into_iter()
            .filter_map(|meta| {
                let name = meta.location.filename()?;
                let key = FileKey::parse(&format!("exports/{name}")).ok()?;
                // Only what sits exactly where this store would put that key.
                (self.location(&key).ok()? == meta.location).then_some(Listed {
                    stored: Stored::File(key),
                    modified: meta.last_modified,
                })
            })
            .collect())
    }
}

/// One file on its way up: sealed bytes gather in `buffer`; once more than a part is there, a
/// multipart upload starts and every full part is sent while the next one is being sealed.
/// Dropped before it is committed, it aborts the upload, so nothing becomes visible.
struct Upload {
    store: ObjectFileStore,
    location: Path,
    buffer: Vec<u8>,
    multipart: Option<Box<dyn MultipartUpload>>,
    in_flight: Option<Pending<object_store::Result<()>>>,
}

impl Upload {
    fn write(&mut self, sealed: &[u8]) -> Result<(), StorageError> {
        self.buffer.extend_from_slice(sealed);
        // Strictly more than a part: content of exactly one part still goes up in one put.
        while self.buffer.len() > self.store.part_size {
            let mut next = Vec::with_capacity(self.store.part_size + CHUNK + TAG);
            next.extend_from_slice(&self.buffer[self.store.part_size..]);
            let mut part = std::mem::replace(&mut self.buffer, next);
            part.truncate(self.store.part_size);
            self.send_part(part)?;
        }
        Ok(())
    }

    fn send_part(&mut self, part: Vec<u8>) -> Result<(), StorageError> {
        let upload = match &mut self.multipart {
            Some(upload) => upload,
            None => {
                let store = Arc::clone(&self.store.store);
                let location = self.location.clone();
                let upload = self
                    .store
                    .bridge
                    .run(async move { store.put_multipart(&location).await })??;
                self.multipart.insert(upload)
            }
        };
        // One part in flight at a time: wait for the previous one before sending this one.
        if let Some(previous) = self.in_flight.take() {
            previous.wait()??;
        }
        let sending = upload.put_part(PutPayload::from(part));
        self.in_flight = Some(self.store.bridge.spawn(sending));
        Ok(())
    }

    fn finish(&mut self) -> Result<(), StorageError> {
        let bridge = Arc::clone(&self.store.bridge);
        let bridge = bridge.as_ref();
        let rest = std::mem::take(&mut self.buffer);
        if self.multipart.is_none() {
            let store = Arc::clone(&self.store.store);
            let location = self.location.clone();
            bridge.run(async move { store.put(&location, PutPayload::from(rest)).await })??;
            return Ok(());
        }
        // Never empty: a part is cut only when more than a part is buffered.
        let result = self.send_part(rest).and_then(|()| self.wait_in_flight());
        let Some(mut upload) = self.multipart.take() else {
            return result;
        };
        if let Err(err) = result {
            abort(bridge, upload);
            return Err(err);
        }
        let (upload, completed) = bridge.run(async move {
            let completed = upload.complete().await;
            (upload, completed)
        })?;
        if let Err(err) = completed {
            abort(bridge, upload);
            return Err(err.into());
        }
        Ok(())
    }

    fn wait_in_flight(&mut self) -> Result<(), StorageError> {
        match self.in_flight.take() {
            Some(part) => Ok(part.wait()??),
            None => Ok(()),
        }
    }

    /// Nothing becomes visible: parts already sent are discarded with the upload.
    fn abandon(&mut self) {
        // Parts still travelling would outlive an abort; let them land first.
        let _ = self.wait_in_flight();
        if let Some(upload) = self.multipart.take() {
            abort(&self.store.bridge, upload);
        }
    }
}

impl SealedSink for Upload {
    fn write_sealed(&mut self, sealed: &[u8]) -> Result<(), StorageError> {
        self.write(sealed)
    }

    fn commit(mut self) -> Result<(), StorageError> {
        self.finish()
    }
}

impl Drop for Upload {
    /// After `finish` there is nothing left to abandon.
    fn drop(&mut self) {
        self.abandon();
    }
}

/// Best effort: an upload left behind is invisible and expires with the bucket's lifecycle rules.
fn abort(bridge: &Bridge, mut upload: Box<dyn MultipartUpload>) {
    let _ = bridge.run(async move { upload.abort().await });
}

/// An object's bytes read in windows of `READ_WINDOW`, the next one fetched ahead.
struct ObjectBody {
    store: Arc<dyn ObjectStore>,
    bridge: Arc<Bridge>,
    location: Path,
    size: u64,
    /// Where the next window to fetch starts.
    requested: u64,
    window: Vec<u8>,
    position: usize,
    next: Option<Pending<object_store::Result<Vec<u8>>>>,
}

impl ObjectBody {
    fn fetch_next(&mut self) -> Option<Pending<object_store::Result<Vec<u8>>>> {
        if self.requested >= self.size {
            return None;
        }
        let range = self.requested..self.size.min(self.requested + READ_WINDOW);
        self.requested = range.end;
        let store = Arc::clone(&self.store);
        let location = self.location.clone();
        Some(
            self.bridge
                .spawn(async move { store.get_range(&location, range).await.map(Vec::from) }),
        )
    }
}

impl Read for ObjectBody {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.position == self.window.len() {
            let Some(pending) = self.next.take().or_else(|| self.fetch_next()) else {
                return Ok(0);
            };
            self.window = pending
                .wait()
                .map_err(io::Error::other)?
                .map_err(|err| io::Error::other(StorageError::ObjectStore(err)))?;
            self.position = 0;
            self.next = self.fetch_next();
            if self.window.is_empty() {
                return Ok(0);
            }
        }
        let n = out.len().min(self.window.len() - self.position);
        out[..n].copy_from_slice(&self.window[self.position..self.position + n]);
        self.position += n;
        Ok(n)
    }
}

/// The store's own tokio runtime, a current-thread one on a dedicated thread, running until the
/// last store or reader holding it is dropped. Callers hand it futures and wait on std channels,
/// which neither enter a runtime nor care whether the caller is inside one.
struct Bridge {
    handle: tokio::runtime::Handle,
    shutdown: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

impl Bridge {
    fn start() -> io::Result<Bridge> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        thread::Builder::new()
            .name("export-object-store".to_owned())
            .spawn(move || {
                runtime.block_on(async move {
                    let _ = stopped.await;
                });
            })?;
        Ok(Bridge {
            handle,
            shutdown: Mutex::new(Some(shutdown)),
        })
    }

    /// Starts `task` on the runtime; its output waits in the returned `Pending`.
    fn spawn<T: Send + 'static>(
        &self,
        task: impl Future<Output = T> + Send + 'static,
    ) -> Pending<T> {
        let (sender, receiver) = mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = sender.send(task.await);
        });
        Pending(receiver)
    }

    /// Runs `task` on the runtime and waits for its output.
    fn run<T: Send + 'static>(
        &self,
        task: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, StorageError> {
        self.spawn(task).wait()
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        // The runtime thread drops the runtime itself, outside any async context.
        if let Some(shutdown) = self.shutdown.get_mut().ok().and_then(Option::take) {
            let _ = shutdown.send(());
        }
    }
}

/// The output of a task on the bridge's runtime, not yet waited for.
struct Pending<T>(mpsc::Receiver<T>);

impl<T> Pending<T> {
    fn wait(self) -> Result<T, StorageError> {
        self.0.recv().map_err(|_| {
            StorageError::Io(io::Error::other(
                "the object storage runtime stopped before answering",
            ))
        })
    }
}
