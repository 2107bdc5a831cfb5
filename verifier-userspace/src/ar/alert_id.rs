//! The alert id OSSEC and Wazuh print as `<epoch>.<byte offset>`: the second field is the offset of
//! the alert's `** Alert` line in `alerts.log` (OSSEC: `ftell` just before writing the alert).

use std::{fmt, str::FromStr};

/// A parsed alert id. Only the canonical spelling is accepted (digits, no sign, no leading zero),
/// so that `to_string()` reproduces exactly the text OSSEC printed in the alert header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AlertId {
    pub epoch: u64,
    pub offset: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not an alert id of the form <epoch>.<offset>: {problem}")]
pub struct AlertIdError {
    pub text: String,
    pub problem: &'static str,
}

impl FromStr for AlertId {
    type Err = AlertIdError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fail = |problem| AlertIdError {
            text: text.chars().take(64).collect(),
            problem,
        };
        let (epoch, offset) = text.split_once('.').ok_or_else(|| fail("no '.'"))?;
        Ok(Self {
            epoch: canonical_number(epoch).ok_or_else(|| fail("bad epoch"))?,
            offset: canonical_number(offset).ok_or_else(|| fail("bad offset"))?,
        })
    }
}

impl fmt::Display for AlertId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.epoch, self.offset)
    }
}

/// Parses a decimal number written the way `printf("%ld")` writes it.
fn canonical_number(text: &str) -> Option<u64> {
    let digits_only = !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit());
    let leading_zero = text.len() > 1 && text.starts_with('0');
    if !digits_only || leading_zero {
        return None;
    }
    text.parse().ok()
}

/// Whether `text` is a rule id as OSSEC prints it (`%d`, positive).
pub fn is_rule_id(text: &str) -> bool {
    canonical_number(text).is_some_and(|number| number <= i32::MAX as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_canonical_ids() {
        let id: AlertId = "1705314211.443".parse().unwrap();
        assert_eq!(
            id,
            AlertId {
                epoch: 1_705_314_211,
                offset: 443
            }
        );
        assert_eq!(id.to_string(), "1705314211.443");
        assert_eq!("1705314151.0".parse::<AlertId>().unwrap().offset, 0);
    }

    #[test]
    fn refuses_non_canonical_ids() {
        for text in [
            "",
            ".",
            "1.",
            ".1",
            "1",
            "1.2.3",
            "+1.2",
            "1.-2",
            "01.2",
            "1.02",
            "1 .2",
            "1.2 ",
            "99999999999999999999999.1",
            "١.٢",
        ] {
            assert!(text.parse::<AlertId>().is_err(), "{text:?} accepted");
        }
    }

    #[test]
    fn rule_ids() {
        assert!(is_rule_id("550"));
        assert!(is_rule_id("200001"));
        assert!(!is_rule_id("-"));
        assert!(!is_rule_id("0550"));
        assert!(!is_rule_id("99999999999"));
    }
}
