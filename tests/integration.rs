//! Integration tests against the real binary and real services, linked as one test binary.

mod common;

mod access;
mod cassandra;
mod cli;
mod faults;
mod geodata;
mod s3;
mod write;
mod flight;
mod fuzz;
mod postgres;
mod sql_text;
