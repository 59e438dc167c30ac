//! `gengate generate | tasks | models | credits | files`: the command line
//! for API users, built on `gengate-client`. It talks to any server over
//! HTTP (`--url` / `GENGATE_URL`) with an API key (`--api-key` /
//! `GENGATE_API_KEY`), never to a database.

mod exit;
mod generate;
mod info;
mod params;
mod progress;
pub mod providers;
mod tasks;
mod wait;

pub use exit::{Exit, Failure};
pub use generate::{GenerateArgs, run as run_generate};
pub use info::{
    FilesCmd, ModelsArgs, credits as run_credits, files as run_files, models as run_models,
};
pub use tasks::{TasksCmd, run as run_tasks};

use gengate_client::Client;
use std::io::IsTerminal;

/// Where the API is and who is calling.
#[derive(clap::Args, Debug, Clone)]
pub struct Connection {
    /// The gengate (or any Rivya API v1) server.
    #[arg(long, env = "GENGATE_URL", default_value = gengate_client::DEFAULT_BASE_URL)]
    pub url: String,
    /// The API key (`gg_live_…`); printed by the server on its first start,
    /// or made with `gengate keys create`.
    #[arg(long, env = "GENGATE_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
}

impl Connection {
    /// A client; with `needs_key`, a missing key is refused before anything is sent.
    pub(crate) fn client(&self, needs_key: bool) -> Result<Client, Failure> {
        let key = self
            .api_key
            .as_deref()
            .map(str::trim)
            .filter(|k| !k.is_empty());
        if needs_key && key.is_none() {
            return Err(Failure::new(
                Exit::Auth,
                "No API key: set GENGATE_API_KEY or pass --api-key (the server prints a key on its \
                 first start; an operator makes more with `gengate keys create`).",
            ));
        }
        let mut b = Client::builder().base_url(&self.url);
        if let Some(k) = key {
            b = b.api_key(k);
        }
        b.build()
            .map_err(|e| Failure::new(Exit::Usage, e.to_string()))
    }
}

/// How results are shown: JSON on stdout when asked or when stdout is not
/// a terminal (scripts); a live display on stderr only when it is a terminal.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Output {
    pub json: bool,
    pub fancy: bool,
}

impl Output {
    pub(crate) fn new(json_flag: bool) -> Self {
        Self {
            json: json_flag || !std::io::stdout().is_terminal(),
            fancy: !json_flag && std::io::stderr().is_terminal(),
        }
    }

    pub(crate) fn print_json(&self, v: &impl serde::Serialize) {
        match serde_json::to_string_pretty(v) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("error: could not serialise the answer: {e}"),
        }
    }
}

/// Runs a CLI future and turns its outcome into the process exit code.
pub async fn run(f: impl std::future::Future<Output = Result<(), Failure>>) -> i32 {
    match f.await {
        Ok(()) => 0,
        Err(failure) => {
            eprintln!("{}", failure.message);
            failure.code as i32
        }
    }
}
