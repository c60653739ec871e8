//! The command that created a study folder: `STUDY_DIR/command.json`.
//!
//! A study run by a program of the user's (a Rust `Tuner`) can only be
//! continued by that program, with the same settings. Its folder records the
//! program's command line and working directory, so that `foresight resume`
//! can show it and — only when asked with an explicit flag — run it again.
//! A folder received from someone else can hold any command: it is never
//! run unseen.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The file in a study folder that records the command which created it.
pub const COMMAND_FILE: &str = "command.json";

/// The command that created a study.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Command {
    /// The program (absolute path) and its arguments.
    pub argv: Vec<String>,
    /// The working directory it ran in.
    pub cwd: PathBuf,
}

impl Command {
    /// The command recorded in a study folder.
    pub fn load(dir: &Path) -> Result<Command> {
        let path = dir.join(COMMAND_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|e| Error::Storage {
            storage: path.display().to_string(),
            message: e.to_string(),
        })
    }

    /// The command as one line a shell would take (arguments quoted where
    /// needed), for showing it.
    pub fn display(&self) -> String {
        self.argv
            .iter()
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

/// Writes the running program's command into a new study folder.
pub(super) fn record(dir: &Path) -> Result<()> {
    let io = |path: &Path, source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let mut argv: Vec<String> = std::env::args().collect();
    if let (Some(first), Ok(exe)) = (argv.first_mut(), std::env::current_exe()) {
        *first = exe.to_string_lossy().into_owned();
    }
    let cwd = std::env::current_dir().map_err(|e| io(dir, e))?;
    let text = serde_json::to_string_pretty(&Command { argv, cwd }).expect("serialisable");
    let path = dir.join(COMMAND_FILE);
    std::fs::write(&path, text).map_err(|e| io(&path, e))
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
}
