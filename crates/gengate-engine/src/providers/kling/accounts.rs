//! The Kling accounts file (`--kling-accounts`, TOML): one `[[account]]` table per Kling
//! account. Parsed once at start; anything wrong refuses the start with the line and the
//! field named, so a typo never silently drops an account (or its capacity).
//!
//! Secrets come inline or from the environment (`*_env`); they are kept out of `Debug`
//! so no log line or error can carry them.

use serde::Deserialize;
use std::collections::HashSet;
use toml::Spanned;
use url::Url;

/// Kling's global endpoint, as for the single-account flags.
pub const DEFAULT_BASE_URL: &str = "https://api-singapore.klingai.com";

/// One configured account, ready to build a client from.
#[derive(Clone)]
pub struct AccountConfig {
    /// Shown in logs, metrics, `/readyz` and `gengate providers status`; never in the
    /// public API.
    pub name: String,
    pub access_key: String,
    pub secret_key: String,
    pub base_url: Url,
    /// Upstream slots; 0 = learn them from Kling's 1303 answers.
    pub max_in_flight: usize,
    /// Share of new tasks when several accounts have a free slot.
    pub weight: u32,
}

impl std::fmt::Debug for AccountConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountConfig")
            .field("name", &self.name)
            .field("base_url", &self.base_url.as_str())
            .field("max_in_flight", &self.max_in_flight)
            .field("weight", &self.weight)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRaw {
    #[serde(default)]
    account: Vec<Spanned<AccountRaw>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountRaw {
    name: Spanned<String>,
    access_key: Option<Spanned<String>>,
    access_key_env: Option<Spanned<String>>,
    secret_key: Option<Spanned<String>>,
    secret_key_env: Option<Spanned<String>>,
    base_url: Option<Spanned<String>>,
    #[serde(default)]
    max_in_flight: usize,
    weight: Option<Spanned<u32>>,
}

/// Why the file was refused: where, which field, what is wrong.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("line {line}: {field}: {message}")]
pub struct AccountsFileError {
    pub line: usize,
    /// `account[2].secret_key_env`, or the TOML parser's own description.
    pub field: String,
    pub message: String,
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(1, |head| head.bytes().filter(|b| *b == b'\n').count() + 1)
}

/// Parses the file's text. `env` reads environment variables (a parameter so tests do
/// not touch the process environment).
pub fn parse(
    text: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Vec<AccountConfig>, AccountsFileError> {
    let raw: FileRaw = toml::from_str(text).map_err(|e| {
        let line = e.span().map_or(1, |s| line_of(text, s.start));
        AccountsFileError {
            line,
            field: "toml".into(),
            // The parser's message names the field (`missing field `name``, `unknown
            // field`, `invalid type`); its first lines repeat the position.
            message: e.message().trim().to_owned(),
        }
    })?;
    if raw.account.is_empty() {
        return Err(AccountsFileError {
            line: 1,
            field: "account".into(),
            message: "no [[account]] table: list at least one Kling account".into(),
        });
    }
    let mut names = HashSet::new();
    let mut out = Vec::with_capacity(raw.account.len());
    for (i, table) in raw.account.into_iter().enumerate() {
        let table_span = table.span();
        let table_line = line_of(text, table_span.start);
        let a = table.into_inner();
        let err = |span: std::ops::Range<usize>, field: &str, message: String| AccountsFileError {
            line: line_of(text, span.start),
            field: format!("account[{i}].{field}"),
            message,
        };
        let name = a.name.get_ref().trim().to_owned();
        if !valid_name(&name) {
            return Err(err(
                a.name.span(),
                "name",
                "1 to 64 characters of letters, digits, '-', '_' or '.' (it becomes a metrics label)".into(),
            ));
        }
        if !names.insert(name.clone()) {
            return Err(err(
                a.name.span(),
                "name",
                format!("{name:?} names two accounts"),
            ));
        }
        let access_key = secret(
            &a.access_key,
            &a.access_key_env,
            "access_key",
            table_line,
            i,
            text,
            &env,
        )?;
        let secret_key = secret(
            &a.secret_key,
            &a.secret_key_env,
            "secret_key",
            table_line,
            i,
            text,
            &env,
        )?;
        let base_url = match &a.base_url {
            None => Url::parse(DEFAULT_BASE_URL)
                .map_err(|e| err(table_span.clone(), "base_url", e.to_string()))?,
            Some(u) => Url::parse(u.get_ref())
                .ok()
                .filter(|url| matches!(url.scheme(), "http" | "https") && url.has_host())
                .ok_or_else(|| {
                    err(
                        u.span(),
                        "base_url",
                        format!("{:?} is not an http(s) URL", u.get_ref()),
                    )
                })?,
        };
        let weight = match &a.weight {
            None => 1,
            Some(w) if *w.get_ref() == 0 => {
                return Err(err(
                    w.span(),
                    "weight",
                    "must be at least 1 (remove the account to stop using it)".into(),
                ));
            }
            Some(w) => *w.get_ref(),
        };
        out.push(AccountConfig {
            name,
            access_key,
            secret_key,
            base_url,
            max_in_flight: a.max_in_flight,
            weight,
        });
    }
    Ok(out)
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// A key given inline or through an environment variable: exactly one of the two.
fn secret(
    inline: &Option<Spanned<String>>,
    from_env: &Option<Spanned<String>>,
    field: &str,
    table_line: usize,
    index: usize,
    text: &str,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<String, AccountsFileError> {
    let at = |span: Option<std::ops::Range<usize>>, f: String, message: String| AccountsFileError {
        line: span.map_or(table_line, |s| line_of(text, s.start)),
        field: format!("account[{index}].{f}"),
        message,
    };
    match (inline, from_env) {
        (Some(_), Some(e)) => Err(at(
            Some(e.span()),
            format!("{field}_env"),
            format!("give {field} or {field}_env, not both"),
        )),
        (None, None) => Err(at(
            None,
            field.to_owned(),
            format!("missing: set {field} or {field}_env"),
        )),
        (Some(v), None) => {
            let v = v.get_ref().trim();
            if v.is_empty() {
                return Err(at(
                    Some(inline.as_ref().map_or(0..0, |s| s.span())),
                    field.to_owned(),
                    "is empty".into(),
                ));
            }
            Ok(v.to_owned())
        }
        (None, Some(var)) => match env(var.get_ref()).map(|v| v.trim().to_owned()) {
            Some(v) if !v.is_empty() => Ok(v),
            // The variable's name is fine to print; its value never is.
            _ => Err(at(
                Some(var.span()),
                format!("{field}_env"),
                format!("environment variable {} is not set or empty", var.get_ref()),
            )),
        },
    }
}

/// Reads and parses the file at `path`.
pub fn load(path: &std::path::Path) -> anyhow::Result<Vec<AccountConfig>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("reading the Kling accounts file {}: {e}", path.display()))?;
    parse(&text, |k| std::env::var(k).ok())
        .map_err(|e| anyhow::anyhow!("the Kling accounts file {} is invalid: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(k: &str) -> Option<String> {
        match k {
            "SG_AK" => Some("ak-from-env".into()),
            "SG_SK" => Some("sk-from-env".into()),
            _ => None,
        }
    }

    const GOOD: &str = r#"
[[account]]
name = "sg-main"
access_key_env = "SG_AK"
secret_key_env = "SG_SK"
base_url = "https://api-singapore.klingai.com"
max_in_flight = 20
weight = 3

[[account]]
name = "bj.backup"
access_key = "inline-ak"
secret_key = "inline-sk"
"#;

    #[test]
    fn a_good_file_reads_keys_inline_and_from_the_environment() {
        let a = parse(GOOD, env).expect("valid");
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].name, "sg-main");
        assert_eq!(a[0].access_key, "ak-from-env");
        assert_eq!(a[0].secret_key, "sk-from-env");
        assert_eq!(a[0].max_in_flight, 20);
        assert_eq!(a[0].weight, 3);
        assert_eq!(a[1].base_url.as_str(), "https://api-singapore.klingai.com/");
        assert_eq!(a[1].max_in_flight, 0, "0 = learn from 1303");
        assert_eq!(a[1].weight, 1);
        let shown = format!("{a:?}");
        for secret in ["ak-from-env", "sk-from-env", "inline-ak", "inline-sk"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }

    fn refused(text: &str) -> AccountsFileError {
        parse(text, env).expect_err("refused")
    }

    #[test]
    fn mistakes_are_refused_with_line_and_field() {
        let e = refused(
            "[[account]]\nname = \"a\"\naccess_key = \"x\"\nsecret_key = \"y\"\nweight = \"heavy\"\n",
        );
        assert_eq!(e.line, 5, "{e}");
        assert!(e.message.contains("invalid type"), "{e}");

        let e = refused("[[account]]\naccess_key = \"x\"\nsecret_key = \"y\"\n");
        assert!(e.message.contains("name"), "{e}");

        let e = refused(
            "[[account]]\nname = \"a\"\naccess_key = \"x\"\nsecret_key = \"y\"\nregion = \"sg\"\n",
        );
        assert_eq!(e.line, 5, "{e}");
        assert!(e.message.contains("region"), "{e}");

        let e =
            refused("[[account]]\nname = \"a\"\naccess_key = \"x\"\nsecret_key_env = \"NOPE\"\n");
        assert_eq!(
            (e.line, e.field.as_str()),
            (4, "account[0].secret_key_env"),
            "{e}"
        );
        assert!(e.message.contains("NOPE"), "{e}");

        let e = refused("[[account]]\nname = \"a\"\naccess_key = \"x\"\n");
        assert_eq!(
            (e.line, e.field.as_str()),
            (1, "account[0].secret_key"),
            "{e}"
        );

        let e = refused(
            "[[account]]\nname = \"a\"\naccess_key = \"x\"\naccess_key_env = \"SG_AK\"\nsecret_key = \"y\"\n",
        );
        assert_eq!(
            (e.line, e.field.as_str()),
            (4, "account[0].access_key_env"),
            "{e}"
        );

        let two = "[[account]]\nname = \"a\"\naccess_key = \"x\"\nsecret_key = \"y\"\n\n[[account]]\nname = \"a\"\naccess_key = \"x\"\nsecret_key = \"y\"\n";
        let e = refused(two);
        assert_eq!((e.line, e.field.as_str()), (7, "account[1].name"), "{e}");

        let e =
            refused("[[account]]\nname = \"has space\"\naccess_key = \"x\"\nsecret_key = \"y\"\n");
        assert_eq!((e.line, e.field.as_str()), (2, "account[0].name"), "{e}");

        let e = refused(
            "[[account]]\nname = \"a\"\naccess_key = \"x\"\nsecret_key = \"y\"\nbase_url = \"not a url\"\n",
        );
        assert_eq!(
            (e.line, e.field.as_str()),
            (5, "account[0].base_url"),
            "{e}"
        );

        let e = refused(
            "[[account]]\nname = \"a\"\naccess_key = \"x\"\nsecret_key = \"y\"\nweight = 0\n",
        );
        assert_eq!((e.line, e.field.as_str()), (5, "account[0].weight"), "{e}");

        let e = refused("# nothing here\n");
        assert_eq!(e.field, "account");

        let e = refused("[[account]\nname = \"a\"\n");
        assert_eq!(e.line, 1, "{e}");
    }

    #[test]
    fn errors_never_carry_a_secret() {
        let e = refused(
            "[[account]]\nname = \"a b\"\naccess_key = \"AK-SECRET\"\nsecret_key = \"SK-SECRET\"\n",
        );
        let shown = e.to_string();
        assert!(
            !shown.contains("AK-SECRET") && !shown.contains("SK-SECRET"),
            "{shown}"
        );
    }
}
