//! The model store's file I/O on the origin private file system (OPFS) — or, where OPFS is
//! missing or refused, the Cache API in the same layout — typed: the calls of `opfs.js`, with
//! the browser's exceptions turned into [`StoreError`]s; and the Web Lock on one entry.

use js_sys::{Array, Function, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use web_sys::AbortSignal;

use crate::store::StoreError;

#[wasm_bindgen(module = "/src/wasm/opfs.js")]
extern "C" {
    #[wasm_bindgen(js_name = storeRoot)]
    async fn store_root() -> JsValue;
    #[wasm_bindgen(js_name = childDir, catch)]
    async fn child_dir(dir: &JsValue, name: &str, create: bool) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(js_name = listFiles, catch)]
    async fn list_files(dir: &JsValue) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(js_name = listDirs, catch)]
    async fn list_dirs(dir: &JsValue) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(js_name = writeFile, catch)]
    async fn write_file(dir: &JsValue, name: &str, bytes: &[u8]) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(js_name = readFile, catch)]
    async fn read_file(
        dir: &JsValue,
        name: &str,
        offset: f64,
        len: f64,
    ) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(js_name = removeEntry, catch)]
    async fn remove_entry(dir: &JsValue, name: &str) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(js_name = storageEstimate)]
    async fn storage_estimate() -> JsValue;
    #[wasm_bindgen(js_name = askPersistence)]
    fn ask_persistence_js();
    #[wasm_bindgen(js_name = lockEntry, catch)]
    async fn lock_entry(name: &str, signal: Option<AbortSignal>) -> Result<JsValue, JsValue>;
}

/// The Web Lock on one store entry, held until dropped: a second tab (or worker) loading the
/// same model waits, then finds the pieces the first stored.
pub struct EntryLock(Option<Function>);

impl EntryLock {
    /// Waits for the lock on entry `key` (no lock where the browser has no Web Locks).
    pub async fn acquire(key: &str, signal: Option<&AbortSignal>) -> Result<Self, StoreError> {
        let release = lock_entry(key, signal.cloned()).await.map_err(storage)?;
        Ok(Self(release.dyn_into::<Function>().ok()))
    }
}

impl Drop for EntryLock {
    fn drop(&mut self) {
        if let Some(release) = self.0.take() {
            let _ = release.call0(&JsValue::NULL);
        }
    }
}

/// A directory of the store.
#[derive(Debug, Clone)]
pub struct Dir(JsValue);

impl Dir {
    /// The store's root directory (OPFS, else the Cache API); `None` where the browser has
    /// neither (or refuses both here).
    pub async fn root() -> Option<Dir> {
        let root = store_root().await;
        (!root.is_null() && !root.is_undefined()).then_some(Dir(root))
    }

    /// The subdirectory `name`; `None` when it does not exist and `create` is false.
    pub async fn child(&self, name: &str, create: bool) -> Result<Option<Dir>, StoreError> {
        let dir = child_dir(&self.0, name, create).await.map_err(storage)?;
        Ok((!dir.is_null()).then_some(Dir(dir)))
    }

    /// The directory's files, with their sizes.
    pub async fn files(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let list = Array::from(&list_files(&self.0).await.map_err(storage)?);
        Ok(list
            .iter()
            .filter_map(|pair| {
                let pair = Array::from(&pair);
                Some((pair.get(0).as_string()?, pair.get(1).as_f64()? as u64))
            })
            .collect())
    }

    /// The names of the directory's subdirectories.
    pub async fn dirs(&self) -> Result<Vec<String>, StoreError> {
        let list = Array::from(&list_dirs(&self.0).await.map_err(storage)?);
        Ok(list.iter().filter_map(|name| name.as_string()).collect())
    }

    /// Writes the file `name` whole (replacing it): it exists afterwards with all of `bytes`,
    /// or keeps what it held before.
    pub async fn write(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        match write_file(&self.0, name, bytes).await {
            Ok(_) => Ok(()),
            Err(e) if error_name(&e).as_deref() == Some("QuotaExceededError") => {
                Err(StoreError::Quota {
                    needed: bytes.len() as u64,
                    available: available_bytes().await.unwrap_or(0),
                })
            }
            Err(e) => Err(storage(e)),
        }
    }

    /// `len` bytes of the file `name` from `offset`; `None` when there is no such file.
    pub async fn read(
        &self,
        name: &str,
        offset: u64,
        len: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let bytes = read_file(&self.0, name, offset as f64, len as f64)
            .await
            .map_err(storage)?;
        Ok((!bytes.is_null()).then(|| Uint8Array::new(&bytes).to_vec()))
    }

    /// Removes the file or directory `name` (with everything in it); a missing one is no error.
    pub async fn remove(&self, name: &str) -> Result<(), StoreError> {
        remove_entry(&self.0, name).await.map_err(storage)?;
        Ok(())
    }
}

/// Bytes the origin may still store, where the browser says (`navigator.storage.estimate()`).
pub async fn available_bytes() -> Option<u64> {
    let estimate = storage_estimate().await;
    let field = |name: &str| Reflect::get(&estimate, &name.into()).ok()?.as_f64();
    Some((field("quota")? - field("usage").unwrap_or(0.0)).max(0.0) as u64)
}

/// Asks the browser to keep the store under storage pressure (`navigator.storage.persist()`).
pub fn ask_persistence() {
    ask_persistence_js();
}

fn error_name(e: &JsValue) -> Option<String> {
    Reflect::get(e, &"name".into()).ok()?.as_string()
}

fn storage(e: JsValue) -> StoreError {
    let message = Reflect::get(&e, &"message".into())
        .ok()
        .and_then(|m| m.as_string())
        .unwrap_or_else(|| format!("{e:?}"));
    StoreError::Storage(match error_name(&e) {
        Some(name) => format!("{name}: {message}"),
        None => message,
    })
}
