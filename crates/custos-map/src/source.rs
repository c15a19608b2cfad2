//! The data map in service, and how it is reloaded.
//!
//! The map is read at start (`--map FILE`, or the demo's built-in map) and
//! reloaded on demand (SIGHUP in the binary, `POST /v1/map/reload`). A
//! reload that fails keeps serving the previous map: a typo in the file
//! must not take the ROPA offline.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use crate::{DataMap, Diagnostic, LoadError};

/// Where the map comes from.
#[derive(Debug, Clone)]
pub enum MapOrigin {
    /// A file, re-read on every reload.
    File(PathBuf),
    /// Text compiled into the binary (the demo map).
    Builtin(&'static str),
}

/// The current map, swapped atomically on reload.
#[derive(Debug, Default)]
pub struct MapSource {
    origin: Option<MapOrigin>,
    current: RwLock<Option<Arc<DataMap>>>,
}

/// Why a reload failed; the previous map stays in service.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The server was started without a map.
    #[error("the server was started without a map (--map FILE)")]
    NoMap,
    /// The file could not be read or has errors.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The built-in map has errors (a build defect).
    #[error("the built-in map has {0} error(s)")]
    Builtin(usize),
}

impl MapSource {
    /// No map: the map endpoints answer 404 with a hint.
    pub fn none() -> Self {
        Self::default()
    }

    /// A map from `origin`, loaded now; fails like [`MapSource::reload`].
    pub fn load(origin: MapOrigin) -> Result<(Self, Vec<Diagnostic>), ReloadError> {
        let s = Self {
            origin: Some(origin),
            current: RwLock::new(None),
        };
        let warnings = s.reload()?;
        Ok((s, warnings))
    }

    /// Re-reads the map; on success swaps it in and returns its warnings.
    pub fn reload(&self) -> Result<Vec<Diagnostic>, ReloadError> {
        let (map, warnings) = match &self.origin {
            None => return Err(ReloadError::NoMap),
            Some(MapOrigin::File(path)) => crate::load(path)?,
            Some(MapOrigin::Builtin(src)) => {
                crate::load_str(src, "demo-map.yaml").map_err(|d| ReloadError::Builtin(d.len()))?
            }
        };
        let mut cur = self.current.write().unwrap_or_else(|p| p.into_inner());
        *cur = Some(Arc::new(map));
        Ok(warnings)
    }

    /// The map in service, if any.
    pub fn current(&self) -> Option<Arc<DataMap>> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}
