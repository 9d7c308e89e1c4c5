//! `lf-webhook-guard`: sign Linksfield notification bodies with the same core as the filter.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use lf_webhook_guard::body::sniff;
use lf_webhook_guard::config::{EmptyValues, Md5Options, NestedValues};
use lf_webhook_guard::{sign_md5, MediaType};

#[derive(Parser)]
#[command(
    name = "lf-webhook-guard",
    version,
    about = "Sign and check Linksfield webhook notifications"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the signature header value for a notification body (`x-lf-md5`, or with
    /// `--scheme cube` the `x-lf-signature`).
    #[command(after_help = "Examples:\n  \
        lf-webhook-guard sign --secret \"$LF_WEBHOOK_SECRET\" --body notification.json\n  \
        echo -n 'sim_id=8986&text_message=hi' | lf-webhook-guard sign --secret s3cret --body -\n  \
        lf-webhook-guard sign --scheme cube --key-id Ou8a5lyzPjN86ikmLeFC --secret-env LF_CUBE_KEY --timestamp 12345648444 --body n.json")]
    Sign {
        /// Signature scheme.
        #[arg(long, value_enum, default_value_t = SchemeArg::Md5)]
        scheme: SchemeArg,
        /// Cube: the key id (the part before `/` in x-lf-signature).
        #[arg(long, required_if_eq("scheme", "cube"))]
        key_id: Option<String>,
        /// Cube: x-lf-timestamp (epoch milliseconds); default: now.
        #[arg(long)]
        timestamp: Option<String>,
        /// Cube: x-lf-notification-version.
        #[arg(long, default_value = "1.0")]
        notification_version: String,
        /// Cube: x-lf-algo.
        #[arg(long, default_value = "HMAC-SHA1")]
        algo: String,
        /// The notification secret.
        #[arg(
            long,
            conflicts_with = "secret_env",
            required_unless_present = "secret_env"
        )]
        secret: Option<String>,
        /// Read the secret from this environment variable instead.
        #[arg(long, value_name = "VAR")]
        secret_env: Option<String>,
        /// Body file (`-` for standard input).
        #[arg(long)]
        body: PathBuf,
        /// Body encoding; `auto` treats a body starting with `{` as JSON, anything else as form.
        #[arg(long, value_enum, default_value_t = BodyKind::Auto)]
        content_type: BodyKind,
        /// Leave pairs with empty values out of the signed text (filter option `md5.empty_values: skip`).
        #[arg(long)]
        skip_empty: bool,
        /// Sign nested JSON values as their raw text (filter option `md5.nested_values: raw`).
        #[arg(long)]
        raw_nested: bool,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SchemeArg {
    Md5,
    Cube,
}

#[derive(Clone, Copy, ValueEnum)]
enum BodyKind {
    Auto,
    Json,
    Form,
}

fn read_body(path: &PathBuf) -> Result<Vec<u8>, String> {
    if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|e| format!("cannot read standard input: {e}"))?;
        Ok(buf)
    } else {
        std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    }
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Sign {
            scheme,
            key_id,
            timestamp,
            notification_version,
            algo,
            secret,
            secret_env,
            body,
            content_type,
            skip_empty,
            raw_nested,
        } => {
            let secret = match (secret, secret_env) {
                (Some(s), _) => s,
                (None, Some(var)) => std::env::var(&var)
                    .map_err(|_| format!("environment variable `{var}` is not set"))?,
                (None, None) => return Err("give --secret or --secret-env".into()),
            };
            if secret.is_empty() {
                return Err("the secret is empty".into());
            }
            let body = read_body(&body)?;
            if scheme == SchemeArg::Cube {
                let key_id = key_id.ok_or("--key-id is required with --scheme cube")?;
                let timestamp = match timestamp {
                    Some(t) => t,
                    None => std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_err(|e| e.to_string())?
                        .as_millis()
                        .to_string(),
                };
                let header = lf_webhook_guard::sign_cube(
                    &body,
                    &notification_version,
                    &algo,
                    &timestamp,
                    &key_id,
                    secret.as_bytes(),
                )
                .map_err(|r| {
                    format!(
                        "the filter would reject this request ({}: {})",
                        r.reason.category(),
                        r.detail
                    )
                })?;
                println!("{header}");
                return Ok(());
            }
            let media = match content_type {
                BodyKind::Auto => sniff(&body),
                BodyKind::Json => MediaType::Json,
                BodyKind::Form => MediaType::Form,
            };
            let opts = Md5Options {
                empty_values: if skip_empty {
                    EmptyValues::Skip
                } else {
                    EmptyValues::Keep
                },
                nested_values: if raw_nested {
                    NestedValues::Raw
                } else {
                    NestedValues::Reject
                },
            };
            let header = sign_md5(media, &body, &opts, secret.as_bytes()).map_err(|r| {
                format!(
                    "the filter would reject this body ({}: {}); hint: check the encoding with --content-type",
                    r.reason.category(),
                    r.detail
                )
            })?;
            println!("{header}");
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("lf-webhook-guard: error: {msg}");
            ExitCode::from(2)
        }
    }
}
