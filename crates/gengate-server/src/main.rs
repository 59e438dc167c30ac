//! `gengate`: the server and its operator commands.

mod remote;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use gengate_cli as cli;
use gengate_core::Timestamp;
use gengate_core::credits::LedgerKind;
use gengate_core::ids::ApiKeyId;
use gengate_core::scope::Scope;
use gengate_core::spend::SpendLimit;
use gengate_engine::operator::{NewKey, Operator};
use gengate_server::config::{DatabaseArgs, ServeConfig};
use gengate_store::RateOverrides;

#[derive(Parser)]
#[command(
    name = "gengate",
    version,
    about = "Self-hosted API platform for asynchronous AI media generation"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API, the runner and the webhook dispatcher (the default).
    Serve(Box<ServeConfig>),
    /// Apply database migrations and exit.
    Migrate(DatabaseArgs),
    /// Accounts: create, list, set (sandbox or live).
    #[command(subcommand)]
    Accounts(AccountsCmd),
    /// API keys: create, list, revoke, limit (spend limits).
    #[command(subcommand)]
    Keys(KeysCmd),
    /// Your balance via the API; operators: grant, adjust, show, audit.
    Credits(CreditsArgs),
    /// Operators of the admin API (`/api/admin/v1/`): create, list, revoke.
    #[command(subcommand)]
    Operators(OperatorsCmd),
    /// The audit log of operator actions (admin API and these commands), newest first.
    AuditLog(AuditLogArgs),
    /// Submit a generation, wait for it and download the result (API user).
    Generate(Box<cli::GenerateArgs>),
    /// Your generation tasks: list, get, wait (API user).
    #[command(subcommand)]
    Tasks(cli::TasksCmd),
    /// The server's model catalog and each model's parameters.
    Models(cli::ModelsArgs),
    /// Upload reference files through the Files API (API user).
    #[command(subcommand)]
    Files(cli::FilesCmd),
    /// Upstream providers as a running node sees them (Kling accounts: rotation, slots,
    /// submits, failures).
    #[command(subcommand)]
    Providers(cli::providers::ProvidersCmd),
    /// Development helpers: local stand-ins for upstream vendors.
    #[command(subcommand)]
    Dev(DevCmd),
}

/// Where an operator command runs: with an operator key, through a running server's
/// admin API; without one, on the database (`--database-url`/`--data-dir`).
#[derive(clap::Args, Clone, Default)]
pub struct RemoteArgs {
    /// The server whose admin API to call with the operator key [default: GENGATE_URL,
    /// else http://127.0.0.1:8080].
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// An operator key (gg_op_…): run this command through the admin API at --url
    /// instead of on the database.
    #[arg(long, env = "GENGATE_OPERATOR_KEY", hide_env_values = true)]
    operator_key: Option<String>,
}

/// `gengate dev …` (issue 5).
#[derive(Subcommand)]
enum DevCmd {
    /// Run a fake Kling API (same endpoints, envelope, JWT rules, error codes and
    /// callbacks) for local demos. Point gengate at it with GENGATE_KLING_BASE_URL and
    /// the keys below. Prompts containing `[fake:reject]` are refused (1301), ones with
    /// `[fake:moderation]` fail after processing.
    FakeKling {
        #[arg(long, default_value = "127.0.0.1:9400")]
        listen: std::net::SocketAddr,
        #[arg(long, default_value = "fake-access-key")]
        access_key: String,
        #[arg(long, default_value = "fake-secret-key")]
        secret_key: String,
        /// Tasks the fake account runs at once; one more is refused with 1303.
        #[arg(long, default_value_t = 5)]
        concurrency_limit: usize,
        /// How long a task stays `submitted`, then `processing` (milliseconds).
        #[arg(long, default_value_t = 1_000)]
        submitted_ms: u64,
        #[arg(long, default_value_t = 5_000)]
        processing_ms: u64,
        /// Do not POST status changes to callback URLs.
        #[arg(long, default_value_t = false, value_parser = clap::builder::BoolishValueParser::new())]
        no_callbacks: bool,
        /// Serve this file (e.g. a real MP4) as every result video.
        #[arg(long)]
        video_file: Option<std::path::PathBuf>,
        /// Refuse every create with this Kling code, as an account out of balance (1102)
        /// or without model access (1103) does; queries still work.
        #[arg(long)]
        refuse_creates: Option<i64>,
    },
}

#[derive(Subcommand)]
enum AccountsCmd {
    Create {
        name: String,
        /// Credits to grant at creation.
        #[arg(long, default_value_t = 0)]
        credits: i64,
        /// A sandbox account: every task runs on the sandbox provider (no
        /// upstream cost), its keys start `gg_test_`.
        #[arg(long, default_value_t = false, num_args = 0..=1, default_missing_value = "true",
              value_parser = clap::builder::BoolishValueParser::new())]
        sandbox: bool,
        #[command(flatten)]
        db: DatabaseArgs,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Change an existing account.
    Set {
        name: String,
        /// `true`: every task from now on runs on the sandbox; `false`: live.
        /// Existing keys keep working (and their prefix); new keys get the
        /// matching one.
        #[arg(long, num_args = 0..=1, default_missing_value = "true",
              value_parser = clap::builder::BoolishValueParser::new())]
        sandbox: Option<bool>,
        /// Scale every price for this account by this many percent (-20: a wholesale
        /// customer pays 80 %; 15: a reseller's margin; 0: list prices). New tasks only.
        #[arg(long, allow_negative_numbers = true, value_parser = clap::value_parser!(i32).range(-99..=1000))]
        price_adjustment: Option<i32>,
        #[command(flatten)]
        db: DatabaseArgs,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    List {
        #[command(flatten)]
        db: DatabaseArgs,
        #[command(flatten)]
        remote: RemoteArgs,
    },
}

#[derive(Subcommand)]
enum OperatorsCmd {
    /// Create an operator; its key (gg_op_…) is printed once and never stored.
    Create {
        name: String,
        /// `admin` (everything) or `viewer` (reads only).
        #[arg(long, value_parser = ["admin", "viewer"])]
        role: String,
        /// Expiry as RFC 3339, e.g. 2027-01-01T00:00:00Z.
        #[arg(long)]
        expires_at: Option<String>,
        #[command(flatten)]
        db: DatabaseArgs,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    List {
        #[command(flatten)]
        db: DatabaseArgs,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Revoke an operator's key: refused at once on every node.
    Revoke {
        name: String,
        #[command(flatten)]
        db: DatabaseArgs,
        #[command(flatten)]
        remote: RemoteArgs,
    },
}

#[derive(clap::Args)]
struct AuditLogArgs {
    /// Only this actor (an operator's name, or `cli`).
    #[arg(long)]
    actor: Option<String>,
    /// Only this action, e.g. credits.grant.
    #[arg(long)]
    action: Option<String>,
    #[arg(long, default_value_t = 50)]
    limit: u32,
    #[command(flatten)]
    db: DatabaseArgs,
    #[command(flatten)]
    remote: RemoteArgs,
}

#[derive(Subcommand)]
enum KeysCmd {
    /// Create a key; its secret is printed once and never stored.
    Create {
        /// Account name.
        #[arg(long)]
        account: String,
        #[arg(long, default_value = "key")]
        name: String,
        /// Comma-separated scopes (default: all).
        #[arg(long)]
        scopes: Option<String>,
        /// Expiry as RFC 3339, e.g. 2027-01-01T00:00:00Z.
        #[arg(long)]
        expires_at: Option<String>,
        #[arg(long)]
        rate_create_per_min: Option<u32>,
        #[arg(long)]
        rate_read_per_min: Option<u32>,
        #[arg(long)]
        rate_upload_per_min: Option<u32>,
        /// Most credits the key's tasks may hold per --spend-window (or in
        /// total); refunded tasks do not count.
        #[arg(long)]
        spend_limit: Option<i64>,
        /// Rolling window of the spend limit: `24h`, `30m`, `7d`, `90s`, or
        /// `total` (the default) for a fixed total over the key's life.
        #[arg(long, requires = "spend_limit")]
        spend_window: Option<String>,
        #[command(flatten)]
        db: DatabaseArgs,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Set or clear a key's spend limit.
    Limit {
        key_id: String,
        /// Credits per --spend-window (or in total).
        #[arg(long, conflicts_with = "clear", required_unless_present = "clear")]
        spend_limit: Option<i64>,
        #[arg(long, requires = "spend_limit")]
        spend_window: Option<String>,
        /// Remove the key's spend limit.
        #[arg(long, default_value_t = false, num_args = 0..=1, default_missing_value = "true",
              value_parser = clap::builder::BoolishValueParser::new())]
        clear: bool,
        #[command(flatten)]
        db: DatabaseArgs,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    List {
        #[arg(long)]
        account: Option<String>,
        #[command(flatten)]
        db: DatabaseArgs,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    Revoke {
        key_id: String,
        #[command(flatten)]
        db: DatabaseArgs,
        #[command(flatten)]
        remote: RemoteArgs,
    },
}

/// `gengate credits` alone asks the API for the caller's balance; its
/// subcommands are the operator's, straight on the database.
#[derive(clap::Args)]
struct CreditsArgs {
    #[command(subcommand)]
    op: Option<CreditsCmd>,
    /// JSON on stdout.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    conn: cli::Connection,
}

#[derive(Subcommand)]
enum CreditsCmd {
    /// Add credits (a `grant` ledger row).
    Grant {
        #[arg(long)]
        account: String,
        amount: i64,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        db: DatabaseArgs,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Correct a balance up or down (an `adjust` ledger row); never below zero.
    Adjust {
        #[arg(long)]
        account: String,
        #[arg(allow_hyphen_values = true)]
        delta: i64,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        db: DatabaseArgs,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Balance and ledger of an account.
    Show {
        #[arg(long)]
        account: String,
        #[command(flatten)]
        db: DatabaseArgs,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Check that every balance equals the sum of its ledger.
    Audit {
        #[command(flatten)]
        db: DatabaseArgs,
        #[command(flatten)]
        remote: RemoteArgs,
    },
}

/// jemalloc instead of glibc's malloc: a request allocates and frees many
/// small buffers, and with glibc that was a quarter of a status read's
/// instructions (docs/BENCHMARKS.md, "Round two").
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Bare `gengate` means `gengate serve` with flags from the environment.
    let command = match cli.command {
        Some(c) => c,
        None => match Cli::parse_from(["gengate", "serve"]).command {
            Some(c) => c,
            None => bail!("no command"),
        },
    };
    // API-user commands end with their own documented exit codes.
    let code = match command {
        Command::Generate(args) => cli::run(cli::run_generate(*args)).await,
        Command::Tasks(cmd) => cli::run(cli::run_tasks(cmd)).await,
        Command::Models(args) => cli::run(cli::run_models(args)).await,
        Command::Files(cmd) => cli::run(cli::run_files(cmd)).await,
        Command::Credits(CreditsArgs {
            op: None,
            json,
            conn,
        }) => cli::run(cli::run_credits(conn, json)).await,
        other => return operator(other).await,
    };
    std::process::exit(code)
}

/// The operator command's `--url`/`--operator-key`, if it is an operator command.
fn remote_args(command: &Command) -> Option<&RemoteArgs> {
    Some(match command {
        Command::Accounts(
            AccountsCmd::Create { remote, .. }
            | AccountsCmd::Set { remote, .. }
            | AccountsCmd::List { remote, .. },
        )
        | Command::Operators(
            OperatorsCmd::Create { remote, .. }
            | OperatorsCmd::List { remote, .. }
            | OperatorsCmd::Revoke { remote, .. },
        )
        | Command::AuditLog(AuditLogArgs { remote, .. })
        | Command::Keys(
            KeysCmd::Create { remote, .. }
            | KeysCmd::Limit { remote, .. }
            | KeysCmd::List { remote, .. }
            | KeysCmd::Revoke { remote, .. },
        )
        | Command::Credits(CreditsArgs {
            op:
                Some(
                    CreditsCmd::Grant { remote, .. }
                    | CreditsCmd::Adjust { remote, .. }
                    | CreditsCmd::Show { remote, .. }
                    | CreditsCmd::Audit { remote, .. },
                ),
            ..
        }) => remote,
        _ => return None,
    })
}

async fn operator(command: Command) -> anyhow::Result<()> {
    // With an operator key (--operator-key or GENGATE_OPERATOR_KEY), the operator commands
    // go to the admin API, unless the command line names a database itself: then that
    // database, as asked.
    let names_database =
        std::env::args().any(|a| a.starts_with("--database-url") || a.starts_with("--data-dir"));
    if let Some(args) = remote_args(&command) {
        let key = args.operator_key.clone().filter(|k| !k.trim().is_empty());
        if args.url.is_some() && key.is_none() && !names_database {
            bail!(
                "--url runs the command through the admin API, which needs an operator key: \
                 give --operator-key gg_op_… (or GENGATE_OPERATOR_KEY)"
            );
        }
        if !names_database && let Some(key) = key {
            let r = remote::Remote::new(args.url.clone(), key);
            if let Some(result) = remote::run(&r, &command).await {
                return result;
            }
        }
    }
    match command {
        Command::Generate(_)
        | Command::Tasks(_)
        | Command::Models(_)
        | Command::Files(_)
        | Command::Credits(CreditsArgs { op: None, .. }) => bail!("not an operator command"),
        Command::Serve(cfg) => serve(*cfg).await,
        Command::Providers(cmd) => cli::providers::run(cmd).await,
        Command::Dev(DevCmd::FakeKling {
            listen,
            access_key,
            secret_key,
            concurrency_limit,
            submitted_ms,
            processing_ms,
            no_callbacks,
            video_file,
            refuse_creates,
        }) => {
            gengate_server::telemetry::init_logging("text");
            let mut cfg = gengate_kling::fake::FakeConfig {
                access_key,
                secret_key,
                concurrency_limit,
                submitted_for: std::time::Duration::from_millis(submitted_ms),
                processing_for: std::time::Duration::from_millis(processing_ms),
                callbacks: !no_callbacks,
                ..Default::default()
            };
            if let Some(path) = video_file {
                let bytes =
                    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
                cfg.video_bytes = bytes.into();
            }
            let (ak, sk) = (cfg.access_key.clone(), cfg.secret_key.clone());
            let fake = gengate_kling::fake::FakeKling::bind(listen, cfg).await?;
            fake.set_create_refusal(refuse_creates);
            println!(
                "fake Kling listening on {}\n\nRun gengate against it with:\n\n  \
                 GENGATE_KLING_BASE_URL={} GENGATE_KLING_ACCESS_KEY={ak} GENGATE_KLING_SECRET_KEY={sk} gengate serve\n",
                fake.base_url(),
                fake.base_url()
            );
            tokio::signal::ctrl_c().await.ok();
            drop(fake);
            Ok(())
        }
        Command::Migrate(db) => {
            Operator::open(&db).await?;
            println!(
                "migrations applied to {}",
                gengate_server::config::redact_url(&db.url())
            );
            Ok(())
        }
        Command::Accounts(AccountsCmd::Create {
            name,
            credits,
            sandbox,
            db,
            ..
        }) => {
            let a = Operator::open(&db)
                .await?
                .create_account(&name, credits, sandbox)
                .await?;
            println!(
                "{}\t{}\t{} credits\t{}",
                a.id,
                a.name,
                a.balance,
                if sandbox { "sandbox" } else { "live" }
            );
            Ok(())
        }
        Command::Accounts(AccountsCmd::Set {
            name,
            sandbox,
            price_adjustment,
            db,
            ..
        }) => {
            if sandbox.is_none() && price_adjustment.is_none() {
                bail!(
                    "nothing to set: give --sandbox true|false and/or --price-adjustment PERCENT"
                );
            }
            let a = Operator::open(&db)
                .await?
                .update_account(&name, sandbox, price_adjustment)
                .await?;
            println!("{}", account_set_line(&name, a.sandbox, a.price_adjustment));
            Ok(())
        }
        Command::Accounts(AccountsCmd::List { db, .. }) => {
            for a in Operator::open(&db).await?.list_accounts().await? {
                println!(
                    "{}\t{}\t{} credits\t{}\tcreated {}",
                    a.id,
                    a.name,
                    a.balance,
                    if a.sandbox { "sandbox" } else { "live" },
                    a.created_at.rfc3339()
                );
            }
            Ok(())
        }
        Command::Keys(KeysCmd::Create {
            account,
            name,
            scopes,
            expires_at,
            rate_create_per_min,
            rate_read_per_min,
            rate_upload_per_min,
            spend_limit,
            spend_window,
            db,
            ..
        }) => {
            let op = Operator::open(&db).await?;
            let account = op.account_id(&account).await?;
            // Checked before the key exists, so a bad limit makes no key.
            let limit = spend_limit
                .map(|l| SpendLimit::parse(l, spend_window.as_deref()))
                .transpose()
                .map_err(anyhow::Error::msg)?;
            let scopes = match scopes {
                Some(s) => Scope::parse_list(&s).map_err(anyhow::Error::msg)?,
                None => Scope::ALL.to_vec(),
            };
            let expires = match expires_at {
                Some(s) => Some(
                    Timestamp::parse_rfc3339(&s)
                        .with_context(|| format!("{s:?} is not an RFC 3339 time"))?,
                ),
                None => None,
            };
            let rates = RateOverrides {
                create_per_min: rate_create_per_min,
                read_per_min: rate_read_per_min,
                upload_per_min: rate_upload_per_min,
            };
            // The secret is not shown before the limit is on the key, so
            // nothing can use the key without it.
            let k = op
                .create_key(NewKey {
                    account,
                    name,
                    scopes,
                    expires_at: expires,
                    rates,
                    spend_limit: limit,
                })
                .await?;
            println!("key id:  {}", k.record.id);
            if let Some(l) = limit {
                println!("limit:   {}", l.describe());
            }
            println!(
                "scopes:  {}",
                k.record
                    .scopes
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            );
            println!("secret:  {}", k.secret);
            println!("(the secret is shown once; gengate keeps only its hash)");
            Ok(())
        }
        Command::Keys(KeysCmd::List { account, db, .. }) => {
            let op = Operator::open(&db).await?;
            let account = match account {
                Some(a) => Some(op.account_id(&a).await?),
                None => None,
            };
            for k in op.list_keys(account.as_ref()).await? {
                let state = if k.revoked_at.is_some() {
                    "revoked".to_owned()
                } else if let Some(e) = k.expires_at {
                    format!("expires {}", e.rfc3339())
                } else {
                    "active".to_owned()
                };
                let limit = match k.spend_limit {
                    Some(l) => format!("spent {} of {}", op.key_spent(&k).await?, l.describe()),
                    None => "no spend limit".to_owned(),
                };
                println!(
                    "{}\t{}…\t{}\t{}\t{}\t{}",
                    k.id,
                    k.visible_prefix,
                    k.name,
                    state,
                    k.scopes
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(","),
                    limit
                );
            }
            Ok(())
        }
        Command::Keys(KeysCmd::Limit {
            key_id,
            spend_limit,
            spend_window,
            clear,
            db,
            ..
        }) => {
            let op = Operator::open(&db).await?;
            let id = ApiKeyId::parse(&key_id)
                .with_context(|| format!("{key_id:?} is not a key id (key_…)"))?;
            let limit = match (clear, spend_limit) {
                (true, _) | (false, None) => None,
                (false, Some(l)) => Some(
                    SpendLimit::parse(l, spend_window.as_deref()).map_err(anyhow::Error::msg)?,
                ),
            };
            op.set_key_limit(&id, limit).await?;
            match limit {
                Some(l) => println!("{key_id}: at most {}", l.describe()),
                None => println!("{key_id}: no spend limit"),
            }
            Ok(())
        }
        Command::Keys(KeysCmd::Revoke { key_id, db, .. }) => {
            let op = Operator::open(&db).await?;
            let id = ApiKeyId::parse(&key_id)
                .with_context(|| format!("{key_id:?} is not a key id (key_…)"))?;
            op.revoke_key(&id).await?;
            println!("revoked {key_id}");
            Ok(())
        }
        Command::Credits(CreditsArgs {
            op:
                Some(CreditsCmd::Grant {
                    account,
                    amount,
                    reason,
                    db,
                    ..
                }),
            ..
        }) => {
            let b = Operator::open(&db)
                .await?
                .change_credits(&account, LedgerKind::Grant, amount, &reason)
                .await?;
            println!("balance {b}");
            Ok(())
        }
        Command::Credits(CreditsArgs {
            op:
                Some(CreditsCmd::Adjust {
                    account,
                    delta,
                    reason,
                    db,
                    ..
                }),
            ..
        }) => {
            let b = Operator::open(&db)
                .await?
                .change_credits(&account, LedgerKind::Adjust, delta, &reason)
                .await?;
            println!("balance {b}");
            Ok(())
        }
        Command::Credits(CreditsArgs {
            op: Some(CreditsCmd::Show { account, db, .. }),
            ..
        }) => {
            let (balance, ledger) = Operator::open(&db).await?.statement(&account).await?;
            println!("balance {balance}");
            for e in ledger {
                println!(
                    "{}\t{:>7}\t{:+}\t→ {}\t{}\t{}",
                    e.created_at.rfc3339(),
                    e.kind.as_str(),
                    e.amount,
                    e.balance_after,
                    e.task_id.map(|t| t.to_string()).unwrap_or_default(),
                    e.reason
                );
            }
            Ok(())
        }
        Command::Operators(OperatorsCmd::Create {
            name,
            role,
            expires_at,
            db,
            ..
        }) => {
            let role = gengate_core::operator::OperatorRole::parse(&role)
                .with_context(|| format!("{role:?} is not a role (admin or viewer)"))?;
            let expires = match expires_at {
                Some(s) => Some(
                    Timestamp::parse_rfc3339(&s)
                        .with_context(|| format!("{s:?} is not an RFC 3339 time"))?,
                ),
                None => None,
            };
            let (op, secret) = Operator::open(&db)
                .await?
                .create_operator(&name, role, expires)
                .await?;
            println!("{}\t{}\t{}", op.id, op.name, op.role);
            println!("operator key (shown once; it works only on /api/admin/v1/):\n{secret}");
            Ok(())
        }
        Command::Operators(OperatorsCmd::List { db, .. }) => {
            for o in Operator::open(&db).await?.list_operators().await? {
                let state = match (o.revoked_at, o.expires_at) {
                    (Some(t), _) => format!("revoked {}", t.rfc3339()),
                    (None, Some(t)) => format!("expires {}", t.rfc3339()),
                    (None, None) => "active".to_owned(),
                };
                println!(
                    "{}\t{}\t{}\t{}…\t{}\tlast used {}",
                    o.id,
                    o.name,
                    o.role,
                    o.visible_prefix,
                    state,
                    o.last_used_at.map_or("never".to_owned(), |t| t.rfc3339())
                );
            }
            Ok(())
        }
        Command::Operators(OperatorsCmd::Revoke { name, db, .. }) => {
            Operator::open(&db).await?.revoke_operator(&name).await?;
            println!("operator {name} revoked: its key is refused from now on");
            Ok(())
        }
        Command::AuditLog(AuditLogArgs {
            actor,
            action,
            limit,
            db,
            ..
        }) => {
            let filter = gengate_store::operators::AuditFilter {
                actor,
                action,
                limit,
                ..Default::default()
            };
            for e in Operator::open(&db).await?.audit_log(&filter).await? {
                println!(
                    "{}",
                    audit_line(
                        &e.at.rfc3339(),
                        &e.actor,
                        &e.action,
                        &e.target,
                        e.before.as_ref(),
                        e.after.as_ref()
                    )
                );
            }
            Ok(())
        }
        Command::Credits(CreditsArgs {
            op: Some(CreditsCmd::Audit { db, .. }),
            ..
        }) => {
            let bad = Operator::open(&db).await?.audit().await?;
            if bad.is_empty() {
                println!("ok: every balance equals the sum of its ledger");
                Ok(())
            } else {
                for m in &bad {
                    println!(
                        "MISMATCH {}: balance {} ledger {}",
                        m.account_id, m.balance, m.ledger_sum
                    );
                }
                bail!("{} account(s) do not balance", bad.len())
            }
        }
    }
}

async fn serve(cfg: ServeConfig) -> anyhow::Result<()> {
    gengate_server::telemetry::init_logging(&cfg.log_format);
    tracing::info!(config = %cfg.redacted(), "starting gengate");
    let running = gengate_server::app::start(&cfg).await?;
    println!("{}", banner(&cfg, &running));
    tokio::signal::ctrl_c().await.ok();
    tracing::info!("shutting down");
    running.shutdown().await;
    Ok(())
}

/// One audit-log line as `gengate audit-log` prints it, from the database or the API.
fn audit_line(
    at: &str,
    actor: &str,
    action: &str,
    target: &str,
    before: Option<&serde_json::Value>,
    after: Option<&serde_json::Value>,
) -> String {
    let json = |v: Option<&serde_json::Value>| {
        v.filter(|v| !v.is_null())
            .map_or("-".to_owned(), |v| v.to_string())
    };
    format!(
        "{at}\t{actor}\t{action}\t{target}\tbefore {}\tafter {}",
        json(before),
        json(after)
    )
}

/// What the operator reads first: where the server is, the key on a first
/// start, and how to get a video out of it — naming the provider that will
/// really run it (a Kling task costs money on the Kling account).
fn banner(cfg: &ServeConfig, running: &gengate_server::app::Running) -> String {
    let base = format!("http://{}", running.addr);
    let operator = running
        .bootstrap_operator
        .as_ref()
        .map(|k| {
            format!(
                "\nFirst start: created operator \"admin\" (role admin). Its operator key is shown only this once:\n\n    {k}\n\n\
                 Operator console: open {base}/admin in a browser and sign in with that key.\n\
                 It works only there and on the admin API ({base}/api/admin/v1/, described at {base}/api/admin/v1/openapi.json):\n\n\
                 curl -sS {base}/api/admin/v1/accounts -H 'Authorization: Bearer {k}'\n"
            )
        })
        .unwrap_or_default();
    let Some(key) = &running.bootstrap else {
        return operator
            + &format!(
                "gengate is listening on {base} (web console: {base}/ · operator console: {base}/admin · API docs: {base}/docs)\n\
             Try it: GENGATE_URL={base} GENGATE_API_KEY=<your key> {} generate \"A lighthouse at dusk\" --out lighthouse.mp4",
                self_command()
            );
    };
    let catalog = running.engine.catalog.current();
    let provider = match catalog.get("kling-3-0") {
        Some(model) => running.engine.providers.provider_for(model),
        None => "sandbox".to_owned(),
    };
    let runs_on = if provider == "sandbox" {
        "on the built-in sandbox provider, which renders a real MP4 offline".to_owned()
    } else if let Some(file) = &cfg.engine.kling.kling_accounts {
        format!(
            "on the {provider} upstream, on the accounts of {}; each task is charged on the account that runs it",
            file.display()
        )
    } else {
        format!(
            "on the {provider} upstream ({}); each task is charged on that account",
            cfg.engine.kling.kling_base_url
        )
    };
    let secret = &key.secret;
    let exe = self_command();
    format!(
        "\n\
        gengate is listening on {base}\n\n\
        First start: created account \"default\" with {credits} credits and an API key with every scope.\n\
        The key is shown only this once — keep it:\n\n    {secret}\n\n\
        Web console: open {base}/ in a browser and sign in with that key.\n\n\
        Kling 3.0 (kling-3-0) runs {runs_on}.\n\n\
        Submit a generation, wait for it and download the video in one command:\n\n    \
        GENGATE_URL={base} GENGATE_API_KEY={secret} \\\n      {exe} generate \"A lighthouse at dusk\" --duration 5 --out lighthouse.mp4\n\n\
        Or with curl — submit:\n\n\
        curl -sS {base}/api/v1/generations \\\n  -H 'Authorization: Bearer {secret}' \\\n  -H 'Content-Type: application/json' \\\n  -H 'Idempotency-Key: first-try' \\\n  -d '{{\"model\": \"kling-3-0\", \"prompt\": \"A cinematic product reveal with smooth camera movement\", \"params\": {{\"mode\": \"std\", \"duration\": \"5\", \"aspect_ratio\": \"16:9\"}}}}'\n\n\
        then wait with the id it returns (each call waits up to 60 s for the next status change;\n\
        repeat until \"status\" is \"succeeded\" or \"failed\", then download result.primary_url):\n\n\
        curl -sS '{base}/api/v1/generations/TASK_ID?wait=60' -H 'Authorization: Bearer {secret}'\n{operator}",
        credits = cfg.engine.bootstrap_credits,
    )
}

/// How to run this same binary again from the operator's shell: a path
/// relative to the working directory when it is below it
/// (`./target/release/gengate` after `cargo run`), else the absolute path.
fn self_command() -> String {
    let Ok(exe) = std::env::current_exe() else {
        return "gengate".to_owned();
    };
    let shown = std::env::current_dir()
        .ok()
        .and_then(|cwd| {
            exe.strip_prefix(cwd)
                .ok()
                .map(|p| format!("./{}", p.display()))
        })
        .unwrap_or_else(|| exe.display().to_string());
    if shown.contains(' ') {
        format!("'{shown}'")
    } else {
        shown
    }
}

/// What `accounts set` prints, the same on the database and through the admin API.
pub(crate) fn account_set_line(name: &str, sandbox: bool, price_adjustment: i32) -> String {
    format!(
        "{name} is now {}; prices {}",
        if sandbox {
            "a sandbox account: its tasks run on the sandbox provider"
        } else {
            "live: its tasks run on each model's configured provider"
        },
        if price_adjustment == 0 {
            "at list".to_owned()
        } else {
            format!("at list {price_adjustment:+}%")
        }
    )
}
