//! The one place a lakegate error becomes a gRPC status.

use datafusion::error::DataFusionError;
use tonic::Status;

use crate::{Error, Stopped};

/// A lakegate error as the gRPC status clients expect: the user's mistakes are
/// `InvalidArgument`, with the message that names what is wrong.
pub(crate) fn status(error: Error) -> Status {
    Status::new(code(&error), error.to_string())
}

fn code(error: &Error) -> tonic::Code {
    match error {
        Error::Syntax(_) | Error::Invalid(_) | Error::Unsupported(_) | Error::Catalog(_) | Error::Usage(_) => {
            tonic::Code::InvalidArgument
        }
        Error::Stopped(stopped) => stopped_code(stopped),
        Error::DataFusion(e) if let Some(stopped) = Stopped::find(e) => stopped_code(stopped),
        Error::DataFusion(e) => match e.find_root() {
            DataFusionError::SQL(..)
            | DataFusionError::Plan(_)
            | DataFusionError::SchemaError(..)
            | DataFusionError::NotImplemented(_) => tonic::Code::InvalidArgument,
            DataFusionError::ResourcesExhausted(_) => tonic::Code::ResourceExhausted,
            _ => tonic::Code::Internal,
        },
        Error::Statement { source, .. } => code(source),
        Error::Config(_) | Error::Geodata(_) | Error::Listen(_) | Error::Terminal(_) => tonic::Code::FailedPrecondition,
        Error::Connect(_) | Error::Remote(_) | Error::Cluster(_) => tonic::Code::Unavailable,
        Error::PermissionDenied { .. } => tonic::Code::PermissionDenied,
        Error::Io { .. } | Error::Internal(_) => tonic::Code::Internal,
    }
}

/// A killed query is `Cancelled`; one over its time limit, `DeadlineExceeded`.
fn stopped_code(stopped: &Stopped) -> tonic::Code {
    if stopped.timed_out { tonic::Code::DeadlineExceeded } else { tonic::Code::Cancelled }
}
