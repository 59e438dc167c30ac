//! The catalog the engine serves, swappable while it runs (issue 23): `--catalog FILE`
//! is read again on SIGHUP or an operator's reload, and replaces the catalog whole or
//! not at all. A request takes one snapshot (`current()`) and keeps it, so a reload
//! never changes the model or price under a request half-way through; a task keeps the
//! price it was created with.

use arc_swap::ArcSwap;
use gengate_core::catalog::Catalog;
use std::path::PathBuf;
use std::sync::Arc;

pub struct CatalogSource {
    current: ArcSwap<Catalog>,
    path: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("the catalog is the built-in one (no --catalog FILE): there is nothing to re-read")]
    BuiltIn,
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Invalid {
        path: String,
        source: gengate_core::catalog::CatalogError,
    },
}

impl CatalogSource {
    /// The file's catalog, or the built-in one without a file.
    pub fn load(path: Option<PathBuf>) -> anyhow::Result<Self> {
        let catalog = match &path {
            Some(p) => read(p)?,
            None => Catalog::builtin()?,
        };
        Ok(Self {
            current: ArcSwap::from_pointee(catalog),
            path,
        })
    }

    pub fn fixed(catalog: Catalog) -> Self {
        Self {
            current: ArcSwap::from_pointee(catalog),
            path: None,
        }
    }

    /// The catalog now; keep the snapshot for the whole of a request.
    pub fn current(&self) -> Arc<Catalog> {
        self.current.load_full()
    }

    /// Reads the file again: swaps in the new catalog when every model in it is valid,
    /// else keeps the old one and says why. Answers the models now served.
    pub fn reload(&self) -> Result<Vec<String>, ReloadError> {
        let path = self.path.as_ref().ok_or(ReloadError::BuiltIn)?;
        let catalog = read(path)?;
        let ids = catalog.models().iter().map(|m| m.id.clone()).collect();
        self.current.store(Arc::new(catalog));
        Ok(ids)
    }
}

fn read(path: &PathBuf) -> Result<Catalog, ReloadError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReloadError::Read {
        path: path.display().to_string(),
        source,
    })?;
    Catalog::from_json(&text).map_err(|source| ReloadError::Invalid {
        path: path.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_file_keeps_the_old_catalog_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("models.json");
        let good = gengate_core::catalog::BUILTIN_CATALOG;
        std::fs::write(&path, good).expect("write");
        let src = CatalogSource::load(Some(path.clone())).expect("load");
        let before = src.current();
        // 91 credits: a new price, read on reload.
        std::fs::write(
            &path,
            good.replacen("\"base_credits\": 90", "\"base_credits\": 91", 1),
        )
        .expect("write");
        let ids = src.reload().expect("reload");
        assert_eq!(ids.first().map(String::as_str), Some("kling-3-0"));
        assert_eq!(src.current().models()[0].base_credits.get(), 91);
        assert_eq!(
            before.models()[0].base_credits.get(),
            90,
            "a snapshot keeps its price"
        );
        std::fs::write(&path, "{\"models\": [").expect("write");
        assert!(matches!(src.reload(), Err(ReloadError::Invalid { .. })));
        assert_eq!(src.current().models()[0].base_credits.get(), 91);
        assert!(matches!(
            CatalogSource::fixed(Catalog::builtin().expect("builtin")).reload(),
            Err(ReloadError::BuiltIn)
        ));
    }
}
