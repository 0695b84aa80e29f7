//! Currencies, on-chain assets and the registry that knows their scales.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use alloy::primitives::Address;
use sqlx::PgConnection;

use super::MoneyError;
use super::iso4217::CURRENCIES;

/// An ISO 4217 currency the node knows (see [`CURRENCIES`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency {
    code: &'static str,
    exponent: u8,
}

impl Currency {
    /// Parses a currency code; the API writes them lower-case, and
    /// upper-case is accepted too (`USD` is `usd`).
    pub fn parse(s: &str) -> Result<Self, MoneyError> {
        let lower = s.to_ascii_lowercase();
        CURRENCIES
            .binary_search_by(|(code, _)| (*code).cmp(lower.as_str()))
            .ok()
            .and_then(|i| CURRENCIES.get(i))
            .map(|&(code, exponent)| Currency { code, exponent })
            .ok_or_else(|| MoneyError::UnknownCurrency(s.to_owned()))
    }

    /// The lower-case code.
    pub fn code(self) -> &'static str {
        self.code
    }

    /// Decimal places of the minor unit (USD 2, JPY 0, KWD 3).
    pub fn exponent(self) -> u8 {
        self.exponent
    }

    /// Every known currency, by code.
    pub fn all() -> impl Iterator<Item = Currency> {
        CURRENCIES
            .iter()
            .map(|&(code, exponent)| Currency { code, exponent })
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code)
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Currency({})", self.code)
    }
}

/// The name of an asset, as stored in `assets.code` and on every ledger
/// account: `usd` for a currency, `<symbol>:<chain id>` on a chain
/// (`eth:1`, `usdc:31337`). Only well-formed codes exist; whether the asset
/// is registered is the registry's (and the database's) business.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct AssetCode(String);

fn valid_symbol(s: &str) -> bool {
    let mut bytes = s.bytes();
    s.len() <= 16
        && bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

impl AssetCode {
    /// The code of a currency.
    pub fn fiat(currency: Currency) -> Self {
        Self(currency.code().to_owned())
    }

    /// The code of the asset `symbol` on chain `chain_id` (symbols are
    /// lower-case letters and digits, at most 16, starting with a letter).
    pub fn chain(symbol: &str, chain_id: u64) -> Result<Self, MoneyError> {
        if !valid_symbol(symbol) || chain_id == 0 {
            return Err(MoneyError::InvalidAsset(format!("{symbol}:{chain_id}")));
        }
        Ok(Self(format!("{symbol}:{chain_id}")))
    }

    /// Parses a stored or configured code. A three-letter code must be a
    /// known currency.
    pub fn parse(s: &str) -> Result<Self, MoneyError> {
        match s.split_once(':') {
            None => Currency::parse(s)
                .ok()
                .filter(|c| c.code() == s)
                .map(Self::fiat)
                .ok_or_else(|| MoneyError::UnknownCurrency(s.to_owned())),
            Some((symbol, chain)) => {
                let chain_id = chain
                    .parse::<u64>()
                    .ok()
                    .filter(|id| id.to_string() == chain)
                    .ok_or_else(|| MoneyError::InvalidAsset(s.to_owned()))?;
                Self::chain(symbol, chain_id)
            }
        }
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The symbol: the currency code, or the part before `:`.
    pub fn symbol(&self) -> &str {
        self.0.split_once(':').map_or(self.0.as_str(), |(s, _)| s)
    }

    /// The chain of an on-chain asset.
    pub fn chain_id(&self) -> Option<u64> {
        self.0.split_once(':').and_then(|(_, c)| c.parse().ok())
    }

    /// Whether it names an on-chain asset.
    pub fn is_crypto(&self) -> bool {
        self.0.contains(':')
    }
}

impl fmt::Display for AssetCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for AssetCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AssetCode({})", self.0)
    }
}

impl From<Currency> for AssetCode {
    fn from(c: Currency) -> Self {
        Self::fiat(c)
    }
}

/// What an asset is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssetKind {
    /// An ISO 4217 currency.
    Fiat,
    /// A chain's native asset (ETH on Ethereum and most EVM chains).
    Native {
        /// The EIP-155 chain id.
        chain_id: u64,
    },
    /// An ERC-20 token.
    Token {
        /// The EIP-155 chain id.
        chain_id: u64,
        /// The token contract.
        address: Address,
    },
}

/// An asset and its scale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asset {
    /// Its code.
    pub code: AssetCode,
    /// Decimal places of one whole unit (USD 2, ETH 18, USDC 6).
    pub scale: u8,
    /// Currency, native coin or token.
    pub kind: AssetKind,
}

impl Asset {
    /// The asset of a currency.
    pub fn fiat(currency: Currency) -> Self {
        Self {
            code: AssetCode::fiat(currency),
            scale: currency.exponent(),
            kind: AssetKind::Fiat,
        }
    }

    /// Whether it lives on a chain (its API amounts are decimal strings).
    pub fn is_crypto(&self) -> bool {
        self.kind != AssetKind::Fiat
    }

    /// The chain it lives on.
    pub fn chain_id(&self) -> Option<u64> {
        match self.kind {
            AssetKind::Fiat => None,
            AssetKind::Native { chain_id } | AssetKind::Token { chain_id, .. } => Some(chain_id),
        }
    }

    /// The ERC-20 contract, for a token.
    pub fn token_address(&self) -> Option<Address> {
        match self.kind {
            AssetKind::Token { address, .. } => Some(address),
            _ => None,
        }
    }

    /// Rebuilds an asset from an `assets` row.
    pub(crate) fn from_row(
        code: &str,
        kind: &str,
        scale: i16,
        chain_id: Option<i64>,
        token_address: Option<&str>,
    ) -> Result<Self, MoneyError> {
        let bad = || MoneyError::InvalidAsset(code.to_owned());
        let asset_code = AssetCode::parse(code)?;
        let scale = u8::try_from(scale).map_err(|_| bad())?;
        let kind = match (kind, chain_id, token_address) {
            ("fiat", None, None) => AssetKind::Fiat,
            ("crypto", Some(chain_id), address) => {
                let chain_id = u64::try_from(chain_id).map_err(|_| bad())?;
                match address {
                    None => AssetKind::Native { chain_id },
                    Some(a) => AssetKind::Token {
                        chain_id,
                        address: a.parse().map_err(|_| bad())?,
                    },
                }
            }
            _ => return Err(bad()),
        };
        Ok(Self {
            code: asset_code,
            scale,
            kind,
        })
    }
}

/// An on-chain asset as configured for a chain: what
/// [`AssetRegistry::register_chain_asset`] takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainAsset {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// Lower-case symbol (`eth`, `usdc`), unique on its chain.
    pub symbol: String,
    /// The token's `decimals()` (18 for ETH).
    pub decimals: u8,
    /// The ERC-20 contract; `None` for the native asset.
    pub token_address: Option<Address>,
}

impl ChainAsset {
    /// A chain's native asset.
    pub fn native(chain_id: u64, symbol: &str, decimals: u8) -> Self {
        Self {
            chain_id,
            symbol: symbol.to_owned(),
            decimals,
            token_address: None,
        }
    }

    /// An ERC-20 token.
    pub fn token(chain_id: u64, symbol: &str, decimals: u8, address: Address) -> Self {
        Self {
            chain_id,
            symbol: symbol.to_owned(),
            decimals,
            token_address: Some(address),
        }
    }

    fn to_asset(&self) -> Result<Asset, MoneyError> {
        let code = AssetCode::chain(&self.symbol, self.chain_id)?;
        if self.decimals > 36 {
            return Err(MoneyError::InvalidAsset(format!(
                "{code}: {} decimals (at most 36)",
                self.decimals
            )));
        }
        if i64::try_from(self.chain_id).is_err() {
            return Err(MoneyError::InvalidAsset(code.to_string()));
        }
        let kind = match self.token_address {
            None => AssetKind::Native {
                chain_id: self.chain_id,
            },
            Some(address) => AssetKind::Token {
                chain_id: self.chain_id,
                address,
            },
        };
        Ok(Asset {
            code,
            scale: self.decimals,
            kind,
        })
    }
}

/// Lower-case 0x-hex, as stored.
fn address_hex(address: &Address) -> String {
    format!("0x{}", hex::encode(address.as_slice()))
}

/// Knows every asset's scale: currencies from the static ISO 4217 table,
/// on-chain assets as they are registered from configuration at start-up.
/// Cheap to clone; clones share the registrations.
#[derive(Debug, Clone, Default)]
pub struct AssetRegistry {
    chain: Arc<RwLock<BTreeMap<AssetCode, Asset>>>,
}

impl AssetRegistry {
    /// A registry with the currencies only.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers an on-chain asset here and in the database's `assets`
    /// table (which ledger accounts reference, so the database refuses
    /// postings in an asset nobody registered). Registering it again with
    /// the same definition is a no-op; a different scale or contract for a
    /// known code is refused: amounts already recorded depend on it.
    pub async fn register_chain_asset(
        &self,
        conn: &mut PgConnection,
        asset: &ChainAsset,
    ) -> Result<Asset, MoneyError> {
        let wanted = asset.to_asset()?;
        let chain_id = i64::try_from(asset.chain_id)
            .map_err(|_| MoneyError::InvalidAsset(wanted.code.to_string()))?;
        let address = asset.token_address.as_ref().map(address_hex);
        sqlx::query!(
            r#"INSERT INTO assets (code, kind, scale, symbol, chain_id, token_address)
               VALUES ($1, 'crypto', $2, $3, $4, $5)
               ON CONFLICT DO NOTHING"#,
            wanted.code.as_str(),
            i16::from(asset.decimals),
            asset.symbol,
            chain_id,
            address,
        )
        .execute(&mut *conn)
        .await?;
        let stored = sqlx::query!(
            r#"SELECT code, kind, scale, chain_id, token_address FROM assets
               WHERE code = $1 OR (kind = 'crypto' AND chain_id = $2
                                   AND coalesce(token_address, '') = coalesce($3, ''))"#,
            wanted.code.as_str(),
            chain_id,
            address,
        )
        .fetch_all(&mut *conn)
        .await?;
        for row in &stored {
            let existing = Asset::from_row(
                &row.code,
                &row.kind,
                row.scale,
                row.chain_id,
                row.token_address.as_deref(),
            )?;
            if existing != wanted {
                return Err(MoneyError::AssetConflict {
                    code: wanted.code.to_string(),
                    existing: describe(&existing),
                });
            }
        }
        self.insert(wanted.clone())?;
        Ok(wanted)
    }

    /// Loads every on-chain asset registered in the database.
    pub async fn load(conn: &mut PgConnection) -> Result<Self, MoneyError> {
        let rows = sqlx::query!(
            r#"SELECT code, kind, scale, chain_id, token_address FROM assets
               WHERE kind = 'crypto' ORDER BY code"#
        )
        .fetch_all(conn)
        .await?;
        let registry = Self::new();
        for row in rows {
            registry.insert(Asset::from_row(
                &row.code,
                &row.kind,
                row.scale,
                row.chain_id,
                row.token_address.as_deref(),
            )?)?;
        }
        Ok(registry)
    }

    fn insert(&self, asset: Asset) -> Result<(), MoneyError> {
        let mut map = self.chain.write().unwrap_or_else(PoisonError::into_inner);
        let clash = map.values().find(|a| {
            a.code == asset.code
                || (a.chain_id() == asset.chain_id() && a.token_address() == asset.token_address())
        });
        match clash {
            Some(existing) if *existing != asset => Err(MoneyError::AssetConflict {
                code: asset.code.to_string(),
                existing: describe(existing),
            }),
            Some(_) => Ok(()),
            None => {
                map.insert(asset.code.clone(), asset);
                Ok(())
            }
        }
    }

    /// The asset named by `code`, if it is a currency or registered.
    pub fn get(&self, code: &AssetCode) -> Option<Asset> {
        if code.is_crypto() {
            let map = self.chain.read().unwrap_or_else(PoisonError::into_inner);
            return map.get(code).cloned();
        }
        Currency::parse(code.as_str()).ok().map(Asset::fiat)
    }

    /// The asset `symbol` on `chain_id` (as the API names it:
    /// `{"chain_id": 31337, "asset": "usdc"}`).
    pub fn chain_asset(&self, chain_id: u64, symbol: &str) -> Option<Asset> {
        AssetCode::chain(symbol, chain_id)
            .ok()
            .and_then(|code| self.get(&code))
    }

    /// Every registered on-chain asset.
    pub fn chain_assets(&self) -> Vec<Asset> {
        let map = self.chain.read().unwrap_or_else(PoisonError::into_inner);
        map.values().cloned().collect()
    }
}

fn describe(asset: &Asset) -> String {
    match asset.kind {
        AssetKind::Fiat => format!("{} ({} decimals)", asset.code, asset.scale),
        AssetKind::Native { .. } => format!("{} (native, {} decimals)", asset.code, asset.scale),
        AssetKind::Token { address, .. } => format!(
            "{} (token {}, {} decimals)",
            asset.code,
            address_hex(&address),
            asset.scale
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_lower_case_and_unique() {
        for pair in CURRENCIES.windows(2) {
            assert!(pair[0].0 < pair[1].0, "{:?} before {:?}", pair[0], pair[1]);
        }
        for (code, exponent) in CURRENCIES {
            assert!(code.len() == 3 && code.bytes().all(|b| b.is_ascii_lowercase()));
            assert!(*exponent <= 4);
        }
    }

    #[test]
    fn exponents_of_the_odd_ones() {
        let e = |c: &str| Currency::parse(c).unwrap().exponent();
        for c in [
            "jpy", "krw", "vnd", "clp", "isk", "ugx", "xaf", "xof", "pyg", "bif", "djf", "gnf",
            "kmf", "rwf", "vuv", "xpf", "uyi",
        ] {
            assert_eq!(e(c), 0, "{c}");
        }
        for c in ["bhd", "iqd", "jod", "kwd", "lyd", "omr", "tnd"] {
            assert_eq!(e(c), 3, "{c}");
        }
        assert_eq!(e("clf"), 4);
        assert_eq!(e("uyw"), 4);
        assert_eq!(e("usd"), 2);
        assert_eq!(e("EUR"), 2);
        assert!(Currency::parse("xau").is_err());
        assert!(Currency::parse("abc").is_err());
        assert!(Currency::parse("usdc").is_err());
    }

    #[test]
    fn asset_codes() {
        assert_eq!(AssetCode::parse("usd").unwrap().as_str(), "usd");
        assert!(
            AssetCode::parse("USD").is_err(),
            "stored codes are canonical"
        );
        let usdc = AssetCode::parse("usdc:31337").unwrap();
        assert_eq!(usdc.symbol(), "usdc");
        assert_eq!(usdc.chain_id(), Some(31337));
        assert!(usdc.is_crypto());
        for bad in [
            "usdc", "usdc:0", "usdc:01", "USDC:1", "1inch:1", "eth:", ":1", "eth:1:2",
        ] {
            assert!(AssetCode::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn registry_refuses_a_redefinition_in_memory() {
        let registry = AssetRegistry::new();
        let eth = ChainAsset::native(31337, "eth", 18).to_asset().unwrap();
        registry.insert(eth.clone()).unwrap();
        registry.insert(eth.clone()).unwrap();
        let wrong = ChainAsset::native(31337, "eth", 6).to_asset().unwrap();
        assert!(matches!(
            registry.insert(wrong),
            Err(MoneyError::AssetConflict { .. })
        ));
        let second_native = ChainAsset::native(31337, "weth", 18).to_asset().unwrap();
        assert!(registry.insert(second_native).is_err());
        assert_eq!(registry.chain_asset(31337, "eth"), Some(eth));
        assert_eq!(
            registry
                .get(&AssetCode::parse("jpy").unwrap())
                .unwrap()
                .scale,
            0
        );
        assert!(registry.chain_asset(1, "eth").is_none());
    }
}
