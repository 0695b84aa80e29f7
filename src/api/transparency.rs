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
use utoipa::{IntoParams, ToSchema};

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

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// Page size, 1–100 (default 10).
    #[param(minimum = 1, maximum = 100, default = 10, value_type = Option<i64>)]
    limit: Option<String>,
    /// A tree size: checkpoints of smaller trees. Empty means none.
    #[param(value_type = Option<u64>, maximum = 9_223_372_036_854_775_807_u64)]
    starting_after: Option<String>,
    /// A tree size: checkpoints of larger trees. Empty means none.
    #[param(value_type = Option<u64>, maximum = 9_223_372_036_854_775_807_u64)]
    ending_before: Option<String>,
}

fn parse_size(param: &str, value: &str) -> Result<u64, ApiError> {
    // Sizes are BIGINTs in the database: beyond i64::MAX is no tree size.
    let size = value
        .parse::<u64>()
        .ok()
        .filter(|s| i64::try_from(*s).is_ok());
    size.ok_or_else(|| {
        ApiError::invalid_param(
            param,
            format!("Invalid {param}: `{value}` is not a tree size (a non-negative integer)."),
        )
    })
}

/// An anchored checkpoint of the transparency log.
#[derive(Serialize, ToSchema)]
#[schema(as = Checkpoint)]
struct CheckpointView {
    #[schema(schema_with = checkpoint_object)]
    object: &'static str,
    /// The log's name.
    origin: String,
    tree_size: u64,
    /// Merkle root (hex).
    #[schema(pattern = "^0x[0-9a-f]{64}$")]
    root: String,
    /// Unix seconds.
    created: i64,
    anchor: AnchorView,
}

crate::object_name_schema!(checkpoint_object, "checkpoint");
crate::object_name_schema!(list_object, "list");
crate::object_name_schema!(consistency_object, "consistency_proof");

/// Where a checkpoint was anchored on-chain.
#[derive(Serialize, ToSchema)]
#[schema(as = Anchor)]
struct AnchorView {
    chain_id: u64,
    /// The anchor contract (0x…).
    #[schema(pattern = "^0x[0-9a-f]{40}$")]
    contract: String,
    #[schema(pattern = "^0x[0-9a-f]{64}$")]
    tx_hash: String,
    block_number: u64,
    #[schema(pattern = "^0x[0-9a-f]{64}$")]
    block_hash: String,
    /// The anchor's sequence number in the contract.
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

/// A page of anchored checkpoints, newest first.
#[derive(Serialize, ToSchema)]
#[schema(as = CheckpointList)]
struct List {
    #[schema(schema_with = list_object)]
    object: &'static str,
    data: Vec<CheckpointView>,
    /// Whether more items follow this page.
    has_more: bool,
}

#[utoipa::path(
    get,
    path = "/v1/transparency/checkpoints",
    operation_id = "listCheckpoints",
    tag = "Transparency",
    summary = "List anchored checkpoints",
    description = "Every anchored checkpoint, newest first, with where it was anchored. No key.",
    params(
        ListParams,
    ),
    responses(
        (status = 200, description = "OK", content_type = "application/json", body = List),
        (status = 400, response = crate::api::openapi::BadRequest),
        (status = 500, response = crate::api::openapi::InternalError),
        (status = 503, response = crate::api::openapi::ServiceUnavailable),
        (status = 429, response = crate::api::openapi::TooManyRequests),
    )
)]
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
    // An empty cursor is no cursor, as in every list.
    let nonempty = |c: Option<String>| c.filter(|c| !c.is_empty());
    let page = match (
        nonempty(params.starting_after),
        nonempty(params.ending_before),
    ) {
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

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ConsistencyParams {
    /// The smaller tree size.
    #[param(required = true, value_type = u64, maximum = 9_223_372_036_854_775_807_u64)]
    from: Option<String>,
    /// The larger tree size (at most the log's size; otherwise 404).
    #[param(required = true, value_type = u64, maximum = 9_223_372_036_854_775_807_u64)]
    to: Option<String>,
}

/// An RFC 9162 consistency proof between two tree sizes.
#[derive(Serialize, ToSchema)]
#[schema(as = ConsistencyProof)]
struct ConsistencyView {
    #[schema(schema_with = consistency_object)]
    object: &'static str,
    from: u64,
    to: u64,
    #[schema(pattern = "^0x[0-9a-f]{64}$")]
    from_root: String,
    #[schema(pattern = "^0x[0-9a-f]{64}$")]
    to_root: String,
    /// RFC 9162 consistency proof, hashes in order.
    #[schema(schema_with = hashes)]
    proof: Vec<String>,
}

/// SHA-256 hashes (hex).
fn hashes() -> utoipa::openapi::schema::Array {
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(
            utoipa::openapi::ObjectBuilder::new()
                .schema_type(utoipa::openapi::Type::String)
                .pattern(Some("^0x[0-9a-f]{64}$")),
        )
        .build()
}

#[utoipa::path(
    get,
    path = "/v1/transparency/consistency",
    operation_id = "getConsistencyProof",
    tag = "Transparency",
    summary = "Consistency proof between two tree sizes",
    description = "An RFC 9162 consistency proof from the tree of size `from` to the tree of size `to`, with the roots of both. No key.",
    params(
        ConsistencyParams,
    ),
    responses(
        (status = 200, description = "OK", content_type = "application/json", body = ConsistencyView),
        (status = 400, response = crate::api::openapi::BadRequest),
        (status = 404, response = crate::api::openapi::NotFound),
        (status = 500, response = crate::api::openapi::InternalError),
        (status = 503, response = crate::api::openapi::ServiceUnavailable),
        (status = 429, response = crate::api::openapi::TooManyRequests),
    )
)]
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
