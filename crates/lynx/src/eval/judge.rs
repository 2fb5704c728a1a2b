//! The LLM judge of the paper's Section 3.1: one OpenAI-protocol chat request per prediction
//! with the paper's referee prompt, temperature 0. Requests run on a bounded pool of std
//! threads with retries and exponential backoff; every reply is appended to a JSONL cache keyed
//! by (judge model, prompt) the moment it arrives, so a rerun, or a run after a crash, sends
//! only what is not cached yet.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use super::scoring::{Judge, JudgeOutcome, JudgeQuery};
use crate::{Error, Result};

/// The referee prompt, word for word from the paper; the ground truth's alternatives are joined
/// with " or ".
pub fn judge_prompt(question: &str, prediction: &str, answers: &[String]) -> String {
    format!(
        "Given the question \"{question}\", does the answer \"{prediction}\" imply the answer \"{}\"? Answer with Yes or No.",
        answers.join(" or ")
    )
}

/// Reads a judge reply: `Some(true)` when, after leading whitespace and punctuation, its first
/// word is "yes" (any case), `Some(false)` for "no", `None` otherwise ("Nope", "Maybe", "").
pub fn parse_verdict(reply: &str) -> Option<bool> {
    let rest = reply.trim_start_matches(|c: char| !c.is_alphanumeric());
    let word: String = rest
        .chars()
        .take_while(|c| c.is_alphanumeric())
        .collect::<String>()
        .to_lowercase();
    match word.as_str() {
        "yes" => Some(true),
        "no" => Some(false),
        _ => None,
    }
}

#[derive(Serialize, Deserialize)]
struct CacheLine {
    model: String,
    prompt: String,
    reply: String,
}

/// The append-only verdict cache: one `{"model", "prompt", "reply"}` line per request made.
pub struct JudgeCache {
    path: PathBuf,
    entries: HashMap<(String, String), String>,
    file: Option<File>,
    /// The file ended inside a line (a run died mid-write): its length without that line,
    /// cut off before the next append.
    truncate_to: Option<u64>,
    /// The last line is complete but its newline was never written.
    needs_newline: bool,
}

impl JudgeCache {
    /// Opens (or starts) the cache at `path`. A last line cut short by a crash is ignored;
    /// any other bad line is an error naming the line.
    pub fn open(path: &Path) -> Result<Self> {
        let mut entries = HashMap::new();
        let mut truncate_to = None;
        let mut needs_newline = false;
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let lines: Vec<&str> = text.split('\n').collect();
                let last = lines.len() - 1;
                for (i, line) in lines.iter().enumerate() {
                    if line.trim().is_empty() {
                        continue;
                    }
                    match serde_json::from_str::<CacheLine>(line) {
                        Ok(c) => {
                            entries.insert((c.model, c.prompt), c.reply);
                        }
                        // no trailing newline: the write of this line never finished
                        Err(_) if i == last => {
                            truncate_to = Some(text.rfind('\n').map_or(0, |i| i as u64 + 1));
                        }
                        Err(e) => {
                            return Err(Error::parse(
                                path.display().to_string(),
                                Some(i + 1),
                                format!("bad judge cache line: {e}"),
                            ))
                        }
                    }
                }
                needs_newline = truncate_to.is_none() && !text.is_empty() && !text.ends_with('\n');
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(path, e)),
        }
        Ok(Self {
            path: path.to_path_buf(),
            entries,
            file: None,
            truncate_to,
            needs_newline,
        })
    }

    /// The cached reply for (model, prompt).
    pub fn get(&self, model: &str, prompt: &str) -> Option<&str> {
        self.entries
            .get(&(model.to_string(), prompt.to_string()))
            .map(String::as_str)
    }

    /// Number of cached replies.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Records a reply and appends it to the file at once (flushed).
    pub fn insert(&mut self, model: &str, prompt: &str, reply: &str) -> Result<()> {
        let io = |e| Error::io(&self.path, e);
        if self.file.is_none() {
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            }
            if let Some(len) = self.truncate_to.take() {
                let f = OpenOptions::new()
                    .write(true)
                    .open(&self.path)
                    .map_err(io)?;
                f.set_len(len).map_err(io)?;
            }
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .map_err(io)?;
            self.file = Some(f);
        }
        let mut line = serde_json::to_string(&CacheLine {
            model: model.to_string(),
            prompt: prompt.to_string(),
            reply: reply.to_string(),
        })
        .map_err(|e| Error::Invalid(format!("judge cache: {e}")))?;
        line.push('\n');
        if std::mem::take(&mut self.needs_newline) {
            line.insert(0, '\n');
        }
        if let Some(f) = self.file.as_mut() {
            f.write_all(line.as_bytes()).map_err(io)?;
            f.flush().map_err(io)?;
        }
        self.entries
            .insert((model.to_string(), prompt.to_string()), reply.to_string());
        Ok(())
    }
}

/// Settings of the LLM judge.
#[derive(Clone, Debug)]
pub struct LlmJudgeConfig {
    /// OpenAI-compatible base URL; requests go to `{base_url}/chat/completions`.
    pub base_url: String,
    pub model: String,
    /// Sent as `Authorization: Bearer {key}`.
    pub api_key: Option<String>,
    /// Requests in flight at once (at least 1).
    pub concurrency: usize,
    /// Further attempts after a failed one (connection errors, timeouts, HTTP 429 and 5xx).
    pub retries: u32,
    /// Wait before the first retry; doubled for each further one (capped at one minute).
    pub backoff: Duration,
    /// Limit for one request, connection to last byte.
    pub timeout: Duration,
    pub cache_path: PathBuf,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

/// The `--judge llm` judge.
pub struct LlmJudge {
    cfg: LlmJudgeConfig,
    cache: JudgeCache,
    /// Requests sent by the last `judge_all` (0 when everything was cached).
    pub sent: usize,
}

enum Failure {
    Retry(String),
    Fatal(String),
}

impl LlmJudge {
    /// Opens the cache; nothing is sent yet.
    pub fn new(cfg: LlmJudgeConfig) -> Result<Self> {
        let cache = JudgeCache::open(&cfg.cache_path)?;
        Ok(Self {
            cfg,
            cache,
            sent: 0,
        })
    }

    /// The chat-completions endpoint.
    pub fn url(&self) -> String {
        format!(
            "{}/chat/completions",
            self.cfg.base_url.trim_end_matches('/')
        )
    }

    /// Sends `prompts` (distinct, not cached) on the worker pool and caches each reply as it
    /// arrives. On failure the other workers stop taking new prompts, the replies already
    /// received stay cached, and the first error is returned.
    fn fetch(&mut self, prompts: &[String]) -> Result<()> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(self.cfg.timeout))
            .build()
            .into();
        let url = self.url();
        let bar = if self.cfg.progress {
            let b = ProgressBar::new(prompts.len() as u64);
            if let Ok(style) =
                ProgressStyle::with_template("judge {bar:40} {pos}/{len} [{elapsed} < {eta}]")
            {
                b.set_style(style);
            }
            b
        } else {
            ProgressBar::hidden()
        };
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let (tx, rx) = mpsc::channel::<(usize, Result<String>)>();
        let workers = self.cfg.concurrency.clamp(1, prompts.len().max(1));
        let (cfg, cache) = (&self.cfg, &mut self.cache);
        let mut first_err = None;
        let mut sent = 0;
        std::thread::scope(|s| {
            for _ in 0..workers {
                let tx = tx.clone();
                let (next, stop, agent, url) = (&next, &stop, &agent, &url);
                s.spawn(move || loop {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(prompt) = prompts.get(i) else { break };
                    let r = ask(cfg, agent, url, prompt, stop);
                    if r.is_err() {
                        stop.store(true, Ordering::Relaxed);
                    }
                    if tx.send((i, r)).is_err() {
                        break;
                    }
                });
            }
            drop(tx);
            for (i, r) in rx {
                let written = r.and_then(|reply| cache.insert(&cfg.model, &prompts[i], &reply));
                match written {
                    Ok(()) => {
                        sent += 1;
                        bar.inc(1);
                    }
                    Err(e) => {
                        stop.store(true, Ordering::Relaxed);
                        first_err.get_or_insert(e);
                    }
                }
            }
        });
        bar.finish_and_clear();
        self.sent += sent;
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

fn once(
    cfg: &LlmJudgeConfig,
    agent: &ureq::Agent,
    url: &str,
    prompt: &str,
) -> Result<String, Failure> {
    let body = serde_json::json!({
        "model": cfg.model,
        "messages": [{"role": "user", "content": prompt}],
        "temperature": 0,
    });
    let mut req = agent.post(url).header("Content-Type", "application/json");
    if let Some(key) = &cfg.api_key {
        req = req.header("Authorization", format!("Bearer {key}"));
    }
    let mut resp = req
        .send_json(&body)
        .map_err(|e| classify("request failed", e))?;
    let status = resp.status().as_u16();
    let text = resp
        .body_mut()
        .read_to_string()
        .map_err(|e| classify("reading the reply failed", e))?;
    if status == 429 || status >= 500 {
        return Err(Failure::Retry(format!("HTTP {status}: {}", snippet(&text))));
    }
    if !(200..300).contains(&status) {
        return Err(Failure::Fatal(format!("HTTP {status}: {}", snippet(&text))));
    }
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Failure::Fatal(format!("reply is not JSON ({e}): {}", snippet(&text))))?;
    match json.pointer("/choices/0/message/content") {
        Some(serde_json::Value::String(s)) => Ok(s.clone()),
        Some(serde_json::Value::Null) => Ok(String::new()),
        _ => Err(Failure::Fatal(format!(
            "reply has no choices[0].message.content: {}",
            snippet(&text)
        ))),
    }
}

/// One prompt with retries; gives up early once `stop` is set by another worker's failure.
fn ask(
    cfg: &LlmJudgeConfig,
    agent: &ureq::Agent,
    url: &str,
    prompt: &str,
    stop: &AtomicBool,
) -> Result<String> {
    let mut attempt = 0u32;
    loop {
        match once(cfg, agent, url, prompt) {
            Ok(reply) => return Ok(reply),
            Err(Failure::Fatal(msg)) => {
                return Err(Error::Http {
                    url: url.into(),
                    msg,
                })
            }
            Err(Failure::Retry(msg)) => {
                if attempt >= cfg.retries || stop.load(Ordering::Relaxed) {
                    return Err(Error::Http {
                        url: url.into(),
                        msg: format!("{msg} (gave up after {} attempts)", attempt + 1),
                    });
                }
                let wait = cfg
                    .backoff
                    .saturating_mul(1u32 << attempt.min(16))
                    .min(Duration::from_secs(60));
                std::thread::sleep(wait);
                attempt += 1;
            }
        }
    }
}

/// Network trouble (refused, reset, timed out, cut short) is worth retrying; a bad URL, TLS
/// failure or similar is not.
fn classify(what: &str, e: ureq::Error) -> Failure {
    let msg = format!("{what}: {e}");
    match e {
        ureq::Error::Io(_)
        | ureq::Error::Timeout(_)
        | ureq::Error::HostNotFound
        | ureq::Error::ConnectionFailed
        | ureq::Error::Protocol(_)
        | ureq::Error::BodyStalled => Failure::Retry(msg),
        _ => Failure::Fatal(msg),
    }
}

fn snippet(text: &str) -> String {
    let t: String = text.chars().take(200).collect();
    t.replace('\n', " ")
}

impl Judge for LlmJudge {
    fn kind(&self) -> &'static str {
        "llm"
    }
    fn model(&self) -> Option<String> {
        Some(self.cfg.model.clone())
    }
    fn judge_all(&mut self, queries: &[JudgeQuery<'_>]) -> Result<Vec<JudgeOutcome>> {
        self.sent = 0;
        let prompts: Vec<String> = queries
            .iter()
            .map(|q| judge_prompt(q.question, q.prediction, q.answers))
            .collect();
        let mut seen = HashSet::new();
        let todo: Vec<String> = prompts
            .iter()
            .filter(|p| self.cache.get(&self.cfg.model, p).is_none() && seen.insert(*p))
            .cloned()
            .collect();
        if !todo.is_empty() {
            self.fetch(&todo)?;
        }
        prompts
            .iter()
            .map(|p| {
                let reply = self.cache.get(&self.cfg.model, p).ok_or_else(|| {
                    Error::Invalid(format!("judge cache lost the reply to {p:?}"))
                })?;
                Ok(match parse_verdict(reply) {
                    Some(correct) => JudgeOutcome::Verdict {
                        correct,
                        reply: Some(reply.to_string()),
                    },
                    None => JudgeOutcome::Unparseable {
                        reply: reply.to_string(),
                    },
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_is_the_papers() {
        let p = judge_prompt(
            "What is in the image?",
            "A train platform.",
            &["platform".into(), "tunnel".into()],
        );
        assert_eq!(
            p,
            "Given the question \"What is in the image?\", does the answer \"A train platform.\" \
             imply the answer \"platform or tunnel\"? Answer with Yes or No."
        );
    }

    #[test]
    fn verdicts_from_reply_starts() {
        for (r, v) in [
            ("Yes", Some(true)),
            ("yes.", Some(true)),
            ("  **YES**, because", Some(true)),
            ("\"No\"", Some(false)),
            ("\n- no", Some(false)),
            ("No.", Some(false)),
            ("Nope", None),
            ("Yesterday", None),
            ("Not quite", None),
            ("The answer is yes", None),
            ("", None),
        ] {
            assert_eq!(parse_verdict(r), v, "{r:?}");
        }
    }

    #[test]
    fn cache_survives_a_cut_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/cache.jsonl");
        let mut c = JudgeCache::open(&path).unwrap();
        assert!(c.is_empty());
        c.insert("m", "p1", "Yes").unwrap();
        c.insert("m2", "p1", "No").unwrap();
        drop(c);
        // a crash while writing the third line
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("{\"model\": \"m\", \"pro");
        std::fs::write(&path, &text).unwrap();
        let mut c = JudgeCache::open(&path).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c.get("m", "p1"), Some("Yes"));
        assert_eq!(c.get("m2", "p1"), Some("No"));
        assert_eq!(c.get("m", "p2"), None);
        c.insert("m", "p2", "maybe").unwrap();
        let c = JudgeCache::open(&path).unwrap();
        assert_eq!((c.len(), c.get("m", "p2")), (3, Some("maybe")));
        // complete last line whose newline was never written: kept, and terminated on append
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.trim_end()).unwrap();
        let mut c = JudgeCache::open(&path).unwrap();
        assert_eq!(c.len(), 3);
        c.insert("m", "p3", "No").unwrap();
        let c = JudgeCache::open(&path).unwrap();
        assert_eq!(
            (c.len(), c.get("m", "p2"), c.get("m", "p3")),
            (4, Some("maybe"), Some("No"))
        );

        std::fs::write(
            &path,
            "{bad\n{\"model\":\"m\",\"prompt\":\"p\",\"reply\":\"r\"}\n",
        )
        .unwrap();
        let e = JudgeCache::open(&path).err().unwrap().to_string();
        assert!(e.contains("cache.jsonl:1: bad judge cache line"), "{e}");
    }
}
