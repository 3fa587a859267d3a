//! Signed download links: an HMAC-SHA256 over the job, the user and the expiry, so a link can be
//! handed to a browser or an email without a session, and still names exactly one file for one
//! person until one instant. Verifying compares the MAC in constant time; whoever serves the link
//! must still check that the user may download the job, and audit the use.

use chrono::{DateTime, Duration, Utc};
use export_domain::to_hex;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

use crate::storage::decode_hex;

/// How long a link lives unless the caller says otherwise.
pub const DEFAULT_LINK_LIFETIME: Duration = Duration::minutes(15);

/// Why a link was refused. Says nothing about which part failed beyond what the holder knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("the link is malformed")]
    Malformed,
    #[error("the link's signature is not valid")]
    BadSignature,
    #[error("the link expired at {0}")]
    Expired(DateTime<Utc>),
}

/// What a valid link grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkGrant {
    pub job_id: Uuid,
    pub user_id: Uuid,
    pub expires_at: DateTime<Utc>,
}

/// Signs and checks links with one secret.
#[derive(Clone)]
pub struct LinkSigner {
    secret: Vec<u8>,
}

impl std::fmt::Debug for LinkSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkSigner(..)")
    }
}

impl LinkSigner {
    /// A signer with `secret` (at least 32 bytes of randomness is what it deserves).
    pub fn new(secret: impl Into<Vec<u8>>) -> LinkSigner {
        LinkSigner {
            secret: secret.into(),
        }
    }

    fn mac(&self, message: &str) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes a key of any length");
        mac.update(message.as_bytes());
        mac
    }

    /// A token `job.user.expiry.signature` for `grant`.
    pub fn sign(&self, grant: &LinkGrant) -> String {
        let message = format!(
            "{}.{}.{}",
            grant.job_id.simple(),
            grant.user_id.simple(),
            grant.expires_at.timestamp()
        );
        let signature = to_hex(&self.mac(&message).finalize().into_bytes());
        format!("{message}.{signature}")
    }

    /// The grant of `token` if its signature is right and it has not expired at `now`.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<LinkGrant, LinkError> {
        let parts: Vec<&str> = token.split('.').collect();
        let [job, user, expiry, signature] = parts.as_slice() else {
            return Err(LinkError::Malformed);
        };
        let signature = decode_hex(signature)
            .filter(|s| s.len() == 32)
            .ok_or(LinkError::Malformed)?;
        let message = format!("{job}.{user}.{expiry}");
        self.mac(&message)
            .verify_slice(&signature)
            .map_err(|_| LinkError::BadSignature)?;
        let grant = LinkGrant {
            job_id: Uuid::try_parse(job).map_err(|_| LinkError::Malformed)?,
            user_id: Uuid::try_parse(user).map_err(|_| LinkError::Malformed)?,
            expires_at: expiry
                .parse::<i64>()
                .ok()
                .and_then(|seconds| DateTime::from_timestamp(seconds, 0))
                .ok_or(LinkError::Malformed)?,
        };
        if now >= grant.expires_at {
            return Err(LinkError::Expired(grant.expires_at));
        }
        Ok(grant)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn grant() -> LinkGrant {
        LinkGrant {
            job_id: Uuid::from_u128(7),
            user_id: Uuid::from_u128(9),
            expires_at: Utc.with_ymd_and_hms(2025, 5, 1, 12, 15, 0).unwrap(),
        }
    }

    #[test]
    fn a_signed_link_verifies_until_it_expires() {
        let signer = LinkSigner::new(b"a secret of the deployment, 32+ bytes".to_vec());
        let token = signer.sign(&grant());
        let before = Utc.with_ymd_and_hms(2025, 5, 1, 12, 14, 59).unwrap();
        assert_eq!(signer.verify(&token, before), Ok(grant()));
        let at = grant().expires_at;
        assert_eq!(signer.verify(&token, at), Err(LinkError::Expired(at)));
    }

    #[test]
    fn link_signature_with_sign_digits_is_refused() {
        // `u8::from_str_radix("+a", 16)` is 10, as `0a` is: a signature with `+` for the `0` of
        // a pair once decoded to the real MAC and verified.
        let signer = LinkSigner::new(b"a secret of the deployment, 32+ bytes".to_vec());
        let now = Utc.with_ymd_and_hms(2025, 5, 1, 12, 0, 0).unwrap();
        let token = signer.sign(&grant());
        let (message, signature) = token.rsplit_once('.').unwrap();
        let zero = (0..64)
            .step_by(2)
            .find(|&i| signature.as_bytes()[i] == b'0')
            .expect("this grant's signature has a pair starting with 0");
        let check = |signature: String, expect: Result<LinkGrant, LinkError>| {
            let token = format!("{message}.{signature}");
            assert_eq!(signer.verify(&token, now), expect, "{token}");
        };
        let replaced = |at: usize, with: &str| {
            let mut changed = signature.to_owned();
            changed.replace_range(at..at + 1, with);
            changed
        };
        check(signature.to_owned(), Ok(grant()));
        check(signature.to_uppercase(), Ok(grant()));
        check(replaced(zero, "+"), Err(LinkError::Malformed));
        check(replaced(zero, "-"), Err(LinkError::Malformed));
        check(replaced(zero, " "), Err(LinkError::Malformed));
    }

    #[test]
    fn tampered_forged_and_malformed_links_are_refused() {
        let signer = LinkSigner::new(b"a secret of the deployment, 32+ bytes".to_vec());
        let now = Utc.with_ymd_and_hms(2025, 5, 1, 12, 0, 0).unwrap();
        let token = signer.sign(&grant());
        // Another user, another job, a later expiry: each changes the message under the MAC.
        let other_user = token.replace(
            &Uuid::from_u128(9).simple().to_string(),
            &Uuid::from_u128(10).simple().to_string(),
        );
        let other_job = token.replacen(
            &Uuid::from_u128(7).simple().to_string(),
            &Uuid::from_u128(8).simple().to_string(),
            1,
        );
        let later = token.replace(
            &grant().expires_at.timestamp().to_string(),
            &(grant().expires_at.timestamp() + 3600).to_string(),
        );
        for forged in [other_user, other_job, later] {
            assert_eq!(
                signer.verify(&forged, now),
                Err(LinkError::BadSignature),
                "{forged}"
            );
        }
        // A link signed with another secret.
        let foreign = LinkSigner::new(b"someone else's secret".to_vec()).sign(&grant());
        assert_eq!(signer.verify(&foreign, now), Err(LinkError::BadSignature));
        for malformed in [
            "",
            "a.b.c",
            "a.b.c.d.e",
            &format!("{token}00"),
            &token.replace('.', "/"),
        ] {
            assert_eq!(
                signer.verify(malformed, now),
                Err(LinkError::Malformed),
                "{malformed}"
            );
        }
    }
}
