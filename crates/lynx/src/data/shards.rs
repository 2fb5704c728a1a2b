//! Webdataset-style `.tar` shards (paper 2.3's large caption corpora): brace patterns such as
//! `pairs-{000..009}.tar`, members grouped by key (`KEY.json` + `KEY.jpg|png|webp|...`), read
//! one sample at a time with the `tar` crate (a shard is never loaded whole), shuffled with a
//! buffer, and resumable exactly (shard, byte offset of the next sample, and the buffer's
//! samples by their offsets).

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::datasets::{
    locate_media, parse_record, DatasetStats, Media, MediaKind, MediaSource, Pending,
    MIN_RECORDS_FOR_FRACTION,
};
use super::prompts::PromptTemplates;
use crate::train::rng::{derive_seed, RngState, TrainRng};
use crate::{Error, Result};

/// Expands `{a..b}` numeric ranges (zero-padded like `a` when it has leading zeros or the same
/// width as `b`) and `{x,y,z}` lists, any number of times in a pattern.
pub fn expand_pattern(pattern: &str) -> Result<Vec<String>> {
    let Some(open) = pattern.find('{') else {
        return Ok(vec![pattern.to_string()]);
    };
    let bad = |msg: &str| Error::config("datasets.path", format!("pattern `{pattern}`: {msg}"));
    let close = pattern[open..]
        .find('}')
        .map(|c| open + c)
        .ok_or_else(|| bad("unclosed {"))?;
    let inner = &pattern[open + 1..close];
    if inner.contains('{') {
        return Err(bad("nested braces are not supported"));
    }
    let alternatives: Vec<String> = if let Some((a, b)) = inner.split_once("..") {
        let (lo, hi): (u64, u64) = match (a.parse(), b.parse()) {
            (Ok(lo), Ok(hi)) => (lo, hi),
            _ => return Err(bad("a range must be {FIRST..LAST} with numbers")),
        };
        if lo > hi {
            return Err(bad("range goes down"));
        }
        if hi - lo >= 1_000_000 {
            return Err(bad("range too large"));
        }
        let width = if (a.starts_with('0') && a.len() > 1) || a.len() == b.len() {
            a.len()
        } else {
            0
        };
        (lo..=hi).map(|n| format!("{n:0width$}")).collect()
    } else {
        inner.split(',').map(str::to_string).collect()
    };
    let rest = expand_pattern(&pattern[close + 1..])?;
    let mut out = Vec::with_capacity(alternatives.len() * rest.len());
    for alt in &alternatives {
        for r in &rest {
            out.push(format!("{}{alt}{r}", &pattern[..open]));
        }
    }
    Ok(out)
}

fn media_kind(ext: &str) -> Option<MediaKind> {
    match ext {
        "jpg" | "jpeg" | "png" | "webp" | "bmp" | "gif" | "tif" | "tiff" => Some(MediaKind::Image),
        "mp4" | "webm" | "avi" | "mkv" | "mov" => Some(MediaKind::Video),
        _ => None,
    }
}

/// `dir/KEY.ext.more` -> (`dir/KEY`, `ext.more`): webdataset keys end at the first dot of the
/// file name.
fn split_key(path: &str) -> (String, String) {
    let base_start = path.rfind('/').map_or(0, |i| i + 1);
    match path[base_start..].find('.') {
        Some(dot) => (
            path[..base_start + dot].to_string(),
            path[base_start + dot + 1..].to_ascii_lowercase(),
        ),
        None => (path.to_string(), String::new()),
    }
}

/// The members of one sample that we use.
struct Group {
    key: String,
    json: Option<Vec<u8>>,
    media: Option<(String, MediaKind, Vec<u8>)>,
}

/// Reads the group of members that starts at byte `offset`; returns it and the offset of the
/// next group, or None at the end of the archive.
fn read_group(file: &mut File, offset: u64) -> std::io::Result<Option<(Group, u64)>> {
    file.seek(SeekFrom::Start(offset))?;
    let mut archive = tar::Archive::new(BufReader::with_capacity(1 << 16, &mut *file));
    let mut group: Option<Group> = None;
    let mut end = offset;
    for entry in archive.entries()? {
        let mut entry = entry?;
        let entry_end = offset + entry.raw_file_position() + entry.size().div_ceil(512) * 512;
        if !entry.header().entry_type().is_file() {
            end = entry_end;
            continue;
        }
        let path = entry.path()?.to_string_lossy().into_owned();
        let (key, ext) = split_key(&path);
        if group.as_ref().is_some_and(|g| g.key != key) {
            break;
        }
        let g = group.get_or_insert(Group {
            key,
            json: None,
            media: None,
        });
        if ext == "json" {
            let mut data = Vec::new();
            entry.read_to_end(&mut data)?;
            g.json = Some(data);
        } else if let Some(kind) = media_kind(&ext) {
            if g.media.is_none() {
                let mut data = Vec::new();
                entry.read_to_end(&mut data)?;
                let name = path.rsplit('/').next().unwrap_or(&path).to_string();
                g.media = Some((name, kind, data));
            }
        }
        end = entry_end;
    }
    Ok(group.map(|g| (g, end)))
}

fn to_pending(
    group: Group,
    shard: &Path,
    prompts: Option<&PromptTemplates>,
) -> std::result::Result<Pending, (String, String)> {
    let origin = format!("{}:{}", shard.display(), group.key);
    let fail = |reason: String| (origin.clone(), reason);
    let json = group
        .json
        .ok_or_else(|| fail(format!("no {}.json member", group.key)))?;
    let text = std::str::from_utf8(&json).map_err(|_| fail("json member is not UTF-8".into()))?;
    let record = parse_record(text, group.media.as_ref().map(|m| m.1), prompts).map_err(&fail)?;
    let media = match (group.media, &record.media_path) {
        (Some((name, kind, data)), _) => Some(Media {
            kind,
            source: MediaSource::Bytes { name, data },
        }),
        (None, Some((kind, p))) => {
            Some(locate_media(&crate::train::atomic::parent_dir(shard), *kind, p).map_err(&fail)?)
        }
        (None, None) => None,
    };
    Ok(Pending {
        record,
        media,
        origin,
    })
}

/// The saved position of a shard stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardState {
    pub pattern: String,
    pub shards: usize,
    pub epoch: u64,
    /// Index into this epoch's shard order.
    pub pos: usize,
    /// Byte offset of the next sample in that shard.
    pub offset: u64,
    /// The shuffle buffer, in order, as (shard index, byte offset) of each sample.
    pub buffer: Vec<(usize, u64)>,
    pub rng: RngState,
    pub stats: DatasetStats,
    pub good_in_epoch: u64,
}

struct Buffered {
    shard: usize,
    offset: u64,
    pending: Pending,
}

/// A stream of samples from `.tar` shards, epoch after epoch, each epoch in a new shard order.
pub struct ShardStream {
    pattern: String,
    shards: Vec<PathBuf>,
    seed: u64,
    buffer_size: usize,
    epoch: u64,
    order: Vec<usize>,
    pos: usize,
    offset: u64,
    buffer: Vec<Buffered>,
    rng: TrainRng,
    stats: DatasetStats,
    good_in_epoch: u64,
    file: Option<(usize, File)>,
}

impl ShardStream {
    /// Expands `pattern`; every shard must exist. `dataset` is the config index (for errors).
    pub fn open(pattern: &str, dataset: usize, seed: u64, buffer_size: usize) -> Result<Self> {
        let shards: Vec<PathBuf> = expand_pattern(pattern)?
            .into_iter()
            .map(PathBuf::from)
            .collect();
        if let Some(missing) = shards.iter().find(|p| !p.is_file()) {
            return Err(Error::config(
                format!("datasets[{dataset}].path"),
                format!(
                    "shard {} (from `{pattern}`) does not exist",
                    missing.display()
                ),
            ));
        }
        let order = Self::order(seed, shards.len(), 0);
        Ok(Self {
            pattern: pattern.to_string(),
            shards,
            seed,
            buffer_size: buffer_size.max(1),
            epoch: 0,
            order,
            pos: 0,
            offset: 0,
            buffer: Vec::new(),
            rng: TrainRng::new(seed, 2),
            stats: DatasetStats::default(),
            good_in_epoch: 0,
            file: None,
        })
    }

    fn order(seed: u64, n: usize, epoch: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..n).collect();
        TrainRng::new(derive_seed(seed, &[epoch]), 0).shuffle(&mut order);
        order
    }

    /// Good/bad counts so far.
    pub fn stats(&self) -> &DatasetStats {
        &self.stats
    }

    /// The shard files.
    pub fn shards(&self) -> &[PathBuf] {
        &self.shards
    }

    /// Completed passes over all shards.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    fn shard_file(&mut self, shard: usize) -> Result<&mut File> {
        if self.file.as_ref().is_none_or(|(i, _)| *i != shard) {
            let p = &self.shards[shard];
            self.file = Some((shard, File::open(p).map_err(|e| Error::io(p, e))?));
        }
        match &mut self.file {
            Some((_, f)) => Ok(f),
            None => Err(Error::Invalid("shard file not open".into())),
        }
    }

    /// Reads valid samples until one more is in the buffer.
    fn read_one(
        &mut self,
        prompts: Option<&PromptTemplates>,
        name: &str,
        max_bad: f64,
    ) -> Result<()> {
        loop {
            if self.pos == self.order.len() {
                if self.good_in_epoch == 0 {
                    return Err(Error::Invalid(format!(
                        "dataset `{name}`: a full pass over its {} shard(s) found no valid sample{}",
                        self.shards.len(),
                        if self.stats.first_bad.is_empty() {
                            String::new()
                        } else {
                            format!("; first problems:\n  {}", self.stats.first_bad.join("\n  "))
                        }
                    )));
                }
                self.epoch += 1;
                self.order = Self::order(self.seed, self.shards.len(), self.epoch);
                self.pos = 0;
                self.offset = 0;
                self.good_in_epoch = 0;
            }
            let shard = self.order[self.pos];
            let offset = self.offset;
            let read = read_group(self.shard_file(shard)?, offset);
            match read {
                Ok(Some((group, next))) => {
                    self.offset = next;
                    match to_pending(group, &self.shards[shard], prompts) {
                        Ok(pending) => {
                            self.stats.good += 1;
                            self.good_in_epoch += 1;
                            self.buffer.push(Buffered {
                                shard,
                                offset,
                                pending,
                            });
                            return Ok(());
                        }
                        Err((origin, reason)) => self.stats.record_bad(&origin, &reason),
                    }
                }
                Ok(None) => {
                    self.pos += 1;
                    self.offset = 0;
                    continue;
                }
                Err(e) => {
                    // A damaged archive: count it once and go on with the next shard.
                    let origin = format!("{}@{offset}", self.shards[shard].display());
                    self.stats
                        .record_bad(&origin, &format!("unreadable tar: {e}"));
                    self.pos += 1;
                    self.offset = 0;
                }
            }
            if self.stats.good + self.stats.bad >= MIN_RECORDS_FOR_FRACTION {
                self.stats.check(name, max_bad)?;
            }
        }
    }

    /// The next sample: the buffer is filled to its size, then a random one leaves it.
    pub(crate) fn next(
        &mut self,
        prompts: Option<&PromptTemplates>,
        name: &str,
        max_bad: f64,
    ) -> Result<Pending> {
        while self.buffer.len() < self.buffer_size {
            self.read_one(prompts, name, max_bad)?;
        }
        let pick = self.rng.index(self.buffer.len());
        Ok(self.buffer.swap_remove(pick).pending)
    }

    /// The position to save.
    pub fn state(&self) -> ShardState {
        ShardState {
            pattern: self.pattern.clone(),
            shards: self.shards.len(),
            epoch: self.epoch,
            pos: self.pos,
            offset: self.offset,
            buffer: self.buffer.iter().map(|b| (b.shard, b.offset)).collect(),
            rng: self.rng.state(),
            stats: self.stats.clone(),
            good_in_epoch: self.good_in_epoch,
        }
    }

    /// Continues from a saved position, reading the buffered samples again.
    pub(crate) fn restore(
        &mut self,
        st: &ShardState,
        prompts: Option<&PromptTemplates>,
    ) -> Result<()> {
        let pattern = self.pattern.clone();
        let changed = |what: &str| {
            Error::Invalid(format!(
                "shards `{pattern}` changed since the checkpoint: {what}"
            ))
        };
        if st.pattern != self.pattern
            || st.shards != self.shards.len()
            || st.pos > self.shards.len()
        {
            return Err(changed("other pattern or shard count"));
        }
        let mut buffer = Vec::with_capacity(st.buffer.len());
        for &(shard, offset) in &st.buffer {
            if shard >= self.shards.len() {
                return Err(changed("buffer refers to a missing shard"));
            }
            let path = self.shards[shard].clone();
            let group = read_group(self.shard_file(shard)?, offset)
                .map_err(|e| Error::io(&path, e))?
                .ok_or_else(|| {
                    changed(&format!(
                        "{} has no sample at byte {offset}",
                        path.display()
                    ))
                })?;
            let pending = to_pending(group.0, &path, prompts)
                .map_err(|(o, r)| changed(&format!("{o}: {r}")))?;
            buffer.push(Buffered {
                shard,
                offset,
                pending,
            });
        }
        self.epoch = st.epoch;
        self.order = Self::order(self.seed, self.shards.len(), st.epoch);
        self.pos = st.pos;
        self.offset = st.offset;
        self.buffer = buffer;
        self.rng = TrainRng::from_state(&st.rng, &self.pattern)?;
        self.stats = st.stats.clone();
        self.good_in_epoch = st.good_in_epoch;
        Ok(())
    }
}

#[cfg(test)]
#[path = "shards_tests.rs"]
mod tests;
