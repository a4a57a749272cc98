//! `gatehouse user create|list|set-role|delete|import`: user management for operators
//! with direct database access. This is how the first admin is made.

use std::io::Read;

use clap::Subcommand;
use gatehouse_core::admin::{Actor, NewAccount, UserListQuery};
use gatehouse_core::store::UserFilter;
use gatehouse_core::Gatehouse;

use crate::config::Config;

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user. Without --password-stdin a password is generated and printed once.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        username: Option<String>,
        /// user or admin.
        #[arg(long, default_value = "user")]
        role: String,
        #[arg(long)]
        display_name: Option<String>,
        /// Read the password from standard input (one line), e.g. from a secret store.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users (all pages).
    List {
        /// Only this role.
        #[arg(long)]
        role: Option<String>,
        /// Print JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Set the role of a user, by email or id.
    SetRole {
        /// The user's email or id.
        user: String,
        /// user or admin.
        role: String,
    },
    /// Delete a user, by email or id: soft (email and username freed) unless --hard.
    Delete {
        /// The user's email or id.
        user: String,
        /// Remove the rows.
        #[arg(long)]
        hard: bool,
    },
    /// Import users from a Supabase project (its database or a JSON export of
    /// auth.users), keeping their ids and bcrypt passwords. Safe to run again: users
    /// already imported are skipped.
    Import(super::user_import::ImportArgs),
}

impl UserCommand {
    pub fn run(self, config: &Config) -> anyhow::Result<()> {
        // The import reads its source before it opens gatehouse's database.
        let command = match self {
            Self::Import(args) => return args.run(config),
            command => command,
        };
        crate::telemetry::init(config, crate::telemetry::Output::Stderr);
        super::runtime()?.block_on(async {
            let gatehouse = super::start_gatehouse(config).await?;
            let result = command.execute(&gatehouse).await;
            gatehouse.store().close().await;
            result
        })
    }

    async fn execute(self, gatehouse: &Gatehouse) -> anyhow::Result<()> {
        match self {
            Self::Create {
                email,
                username,
                role,
                display_name,
                password_stdin,
            } => {
                let password = if password_stdin {
                    let mut line = String::new();
                    std::io::stdin().read_to_string(&mut line)?;
                    Some(super::password_from(&line))
                } else {
                    None
                };
                let input = NewAccount {
                    email,
                    username,
                    password,
                    role,
                    display_name,
                    user_metadata: None,
                    app_metadata: None,
                    email_confirmed: true,
                    banned_until: None,
                };
                let (user, generated) = gatehouse
                    .admin
                    .create_account(Actor::Operator, input, &super::operator_meta())
                    .await?;
                println!(
                    "created user {} <{}> with role {}",
                    user.id,
                    user.email.unwrap_or_default(),
                    user.role
                );
                if let Some(password) = generated {
                    println!(
                        "password (shown once, store it now): {}",
                        super::reveal(&password)
                    );
                }
            }
            Self::List { role, json } => {
                let mut cursor = None;
                loop {
                    let query = UserListQuery {
                        limit: Some(100),
                        cursor,
                        filter: UserFilter {
                            role: role.clone(),
                            ..UserFilter::default()
                        },
                        ..UserListQuery::default()
                    };
                    let page = gatehouse.admin.list_users(query).await?;
                    for user in &page.users {
                        if json {
                            let line = serde_json::json!({
                                "id": user.id, "email": user.email, "username": user.username, "role": user.role,
                                "isActive": user.is_active, "createdAt": user.created_at,
                            });
                            println!("{line}");
                        } else {
                            println!(
                                "{}  {:<6} {:<8} {}{}",
                                user.id,
                                user.role,
                                if user.is_active { "active" } else { "inactive" },
                                user.email.as_deref().unwrap_or("-"),
                                user.username
                                    .as_deref()
                                    .map(|u| format!(" ({u})"))
                                    .unwrap_or_default()
                            );
                        }
                    }
                    match page.next_cursor {
                        Some(next) => cursor = Some(next),
                        None => break,
                    }
                }
            }
            Self::SetRole { user, role } => {
                let target = gatehouse.admin.find_user(&user).await?;
                let user = gatehouse
                    .admin
                    .set_role(Actor::Operator, target.id, &role, &super::operator_meta())
                    .await?;
                println!(
                    "{} <{}> now has role {}",
                    user.id,
                    user.email.unwrap_or_default(),
                    user.role
                );
            }
            Self::Delete { user, hard } => {
                let target = gatehouse.admin.find_user(&user).await?;
                gatehouse
                    .admin
                    .delete_user(Actor::Operator, target.id, hard, &super::operator_meta())
                    .await?;
                println!(
                    "{} user {}",
                    if hard { "removed" } else { "deleted" },
                    target.id
                );
            }
            // `run` hands the import to its module before a database is opened.
            Self::Import(_) => anyhow::bail!("user import reads its source first"),
        }
        Ok(())
    }
}
