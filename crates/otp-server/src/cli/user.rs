//! `otp user add`, `otp user reset` and `otp static-token add`.

use std::io::BufRead;

use clap::{Args, Subcommand};
use zeroize::Zeroizing;

use super::session::{Mail, Session};
use super::{Failure, GlobalArgs, Streams};
use crate::app::NewUser;

/// What `--user` means, for the help of every option that takes a user.
pub(crate) const USER_HELP: &str = "The user: a username of the server's users, or a user key. \
    A value of digits only is always a key (the server's user id: no username is digits only); \
    any other value is the username of a user if one has it, in any case, else a key as given";

/// The subcommands of `otp user`.
#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user of the reference server
    ///
    /// Prints "added user USERNAME (key ID)"; without --password-stdin, also a new random
    /// password, shown this once.
    Add(UserAddArgs),
    /// Restore a user's failure budget (after the account was locked by failed verifications)
    /// and their challenges of the hour
    Reset(UserResetArgs),
}

/// Arguments of `otp user add`.
#[derive(Args)]
pub struct UserAddArgs {
    /// The username, stored in Unicode form NFKC: 1 to 64 characters, no control, invisible
    /// or text-direction characters, letters of one script, no white space at either end, not
    /// digits only; unique regardless of case
    #[arg(value_name = "USERNAME")]
    pub username: String,
    /// The user's email address
    #[arg(long, value_name = "ADDRESS")]
    pub email: Option<String>,
    /// Read the password (8 to 1024 characters) from the first line of standard input instead
    /// of generating one
    #[arg(long)]
    pub password_stdin: bool,
    /// Let the user use the admin pages
    #[arg(long)]
    pub staff: bool,
}

/// Arguments of `otp user reset`.
#[derive(Args)]
pub struct UserResetArgs {
    /// The user: a username, or a user key (see 'otp user add')
    #[arg(long, value_name = "USER", long_help = USER_HELP)]
    pub user: String,
}

/// The subcommands of `otp static-token`.
#[derive(Subcommand)]
pub enum StaticTokenCommand {
    /// Add a code to the user's backup-code device, creating the device if the user has none,
    /// and print the code
    Add(StaticTokenAddArgs),
}

/// Arguments of `otp static-token add`.
#[derive(Args)]
pub struct StaticTokenAddArgs {
    /// The user: a username, or a user key (see 'otp user add')
    #[arg(long, value_name = "USER", long_help = USER_HELP)]
    pub user: String,
    /// The code to add: 8 to 32 of 0-9 and a-z without i, l, o and u (case, spaces and dashes
    /// ignored) [default: a new random code]
    #[arg(long, value_name = "CODE")]
    pub token: Option<String>,
}

pub(super) fn run(
    command: UserCommand,
    global: &GlobalArgs,
    streams: &mut Streams<'_>,
) -> Result<(), Failure> {
    let args = match command {
        UserCommand::Add(args) => return add(args, global, streams),
        UserCommand::Reset(args) => args,
    };
    let session = Session::open(global, Mail::None)?;
    let user = session.user_key(&args.user)?;
    let otp = session.otp();
    let failures = session.block_on(async {
        let failures = otp.account_failures(&user).await?;
        otp.reset_account(&user).await?;
        Ok::<_, otp_core::Error>(failures)
    })?;
    writeln!(
        streams.out,
        "cleared {failures} failed verification{} of the account",
        if failures == 1 { "" } else { "s" }
    )
    .map_err(Failure::stdout)
}

pub(super) fn run_static_token(
    command: StaticTokenCommand,
    global: &GlobalArgs,
    streams: &mut Streams<'_>,
) -> Result<(), Failure> {
    let StaticTokenCommand::Add(args) = command;
    let session = Session::open(global, Mail::None)?;
    let user = session.user_key(&args.user)?;
    let (_, code) =
        session.block_on(session.otp().add_static_token(&user, args.token.as_deref()))?;
    writeln!(streams.out, "{code}").map_err(Failure::stdout)
}

/// The symbols of generated passwords: letters and digits without the look-alikes 0, O, 1, l
/// and I.
const PASSWORD_ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
/// The length of generated passwords: 20 of 57 symbols, about 116 bits.
const PASSWORD_LEN: usize = 20;

/// A new random password.
fn generate_password() -> Zeroizing<String> {
    let mut password = Zeroizing::new(String::with_capacity(PASSWORD_LEN));
    // Rejection sampling: bytes at or above the largest multiple of the alphabet's size
    // would make some symbols likelier than others.
    let limit = 256 - 256 % PASSWORD_ALPHABET.len();
    while password.len() < PASSWORD_LEN {
        let mut bytes = Zeroizing::new([0u8; 32]);
        getrandom::fill(bytes.as_mut())
            .expect("the operating system random number generator failed");
        for &byte in bytes.iter() {
            if usize::from(byte) < limit && password.len() < PASSWORD_LEN {
                password.push(char::from(
                    PASSWORD_ALPHABET[usize::from(byte) % PASSWORD_ALPHABET.len()],
                ));
            }
        }
    }
    password
}

/// The first line of standard input, without its line ending.
fn password_from_stdin() -> Result<Zeroizing<String>, Failure> {
    let mut line = Zeroizing::new(String::new());
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|error| Failure::System(format!("cannot read standard input: {error}")))?;
    let trimmed = line
        .strip_suffix('\n')
        .map(|rest| rest.strip_suffix('\r').unwrap_or(rest))
        .unwrap_or(&line);
    if trimmed.is_empty() {
        return Err(Failure::Usage(
            "--password-stdin: standard input holds no password",
        ));
    }
    Ok(Zeroizing::new(trimmed.to_owned()))
}

/// `otp user add`.
fn add(args: UserAddArgs, global: &GlobalArgs, streams: &mut Streams<'_>) -> Result<(), Failure> {
    // Checked before the database is touched, and before a password is read or made.
    crate::app::users::normalize_username(&args.username)?;
    let (password, generated) = if args.password_stdin {
        (password_from_stdin()?, false)
    } else {
        (generate_password(), true)
    };
    crate::app::users::check_password(&password)?;
    let session = Session::open(global, Mail::None)?;
    let new = NewUser::new(&args.username, &password)
        .with_email(args.email.as_deref())
        .with_staff(args.staff);
    let user = session.block_on(session.users().create(new))?;
    let mut text = format!(
        "added {}user {} (key {})\n",
        if user.is_staff { "staff " } else { "" },
        user.username,
        user.key()
    );
    if generated {
        text.push_str(&format!(
            "password: {} (shown this once)\n",
            password.as_str()
        ));
    }
    let text = Zeroizing::new(text);
    streams
        .out
        .write_all(text.as_bytes())
        .map_err(Failure::stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_use_the_alphabet() {
        let a = generate_password();
        let b = generate_password();
        assert_eq!(a.len(), PASSWORD_LEN);
        assert!(a.bytes().all(|byte| PASSWORD_ALPHABET.contains(&byte)));
        assert_ne!(a, b);
        crate::app::users::check_password(&a).unwrap();
    }
}
