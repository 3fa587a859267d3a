//! Bearer tokens issued by the host platform: JWTs whose subject is the user id and whose `role`
//! claim is `therapist`, `patient` or `admin`, signed with HS256 (a shared secret) or RS256 (the
//! platform's key; we hold the public half), only with the configured algorithm. Expiry is
//! required and enforced, `nbf` is enforced when present, both with a few seconds of leeway. A
//! valid token is then checked against the records: its subject must be a known user and its role
//! that user's stored role (`ExportEngine::identify`). What the user may do is export-core's to
//! decide.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use export_core::engine::{Actor, EngineError};
use export_domain::Role;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;

/// The claims the engine reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    pub role: String,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Not before, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
}

/// The largest clock leeway, in seconds, allowed on `exp` and `nbf`.
pub const MAX_LEEWAY_SECONDS: u64 = 5;

/// The shortest HS256 secret accepted, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;

/// What a token claims, once its signature and times are checked: still to be compared with the
/// records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claimed {
    pub user_id: Uuid,
    pub role: Role,
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

fn validation(algorithm: Algorithm, leeway_seconds: u64) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.leeway = leeway_seconds.min(MAX_LEEWAY_SECONDS);
    validation.set_required_spec_claims(&["exp", "sub"]);
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation
}

impl TokenVerifier {
    /// HS256 tokens signed with `secret`, of at least `MIN_SECRET_BYTES`.
    pub fn hs256(secret: &[u8], leeway_seconds: u64) -> anyhow::Result<TokenVerifier> {
        anyhow::ensure!(
            secret.len() >= MIN_SECRET_BYTES,
            "the HS256 token secret is {} bytes; at least {MIN_SECRET_BYTES} are required",
            secret.len()
        );
        Ok(TokenVerifier {
            key: DecodingKey::from_secret(secret),
            validation: validation(Algorithm::HS256, leeway_seconds),
        })
    }

    /// RS256 tokens, checked with the PEM public key `pem`.
    pub fn rs256(pem: &[u8], leeway_seconds: u64) -> anyhow::Result<TokenVerifier> {
        Ok(TokenVerifier {
            key: DecodingKey::from_rsa_pem(pem)
                .map_err(|e| anyhow::anyhow!("the token public key is not an RSA PEM key: {e}"))?,
            validation: validation(Algorithm::RS256, leeway_seconds),
        })
    }

    /// What a bearer token claims once its signature, algorithm and times are checked, or why
    /// it is refused. The claims are not yet compared with the records.
    pub fn verify(&self, token: &str) -> Result<Claimed, ApiError> {
        use jsonwebtoken::errors::ErrorKind;
        let data =
            jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map_err(|err| {
                ApiError::unauthorized(match err.kind() {
                    ErrorKind::ExpiredSignature => "the token has expired",
                    ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)",
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
        Ok(Claimed { user_id, role })
    }
}

/// The authenticated caller of a request: a verified token whose subject is a known user and
/// whose role is that user's stored role.
#[derive(Debug, Clone, Copy)]
pub struct Caller(pub Actor);

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Caller, ApiError>>>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let checked = verified(req);
        let request_id = crate::http::request_id(req);
        Box::pin(async move {
            let (state, claimed) = checked?;
            let engine = state.engine.clone();
            // The lookup reads the clinical source, a blocking database call.
            match web::block(move || engine.identify(claimed.user_id, claimed.role)).await {
                Ok(Ok(actor)) => Ok(Caller(actor)),
                Ok(Err(err)) => {
                    if let EngineError::Unidentified(reason) = &err {
                        log::info!("request {request_id}: token refused: {reason}");
                    }
                    Err(ApiError::from_engine(err, &request_id))
                }
                Err(_) => Err(ApiError::internal(
                    &request_id,
                    "a blocking task was cancelled",
                )),
            }
        })
    }
}

/// The state and what the request's bearer token claims, checked without blocking.
fn verified(req: &HttpRequest) -> Result<(web::Data<AppState>, Claimed), ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .cloned()
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
    let claimed = state.tokens.verify(token.trim())?;
    Ok((state, claimed))
}
