//! Templates: minijinja with built-in defaults that an app overrides one by one from a folder.
//!
//! The defaults live in `crates/otp-axum/templates/` and are compiled in. A file of the same
//! name in [`WebConfig::template_dir`](crate::WebConfig::template_dir) replaces one of them;
//! the others stay built in (an override may `{% extends "base.html" %}` the built-in layout).
//! Names ending in `.html` are HTML-escaped automatically.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use minijinja::Environment;

/// The built-in templates, by name.
pub(crate) const BUILT_IN: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/base.html")),
    ("login.html", include_str!("../templates/login.html")),
    (
        "login_otp.html",
        include_str!("../templates/login_otp.html"),
    ),
    ("verify.html", include_str!("../templates/verify.html")),
    ("otp_form.html", include_str!("../templates/otp_form.html")),
    ("error.html", include_str!("../templates/error.html")),
    ("otp.css", include_str!("../templates/otp.css")),
];

/// The template environment.
#[derive(Clone)]
pub(crate) struct Templates {
    env: Arc<Environment<'static>>,
}

impl Templates {
    pub(crate) fn new(dir: Option<PathBuf>) -> Result<Self, minijinja::Error> {
        let mut env = Environment::new();
        env.set_loader(move |name| {
            // Only plain relative names are looked up in the folder: no `..`, no absolute path.
            let plain = Path::new(name)
                .components()
                .all(|part| matches!(part, Component::Normal(_)));
            if let Some(dir) = &dir
                && plain
            {
                match std::fs::read_to_string(dir.join(name)) {
                    Ok(text) => return Ok(Some(text)),
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                    Err(err) => {
                        return Err(minijinja::Error::new(
                            minijinja::ErrorKind::InvalidOperation,
                            "a template could not be read",
                        )
                        .with_source(err));
                    }
                }
            }
            Ok(BUILT_IN
                .iter()
                .find(|(builtin, _)| *builtin == name)
                .map(|(_, text)| (*text).to_owned()))
        });
        // Load (and so parse) every page now: a broken override fails at start-up, not on the
        // first login.
        for (name, _) in BUILT_IN {
            env.get_template(name)?;
        }
        Ok(Self { env: Arc::new(env) })
    }

    pub(crate) fn render(
        &self,
        name: &str,
        context: minijinja::Value,
    ) -> Result<String, minijinja::Error> {
        self.env.get_template(name)?.render(context)
    }
}
