//! Integration tests against the real binary and real services, linked as one test binary.

mod common;

mod cassandra;
mod cli;
mod geodata;
mod s3;
mod write;
mod flight;
mod postgres;
