//! Exit codes, and the one mapping of SDK errors to them and to a sentence
//! the user can act on.

use gengate_client::{Error, ErrorCode};

/// The documented exit codes of the API-user commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The task ran and failed (its credits were refunded).
    TaskFailed = 1,
    /// Usage or validation: the request was refused before or by the server.
    Usage = 2,
    /// The API key is missing, unknown, revoked, expired or lacks a scope.
    Auth = 3,
    /// The server could not be reached (or kept failing) after retries.
    Unreachable = 4,
    /// Ctrl-C while waiting; the task keeps running.
    Interrupted = 130,
}

/// A command's failure: its exit code and what to tell the user.
#[derive(Debug)]
pub struct Failure {
    pub code: Exit,
    pub message: String,
}

impl Failure {
    pub fn new(code: Exit, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Exit::Usage, format!("error: {}", message.into()))
    }

    /// Maps an SDK error; `url` names the server in the sentence.
    pub fn from_client(e: Error, url: &str) -> Self {
        match &e {
            Error::Api(api) if api.code.is_auth() => {
                let why = match api.code {
                    ErrorCode::ApiKeyMissing => "no API key was sent",
                    ErrorCode::ApiKeyRevoked => "the API key was revoked",
                    ErrorCode::ApiKeyExpired => "the API key has expired",
                    ErrorCode::ApiScopeDenied => "the API key lacks the scope this needs",
                    _ => "the API key is not known to this server",
                };
                Self::new(
                    Exit::Auth,
                    format!(
                        "The server at {url} refused the request: {why} ({}). Set GENGATE_API_KEY or \
                         pass --api-key with a valid key (an operator makes one with `gengate keys create`).",
                        api.code
                    ),
                )
            }
            Error::Api(api) if api.status >= 500 || api.status == 429 => Self::new(
                Exit::Unreachable,
                format!("error: the server at {url} kept failing after retries: {api}"),
            ),
            Error::Api(api) => Self::new(Exit::Usage, format!("error: the server refused: {api}")),
            Error::Network {
                message, attempts, ..
            } => Self::new(
                Exit::Unreachable,
                format!(
                    "error: cannot reach the gengate server at {url} ({attempts} attempts: {message}). \
                     Is it running? Set GENGATE_URL or --url to where it listens."
                ),
            ),
            Error::Decode { .. } => Self::new(Exit::Unreachable, format!("error: {e}")),
            _ => Self::usage(e.to_string()),
        }
    }
}
