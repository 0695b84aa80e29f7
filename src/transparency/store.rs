//! The log in PostgreSQL (`migrations/0005_transparency.sql`).
//!
//! An append locks the single head row (`FOR UPDATE`), so appenders queue
//! and indices never gap; it reads only the head's frontier, inserts the
//! leaf and the ≤ log2(n) perfect subtrees the leaf completes, and moves
//! the head. Roots and proofs fetch the ≤ 2·log2(n) perfect nodes they need
//! in one query and fold them ([`merkle::span_hash`]). Nodes never change
//! once written, so reads need no lock.

use std::collections::HashMap;

use alloy::primitives::{Address, B256};
use sqlx::PgConnection;
use time::OffsetDateTime;

use super::leaf::{self, LeafData, LeafEntry, LeafKind};
use super::merkle::{self, Frontier, Hash, NodeId, Span};
use super::{Checkpoint, LeafIndex, TransparencyError};

type Result<T, E = TransparencyError> = std::result::Result<T, E>;

pub(crate) fn to_i64(v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| TransparencyError::Corrupt(format!("{v} exceeds BIGINT")))
}

pub(crate) fn to_u64(v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|_| TransparencyError::Corrupt(format!("negative value {v}")))
}

pub(crate) fn to_hash(bytes: &[u8]) -> Result<Hash> {
    <Hash>::try_from(bytes)
        .map_err(|_| TransparencyError::Corrupt(format!("a {}-byte hash", bytes.len())))
}

/// The append-only log. Holds the origin that new leaves and checkpoints
/// carry; reads need no instance.
#[derive(Debug, Clone)]
pub struct TransparencyLog {
    origin: String,
}

struct Head {
    origin: Option<String>,
    frontier: Frontier,
}

impl TransparencyLog {
    /// The log named `origin` (1–255 visible ASCII characters; see
    /// [`super::origin_for_anchor`]). The first append fixes it in the
    /// database; a log of another origin then refuses to append.
    pub fn new(origin: impl Into<String>) -> Result<Self> {
        let origin = origin.into();
        leaf::check_field("origin", &origin)?;
        Ok(Self { origin })
    }

    /// The log's origin.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    async fn head(conn: &mut PgConnection, lock: bool) -> Result<Head> {
        let row = if lock {
            sqlx::query!(
                "SELECT origin, tree_size, frontier FROM transparency_head WHERE singleton FOR UPDATE"
            )
            .fetch_one(&mut *conn)
            .await
            .map(|r| (r.origin, r.tree_size, r.frontier))?
        } else {
            sqlx::query!(
                "SELECT origin, tree_size, frontier FROM transparency_head WHERE singleton"
            )
            .fetch_one(&mut *conn)
            .await
            .map(|r| (r.origin, r.tree_size, r.frontier))?
        };
        let (origin, size, hashes) = row;
        let hashes = hashes
            .iter()
            .map(|h| to_hash(h))
            .collect::<Result<Vec<_>>>()?;
        let size = to_u64(size)?;
        let frontier = Frontier::from_parts(size, hashes).ok_or_else(|| {
            TransparencyError::Corrupt(format!("head frontier does not match size {size}"))
        })?;
        Ok(Head { origin, frontier })
    }

    fn check_origin(&self, stored: Option<&str>) -> Result<()> {
        match stored {
            Some(stored) if stored != self.origin => Err(TransparencyError::OriginMismatch {
                stored: stored.to_owned(),
                ours: self.origin.clone(),
            }),
            _ => Ok(()),
        }
    }

    /// Appends one settled item as the next leaf, inside the caller's
    /// transaction (the head stays locked until it commits, which keeps other
    /// appenders waiting: commit soon). A fresh random salt is drawn.
    /// On error the transaction must be rolled back.
    pub async fn append(&self, conn: &mut PgConnection, leaf: &LeafData) -> Result<LeafIndex> {
        let indices = self.append_all(conn, std::slice::from_ref(leaf)).await?;
        indices
            .first()
            .copied()
            .ok_or_else(|| TransparencyError::Corrupt("append returned no index".into()))
    }

    /// Appends items as consecutive leaves, in order, with one lock and one
    /// insert per table; returns their indices.
    pub async fn append_all(
        &self,
        conn: &mut PgConnection,
        leaves: &[LeafData],
    ) -> Result<Vec<LeafIndex>> {
        if leaves.is_empty() {
            return Ok(Vec::new());
        }
        let Head {
            origin,
            mut frontier,
        } = Self::head(conn, true).await?;
        self.check_origin(origin.as_deref())?;

        let n = leaves.len();
        let mut indices = Vec::with_capacity(n);
        let mut leaf_index = Vec::with_capacity(n);
        let mut leaf_hash = Vec::with_capacity(n);
        let mut data = Vec::with_capacity(n);
        let mut salt = Vec::with_capacity(n);
        let mut merchant = Vec::with_capacity(n);
        let mut source = Vec::with_capacity(n);
        let mut kind = Vec::with_capacity(n);
        let mut settlement = Vec::with_capacity(n);
        let mut node_level = Vec::new();
        let mut node_index = Vec::new();
        let mut node_hash = Vec::new();
        for item in leaves {
            let bytes = LeafEntry::new(self.origin.clone(), item.clone()).encode()?;
            let s = leaf::random_salt();
            let h = leaf::leaf_hash(&bytes, &s);
            let (index, completed) = frontier.push(h);
            for (node, hash) in completed {
                node_level.push(i16::from(node.level));
                node_index.push(to_i64(node.index)?);
                node_hash.push(hash.to_vec());
            }
            indices.push(LeafIndex(index));
            leaf_index.push(to_i64(index)?);
            leaf_hash.push(h.to_vec());
            data.push(bytes);
            salt.push(s.to_vec());
            merchant.push(item.merchant_id.clone());
            source.push(item.source_id.clone());
            kind.push(item.kind.to_string());
            settlement.push(item.settlement_id.clone());
        }

        let inserted = sqlx::query!(
            "INSERT INTO transparency_leaves
                 (leaf_index, leaf_hash, data, salt, merchant_id, source_id, kind, settlement_id)
             SELECT * FROM UNNEST($1::bigint[], $2::bytea[], $3::bytea[], $4::bytea[],
                                  $5::text[], $6::text[], $7::text[], $8::text[])",
            &leaf_index,
            &leaf_hash,
            &data,
            &salt,
            &merchant,
            &source,
            &kind,
            &settlement,
        )
        .execute(&mut *conn)
        .await;
        if let Err(e) = inserted {
            let duplicate = e
                .as_database_error()
                .and_then(|d| d.constraint())
                .is_some_and(|c| c == "transparency_leaves_source");
            if duplicate {
                return Err(duplicate_error(leaves));
            }
            return Err(e.into());
        }
        if !node_level.is_empty() {
            sqlx::query!(
                "INSERT INTO transparency_nodes (level, node_index, hash)
                 SELECT * FROM UNNEST($1::smallint[], $2::bigint[], $3::bytea[])",
                &node_level,
                &node_index,
                &node_hash,
            )
            .execute(&mut *conn)
            .await?;
        }
        let frontier_bytes: Vec<Vec<u8>> = frontier.hashes().iter().map(|h| h.to_vec()).collect();
        sqlx::query!(
            "UPDATE transparency_head
             SET origin = $1, tree_size = $2, frontier = $3, updated_at = now()
             WHERE singleton",
            self.origin,
            to_i64(frontier.size())?,
            &frontier_bytes,
        )
        .execute(&mut *conn)
        .await?;
        Ok(indices)
    }

    /// Number of leaves (committed, or including the caller's own appends).
    pub async fn tree_size(conn: &mut PgConnection) -> Result<u64> {
        let size = sqlx::query_scalar!("SELECT tree_size FROM transparency_head WHERE singleton")
            .fetch_one(&mut *conn)
            .await?;
        to_u64(size)
    }

    /// The current size and root, not stored as a checkpoint.
    pub async fn head_checkpoint(conn: &mut PgConnection) -> Result<Checkpoint> {
        let head = Self::head(conn, false).await?;
        Ok(Checkpoint {
            origin: head.origin.unwrap_or_default(),
            tree_size: head.frontier.size(),
            root: head.frontier.root(),
        })
    }

    async fn check_size(conn: &mut PgConnection, size: u64) -> Result<()> {
        let tree_size = Self::tree_size(conn).await?;
        if size > tree_size {
            return Err(TransparencyError::SizeBeyondTree { size, tree_size });
        }
        Ok(())
    }

    /// Fetches perfect nodes (level 0 from the leaves) in one query.
    async fn fetch_nodes(
        conn: &mut PgConnection,
        nodes: &[NodeId],
    ) -> Result<HashMap<NodeId, Hash>> {
        let mut leaves = Vec::new();
        let mut levels = Vec::new();
        let mut indices = Vec::new();
        for node in nodes {
            if node.level == 0 {
                leaves.push(to_i64(node.index)?);
            } else {
                levels.push(i16::from(node.level));
                indices.push(to_i64(node.index)?);
            }
        }
        let rows = sqlx::query!(
            r#"SELECT 0::smallint AS "level!", leaf_index AS "node_index!", leaf_hash AS "hash!"
                 FROM transparency_leaves WHERE leaf_index = ANY ($1::bigint[])
               UNION ALL
               SELECT n.level, n.node_index, n.hash
                 FROM transparency_nodes n
                 JOIN UNNEST($2::smallint[], $3::bigint[]) AS w (level, node_index)
                   ON n.level = w.level AND n.node_index = w.node_index"#,
            &leaves,
            &levels,
            &indices,
        )
        .fetch_all(&mut *conn)
        .await?;
        let mut map = HashMap::with_capacity(rows.len());
        for row in rows {
            let level = u8::try_from(row.level)
                .map_err(|_| TransparencyError::Corrupt(format!("level {}", row.level)))?;
            map.insert(
                NodeId {
                    level,
                    index: to_u64(row.node_index)?,
                },
                to_hash(&row.hash)?,
            );
        }
        Ok(map)
    }

    async fn hash_spans(conn: &mut PgConnection, spans: &[Span]) -> Result<Vec<Hash>> {
        let nodes = Self::fetch_nodes(conn, &merkle::nodes_needed(spans)).await?;
        merkle::hash_spans_from(spans, &nodes).map_err(|e| match e {
            merkle::ProofError::MissingNode { .. } => TransparencyError::Corrupt(e.to_string()),
            e => e.into(),
        })
    }

    /// Root of the first `size` leaves: ≤ log2(size) node reads.
    pub async fn root(conn: &mut PgConnection, size: u64) -> Result<Hash> {
        Self::check_size(conn, size).await?;
        let mut hashes = Self::hash_spans(conn, &[Span::new(0, size)]).await?;
        hashes
            .pop()
            .ok_or_else(|| TransparencyError::Corrupt("no root".into()))
    }

    /// The hash of leaf `index`.
    pub async fn leaf_hash(conn: &mut PgConnection, index: u64) -> Result<Hash> {
        let hash = sqlx::query_scalar!(
            "SELECT leaf_hash FROM transparency_leaves WHERE leaf_index = $1",
            to_i64(index)?
        )
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(TransparencyError::NoSuchLeaf(index))?;
        to_hash(&hash)
    }

    /// `PATH(index, D[size])`: the audit path of leaf `index` in the tree of
    /// `size` leaves, from the leaf's sibling up.
    pub async fn inclusion_proof(
        conn: &mut PgConnection,
        index: u64,
        size: u64,
    ) -> Result<Vec<Hash>> {
        let spans = merkle::inclusion_spans(index, size)?;
        Self::check_size(conn, size).await?;
        Self::hash_spans(conn, &spans).await
    }

    /// `PROOF(first, D[second])`: the consistency proof that the tree of
    /// `first` leaves is a prefix of the tree of `second` leaves.
    pub async fn consistency_proof(
        conn: &mut PgConnection,
        first: u64,
        second: u64,
    ) -> Result<Vec<Hash>> {
        let spans = merkle::consistency_spans(first, second)?;
        Self::check_size(conn, second).await?;
        Self::hash_spans(conn, &spans).await
    }

    /// Records the current state of the log as a checkpoint (or returns the
    /// one already recorded at this size). Inside the settlement's
    /// transaction it covers the leaves just appended.
    pub async fn checkpoint(&self, conn: &mut PgConnection) -> Result<Checkpoint> {
        let head = Self::head(conn, false).await?;
        self.check_origin(head.origin.as_deref())?;
        let size = head.frontier.size();
        if size == 0 {
            return Err(TransparencyError::Empty);
        }
        let root = head.frontier.root();
        sqlx::query!(
            "INSERT INTO transparency_checkpoints (tree_size, origin, root) VALUES ($1, $2, $3)
             ON CONFLICT (tree_size) DO NOTHING",
            to_i64(size)?,
            self.origin,
            &root[..],
        )
        .execute(&mut *conn)
        .await?;
        let stored = Self::checkpoint_at(conn, size)
            .await?
            .ok_or_else(|| TransparencyError::Corrupt(format!("checkpoint {size} vanished")))?;
        if stored.root != root || stored.origin != self.origin {
            return Err(TransparencyError::Corrupt(format!(
                "checkpoint {size} records another root or origin than the tree's"
            )));
        }
        Ok(stored)
    }

    /// Records the state of the log at `size` (at most its size) as a
    /// checkpoint, or returns the one already recorded there: a checkpoint
    /// between two batches', for a contract that limits how much one anchor
    /// may grow.
    pub async fn checkpoint_at_size(
        &self,
        conn: &mut PgConnection,
        size: u64,
    ) -> Result<Checkpoint> {
        let head = Self::head(conn, false).await?;
        self.check_origin(head.origin.as_deref())?;
        if size == 0 || size > head.frontier.size() {
            return Err(TransparencyError::Corrupt(format!(
                "no checkpoint of {size} leaves in a log of {}",
                head.frontier.size()
            )));
        }
        let root = Self::root(conn, size).await?;
        sqlx::query!(
            "INSERT INTO transparency_checkpoints (tree_size, origin, root) VALUES ($1, $2, $3)
             ON CONFLICT (tree_size) DO NOTHING",
            to_i64(size)?,
            self.origin,
            &root[..],
        )
        .execute(&mut *conn)
        .await?;
        let stored = Self::checkpoint_at(conn, size)
            .await?
            .ok_or_else(|| TransparencyError::Corrupt(format!("checkpoint {size} vanished")))?;
        if stored.root != root || stored.origin != self.origin {
            return Err(TransparencyError::Corrupt(format!(
                "checkpoint {size} records another root or origin than the tree's"
            )));
        }
        Ok(stored)
    }

    /// The checkpoint recorded at `size`, if any.
    pub async fn checkpoint_at(conn: &mut PgConnection, size: u64) -> Result<Option<Checkpoint>> {
        let row = sqlx::query!(
            "SELECT origin, tree_size, root FROM transparency_checkpoints WHERE tree_size = $1",
            to_i64(size)?
        )
        .fetch_optional(&mut *conn)
        .await?;
        row.map(|r| {
            Ok(Checkpoint {
                origin: r.origin,
                tree_size: to_u64(r.tree_size)?,
                root: to_hash(&r.root)?,
            })
        })
        .transpose()
    }

    /// The latest recorded checkpoint, if any.
    pub async fn latest_checkpoint(conn: &mut PgConnection) -> Result<Option<Checkpoint>> {
        let row = sqlx::query!(
            "SELECT origin, tree_size, root FROM transparency_checkpoints
             ORDER BY tree_size DESC LIMIT 1"
        )
        .fetch_optional(&mut *conn)
        .await?;
        row.map(|r| {
            Ok(Checkpoint {
                origin: r.origin,
                tree_size: to_u64(r.tree_size)?,
                root: to_hash(&r.root)?,
            })
        })
        .transpose()
    }

    /// The stored bytes of leaf `index`: its canonical data and salt.
    pub async fn leaf(conn: &mut PgConnection, index: u64) -> Result<(Vec<u8>, leaf::Salt)> {
        let row = sqlx::query!(
            "SELECT data, salt FROM transparency_leaves WHERE leaf_index = $1",
            to_i64(index)?
        )
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(TransparencyError::NoSuchLeaf(index))?;
        let salt = leaf::Salt::try_from(row.salt.as_slice())
            .map_err(|_| TransparencyError::Corrupt(format!("salt of leaf {index}")))?;
        Ok((row.data, salt))
    }

    /// The leaf of a settled object of `merchant`: of `kind` if given,
    /// else its first. `None`: not settled yet.
    pub async fn find_leaf(
        conn: &mut PgConnection,
        merchant_id: &str,
        source_id: &str,
        kind: Option<LeafKind>,
    ) -> Result<Option<LeafIndex>> {
        let index = sqlx::query_scalar!(
            "SELECT leaf_index FROM transparency_leaves
             WHERE merchant_id = $1 AND source_id = $2 AND ($3::text IS NULL OR kind = $3)
             ORDER BY leaf_index LIMIT 1",
            merchant_id,
            source_id,
            kind.map(|k| k.to_string()),
        )
        .fetch_optional(&mut *conn)
        .await?;
        index.map(|i| to_u64(i).map(LeafIndex)).transpose()
    }

    /// The first anchored (confirmed) checkpoint that contains leaf `index`.
    pub async fn anchored_checkpoint_covering(
        conn: &mut PgConnection,
        index: u64,
    ) -> Result<Option<AnchoredCheckpoint>> {
        let rows = sqlx::query_as!(
            AnchoredRow,
            r#"SELECT c.tree_size, c.origin, c.root, c.created_at,
                      a.chain_id, a.contract, a.tx_hash,
                      a.block_number AS "block_number!", a.block_hash AS "block_hash!",
                      a.seq AS "seq!", a.gas_used, a.confirmed_at
               FROM transparency_checkpoints c
               JOIN transparency_anchors a ON a.tree_size = c.tree_size AND a.status = 'confirmed'
               WHERE c.tree_size > $1
               ORDER BY c.tree_size, a.id
               LIMIT 1"#,
            to_i64(index)?
        )
        .fetch_all(&mut *conn)
        .await?;
        rows.into_iter()
            .next()
            .map(AnchoredRow::into_anchored)
            .transpose()
    }

    /// A page of anchored checkpoints, newest first (the public list).
    pub async fn list_anchored(
        conn: &mut PgConnection,
        limit: usize,
        page: CheckpointPage,
    ) -> Result<Listed<AnchoredCheckpoint>> {
        let fetch = i64::try_from(limit).unwrap_or(100).saturating_add(1);
        let (below, above, backwards) = match page {
            CheckpointPage::First => (None, None, false),
            CheckpointPage::After(size) => (Some(to_i64(size)?), None, false),
            CheckpointPage::Before(size) => (None, Some(to_i64(size)?), true),
        };
        // One row per checkpoint: its first confirmed anchor.
        let rows = sqlx::query_as!(
            AnchoredRow,
            r#"SELECT c.tree_size, c.origin, c.root, c.created_at,
                      a.chain_id, a.contract, a.tx_hash,
                      a.block_number AS "block_number!", a.block_hash AS "block_hash!",
                      a.seq AS "seq!", a.gas_used, a.confirmed_at
               FROM transparency_checkpoints c
               JOIN LATERAL (
                   SELECT * FROM transparency_anchors x
                   WHERE x.tree_size = c.tree_size AND x.status = 'confirmed'
                   ORDER BY x.id LIMIT 1
               ) a ON TRUE
               WHERE ($1::bigint IS NULL OR c.tree_size < $1)
                 AND ($2::bigint IS NULL OR c.tree_size > $2)
               ORDER BY CASE WHEN $3 THEN c.tree_size END ASC,
                        CASE WHEN NOT $3 THEN c.tree_size END DESC
               LIMIT $4"#,
            below,
            above,
            backwards,
            fetch,
        )
        .fetch_all(&mut *conn)
        .await?;
        let mut data = rows
            .into_iter()
            .map(AnchoredRow::into_anchored)
            .collect::<Result<Vec<_>>>()?;
        let has_more = data.len() > limit;
        data.truncate(limit);
        if backwards {
            data.reverse();
        }
        Ok(Listed { data, has_more })
    }
}

/// Which item of a batch was already settled: a duplicate within the batch
/// if there is one, else the first item (for a single append, exact; the
/// transaction is aborted, so nothing more can be asked).
fn duplicate_error(leaves: &[LeafData]) -> TransparencyError {
    let mut seen = std::collections::HashSet::new();
    let first = leaves
        .iter()
        .find(|l| !seen.insert((&l.merchant_id, &l.source_id, l.kind, &l.settlement_id)))
        .or(leaves.first());
    match first {
        Some(l) => TransparencyError::AlreadySettled {
            source_id: l.source_id.clone(),
            kind: l.kind,
        },
        None => TransparencyError::Corrupt("duplicate in an empty batch".into()),
    }
}

/// Which page of the newest-first checkpoint list; cursors are tree sizes.
pub type CheckpointPage = crate::page::Page<u64>;

pub use crate::page::Listed;

/// Where and how a checkpoint was anchored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnchorRecord {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// The `SettlementAnchor` contract.
    pub contract: Address,
    /// The anchoring transaction.
    pub tx_hash: B256,
    /// Its block.
    pub block_number: u64,
    /// Hash of that block.
    pub block_hash: B256,
    /// The checkpoint's sequence number in the contract.
    pub seq: u64,
    /// Gas the transaction used, when known.
    pub gas_used: Option<u64>,
    /// When the node saw enough confirmations.
    pub confirmed_at: Option<OffsetDateTime>,
}

/// A checkpoint with its confirmed anchor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnchoredCheckpoint {
    /// The checkpoint.
    pub checkpoint: Checkpoint,
    /// Where it is anchored.
    pub anchor: AnchorRecord,
    /// When the node recorded the checkpoint.
    pub created_at: OffsetDateTime,
}

struct AnchoredRow {
    tree_size: i64,
    origin: String,
    root: Vec<u8>,
    created_at: OffsetDateTime,
    chain_id: i64,
    contract: String,
    tx_hash: String,
    block_number: i64,
    block_hash: String,
    seq: i64,
    gas_used: Option<i64>,
    confirmed_at: Option<OffsetDateTime>,
}

impl AnchoredRow {
    fn into_anchored(self) -> Result<AnchoredCheckpoint> {
        let corrupt = |what: &str| TransparencyError::Corrupt(format!("anchor {what}"));
        Ok(AnchoredCheckpoint {
            checkpoint: Checkpoint {
                origin: self.origin,
                tree_size: to_u64(self.tree_size)?,
                root: to_hash(&self.root)?,
            },
            anchor: AnchorRecord {
                chain_id: to_u64(self.chain_id)?,
                contract: self.contract.parse().map_err(|_| corrupt("contract"))?,
                tx_hash: self.tx_hash.parse().map_err(|_| corrupt("tx hash"))?,
                block_number: to_u64(self.block_number)?,
                block_hash: self.block_hash.parse().map_err(|_| corrupt("block hash"))?,
                seq: to_u64(self.seq)?,
                gas_used: self.gas_used.map(to_u64).transpose()?,
                confirmed_at: self.confirmed_at,
            },
            created_at: self.created_at,
        })
    }
}
