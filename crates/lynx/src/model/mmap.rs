//! Memory-mapped safetensors files (single or the shards of one model) read one tensor at a
//! time. After a tensor is copied into the model, its pages are handed back to the kernel, so
//! loading a model keeps the process near the model's own size instead of file + model.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use memmap2::{Mmap, UncheckedAdvice};

use crate::{Error, Result};

struct Entry {
    file: usize,
    dtype: DType,
    shape: Vec<usize>,
    start: usize,
    end: usize,
}

/// Named tensors of one or more mapped safetensors files.
pub struct MappedSafetensors {
    files: Vec<(PathBuf, Mmap)>,
    index: HashMap<String, Entry>,
}

impl MappedSafetensors {
    /// Maps the files and reads their headers; no tensor data is read yet.
    pub fn open(paths: &[PathBuf]) -> Result<Self> {
        let mut files = Vec::with_capacity(paths.len());
        let mut index = HashMap::new();
        for (i, path) in paths.iter().enumerate() {
            let file = File::open(path).map_err(|e| Error::io(path, e))?;
            // SAFETY: mapped read-only; like every mmap user we rely on nobody truncating the
            // file while it is mapped.
            let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
            let bad = |msg: String| Error::weights(path.display().to_string(), "*", msg);
            let (header, meta) = safetensors::SafeTensors::read_metadata(&map)
                .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
            let base = 8 + header;
            for (name, info) in meta.tensors() {
                let dtype = DType::try_from(info.dtype)
                    .map_err(|e| bad(format!("tensor `{name}`: {e}")))?;
                let (start, end) = (base + info.data_offsets.0, base + info.data_offsets.1);
                if end > map.len() {
                    return Err(bad(format!(
                        "tensor `{name}` lies past the end of the file (truncated?)"
                    )));
                }
                index.insert(
                    name,
                    Entry {
                        file: i,
                        dtype,
                        shape: info.shape.clone(),
                        start,
                        end,
                    },
                );
            }
            files.push((path.clone(), map));
        }
        Ok(Self { files, index })
    }

    /// The tensor names.
    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.index.keys()
    }

    /// Shape and dtype of a tensor.
    pub fn meta(&self, name: &str) -> Option<(Vec<usize>, DType)> {
        self.index.get(name).map(|e| (e.shape.clone(), e.dtype))
    }

    /// Copies a tensor out of its file (CPU), then releases the pages it occupied.
    pub fn load(&self, name: &str) -> candle_core::Result<Option<Tensor>> {
        let Some(e) = self.index.get(name) else {
            return Ok(None);
        };
        let (path, map) = &self.files[e.file];
        let t = Tensor::from_raw_buffer(&map[e.start..e.end], e.dtype, &e.shape, &Device::Cpu)
            .map_err(|err| {
                candle_core::Error::Msg(format!("{}: tensor `{name}`: {err}", path.display()))
            })?;
        // SAFETY: DONTNEED on a read-only file mapping only drops this process's copy of the
        // pages; a later read faults them in again from the file, so no data is lost.
        let _ = unsafe {
            map.unchecked_advise_range(UncheckedAdvice::DontNeed, e.start, e.end - e.start)
        };
        Ok(Some(t))
    }

    /// The files, for messages.
    pub fn paths(&self) -> Vec<&Path> {
        self.files.iter().map(|(p, _)| p.as_path()).collect()
    }
}
