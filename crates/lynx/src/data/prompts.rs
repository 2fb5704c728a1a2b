//! Prompt templates per task (paper 2.4): a YAML file `{TASK: [template, ...]}` with at least 3
//! templates per task, `{question}` in every template of a task that has questions, uniform
//! sampling (or only the first template: the paper's "w/o diverse prompts" ablation), and the
//! paper's meta-prompt to have an LLM write 15 more templates per task.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use crate::train::rng::TrainRng;
use crate::{Error, Result};

/// The placeholder for a record's question.
pub const QUESTION: &str = "{question}";
/// Templates each task needs at least.
pub const MIN_TEMPLATES: usize = 3;
/// How many new templates the meta-prompt asks for.
pub const NEW_PER_TASK: usize = 15;

/// The templates of one task.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskTemplates {
    pub name: String,
    pub templates: Vec<String>,
    /// Whether the templates take the record's `{question}`.
    pub has_question: bool,
}

/// All tasks' templates, in file order.
#[derive(Debug, Clone)]
pub struct PromptTemplates {
    tasks: Vec<TaskTemplates>,
    index: HashMap<String, usize>,
    diverse: bool,
    source: String,
}

impl PromptTemplates {
    /// Reads and validates a templates file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_yaml(&text, &path.display().to_string())
    }

    /// Parses and validates YAML text; `source` names it in errors.
    pub fn from_yaml(text: &str, source: &str) -> Result<Self> {
        let value: serde_yaml::Value = serde_yaml::from_str(text)
            .map_err(|e| Error::parse(source, e.location().map(|l| l.line()), e.to_string()))?;
        let serde_yaml::Value::Mapping(map) = value else {
            return Err(Error::parse(
                source,
                None,
                "expected a mapping {TASK: [template, ...]}",
            ));
        };
        let mut tasks = Vec::with_capacity(map.len());
        for (k, v) in map {
            let name = k
                .as_str()
                .ok_or_else(|| {
                    Error::parse(source, None, format!("task name {k:?} is not a string"))
                })?
                .to_string();
            let list = v.as_sequence().ok_or_else(|| {
                Error::parse(
                    source,
                    None,
                    format!("task `{name}`: expected a list of templates"),
                )
            })?;
            let mut templates = Vec::with_capacity(list.len());
            for (i, t) in list.iter().enumerate() {
                let t = t.as_str().ok_or_else(|| {
                    Error::parse(
                        source,
                        None,
                        format!("task `{name}`: template {} is not a string", i + 1),
                    )
                })?;
                templates.push(t.to_string());
            }
            tasks.push((name, templates));
        }
        Self::from_tasks(tasks, source)
    }

    /// Validates `(task, templates)` pairs; `source` names them in errors.
    pub fn from_tasks(tasks: Vec<(String, Vec<String>)>, source: &str) -> Result<Self> {
        let mut out = Vec::with_capacity(tasks.len());
        let mut index = HashMap::new();
        for (name, templates) in tasks {
            let err = |msg: String| Error::parse(source, None, format!("task `{name}`: {msg}"));
            if name.trim().is_empty() {
                return Err(Error::parse(source, None, "empty task name"));
            }
            if index.contains_key(&name) {
                return Err(err("defined twice".into()));
            }
            if templates.len() < MIN_TEMPLATES {
                return Err(err(format!(
                    "has {} template(s); at least {MIN_TEMPLATES} are needed",
                    templates.len()
                )));
            }
            for (i, t) in templates.iter().enumerate() {
                if t.trim().is_empty() {
                    return Err(err(format!("template {} is empty", i + 1)));
                }
                if let Some(bad) = placeholders(t).into_iter().find(|p| p != "question") {
                    return Err(err(format!(
                        "template {} {t:?} has the unknown placeholder {{{bad}}} (only {QUESTION} exists)",
                        i + 1
                    )));
                }
            }
            let has_question = templates.iter().any(|t| t.contains(QUESTION));
            if has_question {
                if let Some((i, t)) = templates
                    .iter()
                    .enumerate()
                    .find(|(_, t)| !t.contains(QUESTION))
                {
                    return Err(err(format!(
                        "template {} {t:?} lacks {QUESTION}, which the task's other templates use",
                        i + 1
                    )));
                }
            }
            index.insert(name.clone(), out.len());
            out.push(TaskTemplates {
                name,
                templates,
                has_question,
            });
        }
        Ok(Self {
            tasks: out,
            index,
            diverse: true,
            source: source.to_string(),
        })
    }

    /// `diverse_prompts`: false uses only each task's first template.
    pub fn with_diverse(mut self, diverse: bool) -> Self {
        self.diverse = diverse;
        self
    }

    /// Whether templates are sampled (true) or the first one is always used.
    pub fn diverse(&self) -> bool {
        self.diverse
    }

    /// Where the templates came from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// All tasks in file order.
    pub fn tasks(&self) -> &[TaskTemplates] {
        &self.tasks
    }

    /// One task's templates.
    pub fn task(&self, name: &str) -> Option<&TaskTemplates> {
        self.index.get(name).map(|&i| &self.tasks[i])
    }

    /// An instruction for `task`: a template drawn uniformly with `rng` (or the first one
    /// without diverse prompts), with `{question}` replaced.
    pub fn render(&self, task: &str, question: Option<&str>, rng: &mut TrainRng) -> Result<String> {
        let t = self
            .task(task)
            .ok_or_else(|| Error::Invalid(format!("{}: unknown task `{task}`", self.source)))?;
        if t.has_question && question.is_none_or(|q| q.trim().is_empty()) {
            return Err(Error::Invalid(format!("task `{task}` needs a question")));
        }
        let template = if self.diverse {
            &t.templates[rng.index(t.templates.len())]
        } else {
            &t.templates[0]
        };
        Ok(render_template(template, question))
    }

    /// The YAML text of these templates, tasks in order.
    pub fn to_yaml(&self) -> Result<String> {
        let mut map = serde_yaml::Mapping::new();
        for t in &self.tasks {
            let list = t
                .templates
                .iter()
                .map(|s| serde_yaml::Value::String(s.clone()))
                .collect();
            map.insert(
                serde_yaml::Value::String(t.name.clone()),
                serde_yaml::Value::Sequence(list),
            );
        }
        serde_yaml::to_string(&map).map_err(|e| Error::Invalid(format!("writing YAML: {e}")))
    }
}

/// Replaces `{question}` in `template` (a template without it is returned as is).
pub fn render_template(template: &str, question: Option<&str>) -> String {
    match question {
        Some(q) => template.replace(QUESTION, q.trim()),
        None => template.to_string(),
    }
}

/// The names inside `{...}` of a template (identifier-like names only: `{}` or `{a b}` is text).
pub fn placeholders(template: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                let inner = &after[..close];
                if !inner.is_empty() && inner.chars().all(|c| c.is_alphanumeric() || c == '_') {
                    out.push(inner.to_string());
                }
                rest = &after[close + 1..];
            }
            None => break,
        }
    }
    out
}

/// The paper's meta-prompt with the given example instructions.
pub fn meta_prompt(examples: &[String]) -> String {
    let mut s = String::from(
        "Here are some instructions that define a visual-language task. Continue to write 15 \
         instructions with the same meaning:",
    );
    for (i, e) in examples.iter().enumerate() {
        s.push_str(&format!(" {}) {};", i + 1, e.trim()));
    }
    s
}

/// Splits an LLM's numbered list into items. Understands `1) a; 2) b;`, `1. a\n2. b`, a list
/// that starts at any number, and falls back to one item per line (or per `;`).
pub fn parse_numbered_list(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    // (marker start, content start, number), accepted only in sequence.
    let mut markers: Vec<(usize, usize, u32)> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let boundary = i == 0 || matches!(bytes[i - 1], b' ' | b'\t' | b'\n' | b'\r' | b';' | b'(');
        if boundary && bytes[i].is_ascii_digit() {
            let mut j = i;
            while j < bytes.len() && bytes[j].is_ascii_digit() && j - i < 3 {
                j += 1;
            }
            let closes = j < bytes.len() && matches!(bytes[j], b')' | b'.');
            let spaced = j + 1 >= bytes.len() || bytes[j + 1].is_ascii_whitespace();
            if closes && spaced && (j == bytes.len() || !bytes[j].is_ascii_digit()) {
                let n: u32 = text[i..j].parse().unwrap_or(0);
                let start = if i > 0 && bytes[i - 1] == b'(' {
                    i - 1
                } else {
                    i
                };
                if markers.last().is_none_or(|m| m.2 + 1 == n) {
                    markers.push((start, j + 1, n));
                }
                i = j + 1;
                continue;
            }
        }
        i += 1;
    }
    let raw: Vec<&str> =
        if markers.len() >= 2 || (markers.len() == 1 && text[..markers[0].0].trim().is_empty()) {
            markers
                .iter()
                .enumerate()
                .map(|(k, m)| {
                    let end = markers.get(k + 1).map_or(text.len(), |next| next.0);
                    // The first line only: anything after it is commentary, not the instruction.
                    text[m.1..end].trim().lines().next().unwrap_or("")
                })
                .collect()
        } else if text.lines().filter(|l| !l.trim().is_empty()).count() > 1 {
            text.lines().collect()
        } else {
            text.split(';').collect()
        };
    raw.into_iter()
        .map(clean_item)
        .filter(|s| !s.is_empty())
        .collect()
}

fn clean_item(s: &str) -> String {
    let mut s = s.trim();
    for bullet in ["- ", "* ", "• "] {
        if let Some(rest) = s.strip_prefix(bullet) {
            s = rest.trim_start();
        }
    }
    let s = s.trim_end_matches([';', ',', ' ', '\t']).trim();
    let quoted = [('"', '"'), ('\'', '\''), ('“', '”')];
    for (a, b) in quoted {
        if s.len() >= 2 && s.starts_with(a) && s.ends_with(b) {
            return s[a.len_utf8()..s.len() - b.len_utf8()].trim().to_string();
        }
    }
    s.to_string()
}

/// The key two templates are duplicates under: lower case, single spaces, no final punctuation.
pub fn normalise(template: &str) -> String {
    let lower = template.to_lowercase();
    let words: Vec<&str> = lower.split_whitespace().collect();
    words
        .join(" ")
        .trim_end_matches(['.', ';', ':', ',', '!', '?', ' '])
        .to_string()
}

/// Fixes `{Question}` / `{ question }` spellings to `{question}`, then checks that a generated
/// template fits the task (has `{question}` exactly when the task does, no other placeholder).
fn fit_template(candidate: &str, has_question: bool) -> Option<String> {
    let mut fixed = String::with_capacity(candidate.len());
    let mut rest = candidate;
    while let Some(open) = rest.find('{') {
        fixed.push_str(&rest[..open]);
        let after = &rest[open..];
        match after.find('}') {
            Some(close) if after[1..close].trim().eq_ignore_ascii_case("question") => {
                fixed.push_str(QUESTION);
                rest = &after[close + 1..];
            }
            _ => {
                fixed.push('{');
                rest = &after[1..];
            }
        }
    }
    fixed.push_str(rest);
    let ph = placeholders(&fixed);
    let ok = if has_question {
        fixed.contains(QUESTION) && ph.iter().all(|p| p == "question")
    } else {
        ph.is_empty()
    };
    ok.then_some(fixed)
}

/// Keeps the generated templates that fit the task and are new (against `existing` and each
/// other), at most [`NEW_PER_TASK`].
pub fn select_new_templates(
    existing: &[String],
    generated: &[String],
    has_question: bool,
) -> Vec<String> {
    let mut seen: HashSet<String> = existing.iter().map(|t| normalise(t)).collect();
    let mut out = Vec::new();
    for g in generated {
        if out.len() == NEW_PER_TASK {
            break;
        }
        if let Some(t) = fit_template(g, has_question) {
            if seen.insert(normalise(&t)) {
                out.push(t);
            }
        }
    }
    out
}

/// Where and how to ask an OpenAI-compatible chat server for more templates.
#[derive(Debug, Clone)]
pub struct ExpandOptions {
    /// Base URL ending in `/v1` (the request goes to `BASE/chat/completions`).
    pub url: String,
    pub model: String,
    /// Sent as `Authorization: Bearer KEY` when set.
    pub api_key: Option<String>,
    /// Only this task (others are copied unchanged).
    pub task: Option<String>,
    pub temperature: Option<f64>,
    /// Attempts after the first one, for transport errors, 429 and 5xx.
    pub retries: u32,
    /// Wait before the first retry; doubled for each next one.
    pub retry_backoff: Duration,
    pub timeout: Duration,
}

/// What expansion did to one task.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpandReport {
    pub task: String,
    /// Items the model's reply listed.
    pub returned: usize,
    /// Templates added (new, fitting, at most 15).
    pub added: usize,
}

/// Sends the meta-prompt (with each task's first 3 templates) and returns the templates with
/// the new ones appended. `on_task` is called after each task (progress).
pub fn expand_templates(
    templates: &PromptTemplates,
    opts: &ExpandOptions,
    mut on_task: impl FnMut(&ExpandReport),
) -> Result<(PromptTemplates, Vec<ExpandReport>)> {
    if let Some(t) = &opts.task {
        if templates.task(t).is_none() {
            return Err(Error::Invalid(format!(
                "{}: no task `{t}`",
                templates.source
            )));
        }
    }
    let mut tasks = Vec::new();
    let mut reports = Vec::new();
    for t in &templates.tasks {
        let mut list = t.templates.clone();
        if opts.task.as_ref().is_none_or(|only| only == &t.name) {
            let prompt = meta_prompt(&t.templates[..MIN_TEMPLATES]);
            let reply = chat_completion(opts, &prompt)?;
            let items = parse_numbered_list(&reply);
            let new = select_new_templates(&t.templates, &items, t.has_question);
            let report = ExpandReport {
                task: t.name.clone(),
                returned: items.len(),
                added: new.len(),
            };
            on_task(&report);
            reports.push(report);
            list.extend(new);
        }
        tasks.push((t.name.clone(), list));
    }
    let out =
        PromptTemplates::from_tasks(tasks, &templates.source)?.with_diverse(templates.diverse);
    Ok((out, reports))
}

/// One `POST BASE/chat/completions` with a single user message; returns the reply text.
pub fn chat_completion(opts: &ExpandOptions, prompt: &str) -> Result<String> {
    let url = format!("{}/chat/completions", opts.url.trim_end_matches('/'));
    let http = |msg: String| Error::Http {
        url: url.clone(),
        msg,
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(opts.timeout))
        .http_status_as_error(false)
        .build()
        .into();
    let mut body = serde_json::json!({
        "model": opts.model,
        "messages": [{"role": "user", "content": prompt}],
    });
    if let Some(t) = opts.temperature {
        body["temperature"] = serde_json::json!(t);
    }
    let mut last_err = String::new();
    for attempt in 0..=opts.retries {
        if attempt > 0 {
            std::thread::sleep(opts.retry_backoff * 2u32.saturating_pow(attempt - 1));
        }
        let mut req = agent.post(&url).header("Content-Type", "application/json");
        if let Some(key) = &opts.api_key {
            req = req.header("Authorization", &format!("Bearer {key}"));
        }
        let mut resp = match req.send(body.to_string()) {
            Ok(r) => r,
            Err(e) => {
                last_err = e.to_string();
                continue;
            }
        };
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        if status == 429 || status >= 500 {
            last_err = format!(
                "HTTP {status}: {}",
                text.chars().take(300).collect::<String>()
            );
            continue;
        }
        if status != 200 {
            return Err(http(format!(
                "HTTP {status}: {}",
                text.chars().take(300).collect::<String>()
            )));
        }
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| http(format!("reply is not JSON: {e}")))?;
        return v["choices"][0]["message"]["content"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| http("reply has no choices[0].message.content".into()));
    }
    Err(http(format!(
        "failed after {} attempt(s): {last_err}",
        opts.retries + 1
    )))
}

#[cfg(test)]
#[path = "prompts_tests.rs"]
mod tests;
