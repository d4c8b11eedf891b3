//! The server's own pages: minijinja templates compiled in, a layout that matches the
//! library's login pages, and the context every page gets ([`Page`]).
//!
//! | template | what it is |
//! |---|---|
//! | `base.html` | the layout: the site name, the navigation, the card, the error box and the notice; both stylesheets |
//! | `home.html` | `/` |
//! | `signup.html` | `/signup` |
//! | `password.html` | `/account/password` |
//! | `error.html` | a refused or unreadable form, a page that is switched off |
//! | `admin/layout.html` | the admin's pages extend it: wide, an "Admin" link in the navigation |
//! | `admin/users.html` | `/admin`: search and list the users |
//! | `admin/user.html` | `/admin/users/{id}`: a user, their devices, the actions |
//! | `admin/device.html` | `/admin/devices/{kind}/{number}`: a device and its form |
//! | `admin/device_new.html` | `/admin/users/{id}/devices/new/{kind}`: the creation form of a kind |
//! | `admin/device_created.html` | a new device's URI and QR code or codes, or a new backup code, shown once |
//! | `admin/config.html` | `/admin/devices/{kind}/{number}/config`: QR code and URI of a TOTP or HOTP device |
//! | `admin/delete.html` | `/admin/devices/{kind}/{number}/delete`: asks before deleting |
//! | `admin/second_factor.html` | a staff user without a device: the admin needs one |
//! | `devices.html` | `/account/devices`: the user's devices, rename, remove, new backup codes, the forms that add devices |
//! | `device_confirm.html` | `/account/devices/{kind}/{number}/confirm`: the QR code, secret and URI of a new TOTP or HOTP device, or the emailed code of a new email device |
//! | `backup_codes.html` | new backup codes, shown once, with their download link |
//! | `app.css` | served at `/static/app.css`, on top of the library's `/account/otp.css` |
//! | `devices.css` | served at `/static/devices.css`: what the device pages add |
//!
//! `base.html` has the blocks `title`, `heading`, `messages`, `content`, `footer`, `head`,
//! `lang`, `page_class` (` app-wide` widens the layout for tables), `nav` and `nav_links`
//! (links after "Password" in the navigation of a logged-in user). No template holds a
//! script or a `style` attribute: the Content-Security-Policy forbids both.

use std::sync::Arc;

use minijinja::Environment;
use serde::Serialize;

use super::users::User;

/// The built-in templates, by name. Pages of their own (enrollment, admin) add theirs here.
pub(crate) const BUILT_IN: &[(&str, &str)] = &[
    ("base.html", include_str!("../../templates/base.html")),
    ("home.html", include_str!("../../templates/home.html")),
    ("signup.html", include_str!("../../templates/signup.html")),
    (
        "password.html",
        include_str!("../../templates/password.html"),
    ),
    ("error.html", include_str!("../../templates/error.html")),
    (
        "admin/layout.html",
        include_str!("../../templates/admin/layout.html"),
    ),
    (
        "admin/users.html",
        include_str!("../../templates/admin/users.html"),
    ),
    (
        "admin/user.html",
        include_str!("../../templates/admin/user.html"),
    ),
    (
        "admin/device.html",
        include_str!("../../templates/admin/device.html"),
    ),
    (
        "admin/device_new.html",
        include_str!("../../templates/admin/device_new.html"),
    ),
    (
        "admin/device_created.html",
        include_str!("../../templates/admin/device_created.html"),
    ),
    (
        "admin/config.html",
        include_str!("../../templates/admin/config.html"),
    ),
    (
        "admin/delete.html",
        include_str!("../../templates/admin/delete.html"),
    ),
    (
        "admin/second_factor.html",
        include_str!("../../templates/admin/second_factor.html"),
    ),
    ("devices.html", include_str!("../../templates/devices.html")),
    (
        "device_confirm.html",
        include_str!("../../templates/device_confirm.html"),
    ),
    (
        "backup_codes.html",
        include_str!("../../templates/backup_codes.html"),
    ),
];

/// The stylesheet of the server's pages, served at [`Urls::app_css`].
pub(crate) const APP_CSS: &str = include_str!("../../templates/app.css");

/// The stylesheet of the device pages, served at [`Urls::devices_css`].
pub(crate) const DEVICES_CSS: &str = include_str!("../../templates/devices.css");

/// The template environment of the server's pages. Cheap to clone.
#[derive(Clone)]
pub struct Pages {
    env: Arc<Environment<'static>>,
}

impl std::fmt::Debug for Pages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pages").finish_non_exhaustive()
    }
}

impl Pages {
    /// Parses every built-in template.
    ///
    /// # Errors
    ///
    /// A template that does not parse.
    pub fn new() -> Result<Self, minijinja::Error> {
        let mut env = Environment::new();
        for (name, source) in BUILT_IN {
            env.add_template(name, source)?;
        }
        Ok(Self { env: Arc::new(env) })
    }

    /// Renders `name` with `context`.
    ///
    /// # Errors
    ///
    /// An unknown template or a failure while rendering.
    pub fn render(
        &self,
        name: &str,
        context: minijinja::Value,
    ) -> Result<String, minijinja::Error> {
        self.env.get_template(name)?.render(context)
    }
}

/// The paths the pages link to.
#[derive(Debug, Clone, Serialize)]
pub struct Urls {
    /// `/`
    pub home: &'static str,
    /// `/signup`
    pub signup: &'static str,
    /// `/account/password`
    pub password: &'static str,
    /// The library's login page, `/account/login`.
    pub login: &'static str,
    /// The library's verification page, `/account/verify`.
    pub verify: &'static str,
    /// The library's logout (a `POST` with the CSRF field), `/account/logout`.
    pub logout: &'static str,
    /// The library's stylesheet, `/account/otp.css`.
    pub otp_css: &'static str,
    /// The server's stylesheet, `/static/app.css`.
    pub app_css: &'static str,
    /// The user's devices, `/account/devices` (the device pages are below it).
    pub devices: &'static str,
    /// The device pages' stylesheet, `/static/devices.css`.
    pub devices_css: &'static str,
    /// The admin, `/admin`, for staff users whose session is verified.
    pub admin: &'static str,
}

/// The paths of the pages (the library's pages are mounted at `/account`).
pub const URLS: Urls = Urls {
    home: "/",
    signup: "/signup",
    password: "/account/password",
    login: "/account/login",
    verify: "/account/verify",
    logout: "/account/logout",
    otp_css: "/account/otp.css",
    app_css: "/static/app.css",
    devices: "/account/devices",
    devices_css: "/static/devices.css",
    admin: "/admin",
};

/// What every page sees. Not `Debug`: it holds the CSRF token.
#[derive(Serialize)]
pub struct Page {
    /// The site's name.
    pub site_name: String,
    /// The paths of the pages.
    pub urls: Urls,
    /// The name of the hidden CSRF field every `POST` form carries.
    pub csrf_field: &'static str,
    /// Its value.
    pub csrf_token: String,
    /// The logged-in user, if any.
    pub user: Option<User>,
    /// Whether the session is OTP-verified.
    pub verified: bool,
    /// Whether `/signup` is open.
    pub signup_enabled: bool,
    /// An error message for the error box.
    pub error: Option<String>,
    /// An information message.
    pub notice: Option<String>,
}
