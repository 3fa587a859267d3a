//! Who a caller is, decided by the records: a verified token names a user and claims a role, and
//! the engine accepts the caller only when the clinical source knows that user and holds the
//! same role for them. The stored role, not the claim, is what every later decision reads.

use export_domain::Role;
use uuid::Uuid;

use super::{Actor, EngineError, ExportEngine};

/// Why a verified token does not identify a caller. Ids and roles only, never names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The clinical source has no user with the token's subject.
    #[error("the token's subject is no known user")]
    UnknownUser,
    /// The token's role claim is not the user's stored role.
    #[error("the token's role does not match the records")]
    RoleMismatch,
}

impl ExportEngine {
    /// The actor of a caller whose token names `user_id` and claims `claimed_role`: refused
    /// (`Unidentified`) when the clinical source has no such user or stores another role for
    /// them. The source being unreachable is an error for which `is_unavailable` holds.
    pub fn identify(&self, user_id: Uuid, claimed_role: Role) -> Result<Actor, EngineError> {
        let Some(user) = self.source.user(user_id)? else {
            return Err(EngineError::Unidentified(IdentityError::UnknownUser));
        };
        if user.role != claimed_role {
            return Err(EngineError::Unidentified(IdentityError::RoleMismatch));
        }
        Ok(Actor {
            user_id: user.id,
            role: user.role,
        })
    }
}
