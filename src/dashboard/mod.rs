//! The merchant dashboard's accounts: users of a merchant with a role,
//! argon2id passwords, TOTP second factor with recovery codes, server-side
//! sessions, sign-in lockout, step-up codes for sensitive actions and an
//! append-only audit log. The pages themselves are in [`web`]; they call
//! this module and the other subsystems, never SQL.

pub mod audit_log;
pub mod config;
pub mod invites;
pub mod password;
pub mod service;
pub mod sessions;
pub mod totp;
pub mod users;
pub mod web;

pub use config::DashboardConfig;
pub use service::{Dashboard, DashboardError};

/// What a user may do (stored and displayed by its serde name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum Role {
    /// Everything, including the team and the settings.
    Admin,
    /// API keys and webhook endpoints; reads everything.
    Developer,
    /// Reads, nothing else.
    Analyst,
    /// Refunds and disputes; no keys.
    Support,
}

/// Actions the role check knows about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Refund a payment.
    Refund,
    /// Answer a dispute.
    Dispute,
    /// Create, roll or revoke API keys.
    ManageKeys,
    /// Create or change webhook endpoints, redeliver events.
    ManageWebhooks,
    /// Invite or remove users.
    ManageTeam,
    /// Payment methods, payout address, bank details.
    EditSettings,
    /// Read the audit log.
    ReadAuditLog,
}

impl Action {
    /// What the action is, as a refusal names it ("may not …").
    pub fn describe(self) -> &'static str {
        match self {
            Action::Refund => "refund payments",
            Action::Dispute => "answer disputes",
            Action::ManageKeys => "manage API keys",
            Action::ManageWebhooks => "manage webhooks",
            Action::ManageTeam => "invite users",
            Action::EditSettings => "change settings",
            Action::ReadAuditLog => "read the audit log",
        }
    }
}

impl Role {
    /// Every role, in the order pages list them.
    pub const ALL: [Role; 4] = [Role::Admin, Role::Developer, Role::Analyst, Role::Support];

    /// Whether this role may do `action`.
    pub fn may(self, action: Action) -> bool {
        matches!(
            (self, action),
            (Role::Admin, _)
                | (Role::Developer, Action::ManageKeys | Action::ManageWebhooks)
                | (Role::Support, Action::Refund | Action::Dispute)
        )
    }
}

crate::names!(Role);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles() {
        assert!(Role::Support.may(Action::Refund));
        assert!(!Role::Support.may(Action::ManageKeys));
        assert!(!Role::Analyst.may(Action::Refund));
        assert!(Role::Developer.may(Action::ManageKeys));
        assert!(!Role::Developer.may(Action::Refund));
        assert!(Role::Admin.may(Action::ManageTeam));
        for r in Role::ALL {
            assert_eq!(r.to_string().parse::<Role>(), Ok(r));
        }
    }
}
