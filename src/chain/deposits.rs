//! Deposit addresses (issue 17): where a payer who can only send to an
//! address pays, and how the watcher tells their transfers apart.
//!
//! A payment's deposit address is the CREATE2 address of a
//! `DepositForwarder` from the chain's `DepositFactory`, with a salt derived
//! from the payment id: nothing is deployed until a sweep, and the address
//! is the same for every quote of the payment on that chain, so money sent
//! after a new quote or after the payment closed still finds it. The
//! forwarder exists only within a sweep (contracts/src/DepositFactory.sol).
//!
//! # Transfer identities
//!
//! The watcher records deposits in `chain_transfers` next to the router's
//! payments, with the deposit address in the `router` column and the
//! payment's current reference in `ref`. Their `tx_log_ordinal` lives in
//! ranges of their own, so that a transaction paying through the router and
//! into a deposit address keeps one identity per payment:
//!
//! - `[0, ERC20_ORDINALS)`: the router's `PaymentReceived` logs;
//! - `[ERC20_ORDINALS, RESCAN_ORDINALS)`: ERC-20 `Transfer` logs into
//!   deposit addresses found at the watcher's step, by position among those
//!   of the transaction;
//! - `[RESCAN_ORDINALS, NATIVE_ORDINALS)`: ERC-20 `Transfer` logs into
//!   deposit addresses found by the rescan of retired addresses, by the
//!   log's index in its block (the rescan reads other addresses than the
//!   step did, so positions among a transaction's deposits would not be
//!   stable); a log the step recorded is never recorded again by the rescan;
//! - `[NATIVE_ORDINALS, …)`: native coin found by balance difference; the
//!   "transaction" is the block the difference was seen at (its hash), the
//!   ordinal the address's position among the deposits of that step.

use std::sync::LazyLock;

use alloy::primitives::{Address, B256, U256, keccak256};

use super::contracts::DepositForwarder;

/// First `tx_log_ordinal` of an ERC-20 deposit.
pub const ERC20_ORDINALS: u32 = 1 << 20;
/// First `tx_log_ordinal` of an ERC-20 deposit found by the rescan of
/// retired addresses: this plus the log's index in its block (a block holds
/// far fewer than 2^19 logs).
pub const RESCAN_ORDINALS: u32 = ERC20_ORDINALS + (1 << 19);
const _: () = assert!(ERC20_ORDINALS < RESCAN_ORDINALS && RESCAN_ORDINALS < NATIVE_ORDINALS);

/// First `tx_log_ordinal` of a native-coin deposit.
pub const NATIVE_ORDINALS: u32 = 1 << 21;

/// Most receivers in one `eth_getLogs` topic filter (providers refuse long
/// topic lists: a few hundred to a thousand entries, and request-size
/// limits), and the default of `deposit_topic_filter_max`: up to this many
/// watched addresses a step reads a token's deposits with one request per
/// block range; above it, the token's every `Transfer` (one request per
/// range too, but every log of the token) with a lookup in a hash set
/// loaded from the database. `scripts/bench deposits` measures both.
pub const TOPIC_FILTER_MAX: usize = 256;

/// keccak256 of the forwarder's creation code: the CREATE2 init code hash
/// (`DepositFactory.FORWARDER_CODE_HASH`).
pub static FORWARDER_CODE_HASH: LazyLock<B256> =
    LazyLock::new(|| keccak256(&DepositForwarder::BYTECODE[..]));

/// The CREATE2 salt of a payment's deposit address.
pub fn salt(payment_id: &str) -> B256 {
    keccak256(format!("epg.deposit:{payment_id}").as_bytes())
}

/// The deposit address of `salt` at `factory` (`DepositFactory.predict`).
pub fn address(factory: Address, salt: B256) -> Address {
    factory.create2(salt, *FORWARDER_CODE_HASH)
}

/// Whether a recorded transfer's ordinal is a deposit's.
pub fn is_deposit(tx_log_ordinal: u32) -> bool {
    tx_log_ordinal >= ERC20_ORDINALS
}

/// EIP-681 URI that pays `amount` of `token` (none: native coin) to
/// `deposit` on `chain_id`.
pub fn uri(chain_id: u64, token: Option<Address>, deposit: Address, amount: U256) -> String {
    match token {
        Some(token) => {
            format!("ethereum:{token:#x}@{chain_id}/transfer?address={deposit:#x}&uint256={amount}")
        }
        None => format!("ethereum:{deposit:#x}@{chain_id}?value={amount}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_depend_on_factory_and_payment() {
        let f1 = Address::repeat_byte(1);
        let f2 = Address::repeat_byte(2);
        let a = address(f1, salt("pay_1"));
        assert_ne!(a, address(f1, salt("pay_2")));
        assert_ne!(a, address(f2, salt("pay_1")));
        assert_eq!(a, address(f1, salt("pay_1")));
    }

    #[test]
    fn uris_follow_eip681() {
        let token = Address::repeat_byte(0xab);
        let deposit = Address::repeat_byte(0xcd);
        assert_eq!(
            uri(31337, Some(token), deposit, U256::from(25_000_000u64)),
            format!(
                "ethereum:0x{}@31337/transfer?address=0x{}&uint256=25000000",
                "ab".repeat(20),
                "cd".repeat(20)
            )
        );
        assert_eq!(
            uri(1, None, deposit, U256::from(10u64)),
            format!("ethereum:0x{}@1?value=10", "cd".repeat(20))
        );
    }

    #[test]
    fn ordinal_ranges_do_not_overlap() {
        assert!(!is_deposit(0));
        assert!(!is_deposit(ERC20_ORDINALS - 1));
        assert!(is_deposit(ERC20_ORDINALS));
        assert!(is_deposit(RESCAN_ORDINALS));
        assert!(is_deposit(NATIVE_ORDINALS));
    }
}
