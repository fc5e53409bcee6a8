//! Integration tests against the real binary and real services, linked as one test binary.

mod common;

mod access;
mod cache;
mod cassandra;
mod cli;
mod cluster;
mod faults;
mod flight;
mod fuzz;
mod geodata;
mod glue;
mod memory;
mod metastore;
mod operate;
mod postgres;
mod s3;
mod sql_text;
mod text;
mod write;
