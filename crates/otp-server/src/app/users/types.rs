//! The values of the app's users: a user, a user to create, a query and a page of users, and
//! the errors.

use otp_core::Timestamp;
use serde::Serialize;
use serde::ser::SerializeStruct;

// Named by the doc links only.
#[cfg(doc)]
use super::{MAX_PAGE_SIZE, Users, normalize_username};

/// Everything that can go wrong with the app's users. No variant carries a password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UserError {
    /// A username breaks the rules (1 to 64 characters in NFKC, no control, invisible,
    /// text-direction or unassigned characters, one script, no white space at either end, not
    /// digits only: see [`normalize_username`]); the text says which.
    #[error("invalid username: {0}")]
    InvalidUsername(&'static str),
    /// Another user has this username (in any case).
    #[error("the username is already taken")]
    UsernameTaken,
    /// A password is too short or too long; the text says which.
    #[error("invalid password: {0}")]
    InvalidPassword(&'static str),
    /// An email address that cannot be one.
    #[error("invalid email address")]
    InvalidEmail,
    /// No user has that id.
    #[error("no such user")]
    NotFound,
    /// The database failed, or the framework's migrations did.
    #[error(transparent)]
    Core(#[from] otp_core::Error),
    /// Hashing failed (the blocking thread pool is gone, or a stored hash is malformed).
    #[error("password hashing failed: {0}")]
    Hashing(String),
}

impl From<sqlx::Error> for UserError {
    fn from(err: sqlx::Error) -> Self {
        Self::Core(otp_core::Error::from(err))
    }
}

/// A user of the app. `Serialize` gives templates and JSON `id`, `key`, `username`, `email`,
/// `is_staff` and `created_at` (Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The user's number.
    pub id: i64,
    /// The username, as written at sign-up.
    pub username: String,
    /// The email address, if one was given.
    pub email: Option<String>,
    /// Whether the user may use the admin pages.
    pub is_staff: bool,
    /// When the account was made.
    pub created_at: Timestamp,
    /// When the password was last set.
    pub password_changed_at: Timestamp,
}

impl User {
    /// The key the framework knows the user by: the id as text.
    pub fn key(&self) -> String {
        self.id.to_string()
    }
}

impl Serialize for User {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut user = serializer.serialize_struct("User", 6)?;
        user.serialize_field("id", &self.id)?;
        user.serialize_field("key", &self.key())?;
        user.serialize_field("username", &self.username)?;
        user.serialize_field("email", &self.email)?;
        user.serialize_field("is_staff", &self.is_staff)?;
        user.serialize_field("created_at", &self.created_at.unix_secs())?;
        user.end()
    }
}

/// A user to create with [`Users::create`]. Not `Debug`: it holds the password.
pub struct NewUser<'a> {
    /// The username (see the rules on [`UserError::InvalidUsername`]).
    pub username: &'a str,
    /// An email address; `None` or empty for none.
    pub email: Option<&'a str>,
    /// The password, 8 to 1024 characters.
    pub password: &'a str,
    /// Whether the user may use the admin pages.
    pub is_staff: bool,
}

impl<'a> NewUser<'a> {
    /// A user who is not staff and has no email address.
    pub fn new(username: &'a str, password: &'a str) -> Self {
        Self {
            username,
            email: None,
            password,
            is_staff: false,
        }
    }

    /// With an email address.
    pub fn with_email(mut self, email: Option<&'a str>) -> Self {
        self.email = email;
        self
    }

    /// With the staff flag.
    pub fn with_staff(mut self, is_staff: bool) -> Self {
        self.is_staff = is_staff;
        self
    }
}

/// Which users [`Users::list`] returns.
#[derive(Debug, Clone, Default)]
pub struct UserQuery {
    /// Only users whose username or email address contains this text, in any case.
    pub search: Option<String>,
    /// The page, from 1 (0 counts as 1).
    pub page: u32,
    /// Users per page, 1 to [`MAX_PAGE_SIZE`] (0 means 25).
    pub per_page: u32,
}

/// One page of users, by ascending id.
#[derive(Debug, Clone, Serialize)]
pub struct UserPage {
    /// The users on this page.
    pub users: Vec<User>,
    /// How many users match in all.
    pub total: u64,
    /// This page's number, from 1.
    pub page: u32,
    /// Users per page.
    pub per_page: u32,
}

impl UserPage {
    /// How many pages there are (at least 1).
    pub fn pages(&self) -> u64 {
        self.total.div_ceil(u64::from(self.per_page)).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_user_debug_is_not_derived() {
        // NewUser holds a password; User has none, and its Debug shows no hash.
        let user = User {
            id: 1,
            username: "alice".into(),
            email: None,
            is_staff: false,
            created_at: Timestamp::from_unix_millis(0),
            password_changed_at: Timestamp::from_unix_millis(0),
        };
        assert!(!format!("{user:?}").contains("argon2"));
        assert_eq!(user.key(), "1");
    }
}
