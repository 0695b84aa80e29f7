//! `[dashboard]`: sign-in limits and when a fresh code is asked for.

use serde::{Deserialize, Serialize};

/// The dashboard's settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DashboardConfig {
    /// Failed sign-ins (password or code) in a row that lock a user out.
    pub max_failed_attempts: u32,
    /// How long a lockout lasts.
    pub lockout_secs: u64,
    /// Failed sign-ins one client address may make per 15 minutes, over
    /// all emails (guessing many accounts at once).
    pub failures_per_address: u32,
    /// A session ends after this long, active or not.
    pub session_ttl_secs: u64,
    /// Refunds larger than this (in the payment's smallest unit) ask for
    /// a fresh code; 0 asks for every refund.
    pub refund_step_up_above: i64,
    /// How long an invitation link works.
    pub invite_ttl_secs: u64,
    /// The JSON-RPC URL `/verify` suggests to auditors, who can type
    /// another. It is shown to anyone: a public endpoint, never one with a
    /// key in it. Empty: the auditor types one.
    pub verify_rpc_url: String,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        Self {
            max_failed_attempts: 5,
            lockout_secs: 15 * 60,
            failures_per_address: 50,
            session_ttl_secs: 12 * 3600,
            refund_step_up_above: 10_000,
            invite_ttl_secs: 7 * 24 * 3600,
            verify_rpc_url: String::new(),
        }
    }
}
