//! Building, pricing and signing one transfer, and reading what an
//! endpoint says to a broadcast.

use alloy::consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy::eips::eip2718::Encodable2718;
use alloy::network::TxSignerSync;
use alloy::primitives::{Address, B256, Bytes, TxKind, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::TransactionRequest;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolCall;

use super::ChainSend;
use crate::chain::config::ChainConfig;
use crate::chain::contracts::DevStablecoin;

/// The call a send's transactions make: a transfer of its money, or a
/// contract call.
#[derive(Debug, Clone)]
pub(super) struct TransferCall {
    to: Address,
    value: U256,
    input: Bytes,
}

impl TransferCall {
    /// As a request for gas estimation.
    pub(super) fn request(&self, from: Address) -> TransactionRequest {
        TransactionRequest::default()
            .from(from)
            .to(self.to)
            .value(self.value)
            .input(self.input.clone().into())
    }
}

/// A value transfer for the native coin; ERC-20 `transfer(to, amount)`
/// otherwise (the standard ABI, as compiled into the devnet token).
pub(super) fn transfer_call(send: &ChainSend) -> TransferCall {
    if let Some(input) = &send.input {
        // A sweep: its own call of the deposit factory.
        return TransferCall {
            to: send.to,
            value: U256::ZERO,
            input: input.clone(),
        };
    }
    let amount = U256::from(u128::try_from(send.amount.units()).unwrap_or(0));
    if send.token == Address::ZERO {
        TransferCall {
            to: send.to,
            value: amount,
            input: Bytes::new(),
        }
    } else {
        TransferCall {
            to: send.token,
            value: U256::ZERO,
            input: DevStablecoin::transferCall {
                to: send.to,
                value: amount,
            }
            .abi_encode()
            .into(),
        }
    }
}

/// A contract call with no value (an anchor).
pub(super) fn contract_call(to: Address, input: Vec<u8>) -> TransferCall {
    TransferCall {
        to,
        value: U256::ZERO,
        input: input.into(),
    }
}

/// Estimated gas plus a fifth: estimates are exact for the state they ran
/// on, and a token's storage may change before the transaction is mined.
pub(super) fn with_margin(estimate: u64) -> u64 {
    estimate.saturating_add(estimate / 5).max(21_000)
}

/// EIP-1559 fees of one transaction, in wei.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fees {
    /// `maxFeePerGas`.
    pub max_fee_per_gas: u128,
    /// `maxPriorityFeePerGas`.
    pub max_priority_fee_per_gas: u128,
}

const GWEI: u128 = 1_000_000_000;

impl Fees {
    /// The chain's current estimate (fee history), capped.
    pub(super) async fn current(
        provider: &DynProvider,
        chain: &ChainConfig,
    ) -> Result<Fees, alloy::transports::TransportError> {
        let estimate = provider.estimate_eip1559_fees().await?;
        Ok(Fees {
            max_fee_per_gas: estimate.max_fee_per_gas,
            max_priority_fee_per_gas: estimate.max_priority_fee_per_gas,
        }
        .capped(chain))
    }

    fn capped(self, chain: &ChainConfig) -> Fees {
        let cap = u128::from(chain.max_fee_per_gas_gwei).saturating_mul(GWEI);
        let max_fee_per_gas = self.max_fee_per_gas.min(cap);
        Fees {
            max_fee_per_gas,
            max_priority_fee_per_gas: self.max_priority_fee_per_gas.min(max_fee_per_gas),
        }
    }

    /// Fees for a replacement: a quarter more than these (nodes want at
    /// least a tenth more of both), and at least `current`; `None` when
    /// the cap leaves no room to raise them.
    pub(super) fn bumped(self, current: Fees, chain: &ChainConfig) -> Option<Fees> {
        let up = |v: u128| v.saturating_add(v.div_ceil(4)).max(v.saturating_add(1));
        let next = Fees {
            max_fee_per_gas: up(self.max_fee_per_gas).max(current.max_fee_per_gas),
            max_priority_fee_per_gas: up(self.max_priority_fee_per_gas)
                .max(current.max_priority_fee_per_gas),
        }
        .capped(chain);
        // Below a tenth more of either, the endpoint would refuse it.
        let enough = |new: u128, old: u128| new >= old.saturating_add(old.div_ceil(10));
        (enough(next.max_fee_per_gas, self.max_fee_per_gas)
            && enough(next.max_priority_fee_per_gas, self.max_priority_fee_per_gas))
        .then_some(next)
    }
}

/// A signed transaction.
#[derive(Debug, Clone)]
pub(super) struct Signed {
    pub hash: B256,
    /// EIP-2718 envelope, as broadcast.
    pub raw: Vec<u8>,
    pub nonce: u64,
    pub gas_limit: u64,
    pub fees: Fees,
}

/// Signs `call` as an EIP-1559 transaction.
pub(super) fn sign(
    signer: &PrivateKeySigner,
    chain_id: u64,
    nonce: u64,
    gas_limit: u64,
    fees: Fees,
    call: &TransferCall,
) -> Result<Signed, alloy::signers::Error> {
    let mut tx = TxEip1559 {
        chain_id,
        nonce,
        gas_limit,
        max_fee_per_gas: fees.max_fee_per_gas,
        max_priority_fee_per_gas: fees.max_priority_fee_per_gas,
        to: TxKind::Call(call.to),
        value: call.value,
        access_list: Default::default(),
        input: call.input.clone(),
    };
    let signature = signer.sign_transaction_sync(&mut tx)?;
    let envelope = TxEnvelope::from(tx.into_signed(signature));
    Ok(Signed {
        hash: *envelope.tx_hash(),
        raw: envelope.encoded_2718(),
        nonce,
        gas_limit,
        fees,
    })
}

/// What an endpoint said to a broadcast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Broadcast {
    /// In the mempool now.
    Accepted,
    /// It already had it.
    Known,
    /// The nonce is already mined (ours or another's).
    NonceUsed(String),
    /// A transaction at that nonce pays more (a replacement too cheap).
    Underpriced(String),
    /// Refused for good as it stands, by one of the few answers that say
    /// the transaction is invalid in itself (funds, intrinsic gas, sender,
    /// chain id), so this endpoint did not take it.
    Rejected(String),
    /// No answer, or an answer the node does not recognise: it may or may
    /// not be in a mempool, and may be mined. Tracked like a sent one.
    Unknown(String),
}

/// The only answers to `eth_sendRawTransaction` taken to mean the
/// transaction was refused (geth, reth, anvil and hosted endpoints word
/// them so). Anything else, an "existing tx with same hash" of another
/// client, a gateway's "context deadline exceeded", a proxy's reset, leaves
/// the outcome unknown: treating those as refusals gave the nonce back
/// while the transaction was on its way to be mined, and the send was paid
/// twice.
const REFUSALS: &[&str] = &[
    "insufficient funds",
    "intrinsic gas too low",
    "invalid sender",
    "invalid chain id",
];

impl Broadcast {
    /// Sorts an error of `eth_sendRawTransaction`. Endpoints word these
    /// differently (geth, reth, anvil, providers); the phrases below are
    /// the ones they share.
    pub(super) fn classify(error: &alloy::transports::TransportError) -> Broadcast {
        let Some(response) = error.as_error_resp() else {
            return Broadcast::Unknown(error.to_string());
        };
        let message = response.message.to_string();
        let lower = message.to_ascii_lowercase();
        if lower.contains("already known")
            || lower.contains("known transaction")
            || lower.contains("already imported")
            || lower.contains("already exists")
        {
            Broadcast::Known
        } else if lower.contains("nonce too low") || lower.contains("nonce has already been used") {
            Broadcast::NonceUsed(message)
        } else if lower.contains("underpriced") {
            Broadcast::Underpriced(message)
        } else if REFUSALS.iter().any(|r| lower.contains(r)) {
            Broadcast::Rejected(message)
        } else {
            Broadcast::Unknown(message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(cap_gwei: u64) -> ChainConfig {
        toml::from_str(&format!(
            r#"
            chain_id = 1
            http_url = "http://127.0.0.1:8545"
            confirmations = 1
            router = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
            anchor = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"
            treasury = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
            max_fee_per_gas_gwei = {cap_gwei}
            "#
        ))
        .unwrap()
    }

    #[test]
    fn a_bump_raises_both_fees_by_a_quarter_or_to_the_current_estimate() {
        let old = Fees {
            max_fee_per_gas: 40 * GWEI,
            max_priority_fee_per_gas: 2 * GWEI,
        };
        let low = Fees {
            max_fee_per_gas: GWEI,
            max_priority_fee_per_gas: GWEI / 10,
        };
        let bumped = old.bumped(low, &chain(1000)).unwrap();
        assert_eq!(bumped.max_fee_per_gas, 50 * GWEI);
        assert_eq!(bumped.max_priority_fee_per_gas, 2 * GWEI + GWEI / 2);
        let high = Fees {
            max_fee_per_gas: 90 * GWEI,
            max_priority_fee_per_gas: 5 * GWEI,
        };
        assert_eq!(old.bumped(high, &chain(1000)).unwrap(), high);
    }

    #[test]
    fn no_bump_when_the_cap_leaves_less_than_a_tenth() {
        let old = Fees {
            max_fee_per_gas: 95 * GWEI,
            max_priority_fee_per_gas: 2 * GWEI,
        };
        assert_eq!(old.bumped(old, &chain(100)), None);
        let room = old.bumped(old, &chain(200)).unwrap();
        assert_eq!(room.max_fee_per_gas, 95 * GWEI + 95 * GWEI / 4);
    }

    #[test]
    fn zero_fees_still_rise() {
        let zero = Fees {
            max_fee_per_gas: 0,
            max_priority_fee_per_gas: 0,
        };
        let next = zero.bumped(zero, &chain(1000)).unwrap();
        assert_eq!(next.max_fee_per_gas, 1);
        assert_eq!(next.max_priority_fee_per_gas, 1);
    }

    fn answered(message: &str) -> Broadcast {
        let payload =
            serde_json::from_value(serde_json::json!({"code": -32000, "message": message}))
                .unwrap();
        Broadcast::classify(&alloy::transports::TransportError::ErrorResp(payload))
    }

    #[test]
    fn only_a_short_list_of_answers_counts_as_refused() {
        for refused in [
            "insufficient funds for gas * price + value",
            "Insufficient funds for gas * price + value",
            "intrinsic gas too low",
            "invalid sender",
            "invalid chain id for signer",
        ] {
            assert!(
                matches!(answered(refused), Broadcast::Rejected(_)),
                "{refused}"
            );
        }
        for unknown in [
            "existing tx with same hash",
            "context deadline exceeded",
            "upstream connect error or disconnect/reset before headers",
            "internal error",
            "max fee per gas less than block base fee",
        ] {
            assert!(
                matches!(answered(unknown), Broadcast::Unknown(_)),
                "{unknown}"
            );
        }
        assert_eq!(answered("already known"), Broadcast::Known);
        assert!(matches!(answered("nonce too low"), Broadcast::NonceUsed(_)));
        assert!(matches!(
            answered("replacement transaction underpriced"),
            Broadcast::Underpriced(_)
        ));
    }

    #[test]
    fn margins_never_go_below_a_plain_transfer() {
        assert_eq!(with_margin(50_000), 60_000);
        assert_eq!(with_margin(0), 21_000);
    }
}
