//! Validation of what people type: message bodies, names, emails, URLs, tags.
//!
//! Every value crossing into the store passes through here first, so bad input is refused
//! with a precise reason before anything is written.

use crate::masking::mask_card_numbers;

/// The longest message body, in characters.
pub const MAX_BODY_CHARS: usize = 10_000;
/// The longest client message id.
pub const MAX_CLIENT_ID_CHARS: usize = 100;
const MAX_SHORT_CHARS: usize = 200;
const MAX_URL_CHARS: usize = 2_000;

/// Why a value was refused. `code()` is the stable snake_case code the API returns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("{field} must not be empty")]
    Empty { field: &'static str },
    #[error("{field} is longer than {max} characters")]
    TooLong { field: &'static str, max: usize },
    #[error("{field} contains control characters")]
    ControlChars { field: &'static str },
    #[error("{field} is not a valid {what}")]
    Format {
        field: &'static str,
        what: &'static str,
    },
}

impl Invalid {
    pub fn code(&self) -> &'static str {
        match self {
            Invalid::Empty { .. } => "empty",
            Invalid::TooLong { .. } => "too_long",
            Invalid::ControlChars { .. } => "control_characters",
            Invalid::Format { .. } => "invalid_format",
        }
    }
}

/// A message body that is non-empty, not too long, free of control characters other than
/// newlines and tabs, and has had its card numbers masked (S1). The only way to make one is
/// [`MessageBody::parse`], so an unmasked body cannot reach the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageBody(String);

impl MessageBody {
    /// `allow_empty` is for messages that carry an attachment.
    pub fn parse(raw: &str, allow_empty: bool) -> Result<Self, Invalid> {
        let field = "body";
        if raw.trim().is_empty() && !allow_empty {
            return Err(Invalid::Empty { field });
        }
        if raw.chars().count() > MAX_BODY_CHARS {
            return Err(Invalid::TooLong {
                field,
                max: MAX_BODY_CHARS,
            });
        }
        if raw
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
        {
            return Err(Invalid::ControlChars { field });
        }
        Ok(Self(mask_card_numbers(raw.trim_end())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// A client message id: the sender's idempotency key.
pub fn client_id(raw: &str) -> Result<String, Invalid> {
    let field = "client_id";
    if raw.is_empty() {
        return Err(Invalid::Empty { field });
    }
    if raw.chars().count() > MAX_CLIENT_ID_CHARS {
        return Err(Invalid::TooLong {
            field,
            max: MAX_CLIENT_ID_CHARS,
        });
    }
    if !raw
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
    {
        return Err(Invalid::Format {
            field,
            what: "client id (letters, digits, - _ . :)",
        });
    }
    Ok(raw.to_owned())
}

/// A short single-line text such as a name, a tag or a team name.
pub fn short_text(field: &'static str, raw: &str) -> Result<String, Invalid> {
    let s = raw.trim();
    if s.is_empty() {
        return Err(Invalid::Empty { field });
    }
    if s.chars().count() > MAX_SHORT_CHARS {
        return Err(Invalid::TooLong {
            field,
            max: MAX_SHORT_CHARS,
        });
    }
    if s.chars().any(char::is_control) {
        return Err(Invalid::ControlChars { field });
    }
    Ok(s.to_owned())
}

/// A longer free text (site messages, notes), newlines allowed.
pub fn long_text(field: &'static str, raw: &str, allow_empty: bool) -> Result<String, Invalid> {
    if raw.trim().is_empty() && !allow_empty {
        return Err(Invalid::Empty { field });
    }
    if raw.chars().count() > MAX_BODY_CHARS {
        return Err(Invalid::TooLong {
            field,
            max: MAX_BODY_CHARS,
        });
    }
    if raw
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
    {
        return Err(Invalid::ControlChars { field });
    }
    Ok(mask_card_numbers(raw))
}

/// A plausible email address, lower-cased. Deliverability is the mailer's business.
pub fn email(field: &'static str, raw: &str) -> Result<String, Invalid> {
    let s = short_text(field, raw)?.to_lowercase();
    let ok = match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !s.contains(char::is_whitespace)
                && s.matches('@').count() == 1
        }
        None => false,
    };
    if ok {
        Ok(s)
    } else {
        Err(Invalid::Format {
            field,
            what: "email address",
        })
    }
}

/// A phone number: digits, spaces and + - ( ) only.
pub fn phone(field: &'static str, raw: &str) -> Result<String, Invalid> {
    let s = short_text(field, raw)?;
    let digits = s.chars().filter(char::is_ascii_digit).count();
    if digits >= 3
        && s.chars()
            .all(|c| c.is_ascii_digit() || " +-().".contains(c))
    {
        Ok(s)
    } else {
        Err(Invalid::Format {
            field,
            what: "phone number",
        })
    }
}

/// An absolute http(s) URL.
pub fn url(field: &'static str, raw: &str) -> Result<String, Invalid> {
    let s = raw.trim();
    if s.is_empty() {
        return Err(Invalid::Empty { field });
    }
    if s.chars().count() > MAX_URL_CHARS {
        return Err(Invalid::TooLong {
            field,
            max: MAX_URL_CHARS,
        });
    }
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"));
    match rest {
        Some(r) if !r.is_empty() && !s.chars().any(|c| c.is_control() || c.is_whitespace()) => {
            Ok(s.to_owned())
        }
        _ => Err(Invalid::Format {
            field,
            what: "http(s) URL",
        }),
    }
}

/// An origin as browsers send it: `scheme://host[:port]`, no path.
pub fn origin(field: &'static str, raw: &str) -> Result<String, Invalid> {
    let s = url(field, raw)?.trim_end_matches('/').to_lowercase();
    let after = s.split_once("://").map(|(_, r)| r).unwrap_or("");
    if after.contains('/') || after.contains('?') || after.contains('#') {
        return Err(Invalid::Format {
            field,
            what: "origin (scheme://host[:port], no path)",
        });
    }
    Ok(s)
}

/// A tag: short, single-line, case kept but trimmed.
pub fn tag(raw: &str) -> Result<String, Invalid> {
    let t = short_text("tag", raw)?;
    if t.chars().count() > 50 {
        return Err(Invalid::TooLong {
            field: "tag",
            max: 50,
        });
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies() {
        assert_eq!(MessageBody::parse("hi", false).unwrap().as_str(), "hi");
        assert_eq!(
            MessageBody::parse("  ", false),
            Err(Invalid::Empty { field: "body" })
        );
        assert!(MessageBody::parse("", true).is_ok());
        assert_eq!(
            MessageBody::parse(&"x".repeat(MAX_BODY_CHARS + 1), false)
                .unwrap_err()
                .code(),
            "too_long"
        );
        assert_eq!(
            MessageBody::parse("a\u{0}b", false).unwrap_err().code(),
            "control_characters"
        );
        assert_eq!(
            MessageBody::parse("pay 4111 1111 1111 1111", false)
                .unwrap()
                .as_str(),
            "pay **** **** **** 1111"
        );
        assert_eq!(
            MessageBody::parse("line\nline", false).unwrap().as_str(),
            "line\nline"
        );
    }

    #[test]
    fn emails_phones_urls() {
        assert_eq!(
            email("email", " Ann@Example.COM ").unwrap(),
            "ann@example.com"
        );
        assert!(email("email", "ann").is_err());
        assert!(email("email", "ann@x").is_err());
        assert!(email("email", "a b@x.se").is_err());
        assert!(phone("phone", "+46 (0)70-123 45 67").is_ok());
        assert!(phone("phone", "call me").is_err());
        assert!(url("url", "https://example.com/a?b=c").is_ok());
        assert!(url("url", "javascript:alert(1)").is_err());
        assert_eq!(
            origin("o", "https://Shop.example.com/").unwrap(),
            "https://shop.example.com"
        );
        assert!(origin("o", "https://shop.example.com/path").is_err());
        assert!(client_id("m-1_a.b:c").is_ok());
        assert!(client_id("with space").is_err());
        assert!(client_id("").is_err());
    }
}
