//! The public transparency endpoints (docs/api.md, "Settlement and proofs"); no key.
//!
//! * `GET /v1/transparency/checkpoints` — anchored checkpoints, newest
//!   first, with where each was anchored. Cursors (`starting_after`,
//!   `ending_before`) are tree sizes.
//! * `GET /v1/transparency/consistency?from=SIZE1&to=SIZE2` — RFC 9162
//!   consistency proof between two tree sizes, with the node's roots at both.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::{AppState, Query, unix};
use crate::transparency::{
    AnchoredCheckpoint, CheckpointPage, TransparencyError, TransparencyLog, hex32,
};

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/transparency/checkpoints", get(list_checkpoints))
        .route("/v1/transparency/consistency", get(consistency))
}

impl From<TransparencyError> for ApiError {
    fn from(e: TransparencyError) -> Self {
        use TransparencyError as E;
        match e {
            E::SizeBeyondTree { size, tree_size } => beyond_tree(size, tree_size),
            E::NoSuchLeaf(index) => ApiError::not_found("leaf", &index.to_string()),
            E::NotSettled { source_id } => ApiError::conflict(
                "not_settled",
                format!("{source_id} is not settled yet: it has no leaf in the transparency log."),
            ),
            E::NotAnchored { leaf_index } => ApiError::conflict(
                "not_anchored",
                format!(
                    "Leaf {leaf_index} is in the transparency log but no checkpoint containing it \
                     is anchored on-chain yet; retry after the next anchoring."
                ),
            ),
            E::Proof(e) => ApiError::bad_request("parameter_invalid", e.to_string()),
            other => ApiError::from_failure(&other),
        }
    }
}

/// 404 `resource_missing`: no tree of that size (yet).
fn beyond_tree(size: u64, tree_size: u64) -> ApiError {
    let mut err = ApiError::not_found("tree size", &size.to_string());
    err.message = format!("No tree of size {size}: the log has {tree_size} leaves.");
    err
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    limit: Option<String>,
    starting_after: Option<String>,
    ending_before: Option<String>,
}

fn parse_size(param: &str, value: &str) -> Result<u64, ApiError> {
    value.parse::<u64>().map_err(|_| {
        ApiError::invalid_param(
            param,
            format!("Invalid {param}: `{value}` is not a tree size (a non-negative integer)."),
        )
    })
}

#[derive(Serialize)]
struct CheckpointView {
    object: &'static str,
    origin: String,
    tree_size: u64,
    root: String,
    created: i64,
    anchor: AnchorView,
}

#[derive(Serialize)]
struct AnchorView {
    chain_id: u64,
    contract: String,
    tx_hash: String,
    block_number: u64,
    block_hash: String,
    seq: u64,
}

fn view(a: AnchoredCheckpoint) -> CheckpointView {
    CheckpointView {
        object: "checkpoint",
        origin: a.checkpoint.origin,
        tree_size: a.checkpoint.tree_size,
        root: hex32(&a.checkpoint.root),
        created: unix(a.created_at),
        anchor: AnchorView {
            chain_id: a.anchor.chain_id,
            contract: format!("0x{}", hex::encode(a.anchor.contract.as_slice())),
            tx_hash: format!("0x{}", hex::encode(a.anchor.tx_hash.as_slice())),
            block_number: a.anchor.block_number,
            block_hash: format!("0x{}", hex::encode(a.anchor.block_hash.as_slice())),
            seq: a.anchor.seq,
        },
    }
}

#[derive(Serialize)]
struct List<T> {
    object: &'static str,
    data: Vec<T>,
    has_more: bool,
}

#[tracing::instrument(skip_all)]
async fn list_checkpoints(
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<impl Serialize>, ApiError> {
    let limit = match params.limit.as_deref() {
        None => 10,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=100).contains(&n) => n,
            _ => {
                return Err(ApiError::invalid_param(
                    "limit",
                    "Invalid limit: must be an integer from 1 to 100.",
                ));
            }
        },
    };
    let page = match (params.starting_after, params.ending_before) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid_param(
                "ending_before",
                "Pass starting_after or ending_before, not both.",
            ));
        }
        (Some(after), None) => CheckpointPage::After(parse_size("starting_after", &after)?),
        (None, Some(before)) => CheckpointPage::Before(parse_size("ending_before", &before)?),
        (None, None) => CheckpointPage::First,
    };
    let mut conn = state.public_pool.acquire().await?;
    let listed = TransparencyLog::list_anchored(&mut conn, limit, page).await?;
    Ok(axum::Json(List {
        object: "list",
        data: listed.data.into_iter().map(view).collect(),
        has_more: listed.has_more,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsistencyParams {
    from: Option<String>,
    to: Option<String>,
}

#[derive(Serialize)]
struct ConsistencyView {
    object: &'static str,
    from: u64,
    to: u64,
    from_root: String,
    to_root: String,
    proof: Vec<String>,
}

#[tracing::instrument(skip_all)]
async fn consistency(
    State(state): State<AppState>,
    Query(params): Query<ConsistencyParams>,
) -> Result<axum::Json<impl Serialize>, ApiError> {
    let from = parse_size(
        "from",
        &params.from.ok_or_else(|| ApiError::missing_param("from"))?,
    )?;
    let to = parse_size(
        "to",
        &params.to.ok_or_else(|| ApiError::missing_param("to"))?,
    )?;
    if from > to {
        return Err(ApiError::invalid_param(
            "from",
            format!("Invalid from: {from} is larger than to ({to})."),
        ));
    }
    let mut conn = state.public_pool.acquire().await?;
    let tree_size = TransparencyLog::tree_size(&mut conn).await?;
    if to > tree_size {
        return Err(beyond_tree(to, tree_size).with_param("to"));
    }
    let proof = TransparencyLog::consistency_proof(&mut conn, from, to).await?;
    let from_root = TransparencyLog::root(&mut conn, from).await?;
    let to_root = TransparencyLog::root(&mut conn, to).await?;
    Ok(axum::Json(ConsistencyView {
        object: "consistency_proof",
        from,
        to,
        from_root: hex32(&from_root),
        to_root: hex32(&to_root),
        proof: proof.iter().map(hex32).collect(),
    }))
}
