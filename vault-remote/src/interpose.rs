//! Test doubles around a real `object_store` store (feature
//! `test-cluster`): [`Interposer`] passes every call through, but can
//! **ignore PUT conditions** (answering and overwriting as Garage 2.5
//! does) and can **race the index**: write competing bytes to the vault's
//! `index` just before the next conditional PUT of it, as another node
//! would in the gap between a writer's re-read and its PUT. With these the
//! probe and the conditional path are tested in-process, on stores that
//! honour conditions (`InMemory`, `LocalFileSystem`) and on one that lies.

use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

use crate::{Backend, RemoteStore};

/// A pass-through store with two faults to switch on (see the module doc).
#[derive(Debug)]
pub struct Interposer {
    inner: Arc<dyn ObjectStore>,
    ignore_conditions: bool,
    race_index: Mutex<Option<Vec<u8>>>,
}

impl Interposer {
    /// Wraps `inner`; with `ignore_conditions`, every PUT is a plain
    /// overwrite whatever its mode.
    pub fn new(inner: Arc<dyn ObjectStore>, ignore_conditions: bool) -> Arc<Self> {
        Arc::new(Interposer {
            inner,
            ignore_conditions,
            race_index: Mutex::new(None),
        })
    }

    /// Before the next conditional PUT of a key named `index`, overwrite
    /// it with `bytes` (once).
    pub fn race_next_index_put(&self, bytes: Vec<u8>) {
        *self.race_index.lock().unwrap() = Some(bytes);
    }

    /// A vault store rooted at `root` on this store (`shown` for messages).
    pub fn vault(self: &Arc<Self>, root: &str, shown: &str) -> RemoteStore {
        let backend = Backend::over(self.clone(), shown).expect("runtime");
        RemoteStore::from_backend(backend, Path::from(root))
    }
}

impl fmt::Display for Interposer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Interposer({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for Interposer {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        mut opts: PutOptions,
    ) -> Result<PutResult> {
        let conditional = !matches!(opts.mode, PutMode::Overwrite);
        if conditional && location.filename() == Some("index") {
            let race = self.race_index.lock().unwrap().take();
            if let Some(bytes) = race {
                self.inner
                    .put_opts(location, bytes.into(), PutOptions::default())
                    .await?;
            }
        }
        if self.ignore_conditions {
            opts.mode = PutMode::Overwrite;
        }
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}
