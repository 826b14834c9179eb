//! The claims of a ServiceAccount token, read from its payload.
//!
//! The signature is not checked: the token comes straight from the API
//! server that signs it, and the question is what it *says* (the claims STS
//! will compare with the provider and the trust policy), not whether to
//! believe it. The token itself is never printed or kept.

use base64::Engine;
use serde_json::Value;

/// The claims doctor compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    /// `aud` as a list: JWTs carry one audience as a string, several as a list.
    pub aud: Vec<String>,
    /// `exp - iat`, when both are there.
    pub lifetime_seconds: Option<i64>,
}

/// Why a token could not be read (never quoting the token).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadToken {
    #[error("the token is not a JWT (header.payload.signature)")]
    Shape,
    #[error("the token's payload is not base64url")]
    Base64,
    #[error("the token's payload is not a JSON object")]
    Json,
    #[error("the token has no `{0}` claim")]
    Missing(&'static str),
}

pub fn claims(token: &str) -> Result<Claims, BadToken> {
    let mut parts = token.trim().split('.');
    let (Some(_), Some(payload), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(BadToken::Shape);
    };
    // base64url without padding (RFC 7515); tolerate padding all the same.
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| BadToken::Base64)?;
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(&bytes) else { return Err(BadToken::Json) };
    let text = |k: &'static str| map.get(k).and_then(Value::as_str).map(str::to_owned).ok_or(BadToken::Missing(k));
    let aud = match map.get("aud") {
        Some(Value::String(a)) => vec![a.clone()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        _ => return Err(BadToken::Missing("aud")),
    };
    let number = |k: &str| map.get(k).and_then(Value::as_i64);
    Ok(Claims {
        iss: text("iss")?,
        sub: text("sub")?,
        aud,
        lifetime_seconds: number("exp").zip(number("iat")).map(|(exp, iat)| exp - iat),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(payload: &str) -> String {
        let e = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!("{}.{}.{}", e(r#"{"alg":"RS256"}"#), e(payload), e("sig"))
    }

    #[test]
    fn claims_come_from_the_payload() {
        let t = token(
            r#"{"iss":"https://oidc.example/id/A","sub":"system:serviceaccount:a:b","aud":["sts.amazonaws.com"],"iat":100,"exp":700}"#,
        );
        let c = claims(&t).unwrap();
        assert_eq!(c.iss, "https://oidc.example/id/A");
        assert_eq!(c.sub, "system:serviceaccount:a:b");
        assert_eq!(c.aud, ["sts.amazonaws.com"]);
        assert_eq!(c.lifetime_seconds, Some(600));
        let one = claims(&token(r#"{"iss":"i","sub":"s","aud":"x"}"#)).unwrap();
        assert_eq!((one.aud, one.lifetime_seconds), (vec!["x".to_owned()], None));
    }

    #[test]
    fn bad_tokens_are_named_not_quoted() {
        assert_eq!(claims("abc"), Err(BadToken::Shape));
        assert_eq!(claims("a.!!!.c"), Err(BadToken::Base64));
        assert_eq!(claims(&token("[1]")), Err(BadToken::Json));
        assert_eq!(claims(&token(r#"{"iss":"i","aud":"x"}"#)), Err(BadToken::Missing("sub")));
    }
}
