//! The command that created a study.
//!
//! A study run by a program of the user's (a Rust `Tuner`) can only be
//! continued by that program, with the same settings. The worker that
//! creates a study records the program's command line and working directory
//! in its storage ([`crate::storage::Storage::record_command`]: a study
//! folder's `command.json`, a database's study row), so that `foresight
//! resume` can show it and — only when asked with an explicit flag — run it
//! again. A study received from someone else can hold any command: it is
//! never run unseen.

use std::path::PathBuf;

use crate::error::{Error, Result};

/// The command that created a study.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Command {
    /// The program (absolute path) and its arguments.
    pub argv: Vec<String>,
    /// The working directory it ran in.
    pub cwd: PathBuf,
}

impl Command {
    /// The running program's command: its executable's absolute path, its
    /// arguments, and the working directory.
    pub fn current() -> Result<Command> {
        let mut argv: Vec<String> = std::env::args().collect();
        if let (Some(first), Ok(exe)) = (argv.first_mut(), std::env::current_exe()) {
            *first = exe.to_string_lossy().into_owned();
        }
        let cwd = std::env::current_dir().map_err(|source| Error::Io {
            path: ".".into(),
            source,
        })?;
        Ok(Command { argv, cwd })
    }

    /// The command as one line a shell would take (arguments quoted where
    /// needed), for showing it; a password in a URL argument is shown as
    /// `***`.
    pub fn display(&self) -> String {
        self.argv
            .iter()
            .map(|a| hide_password(a))
            .map(|a| {
                if !a.is_empty()
                    && a.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
                {
                    a.clone()
                } else {
                    format!("'{}'", a.replace('\'', r"'\''"))
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// `arg` with the password of a URL in it (`scheme://user:password@host`)
/// replaced by `***`.
pub fn hide_password(arg: &str) -> String {
    let Some(scheme) = arg.find("://") else {
        return arg.to_string();
    };
    let rest = &arg[scheme + 3..];
    let authority = rest.find(['/', '?', '#']).map_or(rest, |end| &rest[..end]);
    match (authority.rfind('@'), authority.find(':')) {
        (Some(at), Some(colon)) if colon < at => format!(
            "{}{}***{}",
            &arg[..scheme + 3],
            &rest[..colon + 1],
            &rest[at..]
        ),
        _ => arg.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_is_shown_quoted() {
        let c = Command {
            argv: vec![
                "/bin/train".into(),
                "--name".into(),
                "a b".into(),
                "it's".into(),
            ],
            cwd: PathBuf::from("/"),
        };
        assert_eq!(c.display(), r"/bin/train --name 'a b' 'it'\''s'");
    }

    #[test]
    fn passwords_are_not_shown() {
        for (arg, shown) in [
            ("postgres://u:secret@h/db", "postgres://u:***@h/db"),
            (
                "--storage=postgres://u:p@ss@h:5/db?x=1",
                "--storage=postgres://u:***@h:5/db?x=1",
            ),
            ("postgres://u@h/db", "postgres://u@h/db"),
            ("http://h:80/a@b", "http://h:80/a@b"),
            ("plain:text@x", "plain:text@x"),
        ] {
            assert_eq!(hide_password(arg), shown, "{arg}");
        }
    }
}
