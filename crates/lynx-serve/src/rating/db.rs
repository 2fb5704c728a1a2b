//! The ratings database (SQLite, WAL mode): annotators, their 1-5 scores per question and model,
//! and the facts the scores only make sense with (models, questions, rules, the shuffle secret).
//! Every write checks the per-annotator tie budget of the paper's Section 3.1 inside one
//! `BEGIN IMMEDIATE` transaction, so concurrent requests cannot both spend the last tie.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use super::rules::{Rules, Violation};
use crate::{Error, Result};

const SCHEMA_VERSION: &str = "1";

/// How long a connection waits for another writer before giving up; writes are a few rows.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// One annotator's scores: question id -> model id -> score.
pub type AnnotatorRatings = BTreeMap<i64, HashMap<String, u8>>;

/// The ratings database of one rating run.
pub struct Db {
    path: PathBuf,
    pool: Mutex<Vec<Connection>>,
    secret: u64,
}

/// What a successful store reports back.
#[derive(Debug, Clone)]
pub struct Stored {
    /// Ties used by this question.
    pub ties: usize,
    /// The annotator's scores after the store.
    pub ratings: AnnotatorRatings,
}

/// Why a store was refused without touching the database.
#[derive(Debug)]
pub enum Refused {
    UnknownAnnotator,
    Rule(Violation),
    Db(Error),
}

impl Db {
    /// Opens (creating if needed) the database for a run over `models` and `question_ids`.
    /// A database made for other models, questions or rules is refused: its ties and averages
    /// would not mean the same thing.
    pub fn open(path: &Path, models: &[String], question_ids: &[i64], rules: &Rules) -> Result<Db> {
        let db_err = |e: rusqlite::Error| Error::db(path.display().to_string(), e);
        let conn = connect(path)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(db_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::db(
                path.display().to_string(),
                format!("cannot use WAL mode (got `{mode}`)"),
            ));
        }
        conn.execute_batch(&format!(
            "BEGIN;
             CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS annotators (
                 id INTEGER PRIMARY KEY,
                 name TEXT NOT NULL UNIQUE,
                 created_at TEXT NOT NULL DEFAULT (datetime('now')));
             CREATE TABLE IF NOT EXISTS ratings (
                 annotator_id INTEGER NOT NULL REFERENCES annotators(id),
                 question_id INTEGER NOT NULL,
                 model_id TEXT NOT NULL,
                 score INTEGER NOT NULL CHECK (score BETWEEN {} AND {}),
                 position INTEGER NOT NULL,
                 updated_at TEXT NOT NULL DEFAULT (datetime('now')),
                 PRIMARY KEY (annotator_id, question_id, model_id));
             COMMIT;",
            rules.min_score, rules.max_score
        ))
        .map_err(db_err)?;

        let want = [
            ("schema_version", SCHEMA_VERSION.to_string()),
            ("models", json(models)),
            ("questions", json(question_ids)),
            ("rules", json(rules)),
            (
                "secret",
                std::collections::hash_map::RandomState::new()
                    .build_hasher()
                    .finish()
                    .to_string(),
            ),
        ];
        let mut secret = None;
        for (key, value) in want {
            let stored: Option<String> = conn
                .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                .optional()
                .map_err(db_err)?;
            match stored {
                None => {
                    conn.execute(
                        "INSERT INTO meta (key, value) VALUES (?1, ?2)",
                        params![key, value],
                    )
                    .map_err(db_err)?;
                    if key == "secret" {
                        secret = Some(value);
                    }
                }
                Some(stored) if key == "secret" => secret = Some(stored),
                Some(stored) if stored != value => {
                    return Err(Error::db(
                        path.display().to_string(),
                        format!(
                            "this database was made for {key} {stored}, but this run has {value}; \
                             use a new --db for another set of answers"
                        ),
                    ))
                }
                Some(_) => {}
            }
        }
        let secret = secret.and_then(|s| s.parse().ok()).ok_or_else(|| {
            Error::db(path.display().to_string(), "meta `secret` is not a number")
        })?;
        Ok(Db {
            path: path.to_path_buf(),
            pool: Mutex::new(vec![conn]),
            secret,
        })
    }

    /// The per-database secret that seeds every annotator's answer order.
    pub fn secret(&self) -> u64 {
        self.secret
    }

    fn err(&self, e: rusqlite::Error) -> Error {
        Error::db(self.path.display().to_string(), e)
    }

    /// Runs `f` on a pooled connection (connections are opened on demand and kept).
    fn with_conn<T>(&self, f: impl FnOnce(&mut Connection) -> T) -> Result<T> {
        let taken = self
            .pool
            .lock()
            .map_err(|_| Error::Invalid("database pool poisoned".into()))?
            .pop();
        let mut conn = match taken {
            Some(c) => c,
            None => connect(&self.path)?,
        };
        let out = f(&mut conn);
        if let Ok(mut pool) = self.pool.lock() {
            pool.push(conn);
        }
        Ok(out)
    }

    /// Registers `name` if new; returns its id and whether it was created.
    pub fn login(&self, name: &str) -> Result<(i64, bool)> {
        self.with_conn(|c| {
            let created = c.execute(
                "INSERT OR IGNORE INTO annotators (name) VALUES (?1)",
                [name],
            )?;
            let id = c.query_row("SELECT id FROM annotators WHERE name = ?1", [name], |r| {
                r.get(0)
            })?;
            Ok((id, created == 1))
        })?
        .map_err(|e| self.err(e))
    }

    /// The id of annotator `name`, if registered.
    pub fn annotator(&self, name: &str) -> Result<Option<i64>> {
        self.with_conn(|c| {
            c.query_row("SELECT id FROM annotators WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()
        })?
        .map_err(|e| self.err(e))
    }

    /// All scores of annotator `id`.
    pub fn ratings(&self, id: i64) -> Result<AnnotatorRatings> {
        self.with_conn(|c| load_ratings(c, id))?
            .map_err(|e| self.err(e))
    }

    /// Replaces annotator `name`'s scores of question `question_id` by `scores` (model id, score,
    /// display position), after checking the tie budget against their other questions.
    pub fn store(
        &self,
        name: &str,
        question_id: i64,
        scores: &[(String, u8, usize)],
        rules: &Rules,
    ) -> Result<Stored, Refused> {
        let outcome = self.with_conn(|c| -> Result<Result<Stored, Refused>, rusqlite::Error> {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let id: Option<i64> = tx
                .query_row("SELECT id FROM annotators WHERE name = ?1", [name], |r| {
                    r.get(0)
                })
                .optional()?;
            let Some(id) = id else {
                return Ok(Err(Refused::UnknownAnnotator));
            };
            let mut ratings = load_ratings(&tx, id)?;
            let elsewhere: usize = ratings
                .iter()
                .filter(|(q, _)| **q != question_id)
                .map(|(_, m)| rules.ties(&m.values().copied().collect::<Vec<_>>()))
                .sum();
            let values: Vec<u8> = scores.iter().map(|s| s.1).collect();
            let this = rules.ties(&values);
            if let Err(v) = rules.check_budget(scores.len(), elsewhere, this) {
                return Ok(Err(Refused::Rule(v)));
            }
            tx.execute(
                "DELETE FROM ratings WHERE annotator_id = ?1 AND question_id = ?2",
                params![id, question_id],
            )?;
            for (model, score, position) in scores {
                tx.execute(
                    "INSERT INTO ratings (annotator_id, question_id, model_id, score, position)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![id, question_id, model, score, *position as i64],
                )?;
            }
            tx.commit()?;
            ratings.insert(
                question_id,
                scores.iter().map(|(m, s, _)| (m.clone(), *s)).collect(),
            );
            Ok(Ok(Stored {
                ties: this,
                ratings,
            }))
        });
        match outcome {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => Err(Refused::Db(self.err(e))),
            Err(e) => Err(Refused::Db(e)),
        }
    }
}

/// Opens a connection with the settings every connection needs.
fn connect(path: &Path) -> Result<Connection> {
    let db_err = |e: rusqlite::Error| Error::db(path.display().to_string(), e);
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(db_err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(db_err)?;
    conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;")
        .map_err(db_err)?;
    Ok(conn)
}

fn load_ratings(c: &Connection, id: i64) -> rusqlite::Result<AnnotatorRatings> {
    let mut stmt =
        c.prepare("SELECT question_id, model_id, score FROM ratings WHERE annotator_id = ?1")?;
    let rows = stmt.query_map([id], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, u8>(2)?,
        ))
    })?;
    let mut out = AnnotatorRatings::new();
    for row in rows {
        let (q, m, s) = row?;
        out.entry(q).or_default().insert(m, s);
    }
    Ok(out)
}

fn json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}
