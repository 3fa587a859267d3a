//! Bearer tokens issued by the host platform: JWTs whose subject is the user id and whose `role`
//! claim is `therapist`, `patient` or `admin`, signed with HS256 (a shared secret) or RS256 (the
//! platform's key; we hold the public half). Expiry is required and enforced. What the user may do
//! is then export-core's to decide.

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use export_core::engine::Actor;
use export_domain::Role;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::ApiError;

/// The claims the engine reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    pub role: String,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
}

/// Checks bearer tokens.
pub struct TokenVerifier {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("algorithms", &self.validation.algorithms)
            .finish_non_exhaustive()
    }
}

fn validation(algorithm: Algorithm) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.leeway = 30;
    validation.set_required_spec_claims(&["exp", "sub"]);
    validation.validate_exp = true;
    validation
}

impl TokenVerifier {
    /// HS256 tokens signed with `secret`.
    pub fn hs256(secret: &[u8]) -> TokenVerifier {
        TokenVerifier {
            key: DecodingKey::from_secret(secret),
            validation: validation(Algorithm::HS256),
        }
    }

    /// RS256 tokens, checked with the PEM public key `pem`.
    pub fn rs256(pem: &[u8]) -> anyhow::Result<TokenVerifier> {
        Ok(TokenVerifier {
            key: DecodingKey::from_rsa_pem(pem)
                .map_err(|e| anyhow::anyhow!("the token public key is not an RSA PEM key: {e}"))?,
            validation: validation(Algorithm::RS256),
        })
    }

    /// The actor a bearer token stands for, or why it is refused.
    pub fn verify(&self, token: &str) -> Result<Actor, ApiError> {
        use jsonwebtoken::errors::ErrorKind;
        let data =
            jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map_err(|err| {
                ApiError::unauthorized(match err.kind() {
                    ErrorKind::ExpiredSignature => "the token has expired",
                    ErrorKind::InvalidSignature => "the token's signature is not valid",
                    ErrorKind::InvalidAlgorithm => "the token is signed with another algorithm",
                    ErrorKind::MissingRequiredClaim(_) => "the token lacks a required claim",
                    _ => "the token is malformed",
                })
            })?;
        let user_id = Uuid::try_parse(&data.claims.sub)
            .map_err(|_| ApiError::unauthorized("the token's subject is not a user id"))?;
        let role: Role = data
            .claims
            .role
            .parse()
            .map_err(|_| ApiError::unauthorized("the token's role is not known"))?;
        Ok(Actor { user_id, role })
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, Copy)]
pub struct Caller(pub Actor);

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Caller, ApiError>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        std::future::ready(caller(req))
    }
}

fn caller(req: &HttpRequest) -> Result<Caller, ApiError> {
    let verifier = req
        .app_data::<web::Data<crate::state::AppState>>()
        .map(|state| &state.tokens)
        .ok_or_else(|| ApiError::internal("-", "no token verifier is configured"))?;
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("send a bearer token in the Authorization header"))?;
    let text = header
        .to_str()
        .map_err(|_| ApiError::unauthorized("the Authorization header is not text"))?;
    let token = text
        .strip_prefix("Bearer ")
        .or_else(|| text.strip_prefix("bearer "))
        .ok_or_else(|| {
            ApiError::unauthorized("the Authorization header must be `Bearer <token>`")
        })?;
    verifier.verify(token.trim()).map(Caller)
}
