//! `output_dir/metrics.jsonl`: one JSON line per training update, `{"step", "loss", "lr", ...}`,
//! appended and flushed as training goes; a resumed run first drops the lines after the step it
//! resumes from, so the file always describes one consistent run.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::atomic::write_atomic;
use crate::{Error, Result};

/// The file name inside `output_dir`.
pub const METRICS_FILE: &str = "metrics.jsonl";

/// One line of metrics.jsonl. Non-finite numbers are written as `null` and read back as NaN.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsRecord {
    pub step: u64,
    pub loss: f64,
    pub lr: f64,
    /// More values (grad_norm, image_res, tokens, ...), written after the three above.
    pub extra: Map<String, Value>,
}

impl MetricsRecord {
    /// A record without extra values.
    pub fn new(step: u64, loss: f64, lr: f64) -> Self {
        Self {
            step,
            loss,
            lr,
            extra: Map::new(),
        }
    }

    /// Adds an extra value (builder style).
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.to_string(), value.into());
        self
    }

    /// The JSON line (without newline), keys `step`, `loss`, `lr` first.
    pub fn to_line(&self) -> Result<String> {
        let num = |v: f64| Value::from(v).to_string();
        let mut line = format!(
            "{{\"step\":{},\"loss\":{},\"lr\":{}",
            self.step,
            num(self.loss),
            num(self.lr)
        );
        for (k, v) in &self.extra {
            if matches!(k.as_str(), "step" | "loss" | "lr") {
                return Err(Error::Invalid(format!(
                    "metrics: extra key `{k}` clashes with a fixed one"
                )));
            }
            line.push(',');
            line.push_str(&Value::String(k.clone()).to_string());
            line.push(':');
            line.push_str(&v.to_string());
        }
        line.push('}');
        Ok(line)
    }

    /// Parses one line; the message says what is wrong.
    pub fn from_line(line: &str) -> std::result::Result<Self, String> {
        let v: Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
        let Value::Object(mut m) = v else {
            return Err("not a JSON object".into());
        };
        let step = m
            .remove("step")
            .and_then(|s| s.as_u64())
            .ok_or("missing or bad `step`")?;
        let mut num = |k: &str| -> std::result::Result<f64, String> {
            match m.remove(k) {
                Some(Value::Null) => Ok(f64::NAN),
                Some(v) => v.as_f64().ok_or(format!("`{k}` is not a number")),
                None => Err(format!("missing `{k}`")),
            }
        };
        let loss = num("loss")?;
        let lr = num("lr")?;
        Ok(Self {
            step,
            loss,
            lr,
            extra: m,
        })
    }
}

/// Appends metrics lines to `output_dir/metrics.jsonl`.
pub struct MetricsLog {
    path: PathBuf,
    file: File,
}

impl MetricsLog {
    /// A fresh log for a new run (an existing file is replaced).
    pub fn create(output_dir: &Path) -> Result<Self> {
        let path = output_dir.join(METRICS_FILE);
        write_atomic(&path, b"")?;
        Self::open_append(path)
    }

    /// Continues the log of a run resumed after update `step`: lines with a larger step, and a
    /// torn last line from a kill, are dropped first (atomically).
    pub fn resume(output_dir: &Path, step: u64) -> Result<Self> {
        let path = output_dir.join(METRICS_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(Error::io(&path, e)),
        };
        let mut kept = String::with_capacity(text.len());
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match MetricsRecord::from_line(line) {
                Ok(r) if r.step <= step => {
                    kept.push_str(line);
                    kept.push('\n');
                }
                Ok(_) => {}
                Err(msg) => eprintln!(
                    "warning: {}:{}: dropping line: {msg}",
                    path.display(),
                    i + 1
                ),
            }
        }
        if kept != text {
            write_atomic(&path, kept.as_bytes())?;
        }
        Self::open_append(path)
    }

    fn open_append(path: PathBuf) -> Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        Ok(Self { path, file })
    }

    /// The file written to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line with a single write, so a kill leaves at worst one torn last line.
    pub fn log(&mut self, rec: &MetricsRecord) -> Result<()> {
        let mut line = rec.to_line()?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|_| self.file.flush())
            .map_err(|e| Error::io(&self.path, e))
    }

    /// Forces the lines written so far to disk (call it when a checkpoint is saved).
    pub fn sync(&self) -> Result<()> {
        self.file.sync_data().map_err(|e| Error::io(&self.path, e))
    }
}

/// Reads a metrics file for plotting. A torn last line is skipped; any other bad line is an
/// error naming the file and line.
pub fn read_metrics(path: &Path) -> Result<Vec<MetricsRecord>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let lines: Vec<&str> = text.lines().collect();
    let complete = text.ends_with('\n');
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match MetricsRecord::from_line(line) {
            Ok(r) => out.push(r),
            Err(_) if i + 1 == lines.len() && !complete => {}
            Err(msg) => return Err(Error::parse(path.display().to_string(), Some(i + 1), msg)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_have_fixed_keys_first_and_round_trip() {
        let r = MetricsRecord::new(3, 2.5, 1e-4)
            .with("grad_norm", 0.75)
            .with("image_res", 224);
        let line = r.to_line().unwrap();
        assert!(
            line.starts_with(r#"{"step":3,"loss":2.5,"lr":0.0001,"#),
            "{line}"
        );
        assert_eq!(MetricsRecord::from_line(&line).unwrap(), r);
        let nan = MetricsRecord::new(1, f64::NAN, 0.1).to_line().unwrap();
        assert_eq!(nan, r#"{"step":1,"loss":null,"lr":0.1}"#);
        assert!(MetricsRecord::from_line(&nan).unwrap().loss.is_nan());
        assert!(MetricsRecord::new(1, 1.0, 1.0)
            .with("lr", 2)
            .to_line()
            .is_err());
    }

    #[test]
    fn resume_truncates_after_the_resumed_step() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = MetricsLog::create(dir.path()).unwrap();
        for step in 1..=12 {
            log.log(&MetricsRecord::new(step, 10.0 - step as f64 * 0.1, 1e-3))
                .unwrap();
        }
        drop(log);
        // A kill mid-write leaves a torn line at the end.
        let path = dir.path().join(METRICS_FILE);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"step\":13,\"lo").unwrap();
        drop(f);
        assert_eq!(
            read_metrics(&path).unwrap().len(),
            12,
            "torn last line skipped"
        );

        // The checkpoint was at step 10: steps 11, 12 and the torn 13 go; then logging goes on.
        let mut log = MetricsLog::resume(dir.path(), 10).unwrap();
        log.log(&MetricsRecord::new(11, 0.5, 2e-3)).unwrap();
        let recs = read_metrics(&path).unwrap();
        let steps: Vec<u64> = recs.iter().map(|r| r.step).collect();
        assert_eq!(steps, (1..=11).collect::<Vec<_>>());
        assert_eq!(recs[10].loss, 0.5);
        assert!(std::fs::read_to_string(&path).unwrap().ends_with("}\n"));

        // A fresh run starts an empty file.
        let log = MetricsLog::create(dir.path()).unwrap();
        log.sync().unwrap();
        assert!(read_metrics(&path).unwrap().is_empty());
    }

    #[test]
    fn bad_middle_line_is_an_error_with_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.jsonl");
        std::fs::write(
            &path,
            "{\"step\":1,\"loss\":1,\"lr\":1}\nnot json\n{\"step\":2,\"loss\":1,\"lr\":1}\n",
        )
        .unwrap();
        let err = read_metrics(&path).unwrap_err().to_string();
        assert!(err.contains("m.jsonl:2"), "{err}");
    }
}
