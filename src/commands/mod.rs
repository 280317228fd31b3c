//! The command line, the commands besides serving (`retention`, `probe`) and the exit statuses
//! every command ends with ([`Exit`]).

pub mod cli;
pub mod probe;
pub mod retention;

use std::process::ExitCode;

/// How the process ends: sysexits.h's statuses where one fits, named once here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Done.
    Success = 0,
    /// Ran and did not succeed: a probe answered otherwise, a retention run had errors.
    Failure = 1,
    /// `EX_USAGE`: the configuration or the arguments are wrong; running again will not help.
    Config = 64,
    /// `EX_UNAVAILABLE`: a listener, storage or credentials could not be had; a restart may.
    Unavailable = 69,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit as u8)
    }
}
