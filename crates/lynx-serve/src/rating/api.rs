//! The rating server's HTTP API (axum): the page, annotator login, one question at a time with
//! anonymised shuffled answers, score submission checked against the paper's Section 3.1 rules,
//! and the images. Every refusal is a 4xx JSON body `{"error": code, "message": text}`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::answers::AnswerSet;
use super::db::{AnnotatorRatings, Db, Refused};
use super::rules::{display_order, Rules, LABELS};

const PAGE: &str = include_str!("page.html");
const MAX_NAME_CHARS: usize = 64;

/// What every handler shares.
pub struct AppState {
    pub set: AnswerSet,
    pub db: Db,
    pub rules: Rules,
}

type Shared = Arc<AppState>;

/// An API refusal or failure, sent as JSON.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    fn internal(e: impl std::fmt::Display) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"error": self.code, "message": self.message})),
        )
            .into_response()
    }
}

type ApiResult = Result<Json<Value>, ApiError>;

/// The routes of the rating server.
pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/api/info", get(info))
        .route("/api/login", post(login))
        .route("/api/questions/{id}", get(question))
        .route("/api/ratings/{id}", put(rate))
        .route("/images/{id}", get(image))
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such page or API route",
            )
        })
        .with_state(state)
}

/// Runs blocking database work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)
}

fn parse_body<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("bad JSON body: {e}"),
        )
    })
}

fn question_position(state: &AppState, id: &str) -> Result<usize, ApiError> {
    let id: i64 = id.trim().parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_question_id",
            format!("question id `{id}` is not a number"),
        )
    })?;
    state.set.position(id).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_question",
            format!("there is no question with id {id}"),
        )
    })
}

fn check_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    let bad = |msg: &str| ApiError::new(StatusCode::BAD_REQUEST, "invalid_name", msg.to_string());
    if name.is_empty() {
        return Err(bad("enter your name"));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(bad("a name has at most 64 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(bad("a name cannot hold control characters"));
    }
    Ok(name.to_string())
}

fn unknown_annotator(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown_annotator",
        format!("no annotator is called `{name}`: log in with your name first"),
    )
}

/// The annotator's standing: what they rated, where to resume, ties used.
fn progress(state: &AppState, ratings: &AnnotatorRatings) -> Value {
    let rated: Vec<i64> = state
        .set
        .questions
        .iter()
        .map(|q| q.id)
        .filter(|id| ratings.contains_key(id))
        .collect();
    let next = state
        .set
        .questions
        .iter()
        .map(|q| q.id)
        .find(|id| !ratings.contains_key(id));
    let ties: usize = ratings
        .values()
        .map(|m| state.rules.ties(&m.values().copied().collect::<Vec<_>>()))
        .sum();
    json!({
        "rated": rated,
        "total": state.set.questions.len(),
        "next_unrated": next,
        "ties_used": ties,
        "ties_allowed": state.rules.max_ties,
    })
}

async fn info(State(state): State<Shared>) -> ApiResult {
    let n = state.set.models.len();
    Ok(Json(json!({
        "questions": state.set.question_ids(),
        "answers_per_question": n,
        "labels": LABELS.chars().take(n).map(String::from).collect::<Vec<_>>(),
        "rules": state.rules,
        "forced_pairs": state.rules.forced_pairs(n),
    })))
}

#[derive(Deserialize)]
struct LoginBody {
    name: String,
}

async fn login(State(state): State<Shared>, body: Bytes) -> ApiResult {
    let body: LoginBody = parse_body(&body)?;
    let name = check_name(&body.name)?;
    blocking(move || {
        let (id, created) = state.db.login(&name).map_err(ApiError::internal)?;
        let ratings = state.db.ratings(id).map_err(ApiError::internal)?;
        Ok(Json(
            json!({"name": name, "created": created, "progress": progress(&state, &ratings)}),
        ))
    })
    .await?
}

async fn question(
    State(state): State<Shared>,
    Path(id): Path<String>,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> ApiResult {
    let pos = question_position(&state, &id)?;
    let name = query
        .get("annotator")
        .map(|n| n.trim().to_string())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "missing_annotator",
                "add ?annotator=NAME to the request",
            )
        })?;
    blocking(move || {
        let Some(aid) = state.db.annotator(&name).map_err(ApiError::internal)? else {
            return Err(unknown_annotator(&name));
        };
        let ratings = state.db.ratings(aid).map_err(ApiError::internal)?;
        let q = &state.set.questions[pos];
        let order = display_order(state.db.secret(), &name, q.id, state.set.models.len());
        let labels: Vec<String> = LABELS.chars().map(String::from).collect();
        let answers: Vec<Value> = order
            .iter()
            .enumerate()
            .map(|(p, &m)| json!({"label": labels[p], "text": q.answers[m]}))
            .collect();
        let scores = ratings.get(&q.id).map(|stored| {
            order
                .iter()
                .enumerate()
                .filter_map(|(p, &m)| {
                    stored
                        .get(&state.set.models[m])
                        .map(|s| (labels[p].clone(), json!(s)))
                })
                .collect::<Map<String, Value>>()
        });
        let ids = state.set.question_ids();
        Ok(Json(json!({
            "question_id": q.id,
            "position": pos + 1,
            "question": q.text,
            "earlier": q.earlier,
            "image": q.image_path.as_ref().map(|_| format!("/images/{}", q.id)),
            "answers": answers,
            "scores": scores,
            "prev": pos.checked_sub(1).map(|i| ids[i]),
            "next": ids.get(pos + 1),
            "progress": progress(&state, &ratings),
        })))
    })
    .await?
}

#[derive(Deserialize)]
struct RateBody {
    annotator: String,
    scores: Map<String, Value>,
}

async fn rate(State(state): State<Shared>, Path(id): Path<String>, body: Bytes) -> ApiResult {
    let pos = question_position(&state, &id)?;
    let body: RateBody = parse_body(&body)?;
    let name = body.annotator.trim().to_string();
    blocking(move || {
        if state
            .db
            .annotator(&name)
            .map_err(ApiError::internal)?
            .is_none()
        {
            return Err(unknown_annotator(&name));
        }
        let n = state.set.models.len();
        let scores = state
            .rules
            .check_scores(n, &body.scores)
            .map_err(|v| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, v.code, v.message))?;
        let q = &state.set.questions[pos];
        let order = display_order(state.db.secret(), &name, q.id, n);
        let rows: Vec<(String, u8, usize)> = order
            .iter()
            .enumerate()
            .map(|(p, &m)| (state.set.models[m].clone(), scores[p], p))
            .collect();
        match state.db.store(&name, q.id, &rows, &state.rules) {
            Ok(stored) => Ok(Json(json!({
                "stored": true,
                "question_id": q.id,
                "ties": stored.ties,
                "progress": progress(&state, &stored.ratings),
            }))),
            Err(Refused::UnknownAnnotator) => Err(unknown_annotator(&name)),
            Err(Refused::Rule(v)) => Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                v.code,
                v.message,
            )),
            Err(Refused::Db(e)) => Err(ApiError::internal(e)),
        }
    })
    .await?
}

async fn image(State(state): State<Shared>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let pos = question_position(&state, &id)?;
    let Some(path) = state.set.questions[pos].image_path.clone() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_image",
            "the server was started without --images",
        ));
    };
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|e| ApiError::internal(format!("{}: {e}", path.display())))?;
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let mime = match ext.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "bmp" => "image/bmp",
        _ => "application/octet-stream",
    };
    Ok(([(header::CONTENT_TYPE, mime)], bytes).into_response())
}
