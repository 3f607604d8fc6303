//! `LlamaClient.cache`: the models kept in the browser's store — list them, delete one, clear
//! all. A deleted model downloads again on its next load.

use js_sys::Promise;
use serde::Serialize;
use wasm_bindgen::prelude::*;

use super::error::to_js_error;
use super::model_store::read_meta;
use super::opfs::Dir;
use super::to_js;
use crate::api::ApiError;
use crate::store::{Pieces, StoreError, entry_key};

/// One stored model, as `list()` describes it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CachedModel {
    url: String,
    /// Bytes of the file stored so far.
    bytes: u64,
    /// The whole file is stored (and checked, where a `sha256` was given).
    complete: bool,
    /// When a load last used it, in milliseconds since the Unix epoch.
    last_used: f64,
}

/// The browser's model store (`LlamaClient.cache`).
#[wasm_bindgen]
pub struct ModelCache {}

#[wasm_bindgen]
impl ModelCache {
    /// The stored models: `[{ url, bytes, complete, lastUsed }]`; empty where the browser has
    /// no store (OPFS).
    #[wasm_bindgen(unchecked_return_type = "Promise<CachedModel[]>")]
    pub fn list(&self) -> Promise {
        promise(async {
            let mut out = Vec::new();
            let Some(root) = Dir::root().await else {
                return serialize(&out);
            };
            for key in root.dirs().await? {
                let Some(dir) = root.child(&key, false).await? else {
                    continue;
                };
                let Some(meta) = read_meta(&dir).await else {
                    continue;
                };
                let bytes = dir
                    .files()
                    .await?
                    .iter()
                    .filter(|(name, _)| Pieces::index_of(name).is_some())
                    .map(|(_, size)| size)
                    .sum();
                out.push(CachedModel {
                    url: meta.url,
                    bytes,
                    complete: meta.complete,
                    last_used: meta.last_used_ms,
                });
            }
            serialize(&out)
        })
    }

    /// Removes what is stored for the model at `url`; resolves to whether anything was.
    #[wasm_bindgen(unchecked_return_type = "Promise<boolean>")]
    pub fn delete(&self, url: String) -> Promise {
        promise(async move {
            let Some(root) = Dir::root().await else {
                return Ok(JsValue::FALSE);
            };
            let key = entry_key(&url);
            let existed = root.child(&key, false).await?.is_some();
            root.remove(&key).await?;
            Ok(JsValue::from_bool(existed))
        })
    }

    /// Removes every stored model.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn clear(&self) -> Promise {
        promise(async {
            if let Some(root) = Dir::root().await {
                for key in root.dirs().await? {
                    root.remove(&key).await?;
                }
            }
            Ok(JsValue::UNDEFINED)
        })
    }
}

fn promise(
    work: impl std::future::Future<Output = Result<JsValue, StoreError>> + 'static,
) -> Promise {
    super::guard::guarded(async move { work.await.map_err(|e| to_js_error(&ApiError::from(e))) })
}

fn serialize(models: &[CachedModel]) -> Result<JsValue, StoreError> {
    to_js(&models).map_err(|e| StoreError::Storage(format!("{e:?}")))
}
